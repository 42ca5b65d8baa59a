"""Fagin's threshold algorithm over an item's per-modality lists (recsys.serve.threshold), as a
unit: the items it scores, the bounds it proves, and when it cannot tell."""
import numpy as np
import pytest

from recsys.serve.threshold import ModalityLists

WEIGHTS = [{"text": 0.7, "tabular": 0.3}, {"text": 0.2, "tabular": 0.8}, {"text": 1.0}, {"tabular": 1.0},
           {"image": 0.5, "text": 0.5}]


def test_the_threshold_scores_every_item_of_a_pattern_an_unlisted_item_could_win_from(market):
    from recsys.serve.candidates import best as _best
    from recsys.towers.item import weighted_scores

    row, weights, usable = 11, {"text": 0.5, "tabular": 0.5}, ["text", "tabular"]
    query = {m: np.asarray(b.vectors[row]) for m, b in market.vectors.blocks.items()}
    allowed = np.ones(len(market.item_ids), bool)
    allowed[row] = False
    lists = ModalityLists(market, exact_budget=4_000_000)
    answered = lists.threshold(row, 10, weights, usable, allowed)
    assert answered is not None
    # the listed items filtered away: the best candidates left fall to the bound of the items
    # with both modalities, so these are scored from their vectors, within the exact budget ...
    for m in usable:
        allowed[market.similar[m].rows[row][:85]] = False
    rows = np.flatnonzero(allowed)
    exact = _best(10, rows, weighted_scores(market.vectors.blocks, query, rows, weights))
    candidates, scores = lists.listed_scores(row, lists.weighting(weights, usable), allowed)
    nth = np.sort(scores)[-10]
    assert len(candidates) >= 10 and any(nth <= bound for _, bound in lists.unlisted_bounds(
        lists.weighting(weights, usable), lists.list_ends[row].tolist()))
    found = lists.threshold(row, 10, weights, usable, allowed)
    np.testing.assert_allclose(found[1], exact[1], atol=1e-5)
    # the bounds hold: no item outside the lists scores above its pattern's bound
    unlisted = np.setdiff1d(np.arange(len(market.item_ids)),
                            np.concatenate([market.similar[m].rows[row] for m in usable] + [[row]]))
    unlisted_scores = weighted_scores(market.vectors.blocks, query, unlisted, weights)
    codes = lists.patterns[0][unlisted]
    bounds = lists.unlisted_bounds(lists.weighting(weights, usable), lists.list_ends[row].tolist())
    assert bounds and {p for p, _ in bounds} >= set(codes.tolist())
    for p, bound in bounds:
        assert unlisted_scores[codes == p].max(initial=0.0) <= bound + 1e-5
    # ... and without one, the threshold cannot tell
    assert ModalityLists(market, exact_budget=0).threshold(row, 10, weights, usable, allowed) is None


def _bounds_by_pattern(bundle, weights: dict, last: dict) -> dict[tuple, float]:
    """The unlisted bounds written out: per combination of modalities some item has (and some
    weighted one), the best weighted score its last listed cosines allow, leaving out the
    combinations with a modality whose list holds every item with it (``last`` None)."""
    names = list(bundle.vectors.blocks)
    masks = np.stack([np.asarray(b.mask, bool) for b in bundle.vectors.blocks.values()], axis=1)
    w_q, bounds = sum(weights[m] for m in last), {}
    for combo in np.unique(masks, axis=0):
        has = {m for m, h in zip(names, combo) if h}
        w_c = sum(weights.get(m, 0.0) for m in has)
        if w_c > 0 and not any(last[m] is None for m in has & last.keys()):
            top = sum(weights[m] * max(last[m], 0.0) for m in has & last.keys())
            bounds[tuple(combo.tolist())] = top / np.sqrt(w_q * w_c)
    return bounds


@pytest.mark.parametrize("weights", WEIGHTS, ids=lambda w: ",".join(f"{m}:{v}" for m, v in w.items()))
@pytest.mark.parametrize("which", ["market", "built"])
def test_the_unlisted_bounds_are_per_modality_pattern_of_the_catalog(request, which, weights):
    bundle = request.getfixturevalue("market") if which == "market" else request.getfixturevalue("built")[1].bundle
    lists, names = ModalityLists(bundle, exact_budget=4_000_000), list(bundle.vectors.blocks)
    usable = [m for m in weights if m in bundle.similar]
    patterns = [tuple(bool(h) for h in combo) for combo in lists.patterns[1].tolist()]
    for p, rows in enumerate(lists.pattern_rows):  # the items of each pattern
        masks = np.stack([np.asarray(b.mask, bool)[rows] for b in bundle.vectors.blocks.values()], axis=1)
        assert len(rows) and (masks == patterns[p]).all()
    assert sum(map(len, lists.pattern_rows)) == len(bundle.item_ids)
    for row in range(0, len(bundle.item_ids), 37):
        ends = lists.list_ends[row].tolist()
        for m in names:  # the ends are the lists' last cosines, NaN for a list that is not full
            full = bundle.similar[m].rows[row, -1] >= 0
            assert ends[names.index(m)] == float(bundle.similar[m].scores[row, -1]) if full \
                else np.isnan(ends[names.index(m)])
        for exhaustive in [None, *usable]:  # as they are, then as if each list held every item
            if exhaustive is not None:
                ends[names.index(exhaustive)] = float("nan")
            last = {m: None if np.isnan(ends[names.index(m)]) else ends[names.index(m)] for m in usable}
            found = lists.unlisted_bounds(lists.weighting(weights, usable), ends)
            expected = _bounds_by_pattern(bundle, weights, last)
            assert {patterns[p]: bound for p, bound in found} == pytest.approx(expected, abs=1e-12)
