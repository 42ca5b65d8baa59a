"""Experiments: a stable split, and a report whose intervals hold their nominal rate on simulated
logs (A/A) and find a set effect with the right sign (A/B)."""
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from recsys.control.experiments import HOLDOUT, Experiment, assign, report


def _experiment(**fields) -> Experiment:
    return Experiment.model_validate({"id": "e1", "name": "test", "salt": "s",
                                      "variants": [{"name": "A"}, {"name": "B"}], **fields})


def test_users_are_split_by_share_stably_and_independently_of_other_experiments():
    ids = [f"u{i}" for i in range(40_000)]
    three = _experiment(variants=[{"name": "A", "share": 2}, {"name": "B"}, {"name": "C"}], holdout=0.2)
    got = pd.Series([getattr(assign(three, u), "name", HOLDOUT) for u in ids]).value_counts(normalize=True)
    assert got.to_dict() == pytest.approx({"A": 0.4, "B": 0.2, "C": 0.2, HOLDOUT: 0.2}, abs=0.01)
    assert [assign(three, u).name if assign(three, u) else None for u in ids[:50]] == \
           [assign(three, u).name if assign(three, u) else None for u in ids[:50]]
    other = _experiment(salt="t")
    first = np.array([assign(_experiment(), u).name == "B" for u in ids])
    second = np.array([assign(other, u).name == "B" for u in ids])
    assert abs(np.corrcoef(first, second)[0, 1]) < 0.02  # another salt: another split


def test_bad_experiments_are_refused():
    for fields, reason in [({"variants": [{"name": "A"}]}, "at least 2"),
                           ({"variants": [{"name": "A"}, {"name": "A"}]}, "unique"),
                           ({"variants": [{"name": "A"}, {"name": HOLDOUT}]}, "users left out"),
                           ({"holdout": 1.0}, "less than 1")]:
        with pytest.raises(ValidationError, match=reason):
            _experiment(**fields)


def _logs(rng, experiment, users: int, ctr: dict, buy: dict, drop: dict | None = None):
    """Simulated logs: each user sees 1 to 5 feeds of 10 items; each impression is clicked with
    the variant's CTR times the user's own propensity (users differ); a user buys with the
    variant's probability."""
    ids = np.array([f"u{u}" for u in range(users)])
    variant = np.array([assign(experiment, u).name for u in ids])
    kept = np.array([rng.random() >= (drop or {}).get(v, 0) for v in variant])  # a logging bug loses some
    ids, variant = ids[kept], variant[kept]
    propensity = rng.gamma(2.0, 0.5, len(ids))
    feeds = rng.integers(1, 6, len(ids))
    user_of = np.repeat(np.arange(len(ids)), feeds)
    read = np.concatenate([np.arange(n) for n in feeds])
    request = np.char.add(np.char.add(ids[user_of], "-"), read.astype(str))
    rate = np.minimum(1.0, np.vectorize(ctr.get)(variant[user_of]) * propensity[user_of])
    clicks = rng.binomial(10, rate)
    impressions = pd.DataFrame({"request_id": request, "user_id": ids[user_of], "variant": variant[user_of],
                                "n": 10, "at": read.astype(float)})
    clicked = np.repeat(np.arange(len(request)), clicks)
    bought = rng.random(len(ids)) < np.vectorize(buy.get)(variant)
    events = pd.concat([
        pd.DataFrame({"user_id": ids[user_of][clicked], "item_id": "i1", "event": "click",
                      "timestamp": read[clicked] + 0.5, "value": np.nan, "request_id": request[clicked]}),
        pd.DataFrame({"user_id": ids[bought], "item_id": "i1", "event": "purchase", "timestamp": 9.0, "value": 1.0,
                      "request_id": ""})], ignore_index=True)
    return impressions, events


@pytest.mark.slow  # 200 simulated experiments: `make check` leaves it out
def test_an_aa_test_flags_a_difference_at_about_its_nominal_rate():
    rng = np.random.default_rng(0)
    flagged = {"ctr": 0, "conversion": 0, "revenue_per_user": 0}
    seeds = 200
    for seed in range(seeds):
        experiment = _experiment(salt=f"aa{seed}")
        got = report(experiment, *_logs(rng, experiment, 600, {"A": 0.05, "B": 0.05}, {"A": 0.1, "B": 0.1}),
                     prices={"i1": 20.0})
        for metric in flagged:
            flagged[metric] += got["variants"]["B"][f"{metric}_vs_control"]["significant"]
    rates = {m: n / seeds for m, n in flagged.items()}
    print(f"A/A false positive rates over {seeds} seeds (nominal 0.05): {rates}")
    assert all(0.015 <= r <= 0.10 for r in rates.values()), rates


@pytest.mark.slow  # simulates a whole experiment's traffic: about 6 seconds
def test_an_ab_test_finds_a_set_effect_with_its_sign():
    rng = np.random.default_rng(1)
    found, seeds = 0, 50
    for seed in range(seeds):
        experiment = _experiment(salt=f"ab{seed}")
        got = report(experiment, *_logs(rng, experiment, 2000, {"A": 0.05, "B": 0.06}, {"A": 0.1, "B": 0.1}))
        diff = got["variants"]["B"]["ctr_vs_control"]
        found += diff["significant"] and diff["value"] > 0
        assert not (diff["significant"] and diff["value"] < 0)
    print(f"A/B (CTR 0.05 -> 0.06, 2,000 users): found in {found}/{seeds}")
    assert found / seeds >= 0.8


def test_a_sample_ratio_mismatch_is_flagged():
    rng = np.random.default_rng(2)
    experiment = _experiment()
    fine = report(experiment, *_logs(rng, experiment, 4000, {"A": 0.05, "B": 0.05}, {"A": 0.1, "B": 0.1}))
    broken = report(experiment, *_logs(rng, experiment, 4000, {"A": 0.05, "B": 0.05}, {"A": 0.1, "B": 0.1},
                                       drop={"B": 0.15}))
    assert not fine["srm"]["mismatch"] and broken["srm"]["mismatch"]
    row = fine["variants"]["A"]
    assert row["users"] > 1800 and row["ctr"]["low"] < row["ctr"]["value"] < row["ctr"]["high"]
    last = fine["timeline"][-1]  # the timeline ends where the report stands
    assert len(fine["timeline"]) == 11 and last["A"]["ctr"] == pytest.approx(row["ctr"]["value"], abs=1e-5)
    assert last["B"]["conversion"] == pytest.approx(fine["variants"]["B"]["conversion"]["value"], abs=1e-5)
