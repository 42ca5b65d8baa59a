"""Diverse, balanced subsets."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from recsys.cli import cli
from recsys.curation import diverse_subset, find_duplicates
from recsys.curation.subset import coverage_radius, quotas
from recsys.errors import InvalidRequest


def test_quotas_share_equally_as_far_as_sizes_allow():
    values = pd.Series(["a"] * 50 + ["b"] * 3 + ["c"] * 20)
    assert quotas(values, 30) == {"b": 3, "a": 14, "c": 13}  # the slot left over goes to the largest
    assert quotas(values, 2) == {"a": 1, "c": 1}  # fewer slots than values: the largest first
    assert quotas(values, 500) == {"a": 50, "b": 3, "c": 20}


@pytest.fixture(scope="module")
def bundle(built):
    from recsys.bundle import read_bundle

    return read_bundle(built[0].path)


def test_the_subset_covers_the_catalog_better_than_chance(bundle):
    chosen = diverse_subset(bundle, 60, seed=0)
    matrix, mask = np.asarray(bundle.vectors.combined), bundle.vectors.mask
    rng = np.random.default_rng(0)
    random = [coverage_radius(matrix, mask, rng.choice(np.flatnonzero(mask), 60, replace=False)) for _ in range(10)]
    assert len(chosen.items) == len(set(chosen.items)) == 60
    assert chosen.radius <= 0.9 * float(np.median(random)), (chosen.radius, sorted(random))
    assert chosen.radius == pytest.approx(coverage_radius(matrix, mask, bundle.item_ids.rows(chosen.items)))


def test_the_same_seed_gives_the_same_subset(bundle):
    assert diverse_subset(bundle, 25, seed=3).items == diverse_subset(bundle, 25, seed=3).items
    assert diverse_subset(bundle, 25, seed=3).items != diverse_subset(bundle, 25, seed=4).items


@pytest.mark.parametrize("quota", ["one", "equal"])
def test_balance_represents_every_category(bundle, quota):
    categories = bundle.items.set_index("item_id")["category"]
    n = categories.nunique()  # one slot per category
    plain = diverse_subset(bundle, n, seed=0)
    chosen = diverse_subset(bundle, n, balance="category", quota=quota, seed=0)
    counts = categories[chosen.items].value_counts()
    assert set(counts.index) == set(categories[categories != ""].unique()) and len(chosen.items) == n
    assert set(categories[plain.items]) != set(counts.index)  # the plain selection misses some
    if quota == "equal":
        assert counts.to_dict() == chosen.quotas


def test_duplicates_are_left_out_but_the_first_of_each_group(faulty):
    bundle, truth = faulty
    found = find_duplicates(bundle)
    chosen = diverse_subset(bundle, len(bundle.item_ids), duplicate_of=found.first_rows(bundle.item_ids))
    left_out = {item for group in found.groups for item in group[1:]}
    assert not left_out & set(chosen.items)
    assert len(chosen.items) == int(bundle.vectors.mask.sum()) - len(left_out)


@pytest.mark.parametrize("kwargs, message", [({"n": 0}, "at least 1"), ({"n": 5, "balance": "brand"}, "no such column"),
                                             ({"n": 5, "modality": "audio"}, "unknown modality")])
def test_bad_requests_are_refused(bundle, kwargs, message):
    with pytest.raises(InvalidRequest, match=message):
        diverse_subset(bundle, **kwargs)


def test_the_cli_prints_the_subset_as_json(bundle):
    result = CliRunner().invoke(cli, ["curate", "subset", "--bundle", str(bundle.path), "--n", "12",
                                      "--balance", "category", "--seed", "1", "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    expected = diverse_subset(bundle, 12, balance="category", seed=1, duplicate_of=bundle.duplicate_of)
    assert payload["version"] == bundle.version and payload["items"] == expected.items
    bad = CliRunner().invoke(cli, ["curate", "subset", "--bundle", str(bundle.path), "--n", "5", "--balance", "brand"])
    assert bad.exit_code == 2 and "no such column" in bad.output and "Traceback" not in bad.output
