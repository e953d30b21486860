"""Counts and token lengths of a data-preparation run, and its console summary.

What the run found goes into ``prepare_stats.json`` (records per split, dataset and task, the ``TaskType``
spellings met, images checked, every skipped record with its reason, token-length percentiles of the rendered
rows) and a short summary is printed, as nanoGPT's ``prepare.py`` prints its counts. Nothing here depends on the
clock or the machine, so a rerun writes the same file.
"""

from __future__ import annotations

import functools
import math
import re
from array import array
from collections import Counter
from dataclasses import dataclass, field

from mevlip.prompts import LF_IMAGE_TOKEN, build_inference_prompt
from mevlip.tasks import TASK_NAMES

#: Tokens LLaMA-Factory's InternVL plugin adds around each image's context tokens (``<img>`` and ``</img>``).
IMAGE_WRAP_TOKENS = 2
#: Percentiles reported for token lengths.
PERCENTILES = (50, 90, 95, 99)

_SPECIAL = re.compile(r"<\|im_(?:start|end)\|>")
_PIECES = re.compile(r"\d|[^\W\d_]+|\n|[^\w\s]|_")
_LONG_WORDS = re.compile(r"[^\W\d_]{5,}")


@functools.lru_cache(maxsize=16384)  # questions come from templates and answers repeat: most texts recur
def estimate_tokens(text: str) -> int:
    """A cheap token-count estimate for Qwen2-style BPE (InternVL3's language model); an estimate only.

    Digits count one each (Qwen2 splits numbers into digits, which is what makes the chromosome boxes long),
    punctuation and newlines one each, words one per 4 letters, chat special tokens one each. Spaces are free.
    It tends to over-count, the safe side for a cutoff check.
    """
    text, count = _SPECIAL.subn(" ", text)
    # every piece is one token; a word of n letters is ceil(n / 4), i.e. (n - 1) // 4 more than one
    return count + len(_PIECES.findall(text)) + sum((len(w) - 1) // 4 for w in _LONG_WORDS.findall(text))


class TokenCounter:
    """Token lengths of training rows as LLaMA-Factory's ``intern_vl`` template renders them.

    ``total = template + system + user text + answer + n_images * (image_tokens + 2)``: the template and
    system part is counted once (rendered with the preset's system prompt), each image as its context tokens plus
    ``<img>``/``</img>``. With a tokenizer the turns are tokenized separately and summed (a BPE merge across a
    turn boundary can shift a count by one); without one, :func:`estimate_tokens` is used and the stats say so.
    """

    def __init__(self, tokenizer_path: str | None = None, image_tokens: int = 256, system: str = ""):
        self.tokenizer = None
        self.method = "estimate (regex: digits/punctuation 1 each, 4 letters per token)"
        if tokenizer_path:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, local_files_only=True)
            self.method = f"tokenizer {type(self.tokenizer).__name__} (turns tokenized separately, summed)"
        self.image_tokens = image_tokens
        self.overhead = self.count([build_inference_prompt("", "", system) + "<|im_end|>\n"])[0]

    def count(self, texts: list[str]) -> list[int]:
        """Token counts of texts (batched through the tokenizer when there is one)."""
        if self.tokenizer is None:
            return [estimate_tokens(t) for t in texts]
        if not texts:
            return []
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def rows(self, user_values: list[str], answers: list[str]) -> list[tuple[int, int]]:
        """``(text_tokens, total_tokens)`` per row; ``user_values`` still hold their ``<image>`` placeholders."""
        n_images = [u.count(LF_IMAGE_TOKEN) for u in user_values]
        users = self.count([u.replace(LF_IMAGE_TOKEN, "") for u in user_values])
        outs = self.count(answers)
        per_image = self.image_tokens + IMAGE_WRAP_TOKENS
        return [(u + a, self.overhead + u + a + n * per_image) for u, a, n in zip(users, outs, n_images, strict=True)]


def percentiles(values: array | list[int], cutoff: int | None = None) -> dict:
    """Nearest-rank percentiles, mean and max of a list of lengths; ``n=0`` and ``None`` for an empty list."""
    out: dict = {"n": len(values)}
    if not values:
        out.update({f"p{q}": None for q in PERCENTILES} | {"mean": None, "max": None})
        if cutoff is not None:
            out["over_cutoff"] = 0
        return out
    ordered = sorted(values)
    for q in PERCENTILES:
        out[f"p{q}"] = ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]
    out["mean"] = round(sum(ordered) / len(ordered), 1)
    out["max"] = ordered[-1]
    if cutoff is not None:
        out["over_cutoff"] = sum(1 for v in ordered if v > cutoff)
    return out


@dataclass
class PartStats:
    """What one part of the output (``train`` or ``val``) was built from and what was left out."""

    files: int = 0
    records_read: int = 0
    records_capped: int = 0
    records_used: int = 0
    #: images named by the used records (every image of each, whether or not the preset writes it to a row)
    record_images: int = 0
    rows: int = 0
    images_checked: int = 0
    images_bad: int = 0
    rows_per_split: Counter = field(default_factory=Counter)
    rows_per_dataset: Counter = field(default_factory=Counter)
    rows_per_task: Counter = field(default_factory=Counter)
    spellings: Counter = field(default_factory=Counter)  # (raw TaskType, canonical) -> records
    skipped: list[dict] = field(default_factory=list)
    text_tokens: array = field(default_factory=lambda: array("l"))
    total_tokens: dict[str, array] = field(default_factory=dict)

    def skip(self, file: str, index: int, kind: str, reason: str, key: str | None = None) -> None:
        """Record a skipped record (or row): file relative to the dataset root, index in the file, why."""
        self.skipped.append({"file": file, "index": index, "kind": kind, "reason": reason, "key": key})

    def add_row(self, row: dict, text_tokens: int, total_tokens: int) -> None:
        """Count one written row and its token lengths."""
        task = row["task"]
        self.rows += 1
        self.rows_per_split[row["split"]] += 1
        self.rows_per_dataset[row["dataset"]] += 1
        self.rows_per_task[task] += 1
        self.text_tokens.append(text_tokens)
        self.total_tokens.setdefault(task, array("l")).append(total_tokens)

    def to_dict(self, cutoff: int, method: str) -> dict:
        """A JSON-ready summary (tasks in registry order, datasets and spellings sorted)."""
        all_totals = array("l")
        for task in TASK_NAMES:
            all_totals.extend(self.total_tokens.get(task, ()))
        return {
            "files": self.files,
            "records": {"read": self.records_read, "used": self.records_used, "capped": self.records_capped,
                        "skipped": len({(s["file"], s["index"]) for s in self.skipped})},
            "rows": {"total": self.rows, "per_split": dict(sorted(self.rows_per_split.items())),
                     "per_dataset": dict(sorted(self.rows_per_dataset.items())),
                     "per_task": {t: self.rows_per_task[t] for t in TASK_NAMES if self.rows_per_task[t]}},
            "task_type_spellings": [{"raw": raw, "canonical": canon, "records": n}
                                    for (raw, canon), n in sorted(self.spellings.items())],
            "images": {"checked": self.images_checked, "bad": self.images_bad,
                       "in_used_records": self.record_images},
            "skip_reasons": dict(sorted(Counter(s["kind"] for s in self.skipped).items())),
            "skipped": self.skipped,
            "tokens": {
                "method": method, "cutoff_len": cutoff,
                "text": percentiles(self.text_tokens),
                "total": percentiles(all_totals, cutoff),
                "total_per_task": {t: percentiles(self.total_tokens[t], cutoff)
                                   for t in TASK_NAMES if t in self.total_tokens},
            },
        }


def format_summary(stats: dict) -> str:
    """The console summary of ``prepare_stats.json``: counts, spellings, skips and token lengths."""
    lines = []
    for part, info in stats["parts"].items():
        rec, rows, tok = info["records"], info["rows"], info["tokens"]
        lines.append(f"[{part}] {info['files']} question files, {rec['read']} Q&A pairs read, "
                     f"{info['images']['checked']} images checked ({info['images']['bad']} bad)")
        lines.append(f"[{part}] {rec['used']} records used ({info['images'].get('in_used_records', 0)} images) -> "
                     f"{rows['total']} rows; {rec['skipped']} records skipped, {rec['capped']} left out by "
                     "--max_per_dataset")
        for kind, n in info["skip_reasons"].items():
            lines.append(f"[{part}]   skipped ({kind}): {n}")
        lines.append(f"[{part}] rows per task: " + ", ".join(f"{k} {v}" for k, v in rows["per_task"].items()))
        spell = ", ".join(f"{s['raw']!r}->{s['canonical']} ({s['records']})" for s in info["task_type_spellings"])
        lines.append(f"[{part}] TaskType spellings: {spell}")
        total = tok["total"]
        if total["n"]:
            lines.append(f"[{part}] tokens per row ({tok['method']}): p50 {total['p50']}, p99 {total['p99']}, "
                         f"max {total['max']}; {total['over_cutoff']} rows over cutoff_len {tok['cutoff_len']}")
    for error in stats.get("archive_errors", []):  # refused (unsafe, over the zip limits), damaged or unreadable
        lines.append(f"[archives] {error['folder']}: not (fully) extracted: {error['error']}")
    for moved in stats.get("extracted_under_output", []):  # its dataset folder could not be written
        lines.append(f"[archives] {moved['folder']}: read-only, images extracted under {moved['images']}/")
    router = stats.get("router")
    if router:
        lines.append(f"[router] {router['unique_questions']} unique questions ({router['duplicates']} duplicates "
                     f"dropped) -> train {router['train']}, test {router['test']}")
    return "\n".join(lines)
