"""The GREEN rule's components, each worked out by hand from the organisers' formulas (``docs/flare_format.md``
4.A, "Comprehensive GREEN": Q25 ``utils/metrics.py`` ``GREENScorer``), on hand-made mentions; the mutation run
(``make mutation``, docs/mutation.md) found them pinned only through whole-report scores.

A mention is ``(term, negated, severity, uncertainty, size, weight)``, as ``_extract`` writes it.
"""

import pytest

from mevlip.metrics import green_rule as g


def m(term="opacity", neg=False, sev=2.0, unc=0.0, size=None, weight=0.8):
    return (term, neg, sev, unc, size, weight)


def test_entity_score_by_hand():
    assert g._entity_score({}, {}) == 1.0 and g._entity_score({"opacity": [m()]}, {}) == 0.0
    ref = {"opacity": [m(sev=2.0, size="2 cm")], "pneumothorax": [m("pneumothorax", sev=4.0, weight=1.0)]}
    gen = {"opacity": [m(sev=1.0, unc=0.3, size="2.1 cm"),  # 0.4 + 0.3(1 - 1/4) + 0.2(1 - 0.3) + 0.1(sizes 1)
                       m(neg=True, sev=2.0)]}  # 0 + 0.3 + 0.2 + 0 (one size only) = 0.5
    best = 0.4 + 0.225 + 0.14 + 0.1
    # pneumothorax (weight 1.0) is missing from the prediction: its weight counts, its score is 0
    assert g._entity_score(gen, ref) == pytest.approx(best * 0.8 / (0.8 + 1.0))
    # neither has a size: + 0.1; a size comparison of 2 vs 3 cm (relative difference 1/3 < 0.5) gives 0.5
    assert g._entity_score({"opacity": [m()]}, {"opacity": [m()]}) == pytest.approx(1.0)
    assert g._entity_score({"opacity": [m(size="3 cm")]}, {"opacity": [m(size="2 cm")]}) == pytest.approx(0.95)
    assert g._entity_score({"normal": [m("normal", weight=0.0)]}, {"normal": [m("normal", weight=0.0)]}) == 0.0


def test_negation_score_by_hand():
    assert g._negation_score({"opacity": [m()]}, {"edema": [m("edema")]}) == 1.0  # no shared type
    ref = {"opacity": [m(neg=True, unc=0.3), m(neg=False, unc=0.0)], "edema": [m("edema")]}
    gen = {"opacity": [m(neg=True, unc=0.1)]}
    # first: 0.6 + 0.4(1 - 2 * 0.2) = 0.84; second: 0 + 0.4(1 - 2 * 0.1) = 0.32; edema is not shared
    assert g._negation_score(gen, ref) == pytest.approx((0.84 + 0.32) / 2)
    assert g._negation_score({"opacity": [m(unc=0.9)]}, {"opacity": [m(unc=0.0)]}) == pytest.approx(0.6)


def test_temporal_score_by_hand():
    e = {"opacity": [m()]}
    assert g._temporal_score(frozenset(), frozenset(), e, e) == 1.0
    assert g._temporal_score(frozenset({"new"}), frozenset(), e, e) == 0.5
    ref_t = frozenset({"new", "old"})
    assert g._temporal_score(frozenset({"new"}), ref_t, e, e) == pytest.approx(0.5 * 0.5 + 0.8 * 0.5)
    assert g._temporal_score(frozenset({"new"}), ref_t, {}, e) == pytest.approx(0.5 * 0.5 + 0.5 * 0.5)
    assert g._temporal_score(frozenset(), ref_t, e, e) == pytest.approx(0.5 * 0.5)


def test_measurement_score_by_hand():
    assert g._measurement_score({"opacity": [m(size="2 cm")]}, {"opacity": [m()]}) == 1.0  # no sized reference
    ref = {"opacity": [m(size="10 mm"), m(size="4 cm")], "edema": [m("edema", size="1 cm")]}
    gen = {"opacity": [m(size="11 mm"), m(size=None), m(size="5 cm")]}
    # 10 mm: best of 10 vs 11 (0.0909 < 0.1 -> 1) and 10 vs 5 (0.5 -> 0.2) = 1; 4 cm: 4 vs 11 (0.636 -> 0.2),
    # 4 vs 5 (0.2 -> 0.5) = 0.5; edema is not in the prediction: not counted
    assert g._measurement_score(gen, ref) == pytest.approx((1.0 + 0.5) / 2)
    assert g._measurement_score({"opacity": [m()]}, {"opacity": [m(size="1 cm")]}) == 0.0  # no size predicted


def test_significance_score_by_hand():
    assert g._significance_score({}, {}) == 0.0  # no reference entity: 0, not 1 (Q25)
    ref = {"opacity": [m("opacity", sev=2.0), m("density", sev=0.0)], "pneumothorax": [m("pneumothorax", sev=4.0)]}
    gen = {"opacity": [m("opacity")], "pneumothorax": [m("pneumothorax")]}
    # weights: opacity 0.8(1 + 2/4) = 1.2, density 0.8, pneumothorax 1.0(1 + 4/4) = 2; density not matched
    assert g._significance_score(gen, ref) == pytest.approx((1.2 + 2.0) / (1.2 + 0.8 + 2.0))


def test_structure_score_by_hand():
    ref = "findings: clear. impression: normal."
    # sections: the reference has findings and impression, the prediction only findings -> 0.5; lengths 30/60
    assert g._structure_score("findings: x", ref, 30, 60) == pytest.approx(0.7 * 0.5 + 0.3 * 0.5)
    assert g._structure_score("x", "no section", 90, 60) == pytest.approx(0.7 + 0.3)  # r = 1.5 < 2: min(1, r)
    assert g._structure_score("x", "no section", 150, 60) == pytest.approx(0.7 + 0.0)  # r = 2.5: max(0, -0.5)
    assert g._structure_score("x", "no section", 10, 0) == pytest.approx(0.7)  # empty reference: r = 0


def test_extraction_of_negation_severity_and_size_by_hand():
    entities, locations, temporal, _ = g._extract("No effusion. Severe opacity measuring 3 cm in the left lung, "
                                                  "unchanged.")
    # each mention looks 50 characters either side: "severe" (x 1.0) and "3 cm" belong to the effusion too
    assert entities["effusion"] == [("effusion", True, 2.0, 0.0, "3 cm", 0.8)]
    assert entities["opacity"] == [("opacity", True, 2.0, 0.0, "3 cm", 0.8)]  # "no " within 50 chars before
    assert locations == frozenset({"lung", "left"}) and temporal == frozenset({"unchanged"})
    far = g._extract("No acute distress. " + "x" * 40 + " Mild opacity.")[0]["opacity"][0]
    assert far[1] is False and far[2] == pytest.approx(2.0 * 0.3)  # "no" more than 50 characters before


def test_entity_score_uncertainty_and_one_sided_size_by_hand():
    # the same uncertainty on both sides: 0.2 x (1 - |0.5 - 0.5|) = 0.2, a perfect mention
    assert g._entity_score({"opacity": [m(unc=0.5)]}, {"opacity": [m(unc=0.5)]}) == pytest.approx(1.0)
    # a size on one side only: no size term (0.4 + 0.3 + 0.2 = 0.9), either way round
    assert g._entity_score({"opacity": [m()]}, {"opacity": [m(size="2 cm")]}) == pytest.approx(0.9)
    assert g._entity_score({"opacity": [m(size="2 cm")]}, {"opacity": [m()]}) == pytest.approx(0.9)


def test_measurement_score_goes_on_after_a_type_the_prediction_lacks():
    # edema (first) is not in the prediction and is skipped; opacity 4 vs 5 cm (relative difference 0.2) gives 0.5
    ref = {"edema": [m("edema", size="1 cm")], "opacity": [m(size="4 cm")]}
    assert g._measurement_score({"opacity": [m(size="5 cm")]}, ref) == pytest.approx(0.5)


def test_sizes_without_a_number_compare_as_zero():
    assert g.compare_sizes("large", "2 cm") == 0.0 and g.compare_sizes("2 cm", "small") == 0.0
    assert g.compare_sizes("0 mm", "0 cm") == 1.0  # both zero: the same
