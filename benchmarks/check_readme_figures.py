"""Check that every figure the READMEs quote equals the result file it came from.

    python benchmarks/check_readme_figures.py            # exit 1 if a figure differs; lists what it could not check
    python benchmarks/check_readme_figures.py --require_all   # also exit 1 when a result file is missing
    python benchmarks/check_readme_figures.py --update        # after a rerun: write its figures into the READMEs

Three kinds of check:

* **Marked figures**, anywhere in a README: ``12.1<!--fig benchmarks/results/bench_router.json bi-encoder.speedup-->``.
  The figure is the text right before the marker; the marker names its result file (from the repository root) and
  the key in it (dots between keys, list indices as numbers, an optional ``*100`` for percentages). A number is
  compared at the README's precision (``12.1`` equals 12.07, ``58,110`` equals 58110), a string exactly. A
  machine-dependent figure (a timing, a speed-up) is quoted as the range seen across runs and machines, ``7.1-12.1``:
  it holds when the result file's figure lies within the range.
* **Marked blocks**: ``<!--fig-block demo_output/data/prepare_stats.json prepare_summary-->`` before a fenced block:
  every line of the block that starts with ``[`` must be a line that the named renderer prints for that file
  (``prepare_summary``: what data preparation prints, ``mevlip.prepare.stats.format_summary``).
* **The demo table** of ``README.md`` (columns named by ``mevlip.demo.report.MODE_TITLES``, rows by task title),
  cell by cell as the demo report writes them: ``mean [min, max]`` cells against the committed seeds reference
  ``benchmarks/results/demo_seeds.json``; single figures (and "beats the baseline on N of M tasks") against
  ``demo_output/results.json``.

In the ``## Benchmarks`` section of ``README.md`` a table cell past the second column may hold no number without a
marker, so a new figure cannot go in unchecked. A result file that is absent (``benchmarks/results/`` is not
committed; ``make demo`` writes ``demo_output/``) is reported as not checked, with the README line that needs it.

``--update`` rewrites every marked figure that differs with the figure its result file gives, at the README's
precision (a range is widened to include it; a number quoted with ``~`` becomes the number itself, to 3
significant digits); blocks and the demo table are not rewritten (they are reported as before).
"""

from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from mevlip.cli import UserError, add_common_args, make_parser, run_cli, setup_logging

REPO = Path(__file__).resolve().parents[1]
READMES = ("README.md", "task_classifier/README.md", "llama_factory_internvl/data/README.md", "evaluation/README.md")
MARKER = re.compile(r"(?P<figure>[^\s|>(]*)<!--fig (?P<file>\S+) (?P<key>\S+?)(?:\*(?P<scale>\d+))? ?-->")
BLOCK_MARKER = re.compile(r"<!--fig-block (?P<file>\S+) (?P<renderer>\S+) ?-->")
NUMBER = re.compile(r"^-?[\d,]*\.?\d+$")
RANGE = re.compile(r"^(?P<lo>\d[\d,]*(?:\.\d+)?)-(?P<hi>\d[\d,]*(?:\.\d+)?)$")
BEATS = re.compile(r"beats the (?:constant )?baseline on (\d+) of (\d+) tasks")


@dataclass
class Report:
    """What the check found: figures that match, that differ, and that could not be checked (and, with
    ``update``, the marked figures rewritten)."""

    ok: list[str] = field(default_factory=list)
    differ: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)

    def failed(self, require_all: bool) -> bool:
        """True when a figure differs (or, with ``require_all``, when one could not be checked)."""
        return bool(self.differ or (require_all and self.unchecked))


def lookup(data, key: str):
    """The value at a dotted ``key`` (``bi-encoder.speedup``, ``0.records``); ``KeyError`` naming the missing part."""
    value = data
    for part in key.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise KeyError(part)
    return value


def same_figure(quoted: str, value) -> tuple[bool, str]:
    """Whether the README's text ``quoted`` shows ``value``, and the text that would.

    A number is compared at the README's precision (thousands separators kept if the README has them); a range
    ``lo-hi`` (a machine-dependent figure: timings, speed-ups) holds when the value, at the range's precision, lies
    within it, and the text that would is the range widened to include it; anything else is compared exactly.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return quoted == str(value), str(value)
    if math.isinf(value) or math.isnan(value):
        return False, str(value)
    ranged = RANGE.match(quoted)
    if ranged:
        lo, hi = ranged["lo"], ranged["hi"]
        decimals = max(len(x.split(".")[1]) if "." in x else 0 for x in (lo, hi))
        shown = round(value, decimals)
        low, high = float(lo.replace(",", "")), float(hi.replace(",", ""))
        inside = low <= shown <= high
        return inside, quoted if inside else f"{min(low, shown):.{decimals}f}-{max(high, shown):.{decimals}f}"
    if not NUMBER.match(quoted):
        return False, f"{value:.3g}" if isinstance(value, float) else str(value)
    decimals = len(quoted.split(".")[1]) if "." in quoted else 0
    expected = f"{value:,.{decimals}f}" if "," in quoted else f"{value:.{decimals}f}"
    return quoted == expected, expected


def _load(path: Path, cache: dict):
    if path not in cache:
        cache[path] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    return cache[path]


def check_markers(readme: Path, root: Path, report: Report, cache: dict, update: bool = False) -> None:
    """Check every ``<!--fig ...-->`` figure and ``<!--fig-block ...-->`` block of one README; with ``update``,
    rewrite the marked figures that differ."""
    text = readme.read_text(encoding="utf-8")
    lines = text.splitlines()
    name = readme.relative_to(root).as_posix()
    rewritten = list(lines)
    for number, line in enumerate(lines, 1):
        where = f"{name}:{number}"
        for m in reversed(list(MARKER.finditer(line))):  # right to left: a rewrite keeps the earlier offsets
            data = _load(root / m["file"], cache)
            if data is None:
                report.unchecked.append(f"{where}: {m['figure']!r} needs {m['file']} (absent)")
                continue
            try:
                value = lookup(data, m["key"])
            except KeyError as missing:
                report.differ.append(f"{where}: {m['file']} has no key {m['key']!r} (missing {missing})")
                continue
            if m["scale"] and isinstance(value, (int, float)):
                value = value * int(m["scale"])
            same, expected = same_figure(m["figure"], value)
            if update and not same:
                row = rewritten[number - 1]
                rewritten[number - 1] = row[:m.start("figure")] + expected + row[m.end("figure"):]
                report.updated.append(f"{where}: {m['figure']!r} -> {expected!r} ({m['file']} {m['key']})")
                continue
            (report.ok if same else report.differ).append(
                f"{where}: {m['figure']!r}" + ("" if same else f" but {m['file']} {m['key']} gives {expected!r}"))
        block = BLOCK_MARKER.search(line)
        if block:
            check_block(lines, number, block, where, root, report, cache)
    if rewritten != lines:
        readme.write_text("\n".join(rewritten) + ("\n" if text.endswith("\n") else ""), encoding="utf-8")


def _render(renderer: str, data) -> list[str]:
    if renderer == "prepare_summary":
        from mevlip.prepare.stats import format_summary

        return format_summary(data).splitlines()
    raise ValueError(f"unknown renderer {renderer!r} (known: prepare_summary)")


def check_block(lines: list[str], number: int, block: re.Match, where: str, root: Path, report: Report,
                cache: dict) -> None:
    """The fenced block after line ``number``: each line starting with ``[`` must be one the renderer prints."""
    start = next((i for i in range(number, len(lines)) if lines[i].startswith("```")), None)
    if start is None:
        report.differ.append(f"{where}: fig-block marker without a fenced block after it")
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("```")), len(lines))
    quoted = [line for line in lines[start + 1:end] if line.startswith("[")]
    data = _load(root / block["file"], cache)
    if data is None:
        report.unchecked.append(f"{where}: {len(quoted)} printed lines need {block['file']} (absent)")
        return
    printed = set(_render(block["renderer"], data))
    for offset, line in enumerate(lines[start + 1:end], start + 2):
        if line.startswith("["):
            (report.ok if line in printed else report.differ).append(
                f"{where.split(':')[0]}:{offset}: {line[:60]!r}" + ("" if line in printed else
                                                                    f" is not printed for {block['file']}"))


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def check_benchmarks_marked(readme: Path, root: Path, report: Report) -> None:
    """In ``## Benchmarks``, a table cell past the second column holds no number outside a marked figure."""
    text = readme.read_text(encoding="utf-8")
    lines = text.splitlines()
    inside = False
    for number, line in enumerate(lines, 1):
        if line.startswith("## "):
            inside = line.startswith("## Benchmarks")
        if not inside or not line.startswith("|") or set(line) <= set("|-: "):
            continue
        for cell in _cells(line)[2:]:
            bare = re.sub(r"`[^`]*`", "", MARKER.sub("", cell))
            if re.search(r"\d", bare):
                report.differ.append(f"{readme.relative_to(root)}:{number}: unmarked figure in {cell!r}")


def seeds_cell(summary: dict, task: str, mode: str, higher: bool) -> str | None:
    """How the seeds table writes one cell: ``mean [min, max]`` of the seeds reference, as ``seeds.md`` does."""
    from mevlip.demo.report import _fmt

    cell = summary.get(task, {}).get(mode)
    if not cell:
        return None
    return f"{_fmt(cell['mean'], higher)} [{_fmt(cell['min'], higher)}, {_fmt(cell['max'], higher)}]"


def check_demo_table(readme: Path, results_path: Path, root: Path, report: Report,
                     seeds_path: Path | None = None) -> None:
    """The README's demo table against ``demo_output/results.json`` (one run: a figure per cell, and the "beats the
    baseline on N of M tasks" sentences), or, when its cells read ``mean [min, max]``, against the committed seeds
    reference ``benchmarks/results/demo_seeds.json`` (``python -m mevlip.demo --seeds ...``)."""
    from mevlip.demo.report import MODE_TITLES, _fmt
    from mevlip.tasks import TASKS

    lines = readme.read_text(encoding="utf-8").splitlines()
    header_at = next((i for i, line in enumerate(lines) if line.startswith("|")
                      and any(c == MODE_TITLES["constant"] for c in _cells(line))), None)
    name = readme.relative_to(root).as_posix()
    if header_at is None:
        report.unchecked.append(f"{name}: no demo table (a header with a {MODE_TITLES['constant']!r} column)")
        return
    seeds_table = header_at + 2 < len(lines) and "[" in lines[header_at + 2]
    source = seeds_path if seeds_table and seeds_path is not None else results_path
    if not source.is_file():
        report.unchecked.append(f"{name}:{header_at + 1}: the demo table needs "
                                f"{source.relative_to(root)} (absent; `make demo` writes it)")
        return
    results = json.loads(source.read_text(encoding="utf-8"))
    columns = {}
    for i, title in enumerate(_cells(lines[header_at])):
        mode = next((m for m, t in MODE_TITLES.items() if title.startswith(t)), None)
        if mode:
            columns[i] = mode
        elif title == "n":
            columns[i] = "n"
    by_title = {spec.title: task for task, spec in TASKS.items()}
    for number in range(header_at + 2, len(lines)):
        if not lines[number].startswith("|"):
            break
        cells = _cells(lines[number])
        task = by_title.get(cells[0])
        if task is None:
            report.differ.append(f"{name}:{number + 1}: demo table row {cells[0]!r} is no task title")
            continue
        for i, mode in columns.items():
            quoted = cells[i].replace("*", "").strip()
            if mode == "n":
                expected = str((results.get("n") or {}).get(task))
            elif seeds_table:
                expected = seeds_cell(results.get("summary", {}), task, mode, TASKS[task].higher_is_better)
            else:
                value = results.get("metrics", {}).get(task, {}).get(mode)
                expected = _fmt(value, TASKS[task].higher_is_better)
            where = f"{name}:{number + 1}: {TASKS[task].title} / {MODE_TITLES.get(mode, mode)}"
            (report.ok if quoted == expected else report.differ).append(
                f"{where}: {quoted!r}" + ("" if quoted == expected else f" but {source.name} gives {expected!r}"))
    if seeds_table:  # the per-seed verdicts are marked figures (<!--fig ...demo_seeds.json verdicts.N...-->)
        return
    learning = results.get("learning") or {}
    for number, line in enumerate(lines, 1):
        for m in BEATS.finditer(line):
            beats = sum(v.startswith("beats") for v in learning.values())
            same = (int(m[1]), int(m[2])) == (beats, len(learning))
            (report.ok if same else report.differ).append(
                f"{name}:{number}: {m[0]!r}" + ("" if same else f" but results.json has {beats} of {len(learning)}"))


def check(root: Path = REPO, readmes=READMES, demo_results: str = "demo_output/results.json",
          demo_seeds: str = "benchmarks/results/demo_seeds.json", update: bool = False) -> Report:
    """Run every check over ``readmes`` (paths from ``root``); returns the report. ``update``: rewrite the marked
    figures that differ (:func:`check_markers`)."""
    report, cache = Report(), {}
    for rel in readmes:
        path = root / rel
        if not path.is_file():
            report.unchecked.append(f"{rel}: no such README")
            continue
        check_markers(path, root, report, cache, update)
    main_readme = root / readmes[0]
    if main_readme.is_file():
        check_benchmarks_marked(main_readme, root, report)
        check_demo_table(main_readme, root / demo_results, root, report, root / demo_seeds)
    return report


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = make_parser(__doc__)
    parser.add_argument("--root", type=Path, default=REPO, help="repository root (default: this checkout)")
    parser.add_argument("--readmes", nargs="+", default=list(READMES),
                        help="READMEs to check, from the root; the first one holds the Benchmarks and demo tables")
    parser.add_argument("--require_all", action="store_true", help="also fail when a result file is absent")
    parser.add_argument("--update", action="store_true",
                        help="rewrite the marked figures that differ with their result files' figures")
    parser.add_argument("-v", "--verbose", action="store_true", help="also list every figure that matches")
    add_common_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Print what matches, what differs and what could not be checked; exit 1 on a difference."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    if not args.root.is_dir():
        raise UserError(f"--root {args.root}: no such folder")
    report = check(args.root, tuple(args.readmes), update=args.update)
    if args.verbose:
        print("\n".join(f"ok       {line}" for line in report.ok))
    print("\n".join(f"DIFFERS  {line}" for line in report.differ))
    print("\n".join(f"UNCHECKED {line}" for line in report.unchecked))
    print("\n".join(f"UPDATED  {line}" for line in report.updated))
    print(f"{len(report.ok)} figures match, {len(report.differ)} differ, {len(report.unchecked)} not checked"
          + (f", {len(report.updated)} rewritten" if args.update else ""))
    return 1 if report.failed(args.require_all) else 0


if __name__ == "__main__":
    run_cli(main)
