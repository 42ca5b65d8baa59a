"""Bring your own vectors: ``recsys build --vectors`` from a Parquet file or a folder of .npy files,
through the same blocks, indexes and bundle; bad files get errors that name the file and column."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from recsys.data.vectors import load_vectors
from recsys.errors import DataError, InvalidRequest

N, CLUSTERS = 120, 6


def _catalog() -> pd.DataFrame:
    return pd.DataFrame({"item_id": [f"A{i:03d}" for i in range(N)],
                         "title": [f"item {i}" for i in range(N)],
                         "category": [f"kind{i % CLUSTERS}" for i in range(N)]})


def _clustered(dim: int, seed: int) -> np.ndarray:
    """Vectors in CLUSTERS tight groups: item i in group i % CLUSTERS."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLUSTERS, dim))
    return (centres[np.arange(N) % CLUSTERS] + 0.05 * rng.normal(size=(N, dim))).astype(np.float32)


def _parquet(path, columns: dict, ids=None):
    table = {"item_id": ids if ids is not None else [f"A{i:03d}" for i in range(N)]}
    table.update({name: [None if row is None else list(map(float, row)) for row in rows]
                  for name, rows in columns.items()})
    pq.write_table(pa.table(table), path)
    return path


def test_a_parquet_file_and_a_folder_give_the_same_vectors(tmp_path):
    image, text = _clustered(32, 0), _clustered(16, 1)
    rows = [None if i == 5 else r for i, r in enumerate(image)]  # item A005 has no photo
    _parquet(tmp_path / "v.parquet", {"image": rows, "text": text})
    folder = tmp_path / "folder"
    folder.mkdir()
    order = np.random.default_rng(2).permutation(N)  # any row order: the ids say which is which
    (folder / "item_ids.txt").write_text("\n".join(f"A{i:03d}" for i in order))
    image_zeroed = image.copy()
    image_zeroed[5] = 0
    np.save(folder / "image.npy", image_zeroed[order])
    np.save(folder / "text.npy", text[order])
    ids = _catalog()["item_id"]
    for given in (load_vectors(tmp_path / "v.parquet", ids), load_vectors(folder, ids)):
        assert set(given) == {"image", "text"}
        np.testing.assert_allclose(given["text"][0], text)
        assert given["image"][1].sum() == N - 1 and not given["image"][1][5]


def test_the_build_uses_given_vectors_like_encoded_ones(tmp_path):
    from recsys.bundle import read_bundle
    from recsys.pipeline.build import build_item_bundle
    from recsys.serve import Recommender
    from recsys.serve.embedder import ItemEmbedder
    from recsys.towers import create_tower
    from tests.conftest import make_settings

    path = _parquet(tmp_path / "v.parquet", {"image": _clustered(32, 0), "text": _clustered(16, 1)})
    report = build_item_bundle(_catalog(), make_settings(tmp_path), tmp_path / "models" / "given",
                               show_progress=False, towers={"tabular": create_tower("tabular")}, vectors=path)
    assert "image: 120 given" in report.summary() and "text: 120 given" in report.summary()
    bundle = read_bundle(report.path)
    assert bundle.manifest["encoders"]["image"] == {"given": str(path), "dim": 32}
    assert set(bundle.vectors.blocks) == {"image", "text", "tabular"}
    rec = Recommender(bundle)
    for item in ("A000", "A007"):
        group = int(item[1:]) % CLUSTERS
        assert all(int(s.item_id[1:]) % CLUSTERS == group for s in rec.similar_items(item, k=5, dedupe=False))
        image_only = rec.similar_items(item, k=5, weights={"image": 1.0}, dedupe=False)
        assert all(int(s.item_id[1:]) % CLUSTERS == group for s in image_only)
    with pytest.raises(InvalidRequest, match="no text encoder"):  # given at build: nothing to embed a query with
        ItemEmbedder(bundle).embed_query("red dress")

    # every modality given: no encoder runs, and no tabular state is kept
    path = _parquet(tmp_path / "all.parquet", {"image": _clustered(32, 0), "tabular": _clustered(8, 2)})
    report = build_item_bundle(_catalog(), make_settings(tmp_path), tmp_path / "models" / "all",
                               show_progress=False, towers={"text": create_tower("text")}, vectors=path)
    bundle = read_bundle(report.path)
    assert bundle.tabular_state is None and bundle.manifest["encoders"]["tabular"]["given"] == str(path)


def test_the_cli_builds_from_a_vectors_file(tmp_path):
    from recsys.cli import cli

    _catalog().to_csv(tmp_path / "items.csv", index=False)
    path = _parquet(tmp_path / "v.parquet", {"image": _clustered(32, 0)})
    config = tmp_path / "recsys.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "build", "--catalog", str(tmp_path / "items.csv"),
                                      "--vectors", str(path), "--out", str(tmp_path / "models" / "shop"),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "image: 120 given" in result.output
    result = CliRunner().invoke(cli, ["similar", "--bundle", str(tmp_path / "models" / "shop"), "A000", "--k", "3",
                                      "--weights", "image:1", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["results"]["A000"]
    assert all(int(r["item_id"][1:]) % CLUSTERS == 0 for r in rows)


@pytest.mark.parametrize("columns, ids, message", [
    ({"image": [[float("nan")] * 4] + [[1.0] * 4] * (N - 1)}, None, "column 'image': item 'A000' has a NaN"),
    ({"image": [[1.0] * 4] * (N - 1) + [[1.0] * 5]}, None, "column 'image': every vector needs the same length"),
    ({"colour": [[1.0] * 4] * N}, None, "unknown modality 'colour'"),
    ({"image": [[1.0] * 4] * N}, [f"A{i:03d}" for i in range(N - 1)] + ["ZZZ"], "1 id(s) are not in the catalog"),
    ({"image": [[1.0] * 4] * (N - 1)}, [f"A{i:03d}" for i in range(N - 1)], "1 catalog item(s) have no row"),
    ({"image": [[1.0] * 4] * N}, ["A000"] * 2 + [f"A{i:03d}" for i in range(2, N)], "'A000' has more than one row"),
])
def test_bad_parquet_files_are_clear_errors(tmp_path, columns, ids, message):
    path = _parquet(tmp_path / "v.parquet", columns, ids)
    with pytest.raises(DataError, match=re.escape(str(path)) + ".*" + re.escape(message)):
        load_vectors(path, _catalog()["item_id"])


def test_bad_files_and_folders_are_clear_errors(tmp_path):
    ids = _catalog()["item_id"]
    pq.write_table(pa.table({"item_id": list(ids), "image": [1.0] * N}), tmp_path / "flat.parquet")
    with pytest.raises(DataError, match="column 'image': each cell must be a list of numbers"):
        load_vectors(tmp_path / "flat.parquet", ids)
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="cannot read it as Parquet"):
        load_vectors(tmp_path / "bad.parquet", ids)
    with pytest.raises(DataError, match="give a .parquet file or a folder"):
        load_vectors(tmp_path / "v.csv", ids)
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(DataError, match="no item_ids.txt"):
        load_vectors(folder, ids)
    (folder / "item_ids.txt").write_text("\n".join(ids))
    np.save(folder / "text.npy", np.ones((N - 1, 8)))
    with pytest.raises(DataError, match=r"text.npy: need a \(120, d\) array"):
        load_vectors(folder, ids)
