"""The notebooks over catalogs (similar items, curation), and every notebook committed without
outputs; the MovieLens ones are in ``test_notebooks_movielens.py``."""
from __future__ import annotations

import nbformat
import pytest

from tests.notebooks import FASHION, NAMES, NOTEBOOKS, images, run, state_of, summary

pytestmark = pytest.mark.slow  # end to end: `make check` leaves it out


def test_notebooks_are_committed_without_outputs():
    for name in NAMES:
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), name  # papermill injects after it
        assert all(not c.outputs and c.execution_count is None for c in code), f"{name}: strip outputs"



def test_similar_items_notebook(session_dir, tmp_path):
    nb = run("02_similar_items", tmp_path, catalog_source="synthetic:300", items=0, sample=60, map_items=300,
             queries=2, state_dir=state_of(session_dir))
    assert images(nb) == 3  # the sweep, the gallery, the map
    sweep = summary(nb)
    # each block knows what it encodes: tabular carries the price, text the category words
    assert sweep["tabular only"]["price band"] > sweep["text only"]["price band"]
    assert sweep["text only"]["category"] > sweep["image only"]["category"]


def test_similar_items_notebook_on_real_photos(session_dir, tmp_path):
    if not FASHION.is_file():
        pytest.skip(f"no fashion-products at {FASHION}")
    nb = run("02_similar_items", tmp_path, catalog_source=str(FASHION), items=400, sample=60, map_items=400,
             queries=2, state_dir=state_of(session_dir))
    assert images(nb) == 3  # the sweep, the gallery of real photos, the map
    sweep = summary(nb)
    assert "price band" not in sweep["default"]  # this catalog has no prices
    for name in ("image only", "text only", "default"):  # each far above chance on the leaf category
        assert sweep[name]["leaf category"] > 4 * sweep["chance"]["leaf category"], (name, sweep[name])


def test_catalog_curation_notebook_on_real_photos(session_dir, tmp_path):
    if not FASHION.is_file():
        pytest.skip(f"no fashion-products at {FASHION}")
    nb = run("04_catalog_curation", tmp_path, catalog_source=str(FASHION), items=600, copies=30,
             faults_per_kind=6, shots=[1, 5], subset_size=80, state_dir=state_of(session_dir))
    assert images(nb) == 5  # duplicate groups, outliers, the cluster map and representatives, subset
    result = summary(nb)
    assert result["duplicates"]["recall"] >= 0.8
    assert result["outliers_auroc"]["blank"] >= 0.99 and result["outliers_auroc"]["noise"] >= 0.99
    assert result["outliers_auroc"]["swapped"] >= 0.9
    labels = result["labels"]
    assert labels["5-shot"] > labels["1-shot"] and labels["zero-shot top level"] >= 0.6
    assert result["subset"]["categories_missing"] == 0 and result["subset"]["radius_to_random"] < 1
