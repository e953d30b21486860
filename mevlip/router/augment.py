"""Router training augmentation: the same question in another option format, option order, option content and casing.

A router trained on one generator's option styles learns those styles, not what an option question is: the
demo router sent real dental questions written ``A: No, B: Yes`` (a style mini-FLARE never used) to multi-label
classification and report generation. :func:`augment_question` re-writes a training question the way real
FLARE questions vary (``docs/flare_format.md`` 3.2): its option list in another marker / separator / intro
(:mod:`mevlip.question_options`), as plain words without letters (``... : x, y or z?``, the way CMMD asks) or
left out (``Classify the lesion.``), options shuffled, a ``Question:`` prefix added or removed, the instruction
after the options kept, dropped or replaced, and the casing changed. A list written without letters (``Select
all that apply: x; y; z``, the way multi-label questions list their labels) is shuffled and re-joined with another
separator.

Given a ``pool`` of option labels (:func:`option_pool`: every label the training questions list), an option list
sometimes gets other labels from the pool: a router that sees only one multi-label dataset otherwise learns that
dataset's label names (tooth conditions) instead of what a multi-label question asks, and sends another dataset's
multi-label question (chest findings) to classification. The task of a question never changes, except in
:func:`cross_format`, which writes a single-choice question's wording in the multi-label answer format (and the
reverse) and labels it by that format. :func:`swap_context` replaces the image a question names ("in this
endoscopy frame") by another training question's, and :func:`drop_sentence` leaves one sentence out: both keep a
router from learning a dataset's subject instead of its task. :func:`number_tail` gives counting and regression
questions the same number instructions ("Answer with a number.": a number is asked, not whether it is counted or
measured). :class:`Augmenter` applies them all to a batch.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from mevlip.question_options import PLAIN_SEPARATORS, attach_options, random_style, split_options, split_plain_list

#: Instructions written after an option list (kept, dropped or swapped by the augmentation).
TAILS = ("Answer with the option letter.", "Please choose one option.", "Reply with a single letter.",
         "Answer with the letter only.", "Select the correct answer.")
_PREFIX = "Question: "
#: The fewest items a list without letters needs to be re-written (fewer: "(1-22, X, Y)" is no label list).
PLAIN_MIN_ITEMS = 4


def option_pool(texts: list[str]) -> list[str]:
    """Every distinct option label of some questions: lettered options and lists without letters, first seen first."""
    seen: dict[str, None] = {}
    for text in texts:
        parts = split_options(text.strip())
        if parts is not None:
            seen.update(dict.fromkeys(parts[1]))
            continue
        plain = split_plain_list(text, PLAIN_MIN_ITEMS)
        if plain is not None:
            seen.update(dict.fromkeys(plain[1]))
    return list(seen)


def _swap(labels: list[str], pool: list[str] | None, share: float, rng: random.Random) -> list[str]:
    """With probability ``share``, as many other labels drawn from ``pool`` (2 to 14, around the original count)."""
    if not pool or len(pool) < 2 or rng.random() >= share:
        return labels
    k = max(2, min(14, len(labels) + rng.randint(-2, 2), len(pool)))
    return rng.sample(pool, k)


# A sentence ends with . ? or ! after a lower-case word, a number or a bracket ("A." of "A. x B. y" does not).
_SENTENCE_END = re.compile(r"(?<=[a-z0-9)\]%][.?!])\s+(?=\S)")


def drop_sentence(text: str, rng: random.Random) -> str:
    """``text`` without one of its sentences, drawn at random (a one-sentence text is returned as it is).

    Each sentence of a question should say its task on its own: periapical's ``Which of the following conditions
    affect tooth 46? Select all that apply: ...`` otherwise teaches "tooth 46" as the sign of multi-label
    classification, and another dataset's ``Select all that apply`` goes to classification.
    """
    sentences = _SENTENCE_END.split(text.strip())
    if len(sentences) < 2:
        return text
    del sentences[rng.randrange(len(sentences))]
    return " ".join(sentences)


# What image a question is about: "in this endoscopy frame", "of this lesion", "on these skin images" (a preposition,
# "this"/"these" and at most three words, then punctuation or the end).
_CONTEXT = re.compile(r"\b(?:in|of|on|for|from) ((?:this|these) (?:[\w%-]+ ){0,2}[\w%-]+)(?=[?.,;:)]|\s*$)",
                      re.IGNORECASE)


def context_pool(texts: list[str]) -> list[str]:
    """Every distinct image some questions name (``this endoscopy frame``, ``these skin images``), first seen first."""
    return list(dict.fromkeys(m.group(1) for text in texts for m in _CONTEXT.finditer(text)))


def swap_context(text: str, contexts: list[str], rng: random.Random) -> str:
    """``text`` with the image it names replaced by another from ``contexts`` (unchanged when it names none).

    A router learns the task from a question's form, not from the modality it names: without this, the one
    regression dataset left in training (ultrasound angles) teaches nothing about a dental-X-ray percentage, which
    follows the dental X-ray classification questions instead.
    """
    found = list(_CONTEXT.finditer(text))
    if not found or not contexts:
        return text
    m = found[rng.randrange(len(found))]
    return text[:m.start(1)] + contexts[rng.randrange(len(contexts))] + text[m.end(1):]


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


def plain_choice(head: str, labels: list[str], rng: random.Random) -> str:
    """A single choice among class words, without letters: ``What is shown: x, y or z?`` (the way CMMD asks)."""
    words = ", ".join(labels[:-1]) + " or " + labels[-1]
    bare = head.rstrip("?.:")
    return rng.choice((f"{bare}: {words}?", f"{head} ({words})", f"{bare}, {words}?", f"{head} {words}."))


def augment_question(text: str, rng: random.Random, pool: list[str] | None = None, swap: float = 0.3,
                     drop: float = 0.0, keep_format: bool = False) -> str:
    """One random re-writing of a question, same task (see the module docstring).

    Args:
        text: the question.
        rng: the random source.
        pool: option labels to draw other option contents from (:func:`option_pool`); ``None``: never swapped.
        swap: the probability that an option list gets labels from ``pool``.
        drop: the probability that one sentence of a question of several is left out (:func:`drop_sentence`).
        keep_format: never leave the options or a sentence out (a :func:`cross_format` question: its answer
            format is what its task is).
    """
    head = text.strip()
    if drop > 0 and not keep_format and rng.random() < drop:
        head = drop_sentence(head, rng)
    if head.lower().startswith(_PREFIX.lower()):
        head = head[len(_PREFIX):].lstrip()
    parts = split_options(head)
    plain = split_plain_list(head, PLAIN_MIN_ITEMS) if parts is None else None
    if parts is not None:
        head, labels, tail = parts
        labels = _swap(labels, pool, swap, rng)
        if rng.random() < 0.5:
            labels = rng.sample(labels, len(labels))
        roll = rng.random()
        tail = tail if roll < 0.4 else "" if roll < 0.7 else TAILS[rng.randrange(len(TAILS))]
        roll = rng.random()
        if roll < 0.1 and not keep_format:  # no options: FLARE asks some classification questions bare
            pass
        elif roll < 0.4:  # a single choice among class words, no letters: "Is it x, y or z?"
            head = plain_choice(head, labels, rng)
        else:
            head = attach_options(head, labels, random_style(rng), tail)
    elif plain is not None:  # a list without letters: "Select all that apply: x; y; z."
        start, items, sep, end = plain
        items = _swap(items, pool, swap, rng)
        if rng.random() < 0.5:
            items = rng.sample(items, len(items))
        if rng.random() < 0.5:
            sep = PLAIN_SEPARATORS[rng.randrange(len(PLAIN_SEPARATORS))]
        head = start + sep.join(items) + end
    if rng.random() < 0.3:
        head = _PREFIX + head
    return _case(head, rng)


# ----------------------------------------------------------------------------------------------- numeric answers
#: The tasks answered with a number (counting: a whole number; regression: a measured value).
REGRESSION = "regression"
NUMERIC = ("counting", REGRESSION)
#: Instructions asking for a number, the same for every numeric task (none taken from a dataset's templates).
NUMBER_TAILS = ("Answer with a number.", "Give a number only.", "Reply with the value only.",
                "Respond with a single number.", "Output only the number.")
# one of them as the last sentence (or after a semicolon): "... in this image? Answer with a number."
_NUMBER_TAIL = re.compile(r"(?<=[.?!;])\s*(?:" + "|".join(re.escape(t.rstrip(".")) for t in NUMBER_TAILS)
                          + r")\.?\s*$", re.IGNORECASE)


def number_tail(text: str, rng: random.Random) -> str:
    """A numeric-task question with its number instruction dropped, kept or replaced (:data:`NUMBER_TAILS`).

    "Answer with a number" says that a number is the answer, not whether it is counted or measured: when only
    the counting training questions said it, a router without bone-resorption data sent "Measure the alveolar bone
    resorption; answer with a number." to counting. Both numeric tasks get the same instructions here.
    """
    head = _NUMBER_TAIL.sub("", text.strip()).rstrip().removesuffix(";")
    roll = rng.random()
    if roll < 0.3:
        return head
    head = head if head.endswith((".", "?", "!")) else head + "."
    return f"{head} {NUMBER_TAILS[rng.randrange(len(NUMBER_TAILS))]}"


# ----------------------------------------------------------------------------------------------- measured quantities
#: Continuous quantities a regression question may ask for, and the wordings and units around them: generic, written
#: for this project (no dataset's template); :func:`quantity_question` builds measurement questions from them.
QUANTITIES = ("percentage", "ratio", "length", "width", "height", "angle", "distance", "thickness", "diameter",
              "area", "volume", "size", "proportion", "index")
_QUANTITY_FORMS = ("What is the {q} {p} {c}?", "Estimate the {q} {p} {c}{u}.", "Measure the {q} {p} {c}{u}.",
                   "How large is the {q} {p} {c}?", "Give the {q} {p} {c}{u}.", "Predict the {q} value {p} {c}.")
_UNITS = ("", "", " in percent", " in millimetres", " in degrees", " in centimetres", " as a percentage")


def quantity_question(rng: random.Random, contexts: list[str]) -> str:
    """A generic measurement question: a quantity of :data:`QUANTITIES` of an image from ``contexts``.

    A regression question asks for a continuous value, whatever is measured; a router that knows regression from
    one dataset only (ultrasound angles) learns that dataset's quantity and sends "What is the alveolar bone
    resorption percentage of this tooth?" to classification, whose dental questions also ask about "this tooth".
    """
    context = contexts[rng.randrange(len(contexts))] if contexts else "this image"
    form = _QUANTITY_FORMS[rng.randrange(len(_QUANTITY_FORMS))]
    return form.format(q=QUANTITIES[rng.randrange(len(QUANTITIES))], p=rng.choice(("of", "in")), c=context,
                       u=_UNITS[rng.randrange(len(_UNITS))])


# ----------------------------------------------------------------------------------------------- answer formats
SINGLE, MULTI, REPORT = "classification", "multi_label_classification", "report_generation"
#: Sentences that introduce a multi-label list and instructions after one, written for this project (generic: no
#: dataset's template), used with the training set's own by :func:`cross_format`.
MULTI_CUES = ("Select all that apply:", "Choose every label that applies:", "Possible findings:", "Candidate labels:",
              "Pick any number of:", "Options:")
MULTI_TAILS = (". Multiple answers are allowed.", ". List every one that is present, separated by commas.",
               ". If none applies, answer None.", ". More than one may apply.")


@dataclass
class AnswerFormats:
    """How the training questions of the two classification tasks ask for their answer, taken apart.

    Attributes:
        single: ``(question, options)`` of single-choice questions (classification with a lettered option list).
        multi_questions: the question sentences of multi-label questions, without the sentence that introduces
            their label list (``Which pathologies are present on tooth 46?``).
        multi_cues: the sentences that introduce a multi-label list (``Select all that apply:``).
        multi_tails: the instructions after a multi-label list (``. Multiple answers are allowed.``).
        open_questions: report-generation questions (``Is there any pleural abnormality?``): asked with options,
            their wording is a single-choice question.
    """

    single: list[tuple[str, list[str]]] = field(default_factory=list)
    multi_questions: list[str] = field(default_factory=list)
    multi_cues: list[str] = field(default_factory=list)
    multi_tails: list[str] = field(default_factory=list)
    open_questions: list[str] = field(default_factory=list)


def answer_formats(texts: list[str], tasks: list[str]) -> AnswerFormats:
    """Take the classification and multi-label questions of a training set apart (:class:`AnswerFormats`).

    Only a multi-label question whose list follows a sentence of its own gives a question and a cue
    (``Which ... tooth 46? Select all that apply: x; y``); ``Identify all conditions affecting tooth 13 from: ...``
    is one sentence, question and cue at once, and gives neither.
    """
    out = AnswerFormats()
    seen: set = set()

    def add(kind: list, value) -> None:
        key = (id(kind), str(value))
        if key not in seen:
            seen.add(key)
            kind.append(value)

    for text, task in zip(texts, tasks, strict=True):
        text = text.strip()
        if task == SINGLE:
            parts = split_options(text)
            if parts is not None and parts[0]:
                add(out.single, (parts[0].removeprefix(_PREFIX), parts[1]))
        elif task == MULTI:
            plain = split_plain_list(text, PLAIN_MIN_ITEMS)
            if plain is None:
                continue
            sentences = _SENTENCE_END.split(plain[0].strip())
            if len(sentences) > 1 and plain[0].rstrip().endswith(":"):
                add(out.multi_questions, " ".join(sentences[:-1]).removeprefix(_PREFIX))
                add(out.multi_cues, sentences[-1])
            tail = plain[3].strip()
            if tail[:1] in (".", "\n") and len(tail) > 1:
                add(out.multi_tails, tail)
        elif task == REPORT:
            add(out.open_questions, text.removeprefix(_PREFIX))
    return out


def cross_format(task: str, formats: AnswerFormats, rng: random.Random, pool: list[str] | None = None) -> str | None:
    """A question of ``task`` built from another task's question wording and this task's answer format.

    Multi-label: a single-choice question's wording, a multi-label cue (the training set's or one of
    :data:`MULTI_CUES`) and its options as a list without letters (``What type of skin lesion is shown? Select all
    that apply: x; y; z. Multiple answers are allowed.``). Classification: a multi-label or report-generation
    question's wording with options from the pool, lettered or as class words (``Which pathologies are present on
    tooth 46? A. x B. y``; ``Is there any pleural abnormality: x, y or z?``). Whether one answer, several or a
    text are asked for is said by the answer format, not by the subject: without this, a router that knows one
    multi-label dataset (tooth conditions) sends another (chest findings) to classification, and one that knows
    "abnormality" only from report questions sends "What type of abnormality is shown: Mass, Calcification or
    Both?" to report generation. ``None`` when the training set has no such parts.
    """
    if task == MULTI and formats.single:
        head, labels = formats.single[rng.randrange(len(formats.single))]
        labels = rng.sample(labels, len(labels))
        tail = rng.choice([*formats.multi_tails, *MULTI_TAILS, "."])
        sep = PLAIN_SEPARATORS[rng.randrange(2)]
        return f"{head} {rng.choice([*formats.multi_cues, *MULTI_CUES])} {sep.join(labels)}{tail}"
    heads = formats.multi_questions + formats.open_questions
    if task == SINGLE and heads and pool and len(pool) >= 2:
        labels = rng.sample(pool, rng.randint(2, min(8, len(pool))))
        head = rng.choice(heads)
        if rng.random() < 0.3:
            return plain_choice(head, labels, rng)
        return attach_options(head, labels, random_style(rng), rng.choice(("", *TAILS)))
    return None


class Augmenter:
    """Re-writes the questions of a training batch (:func:`augment_question`, :func:`cross_format`,
    :func:`quantity_question`, :func:`number_tail` for every counting and regression question while ``share`` > 0).

    Args:
        texts, tasks: the training questions and their task names (the pool and answer formats are taken from them).
        share: the share of questions re-written (``--augment``).
        swap: see :func:`augment_question` (``--option_swap``).
        drop: see :func:`augment_question` (``--sentence_dropout``).
        cross: the share of classification and multi-label questions replaced by :func:`cross_format`
            (``--cross_format``).
        context: the share of questions whose image is swapped for another (:func:`swap_context`,
            ``--context_swap``).
        quantity: the share of regression questions replaced by a generic measurement question
            (:func:`quantity_question`, ``--quantity_questions``).
    """

    def __init__(self, texts: list[str], tasks: list[str], share: float, swap: float = 0.3, drop: float = 0.0,
                 cross: float = 0.0, context: float = 0.0, quantity: float = 0.0):
        self.share, self.swap, self.drop, self.cross, self.context = share, swap, drop, cross, context
        self.quantity = quantity
        self.pool = option_pool(texts) if swap > 0 or cross > 0 else None
        self.formats = answer_formats(texts, tasks) if cross > 0 else AnswerFormats()
        self.contexts = context_pool(texts) if context > 0 or quantity > 0 else []

    def __call__(self, text: str, task: str, rng: random.Random) -> str:
        """One training question, re-written or not."""
        crossed = None
        if self.cross > 0 and task in (SINGLE, MULTI) and rng.random() < self.cross:
            crossed = cross_format(task, self.formats, rng, self.pool)
        text = crossed or text
        if task == REGRESSION and self.quantity > 0 and rng.random() < self.quantity:
            text = quantity_question(rng, self.contexts)
        if task in NUMERIC and self.share > 0:  # every one: how often a tail is seen must not tell the task
            text = number_tail(text, rng)
        if self.context > 0 and rng.random() < self.context:
            text = swap_context(text, self.contexts, rng)
        if self.share > 0 and rng.random() < self.share:
            text = augment_question(text, rng, self.pool, self.swap, self.drop, keep_format=crossed is not None)
        return text
