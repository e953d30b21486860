"""Inline option lists of FLARE questions: write them in the styles real questions use, and find them in a text.

Real FLARE questions carry their options inline, in styles that vary between datasets and within one
(``docs/flare_format.md`` 3.2): ``A: x, B: y``, ``A. x B. y``, ``Options: A: x B: y``, ``(A) x``, one option per
line, binary ``A: No, B: Yes``. mini-FLARE writes its option questions with :func:`render_options` (so its
templates vary as the real ones do), and the router's training augmentation (:mod:`mevlip.router.augment`)
re-writes them with :func:`split_options` + :func:`render_options`, so that the router learns what an option
question looks like in any style rather than the styles one generator happens to use.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import numpy as np

LETTERS = "ABCDEFGHIJKLMNOP"
#: How one option is written (``{l}``: its letter, ``{x}``: its label).
MARKERS = ("{l}: {x}", "{l}. {x}", "({l}) {x}", "{l}) {x}")
#: What separates two options.
JOINERS = (", ", " ", "\n", "; ")
#: What introduces the list.
INTROS = ("", "Options: ", "Choices: ", "Answer choices: ", "Select one of the following: ")

# An option marker: "A:", "A.", "A)" or "(A)" (any case) after whitespace, a colon or the start, before whitespace.
_MARK = re.compile(r"(?<![^\s:])(?:\(([A-Pa-p])\)|([A-Pa-p])[.:)])(?=\s)")
_INTRO_AT_END = re.compile(r"[\s,;]*(?:options|choices|answer choices|select one of the following)\s*:?\s*$",
                           re.IGNORECASE)
# Where an instruction after the last option starts: a new line, a new sentence, or a typical instruction verb.
_TAIL = re.compile(r"\n|(?<=[.?!])\s+(?=[A-Z])|\s+(?=(?i:answer|please|respond|reply|choose|select|only|give)\b)")


@dataclass(frozen=True)
class OptionStyle:
    """One way of writing an option list: marker, joiner and intro (indices into the tuples above)."""

    marker: int = 0
    joiner: int = 0
    intro: int = 0

    @property
    def one_per_line(self) -> bool:
        """True when each option sits on its own line (the list then starts on a new line too)."""
        return JOINERS[self.joiner] == "\n"


def _index(rng: random.Random | np.random.Generator, n: int) -> int:
    """A uniform index below ``n`` from a numpy Generator (mini-FLARE) or a ``random.Random`` (augmentation)."""
    return int(rng.integers(n)) if isinstance(rng, np.random.Generator) else rng.randrange(n)


def random_style(rng: random.Random | np.random.Generator) -> OptionStyle:
    """A style drawn uniformly from every marker x joiner x intro combination."""
    return OptionStyle(_index(rng, len(MARKERS)), _index(rng, len(JOINERS)), _index(rng, len(INTROS)))


def render_options(labels: list[str], style: OptionStyle) -> str:
    """The option block, letters in order: ``Options: A: x, B: y`` or, one per line, ``Options:\\nA. x\\nB. y``."""
    items = [MARKERS[style.marker].format(l=LETTERS[i], x=x) for i, x in enumerate(labels)]
    intro = INTROS[style.intro]
    if style.one_per_line:
        return (intro.rstrip() + "\n" if intro else "") + "\n".join(items)
    return intro + JOINERS[style.joiner].join(items)


def attach_options(head: str, labels: list[str], style: OptionStyle, tail: str = "") -> str:
    """``head``, its options in ``style`` and an optional instruction ``tail``, joined as real questions join them."""
    block = render_options(labels, style)
    sep = "\n" if style.one_per_line else " "
    text = f"{head}{sep}{block}" if head else block
    if tail:
        text += ("\n" if style.one_per_line else " ") + tail
    return text


def split_options(text: str) -> tuple[str, list[str], str] | None:
    """Find an inline option list (letters A, B, C, ... in order, at least two; any case).

    Returns:
        ``(head, labels, tail)``: the text before the list (its "Options:" intro removed), the option labels in
        written order, and an instruction written after the last option (or ``""``); ``None`` when the text has
        no option list.
    """
    marks = [(m.start(), m.end(), (m.group(1) or m.group(2)).upper()) for m in _MARK.finditer(text)]
    best: list[tuple[int, int, str]] = []
    for i, (_, _, letter) in enumerate(marks):
        if letter != "A":
            continue
        chain = [marks[i]]
        for mark in marks[i + 1:]:
            if mark[2] == LETTERS[len(chain)]:
                chain.append(mark)
        if len(chain) > len(best):
            best = chain
    if len(best) < 2:
        return None
    labels = [text[a[1]:b[0]] for a, b in zip(best, best[1:], strict=False)] + [text[best[-1][1]:]]
    last = labels[-1].strip()
    cut = _TAIL.search(last)
    tail = ""
    if cut and cut.start() > 0:
        last, tail = last[:cut.start()], last[cut.end():].strip()
    labels[-1] = last
    labels = [x.strip().rstrip(",;").strip() for x in labels]
    head = _INTRO_AT_END.sub("", text[:best[0][0]]).strip()
    if not all(labels):
        return None
    return head, labels, tail


#: Separators of a list written without letters (``Choose from: x, y, z`` / ``x; y; z``).
PLAIN_SEPARATORS = (", ", "; ", " / ")
# Where a list without letters starts: after a colon or an opening bracket, optionally after a cue such as
# "choose from" (periapical writes "(choose from x; y; z)"). The list runs to a closing bracket, the end of a
# sentence or a new line.
_PLAIN_OPEN = re.compile(r"(?::|\(|\bfrom\b:?)\s*(?:(?:choose|select|pick) from:?\s+)?", re.IGNORECASE)
_PLAIN_END = re.compile(r"\)|\n|[.?!](?=\s|$)")
_PLAIN_MAX_WORDS = 8
_NOT_ITEM = re.compile(r"[?:\[\]{}\"]")  # a question, a cue or JSON is no list item


def split_plain_list(text: str, min_items: int = 3) -> tuple[str, list[str], str, str] | None:
    """Find a list of at least ``min_items`` items written without letters, as multi-label questions write theirs.

    ``Select all that apply: Dental Caries; Pulp Diseases; ...``, ``Choose from: Nodule, Fibrosis, ...``,
    ``(choose from x; y; z)``: items joined by ``"; "`` (when the list has a semicolon; an item may then hold
    commas, as one periapical label does) or else by ``", "``, each at most 8 words; an ``and``/``or`` before the
    last item is dropped.

    Returns:
        ``(head, items, separator, tail)``: the text up to the list (its cue and opener included), the items, the
        separator found, and the text after the list (closing bracket and instruction included); ``None`` when
        the text has no such list (a lettered option list is :func:`split_options`'s).
    """
    for opener in _PLAIN_OPEN.finditer(text):
        start = opener.end()
        end = _PLAIN_END.search(text, start)
        stop = end.start() if end else len(text)
        body = text[start:stop]
        sep = "; " if ";" in body else ", "
        items = [x.strip() for x in body.split(sep.strip())]
        if len(items) >= 2:
            items[-1] = re.sub(r"^(?:and|or)\s+", "", items[-1], flags=re.IGNORECASE)
        if (len(items) >= min_items and all(items)
                and all(len(x.split()) <= _PLAIN_MAX_WORDS and not _NOT_ITEM.search(x) for x in items)):
            return text[:start], items, sep, text[stop:]
    return None


def join_plain_list(head: str, items: list[str], sep: str, tail: str) -> str:
    """The inverse of :func:`split_plain_list`: ``head`` + items joined by ``sep`` + ``tail``."""
    return head + sep.join(items) + tail
