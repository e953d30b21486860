"""Router training augmentation: the same question in another option format, option order and casing.

A router trained on one generator's option styles learns those styles, not what an option question is: the
demo router sent real dental questions written ``A: No, B: Yes`` (a style mini-FLARE never used) to multi-label
classification and report generation. :func:`augment_question` re-writes a training question the way real
FLARE questions vary (``shared/flare_format.md`` 3.2): its option list in another marker / separator / intro
(:mod:`mevlip.question_options`) or as plain words without letters (``... : x, y or z?``, the way CMMD asks),
options shuffled, a ``Question:`` prefix added or removed, the instruction after the options kept, dropped or
replaced, and the casing changed. The task of a question never changes.
"""

from __future__ import annotations

import random

from mevlip.question_options import attach_options, random_style, split_options

#: Instructions written after an option list (kept, dropped or swapped by the augmentation).
TAILS = ("Answer with the option letter.", "Please choose one option.", "Reply with a single letter.",
         "Answer with the letter only.", "Select the correct answer.")
_PREFIX = "Question: "


def _case(text: str, rng: random.Random) -> str:
    """Casing noise: mostly unchanged, sometimes all lower case, upper case or capitalised words."""
    roll = rng.random()
    if roll < 0.15:
        return text.lower()
    if roll < 0.2:
        return text.upper()
    if roll < 0.25:
        return " ".join(w[:1].upper() + w[1:] for w in text.split(" "))
    return text


def augment_question(text: str, rng: random.Random) -> str:
    """One random re-writing of a question, same task (see the module docstring)."""
    head = text.strip()
    if head.lower().startswith(_PREFIX.lower()):
        head = head[len(_PREFIX):].lstrip()
    parts = split_options(head)
    if parts is not None:
        head, labels, tail = parts
        if rng.random() < 0.5:
            labels = rng.sample(labels, len(labels))
        roll = rng.random()
        tail = tail if roll < 0.4 else "" if roll < 0.7 else TAILS[rng.randrange(len(TAILS))]
        if rng.random() < 0.2:  # a single choice among class words, no letters: "Is it x, y or z?"
            words = ", ".join(labels[:-1]) + " or " + labels[-1]
            head = f"{head.rstrip('?.:')}: {words}?" if rng.random() < 0.5 else f"{head} ({words})"
        else:
            head = attach_options(head, labels, random_style(rng), tail)
    if rng.random() < 0.3:
        head = _PREFIX + head
    return _case(head, rng)
