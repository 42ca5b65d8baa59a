"""The four-call Python API: ``recsys.build``, ``recsys.train``, ``Recommender.from_bundle``, and
one result type from similar items and feeds."""
from __future__ import annotations

import subprocess
import sys

import pytest

import recsys
from tests.conftest import use_session_state


@pytest.fixture
def shop_frame(shop, session_dir, monkeypatch):
    use_session_state(monkeypatch, session_dir)
    return shop.head(200)


def test_build_train_and_query_with_plain_arguments(shop_frame, tmp_path, built):
    items = recsys.build(shop_frame, tmp_path / "models" / "shop", weights={"image": 1.0, "text": 1.0},
                         show_progress=False)
    assert recsys.load_settings().index.n_trees == 10  # the rest still comes from the environment
    from recsys.data.synthetic import make_interactions

    interactions, _ = make_interactions(shop_frame, 60, seed=3)
    trained = recsys.train(items, interactions, factors=8, iterations=3, show_progress=False)
    assert trained.parent == items.parent and trained != items

    rec = recsys.Recommender.from_bundle(tmp_path / "models" / "shop")  # the newest version
    assert rec.version == trained.name
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
