"""``green_flare25_rule``: the organisers' rule-based report score, which their READMEs call "GREEN".

This is NOT Stanford's GREEN (an LLM judge; see :mod:`mevlip.metrics.green_llm`). It is the keyword composite of
medfm-flare/FLARE25-QWen2.5VL ``utils/metrics.py`` ``GREENScorer.calculate_green_score`` (commit 358ed1f1; the
MedGemma baseline ships the same file), which produced the "GREEN" column of the Q25 and MedGemma README tables.
``docs/flare_format.md`` 4.A lists every constant. Reproduced rule for rule, including its quirks:

* severity modifiers, hedges and size patterns are looked up by plain substring in a +-50 character window and
  the first one *in table order* wins (not the first one in the text);
* every term of an entity type is searched separately, so "pulmonary edema" yields two ``edema`` mentions;
* the significance component is 0 when the reference has no entity, while entity, location, negation, temporal
  and measurement components give an entity-free pair full marks.

Speed: extraction is cached per distinct text and the score per distinct pair (reports repeat a lot).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

import numpy as np

# entity type -> (terms, base severity, weight)
ENTITIES: dict[str, tuple[tuple[str, ...], float, float]] = {
    "normal": (("normal", "unremarkable", "no abnormality", "clear", "no acute findings"), 0, 1.0),
    "opacity": (("opacity", "opacities", "opacification", "density", "densities"), 2, 0.8),
    "consolidation": (("consolidation", "consolidations", "consolidated", "airspace disease"), 3, 0.9),
    "effusion": (("effusion", "effusions", "fluid", "pleural fluid"), 2, 0.8),
    "pneumothorax": (("pneumothorax", "pneumothoraces", "collapsed lung", "air leak"), 4, 1.0),
    "nodule": (("nodule", "nodules", "mass", "lesion", "tumor", "neoplasm"), 3, 0.9),
    "fracture": (("fracture", "fractures", "fractured", "break", "broken"), 3, 0.9),
    "cardiomegaly": (("cardiomegaly", "enlarged heart", "cardiac enlargement", "heart enlargement"), 2, 0.7),
    "edema": (("edema", "edematous", "swelling", "pulmonary edema", "interstitial edema"), 2, 0.8),
    "infiltrate": (("infiltrate", "infiltrates", "infiltration", "interstitial markings"), 2, 0.7),
    "atelectasis": (("atelectasis", "atelectatic", "collapse", "volume loss"), 2, 0.7),
    "pneumonia": (("pneumonia", "pneumonic", "infection", "infectious process"), 3, 0.9),
}
LOCATIONS: dict[str, tuple[str, ...]] = {
    "lung": ("lung", "lungs", "pulmonary", "pulmonic"),
    "lobe": ("lobe", "lobar"),
    "left": ("left", "left-sided", "left side"),
    "right": ("right", "right-sided", "right side"),
    "upper": ("upper", "superior", "apex", "apical", "apices"),
    "lower": ("lower", "inferior", "base", "basal", "basilar"),
    "middle": ("middle", "mid", "central", "lingula", "lingular"),
    "bilateral": ("bilateral", "both", "bibasilar", "bilaterally"),
    "unilateral": ("unilateral", "one side", "single"),
    "heart": ("heart", "cardiac", "cardiovascular", "pericardium"),
    "mediastinum": ("mediastinum", "mediastinal", "hilar", "hilum"),
    "pleura": ("pleura", "pleural", "pleural space"),
    "chest": ("chest", "thorax", "thoracic", "hemithorax"),
    "diaphragm": ("diaphragm", "diaphragmatic", "hemidiaphragm"),
    "costophrenic": ("costophrenic", "cp angle", "costophrenic angle"),
}
SEVERITY_MODIFIERS: dict[str, float] = {
    "mild": 0.3, "minimal": 0.2, "slight": 0.2, "moderate": 0.6, "marked": 0.8, "severe": 1.0, "extensive": 0.9,
    "large": 0.8, "small": 0.3, "tiny": 0.1, "trace": 0.1, "prominent": 0.7, "significant": 0.8,
}
TEMPORAL: dict[str, tuple[str, ...]] = {
    "new": ("new", "newly", "recent", "acute"),
    "old": ("old", "chronic", "longstanding", "prior"),
    "unchanged": ("unchanged", "stable", "no change", "similar"),
    "improved": ("improved", "improving", "decreased", "resolving"),
    "worsened": ("worsened", "worsening", "increased", "progressed"),
}
UNCERTAINTY: dict[str, float] = {
    "possible": 0.3, "probable": 0.7, "likely": 0.7, "unlikely": 0.2, "questionable": 0.3, "suspected": 0.6,
    "concerning for": 0.7, "suggestive of": 0.6, "may represent": 0.5, "cannot exclude": 0.4,
    "differential includes": 0.5,
}
_SIZE = tuple(re.compile(p) for p in (
    r'(\d+\.?\d*)\s*(cm|mm|millimeter|centimeter)',
    r'(\d+\.?\d*)\s*x\s*(\d+\.?\d*)\s*(cm|mm)',
    r'measuring\s*(\d+\.?\d*)\s*(cm|mm)',
    r'size\s*of\s*(\d+\.?\d*)\s*(cm|mm)',
))
_NEGATION = tuple(re.compile(p) for p in (
    r'\bno\b', r'\bnot\b', r'\bwithout\b', r'\babsent\b', r'\bnegative\b', r'\bdenied\b', r'\bnone\b',
    r'\bfree of\b', r'\brule out\b', r'\bruled out\b', r'\bno evidence\b', r'\bno signs\b',
))
_SECTIONS = ("findings", "impression", "comparison", "technique", "recommendation")
_NUM = re.compile(r'(\d+\.?\d*)')
_ENTITY_RX = {t: tuple(re.compile(r'\b' + re.escape(term) + r'\b') for term in spec[0]) for t, spec in ENTITIES.items()}
_LOCATION_RX = {t: tuple(re.compile(r'\b' + re.escape(v) + r'\b') for v in vs) for t, vs in LOCATIONS.items()}
_TEMPORAL_RX = {t: tuple(re.compile(r'\b' + re.escape(v) + r'\b') for v in vs) for t, vs in TEMPORAL.items()}
#: Component weights of the overall score.
WEIGHTS = {"entity_matching": 0.30, "location_accuracy": 0.20, "negation_handling": 0.15, "temporal_accuracy": 0.10,
           "measurement_accuracy": 0.10, "clinical_significance": 0.10, "structure_completeness": 0.05}
COMPONENTS: tuple[str, ...] = tuple(WEIGHTS)

# A mention: (term, negated, severity, uncertainty, size, weight)
Mention = tuple


def _negated(low: str, position: int) -> bool:
    window = low[max(0, position - 50):position]
    return any(p.search(window) for p in _NEGATION)


def _first_value(context: str, table: dict[str, float]) -> float | None:
    for key, value in table.items():
        if key in context:
            return value
    return None


@lru_cache(maxsize=65536)
def _extract(text: str) -> tuple[dict[str, list[Mention]], frozenset[str], frozenset[str], str]:
    """Entities (with negation resolved), location types, temporal types, and the lower-cased text."""
    low = text.lower()
    entities: dict[str, list[Mention]] = {}
    for etype, patterns in _ENTITY_RX.items():
        terms, base, weight = ENTITIES[etype]
        mentions = []
        for term, pattern in zip(terms, patterns, strict=True):
            for m in pattern.finditer(low):
                context = low[max(0, m.start() - 50):min(len(low), m.end() + 50)]
                modifier = _first_value(context, SEVERITY_MODIFIERS)
                severity = base * modifier if modifier is not None else base
                confidence = _first_value(context, UNCERTAINTY)
                uncertainty = 1.0 - confidence if confidence is not None else 0.0
                size = next((s.group(0) for s in (p.search(context) for p in _SIZE) if s), None)
                mentions.append((term, _negated(low, m.start()), severity, uncertainty, size, weight))
        if mentions:
            entities[etype] = mentions
    locations = frozenset(t for t, ps in _LOCATION_RX.items() if any(p.search(low) for p in ps))
    temporal = frozenset(t for t, ps in _TEMPORAL_RX.items() if any(p.search(low) for p in ps))
    return entities, locations, temporal, low


def compare_sizes(size1: str, size2: str) -> float:
    """Relative difference of the first numbers: <0.1 -> 1, <0.2 -> 0.8, <0.5 -> 0.5, else 0.2."""
    n1, n2 = _NUM.findall(size1), _NUM.findall(size2)
    if not n1 or not n2:
        return 0.0
    try:
        v1, v2 = float(n1[0]), float(n2[0])
    except ValueError:
        return 0.0
    top = max(abs(v1), abs(v2))
    if top == 0:
        return 1.0
    diff = abs(v1 - v2) / top
    return 1.0 if diff < 0.1 else 0.8 if diff < 0.2 else 0.5 if diff < 0.5 else 0.2


def _entity_score(gen: dict, ref: dict) -> float:
    if not ref:
        return 1.0 if not gen else 0.0
    total = weight_sum = 0.0
    for etype, ref_mentions in ref.items():
        for _, r_neg, r_sev, r_unc, r_size, weight in ref_mentions:
            weight_sum += weight
            if etype not in gen:
                continue
            best = 0.0
            for _, g_neg, g_sev, g_unc, g_size, _ in gen[etype]:
                score = 0.4 if r_neg == g_neg else 0.0
                score += 0.3 * max(0, 1 - abs(r_sev - g_sev) / 4.0)
                score += 0.2 * max(0, 1 - abs(r_unc - g_unc))
                if r_size and g_size:
                    score += 0.1 * compare_sizes(r_size, g_size)
                elif not r_size and not g_size:
                    score += 0.1
                best = max(best, score)
            total += best * weight
    return total / weight_sum if weight_sum > 0 else 0.0


def _location_score(gen: frozenset, ref: frozenset) -> float:
    if not ref:
        return 1.0 if not gen else 0.0
    return len(ref & gen) / len(ref | gen)


def _negation_score(gen: dict, ref: dict) -> float:
    total, count = 0.0, 0
    for etype in set(gen) & set(ref):
        for _, r_neg, _, r_unc, _, _ in ref[etype]:
            best = 0.0
            for _, g_neg, _, g_unc, _, _ in gen[etype]:
                score = (0.6 if r_neg == g_neg else 0.0) + 0.4 * max(0, 1 - abs(r_unc - g_unc) * 2)
                best = max(best, score)
            total += best
            count += 1
    return total / count if count > 0 else 1.0


def _temporal_score(gen_t: frozenset, ref_t: frozenset, gen_e: dict, ref_e: dict) -> float:
    if not ref_t:
        return 1.0 if not gen_t else 0.5
    association = 0.8 if (gen_t and gen_e and ref_t and ref_e) else 0.5
    return len(ref_t & gen_t) / len(ref_t) * 0.5 + association * 0.5


def _measurement_score(gen: dict, ref: dict) -> float:
    total, count = 0.0, 0
    for etype, ref_mentions in ref.items():
        if etype not in gen:
            continue
        for mention in ref_mentions:
            if mention[4]:
                sizes = [g[4] for g in gen[etype] if g[4]]
                total += max((compare_sizes(mention[4], s) for s in sizes), default=0.0)
                count += 1
    return total / count if count > 0 else 1.0


def _significance_score(gen: dict, ref: dict) -> float:
    captured = weight_sum = 0.0
    for etype, ref_mentions in ref.items():
        entity_weight = ENTITIES[etype][2]
        gen_terms = {g[0] for g in gen.get(etype, ())}
        for term, _, severity, _, _, _ in ref_mentions:
            weight = entity_weight * (1 + severity / 4.0)
            weight_sum += weight
            if term in gen_terms:  # Q25 `_entities_match`: identical matched term
                captured += weight
    return captured / weight_sum if weight_sum > 0 else 0.0


def _structure_score(gen_low: str, ref_low: str, gen_len: int, ref_len: int) -> float:
    present = [s for s in _SECTIONS if s in ref_low]
    section = sum(1.0 for s in present if s in gen_low) / len(present) if present else 1.0
    ratio = gen_len / ref_len if ref_len > 0 else 0
    length = min(1.0, ratio) if ratio < 2.0 else max(0, 2.0 - ratio)
    return section * 0.7 + length * 0.3


@lru_cache(maxsize=65536)
def green_rule_components(generated: str, reference: str) -> tuple[float, ...]:
    """``(overall, *components)`` for one pair, in :data:`COMPONENTS` order; all zeros if scoring raises (Q25)."""
    try:
        gen_e, gen_l, gen_t, gen_low = _extract(generated)
        ref_e, ref_l, ref_t, ref_low = _extract(reference)
        parts = (
            _entity_score(gen_e, ref_e),
            _location_score(gen_l, ref_l),
            _negation_score(gen_e, ref_e),
            _temporal_score(gen_t, ref_t, gen_e, ref_e),
            _measurement_score(gen_e, ref_e),
            _significance_score(gen_e, ref_e),
            _structure_score(gen_low, ref_low, len(generated), len(reference)),
        )
    except Exception:  # noqa: BLE001 - Q25 scores a failing pair 0 on every component
        return (0.0,) * (len(COMPONENTS) + 1)
    overall = sum(w * p for w, p in zip(WEIGHTS.values(), parts, strict=True))
    return (overall, *parts)


@lru_cache(maxsize=65536)
def severity_correlation(generated: str, reference: str) -> float:
    """Q25's per-pair ``severity_correlation`` (reported as ``green_severity_correlation``, not in the overall).

    Each reference mention of a type both texts have is paired with the first prediction mention of the identical
    term; the Pearson correlation of the paired severities, mapped to [0, 1] as (r + 1) / 2; 0 with no pair, 0.5
    when the correlation is undefined (one pair, or constant severities); 0 if scoring raises (Q25).
    """
    try:
        gen_e, ref_e = _extract(generated)[0], _extract(reference)[0]
        ref_sev, gen_sev = [], []
        for etype in set(gen_e) & set(ref_e):
            for mention in ref_e[etype]:
                match = next((g for g in gen_e[etype] if g[0] == mention[0]), None)
                if match is not None:
                    ref_sev.append(mention[2])
                    gen_sev.append(match[2])
        if not ref_sev:
            return 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            r = float(np.corrcoef(ref_sev, gen_sev)[0, 1]) if len(ref_sev) > 1 else math.nan
        return (r + 1) / 2 if not math.isnan(r) else 0.5
    except Exception:  # noqa: BLE001 - Q25 scores a failing pair 0
        return 0.0


def green_rule(generated: str, reference: str) -> float:
    """The overall ``green_flare25_rule`` score of one (prediction, reference) pair, in [0, 1]."""
    return green_rule_components(generated, reference)[0]
