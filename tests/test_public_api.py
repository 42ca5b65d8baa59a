"""The notebook-first Python API: ``recsys.build`` and ``recsys.train`` return loaded handles,
``Recommender.from_bundle``, one result type from similar items and feeds, batch calls that equal
the single ones, text search, the errors re-exported; and the README's example, run as written."""
from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import recsys
from tests.conftest import use_session_state

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def shop_frame(shop, session_dir, monkeypatch):
    use_session_state(monkeypatch, session_dir)
    return shop.head(200)


@pytest.mark.slow  # builds and trains a shop from a frame: about 4 seconds
def test_build_train_and_query_with_plain_arguments(shop_frame, tmp_path, built):
    items = recsys.build(shop_frame, tmp_path / "models" / "shop", weights={"image": 1.0, "text": 1.0},
                         show_progress=False)
    assert recsys.load_settings().index.n_trees == 10  # the rest still comes from the environment
    assert isinstance(items, recsys.Recommender) and items.path.parent == tmp_path / "models" / "shop"
    assert len(items.similar_items(str(shop_frame["item_id"].iloc[0]), k=3)) == 3  # loaded: answers at once
    from recsys.data.synthetic import make_interactions

    interactions, _ = make_interactions(shop_frame, 60, seed=3)
    trained = recsys.train(items, interactions, factors=8, iterations=3, show_progress=False)
    assert trained.path.parent == items.path.parent and trained.path != items.path
    assert os.fspath(trained) == str(trained.path)  # a handle stands for its folder

    rec = recsys.Recommender.from_bundle(tmp_path / "models" / "shop")  # the newest version
    assert rec.version == trained.version == trained.path.name
    assert rec.bundle.vectors.weights == {"image": 1.0, "text": 1.0}
    assert rec.bundle.collab.params["factors"] == 8

    item = str(shop_frame["item_id"].iloc[0])
    similar = rec.similar_items(item, k=5)
    user = str(interactions["user_id"].iloc[0])
    feed = rec.recommend(user, k=5)
    assert type(similar) is type(feed) is recsys.Recommendations
    assert (similar.strategy, feed.strategy) == ("similar", "collaborative")
    assert len(similar) == len(feed.ids) == 5 and item not in similar.ids
    assert [s.item_id for s in similar] == similar.ids and isinstance(similar[0], recsys.Scored)
    filtered = rec.recommend(user, k=5, filters=recsys.ItemFilter.create(max_price=30))
    prices = rec.bundle.items.set_index("item_id").loc[filtered.ids, "price"]
    assert (prices <= 30).all()


def test_the_lists_have_one_length_argument(built):
    rec = built[1]
    with pytest.raises(TypeError):
        rec.similar_items(rec.bundle.item_ids.ids[0], n=5)  # k, as in the API and the CLI


def test_importing_recsys_loads_no_model_code():
    code = "import sys, recsys; print(any(m in sys.modules for m in ('torch', 'pandas', 'recsys.serve')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_batch_calls_equal_the_single_ones_padded_where_short(built, feeds):
    rec = built[1]
    items = [str(i) for i in rec.bundle.item_ids.ids[:4]]
    only = recsys.ItemFilter.create(include=items[:3])  # two items besides the query: a short list
    ids, scores = rec.similar_items(items, k=5, filters=only)
    assert ids.shape == scores.shape == (4, 5) and scores.dtype == np.float32
    for row, item in enumerate(items):
        single = rec.similar_items(item, k=5, filters=only)
        assert ids[row, :len(single)].tolist() == single.ids
        np.testing.assert_allclose(scores[row, :len(single)], [s.score for s in single], rtol=1e-6)
        assert (ids[row, len(single):] == "").all() and np.isnan(scores[row, len(single):]).all()
    users = [str(u) for u in feeds.bundle.collab.user_ids.ids[:3]] + ["nobody", None]
    recent = [[], [], [str(feeds.bundle.item_ids.ids[7])], [], [str(feeds.bundle.item_ids.ids[9])]]
    ids, scores = feeds.recommend(users, k=8, recent_items=recent)
    assert ids.shape == (5, 8)
    for row, (user, given) in enumerate(zip(users, recent)):
        assert ids[row].tolist() == feeds.recommend(user, k=8, recent_items=given).ids
    with pytest.raises(recsys.InvalidRequest, match="one list per user"):
        feeds.recommend(users, k=8, recent_items=recent[:2])


def test_search_embeds_its_text_and_errors_are_recsys_errors(built):
    rec = built[1]
    by_text = rec.search("a pair of shoes", k=5, mode="text")
    assert len(by_text) == 5 and by_text.strategy == "similar"
    with pytest.raises(recsys.InvalidRequest, match="empty"):
        rec.search("  ")
    with pytest.raises(recsys.NotFound) as caught:
        rec.similar_items("no-such-item")
    assert isinstance(caught.value, recsys.RecsysError) and isinstance(caught.value, KeyError)
    from recsys.api.params import ENDPOINTS

    for call, endpoint in [(rec.recommend, "user_feed"), (rec.similar_items, "similar"), (rec.search, "search")]:
        assert inspect.signature(call).parameters["k"].default == ENDPOINTS[endpoint].defaults["k"]


@pytest.mark.slow
def test_the_readmes_python_example_runs_as_written(tmp_path, session_dir):
    """The README's Python block, verbatim, in a fresh folder (a real build, training and queries)."""
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"## Python API\n\n```python\n(.*?)```", readme, re.S).group(1)
    env = {**os.environ, "RECSYS_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ranked None" in done.stdout and "unknown item_id 'no-such-item'" in done.stdout
    assert len(list((tmp_path / "models" / "demo").iterdir())) == 2  # the item side, then the trained version
