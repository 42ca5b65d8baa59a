"""Item vectors: the weighted concatenation formula, weight parsing and full-catalog products."""
import os
import time

import numpy as np
import pytest

from recsys.errors import InvalidRequest
from recsys.serve.scan import Scan, prune_scans
from recsys.towers.base import TowerOutput, l2_normalise
from recsys.towers.item import combine, parse_weights, rows_dot, weighted_scores


def _block(rng, n, d, missing=()):
    vectors, mask = l2_normalise(rng.normal(size=(n, d)))
    mask[list(missing)] = False
    vectors[list(missing)] = 0
    return TowerOutput(vectors, mask)


def test_dot_is_weighted_mean_of_cosines():
    rng = np.random.default_rng(0)
    blocks = {"image": _block(rng, 6, 5, missing=[4]), "text": _block(rng, 6, 3, missing=[5]),
              "tabular": _block(rng, 6, 4)}
    weights = {"image": 0.5, "text": 0.3, "tabular": 0.2}
    items = combine(blocks, weights)
    np.testing.assert_allclose(np.linalg.norm(items.combined, axis=1), 1.0, atol=1e-6)
    cos = {m: b.vectors @ b.vectors.T for m, b in blocks.items()}
    expected = sum(w * cos[m][0, 1] for m, w in weights.items())  # both have every modality
    assert items.combined[0] @ items.combined[1] == pytest.approx(expected, abs=1e-6)
    # item 4 lacks the image: normalised over the weights it has
    w4 = 0.3 + 0.2
    expected = (0.3 * cos["text"][0, 4] + 0.2 * cos["tabular"][0, 4]) / np.sqrt(1.0 * w4)
    assert items.combined[0] @ items.combined[4] == pytest.approx(expected, abs=1e-6)
    # the exact re-ranker gives the same numbers as the combined vectors
    query = {m: b.vectors[0] for m, b in blocks.items()}
    scores = weighted_scores(blocks, query, np.arange(6), weights)
    np.testing.assert_allclose(scores, items.combined @ items.combined[0], atol=1e-5)


def test_per_request_weights_rerank():
    rng = np.random.default_rng(1)
    blocks = {"image": _block(rng, 5, 4), "text": _block(rng, 5, 4)}
    query = {m: b.vectors[0] for m, b in blocks.items()}
    only_image = weighted_scores(blocks, query, np.arange(5), {"image": 1.0, "text": 0.0})
    np.testing.assert_allclose(only_image, blocks["image"].vectors @ query["image"], atol=1e-6)


@pytest.mark.parametrize("text, message", [
    ("colour:1", "unknown modality 'colour'"),
    ("image:-1", "must be a finite number >= 0"),
    ("image:nan", "must be a finite number >= 0"),
    ("image:x", "must be a number"),
    ("image:0,text:0", "positive sum"),
    ("image", "must look like image:0.6"),
    ("image:1,image:2", "appears twice"),
    ("", "at least one modality"),
])
def test_bad_weights(text, message):
    with pytest.raises(InvalidRequest, match=message):
        parse_weights(text)


def test_parse_weights():
    assert parse_weights(" image:0.6, text:0.3,tabular:0.1 ") == {"image": 0.6, "text": 0.3, "tabular": 0.1}


def test_parsed_weights_are_the_callers_own_and_bad_ones_fail_every_time():
    first = parse_weights("text:0.7,tabular:0.3")
    first["text"] = 99.0  # a caller changing its dict does not change the next answer
    assert parse_weights("text:0.7,tabular:0.3") == {"text": 0.7, "tabular": 0.3}
    for _ in range(2):
        with pytest.raises(InvalidRequest, match="positive sum"):
            parse_weights("text:0")
    assert parse_weights("image:1", available=("image",)) == {"image": 1.0}
    with pytest.raises(InvalidRequest, match="unknown modality 'text'"):
        parse_weights("text:1", available=("image",))


def _matrix(rows=300, dim=17, seed=3):
    return np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)


def test_scan_products_equal_the_matrix_products(tmp_path):
    matrix = _matrix()
    vector = np.random.default_rng(4).normal(size=matrix.shape[1])  # float64: cast to the matrix's type
    expected = matrix @ vector.astype(np.float32)
    for scan in (Scan(matrix), Scan(matrix, folder=tmp_path, key="k"), Scan(matrix, max_bytes=10)):
        got = scan.dot(vector)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # rows_dot takes the scan for most rows and gathers for few; both the same numbers
    scan = Scan(matrix, folder=tmp_path, key="k")
    for rows in (np.arange(300)[::-1][:250], np.array([3, 7, 11])):
        np.testing.assert_allclose(rows_dot(matrix, rows, vector, scan), expected[rows], rtol=1e-5, atol=1e-5)


def test_scan_shares_one_file_per_key(tmp_path):
    matrix = _matrix()
    first = Scan(matrix, folder=tmp_path, key="abc")
    path = tmp_path / "abc.columns.npy"
    assert first.key == "abc" and path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["abc.columns.npy"]  # no temporary left
    np.testing.assert_array_equal(np.load(path), matrix.T)
    stamp = path.stat().st_mtime_ns
    second = Scan(matrix, folder=tmp_path, key="abc")  # another worker: maps the same file
    assert path.stat().st_mtime_ns == stamp
    assert isinstance(second.columns.base, np.memmap) or isinstance(second.columns, np.memmap)
    # a file of another shape under that name (a foreign one) is replaced
    other = _matrix(rows=200, seed=5)
    third = Scan(other, folder=tmp_path, key="abc")
    np.testing.assert_allclose(third.dot(np.ones(17)), other.sum(axis=1), rtol=1e-5, atol=1e-4)
    assert np.load(path).shape == (17, 200)
    # so is a file of the right shape with other numbers (damaged): never served
    damaged = other.copy()
    damaged[7, 3] += 1.0
    fourth = Scan(damaged, folder=tmp_path, key="abc")
    np.testing.assert_allclose(fourth.dot(np.ones(17)), damaged.sum(axis=1), rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(np.load(path), damaged.T)


def test_scan_without_a_writable_folder_keeps_its_own_copy(tmp_path, caplog):
    matrix = _matrix()
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    scan = Scan(matrix, folder=blocked / "scans", key="abc")  # mkdir fails under a file
    assert scan.key is None and "in-memory" in caplog.text
    np.testing.assert_allclose(scan.dot(np.ones(17)), matrix.sum(axis=1), rtol=1e-5, atol=1e-4)


def test_prune_scans_keeps_current_and_recent_files(tmp_path):
    for key in ("current", "recent", "old"):
        Scan(_matrix(), folder=tmp_path, key=key)
    hour_ago = time.time() - 7200
    for key in ("current", "old"):
        os.utime(tmp_path / f"{key}.columns.npy", (hour_ago, hour_ago))
    (tmp_path / "notes.txt").write_text("left alone")
    prune_scans(tmp_path, {"current"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current.columns.npy", "notes.txt",
                                                          "recent.columns.npy"]
    prune_scans(tmp_path / "absent", set())  # nothing to prune: no error
