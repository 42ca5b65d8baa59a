"""Clusters of real photos and texts (the ``broken`` shop: 150 fashion-products items)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from recsys.curation import find_clusters
from recsys.curation.clusters import _names
from recsys.errors import InvalidRequest


def test_clusters_cover_every_item_and_group_its_categories(broken):
    bundle, _ = broken
    found = find_clusters(bundle, k=8, seed=0)
    assert len(found.clusters) == 8 and [c.id for c in found.clusters] == list(range(8))
    sizes = [c.size for c in found.clusters]
    assert sizes == sorted(sizes, reverse=True) and sum(sizes) == int(bundle.vectors.mask.sum())
    assert (found.assignment >= 0).sum() == sum(sizes) and np.isfinite(found.map[found.assignment >= 0]).all()
    for cluster in found.clusters:
        rows = bundle.item_ids.rows(cluster.representatives)
        assert (found.assignment[rows] == cluster.id).all() and 0 < cluster.cohesion <= 1
    # top-level categories (apparel, footwear, accessories...) stay together far more than by chance
    top = bundle.items["category"].str.split("/").str[0].to_numpy()

    def purity(labels):
        frame = pd.DataFrame({"c": labels, "top": top})
        return frame.groupby("c")["top"].agg(lambda v: v.value_counts().iloc[0]).sum() / len(frame)

    shuffled = np.random.default_rng(0).permutation(found.assignment)
    assert purity(found.assignment) >= purity(shuffled) + 0.2


def test_names_are_words_that_set_a_cluster_apart(broken):
    bundle, _ = broken
    found = find_clusters(bundle, k=8, seed=0)
    assert all(c.name for c in found.clusters)
    assert len({c.name for c in found.clusters}) == len(found.clusters)
    titles = bundle.items["title"].str.lower()
    for cluster in found.clusters:
        members = titles[found.assignment == cluster.id]
        word = cluster.name.split()[0]
        # the cluster's first word is commoner in it than in the rest of the catalog
        assert members.str.contains(word).mean() > titles[found.assignment != cluster.id].str.contains(word).mean()


def test_the_same_seed_gives_the_same_clusters_and_bad_k_is_refused(broken):
    bundle, _ = broken
    first, again = find_clusters(bundle, k=5, seed=3), find_clusters(bundle, k=5, seed=3)
    assert first.clusters == again.clusters and np.array_equal(first.assignment, again.assignment)
    with pytest.raises(InvalidRequest, match="k must be between 2"):
        find_clusters(bundle, k=1)
    with pytest.raises(InvalidRequest, match="unknown modality"):
        find_clusters(bundle, modality="sound")


def test_the_cli_prints_clusters_as_json(broken):
    from recsys.cli import cli

    bundle, _ = broken
    result = CliRunner().invoke(cli, ["curate", "clusters", "--bundle", str(bundle.path), "--k", "4",
                                       "--modality", "image", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["version"] == bundle.version and payload["modality"] == "image"
    assert [set(c) for c in payload["clusters"]] == [{"id", "name", "size", "cohesion", "representatives"}] * 4


def test_two_clusters_of_one_kind_get_names_of_their_own():
    """k-means may split one kind in two: the smaller cluster's name takes its next words."""
    texts = ["jersey sleeves fancy"] * 8 + ["jersey sleeves fancy top"] + ["jersey sleeves fancy"] * 8 \
        + ["jersey sleeves fancy dress"] + ["denim jeans skinny"] * 6 + ["denim jeans skinny"] * 6
    labels = np.array([0] * 9 + [1] * 9 + [2] * 6 + [3] * 6)
    names = _names(texts, labels, 4)
    assert names[0].split()[:3] == names[1].split()[:3]  # the same best words ...
    assert len(set(names)) == 4 and all(names)  # ... but four names
    assert names[1].endswith("dress") and names[3] == "denim jeans skinny (2)", names
