"""One writer at a time: an exclusive lock on an output, held by the run that writes it.

Every script that writes an output folder takes one (inference per output file, data preparation, router training,
evaluation, mini-FLARE, the stand-in and adapter training per folder). A second run of the same output is refused
in one line that names the first (pid, host, start time, command), instead of both writing and leaving one run's
files beside the other's. The kernel drops the lock when its holder exits, ``kill -9`` included, so a lock is never
stale and nothing has to be cleaned up by hand.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path


class OutputInUseError(ValueError):
    """Another live run holds the output's lock; the message names it."""


class OutputLock:
    """An exclusive lock on one output (``.<name>.lock`` beside ``target``, a file or a folder).

    Args:
        target: the output file or folder.
        what: what kind of run holds it, for the message (``inference run``, ``data preparation run``, ...).
        error: the exception class raised when the lock is held (a :class:`ValueError` subclass).

    Raises:
        OutputInUseError (or ``error``): another live run holds it.
    """

    def __init__(self, target: str | os.PathLike, what: str = "run", error: type[ValueError] = OutputInUseError):
        import fcntl

        target = Path(target)
        self.path = target.with_name(f".{target.name}.lock")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a+", encoding="utf-8")
        except OSError as err:  # a file where a folder should be, a read-only place: name the output asked for
            raise type(err)(err.errno, f"cannot write there ({err.strerror})", str(target)) from None
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            self._fh.seek(0)
            holder = self._fh.read().strip() or "unknown"
            self._fh.close()
            raise error(f"{target} is in use by another {what} ({holder}); wait for it to finish or write into "
                        "another --output_dir") from err
        self._fh.seek(0)
        self._fh.truncate()
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        self._fh.write(f"pid {os.getpid()} on {socket.gethostname()}, started {started}: {' '.join(sys.argv)}\n")
        self._fh.flush()

    def release(self) -> None:
        """Drop the lock (closing the file releases it)."""
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
