"""What every command-line script shares: help layout, logging options and format, and how a user error ends.

Each script (``llama_factory_internvl/scripts/*.py``, ``docker_internvl/*.py``, ``evaluation/evaluation.py``,
``task_classifier/*.py``, ``benchmarks/*.py``, ``python -m mevlip.<module>``) is a thin ``main(argv)`` over
:mod:`mevlip` that builds its parser with :func:`make_parser`, adds :func:`add_common_args`, calls
:func:`setup_logging`, and runs under :func:`run_cli`. So:

- options are snake_case, as the original ME-VLIP scripts spell them: a dataset root is ``--base_dataset_path``, an
  output folder ``--output_dir``, an output file ``--output_file``, then ``--no_progress`` and ``--log_level``.
  Older spellings stay accepted as hidden aliases (:func:`add_option`), so documented commands keep running;
- ``--help`` shows every option's default, and the common options under one heading, worded the same everywhere;
- every numeric option is range-checked as it is parsed (:func:`number` and the types built on it): a value out
  of range or not finite (``nan``, ``inf``) ends as argparse's own one-line error, before anything runs;
- a user error (a missing or unreadable input, a bad flag value) ends as one line ``<prog>: error: <message>`` on
  stderr with exit code 2, the form argparse gives its own errors; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: The one console log format of every script.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
COMMON_TITLE = "common options"
#: Exit code of a user error (argparse's own); 1 stays for a run that failed (a training job that crashed).
USER_ERROR_EXIT = 2
_SAYS_DEFAULT = re.compile(r"\bdefault\b", re.IGNORECASE)  # not default_system
#: Errors about a path the user gave; each carries the path (``filename``) or names it.
PATH_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)
#: Write failures that are the machine's state, not a bug: no space, over quota, a read-only file system.
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.ENAMETOOLONG)


#: The largest seed every generator here accepts (numpy's and torch's seeds are unsigned 32-bit at least).
SEED_MAX = 2**32 - 1


def number(kind: type = int, low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False, also: tuple = ()) -> Callable[[str], int | float]:
    """An argparse ``type`` that accepts a finite ``kind`` (``int`` or ``float``) within ``[low, high]``.

    Args:
        kind: ``int`` or ``float``.
        low, high: the bounds (``None``: unbounded); ``low_open`` / ``high_open``: that bound itself is refused.
        also: values accepted outside the bounds (a sentinel such as ``-1`` for "off").

    Returns:
        The parser; it raises :class:`argparse.ArgumentTypeError`, which argparse prints as
        ``<prog>: error: argument --flag: <why>`` (exit code 2).
    """
    def show(v: float) -> str:
        return str(v) if kind is int else f"{v:g}"

    bounds = ("(" if low_open or low is None else "[") + ("-inf" if low is None else show(low)) + ", " + (
        "inf)" if high is None else show(high) + (")" if high_open else "]"))

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got "
                                             f"{text!r}") from None
        if value in also:
            return value
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number in {bounds}, got {text}")
        if (low is not None and (value < low or (low_open and value == low))) or (
                high is not None and (value > high or (high_open and value == high))):
            extra = f" (or {', '.join(str(a) for a in also)})" if also else ""
            raise argparse.ArgumentTypeError(f"must be in {bounds}{extra}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


#: The common cases.
POSITIVE_INT = number(int, 1)
NON_NEGATIVE_INT = number(int, 0)
SEED = number(int, 0, SEED_MAX)
PROBABILITY = number(float, 0.0, 1.0)
POSITIVE_FLOAT = number(float, 0.0, low_open=True)


class UserError(SystemExit):
    """A mistake in the user's input or flags: :func:`run_cli` prints it as one line and exits with code 2.

    It is a ``SystemExit``, so a ``main()`` called outside :func:`run_cli` still stops without a traceback.
    """

    def __init__(self, message: str):
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.code)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The description as written; every option's help ends with its default.

    Left without ``(default: ...)``: required options, flags that are off unless given, and help that already says
    its default in words (``(default: the recipe's)``, ``...; default: <output_dir>/.images``).
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if _SAYS_DEFAULT.search(text) or action.required or action.default is argparse.SUPPRESS:
            return text
        if action.nargs == 0 and not isinstance(action, argparse.BooleanOptionalAction):
            return text
        return text + " (default: %(default)s)"


def checkout_root() -> Path | None:
    """The repository checkout this package runs from (``llama_factory_internvl/`` beside ``mevlip/``), or ``None``
    when it is installed elsewhere: the scripts' default folders are the checkout's, else the current folder's."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "llama_factory_internvl").is_dir() else None


#: The name a command runs under when started as ``mevlip <stage>`` (set by :func:`mevlip.commands.main`): its
#: usage and error lines then say ``mevlip <stage>`` whatever the module's own name.
COMMAND_NAME: str | None = None


def make_parser(description: str | None, prog: str | None = None) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with :class:`HelpFormatter`; ``prog`` for ``python -m`` modules."""
    return argparse.ArgumentParser(prog=COMMAND_NAME or prog, description=description, formatter_class=HelpFormatter)


def add_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *flags: str,
               aliases: Sequence[str] = (), **kwargs) -> argparse.Action:
    """``parser.add_argument(*flags, **kwargs)`` that also accepts the old spellings ``aliases``, unshown.

    The aliases parse exactly as the flag (same destination), so commands written with them keep working; ``--help``,
    the usage line and error messages name only ``flags``.
    """
    action = parser.add_argument(*flags, *aliases, **kwargs)
    # argparse parses through the table of option strings filled by add_argument above; what it shows (help, usage,
    # the option's name in errors) comes from action.option_strings alone.
    action.option_strings = [s for s in action.option_strings if s not in aliases]
    return action


def add_common_args(parser: argparse.ArgumentParser, progress: bool = False,
                    progress_default: bool | None = False) -> argparse._ArgumentGroup:
    """Add the options every script shares, under one heading: ``--log_level`` and, with ``progress``,
    ``--no_progress`` (old spelling ``--no-progress`` accepted).

    Args:
        parser: the script's parser.
        progress: the script draws progress bars.
        progress_default: the default of ``--no_progress``; ``None``: off on a terminal, on otherwise (bars only
            when stderr is a terminal).

    Returns:
        The group, for script-specific options that belong with them.
    """
    group = parser.add_argument_group(COMMON_TITLE)
    group.add_argument("--log_level", type=str.upper, choices=LOG_LEVELS, default="INFO",
                       help="how much the script logs to stderr")
    if progress:
        if progress_default is None:
            add_option(group, "--no_progress", aliases=("--no-progress",), action="store_true",
                       default=not sys.stderr.isatty(),
                       help="no progress bars (default: bars only when stderr is a terminal)")
            # the old --progress forced the bars on
            group.add_argument("--progress", dest="no_progress", action="store_false", default=argparse.SUPPRESS,
                               help=argparse.SUPPRESS)
        else:
            add_option(group, "--no_progress", aliases=("--no-progress",), action="store_true",
                       default=progress_default, help="no progress bars")
    return group


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr in :data:`LOG_FORMAT` at ``level`` (a no-op when logging is already set up, e.g. in tests)."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)


@contextlib.contextmanager
def writing(path: str | os.PathLike):
    """Name ``path`` in an ``OSError`` raised inside the block: a failed ``write`` (a full disk) carries no file
    name, and a user must be told which file could not be written."""
    try:
        yield
    except OSError as err:
        if err.filename is None:
            raise OSError(err.errno, err.strerror or str(err), str(path)) from err
        raise


def one_line(err: BaseException | str) -> str:
    """The message of ``err`` on one line (an ``OSError`` as ``<file>: <reason>``)."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f"{err.filename}: {err.strerror}"
    else:
        text = str(err) if str(err) else type(err).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def is_user_error(err: BaseException) -> bool:
    """True for what :func:`run_cli` reports as a user error: :class:`UserError`, a path that is missing, of the
    wrong kind or not allowed (:data:`PATH_ERRORS`), and the ``ValueError`` subclasses :mod:`mevlip` raises for bad
    input (``FlareDataError``, ``PredictionFileError``, ``RouterError``, ...: each names the file or record at
    fault), and a write that fails for lack of space or permission (:data:`DISK_ERRNOS`). A plain ``ValueError`` is
    a bug until a script says otherwise by catching it where it calls the library.
    """
    if isinstance(err, (UserError, *PATH_ERRORS)):
        return True
    if isinstance(err, OSError) and err.errno in DISK_ERRNOS:  # a full disk, a read-only folder: one line
        return True
    return isinstance(err, ValueError) and type(err).__module__.split(".")[0] == "mevlip"


def run_cli(main: Callable[[list[str] | None], object], argv: list[str] | None = None,
            prog: str | None = None) -> NoReturn:
    """Run ``main(argv)`` as a script: a user error becomes ``<prog>: error: <message>`` and exit code 2.

    ``main`` returns an exit code (an int) or anything else for 0. A ``SystemExit`` with a message (``raise
    SystemExit("...")``) counts as a user error too; argparse's own exits pass through unchanged.
    """
    prog = prog or os.path.basename(sys.argv[0])
    try:
        code = main(argv)
    except SystemExit as err:
        if isinstance(err.code, str):
            _fail(prog, err)
        raise
    except Exception as err:
        if not is_user_error(err):
            raise
        _fail(prog, err)
    sys.exit(code if isinstance(code, int) and not isinstance(code, bool) else 0)


def _fail(prog: str, err: BaseException | str) -> NoReturn:
    sys.stdout.flush()
    print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
    sys.exit(USER_ERROR_EXIT)
