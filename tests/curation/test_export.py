"""``recsys curate export``: the catalog as served, from a bundle and what Redis holds since."""
import json

import pandas as pd
import pytest
from click.testing import CliRunner

from recsys.cli import cli
from recsys.store import RedisStore, connect


@pytest.fixture
def store(tmp_path, monkeypatch, redis_url, redis_prefix) -> RedisStore:
    """The Redis namespace the CLI reads, as its environment names it."""
    monkeypatch.setenv("RECSYS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RECSYS_REDIS__URL", redis_url)
    monkeypatch.setenv("RECSYS_REDIS__PREFIX", redis_prefix)
    return RedisStore(connect(redis_url), prefix=redis_prefix)


def test_the_export_is_the_catalog_as_served_with_each_put_items_flags(tmp_path, store, served_bundle):
    ids = [str(i) for i in served_bundle.item_ids.ids]
    store.changes.put_item("new-1", {"item": {"title": "A new tee", "category": "tops"}, "vectors": {},
                             "checks": {"duplicate": {"flagged": True, "of": [{"item_id": ids[0]}]},
                                        "quality": {"flagged": True}, "image_text": {"flagged": False}},
                             "held": ["quality"]})
    store.changes.put_item("new-2", {"item": {"title": "Another tee"}, "vectors": {},
                             "checks": {"duplicate": {"flagged": True, "of": [{"item_id": ids[5]}]}}})
    assert store.review.dismiss("new-2", ["duplicate"]) is not None  # a reviewer said it is no duplicate
    store.changes.put_item(ids[1], {"item": {"title": "Renamed"}, "vectors": {}})
    store.changes.delete_item(ids[2])
    store.changes.set_attributes(ids[3], {"in_stock": False})
    store.review.merge(ids[0], [ids[6]])
    store.review.set_label(ids[4], "kind", "footwear")
    store.review.set_label(ids[4], "fit", None)  # "none of these"
    out = tmp_path / "served.csv"
    result = CliRunner().invoke(cli, ["curate", "export", "--bundle", str(served_bundle.path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 deleted left out" in result.output and "3 put since bundle" in result.output
    table = pd.read_csv(out, dtype=str, keep_default_na=False).set_index("item_id")
    assert len(table) == len(ids) + 1 and ids[2] not in table.index  # one deleted, two new
    assert (table.loc["new-2", "flags"], table.loc["new-2", "duplicate_of"]) == ("", ids[5])
    new = table.loc["new-1"]
    assert (new["source"], new["held"], new["flags"], new["duplicate_of"]) == ("put", "quality", "duplicate;quality",
                                                                                ids[0])
    assert table.loc[ids[1], "title"] == "Renamed" and table.loc[ids[1], "flags"] == ""
    assert table.loc[ids[3], "in_stock"] == "False" and table.loc[ids[4], "in_stock"] == ""
    assert (table.loc[ids[4], "source"], table.loc[ids[4], "title"]) == ("bundle", served_bundle.items["title"].iloc[4])
    assert table.loc[ids[6], "merged_into"] == ids[0] and table.loc[ids[7], "merged_into"] == ""
    assert json.loads(table.loc[ids[4], "labels"]) == {"kind": "footwear", "fit": None}
    assert table.loc[ids[5], "labels"] == ""
    assert "1 merged" in result.output


def test_a_fixed_category_is_in_the_next_build_from_the_export(tmp_path, store, served_bundle, _text_tower):
    from recsys.bundle import read_bundle
    from recsys.data import validate_catalog
    from recsys.pipeline.build import build_item_bundle
    from recsys.towers import create_tower
    from tests.conftest import make_settings

    ids = [str(i) for i in served_bundle.item_ids.ids]
    store.changes.set_attributes(ids[0], {"category": "fixed/by/a/reviewer"})
    out = tmp_path / "served.csv"
    result = CliRunner().invoke(cli, ["curate", "export", "--bundle", str(served_bundle.path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    catalog = validate_catalog(pd.read_csv(out, dtype={"item_id": str}), source=str(out))
    report = build_item_bundle(catalog, make_settings(tmp_path), tmp_path / "next", show_progress=False,
                               towers={"text": _text_tower, "tabular": create_tower("tabular")})
    rebuilt = read_bundle(report.path)
    row = rebuilt.item_ids.row(ids[0])
    assert rebuilt.items["category"].iloc[row] == "fixed/by/a/reviewer"
    assert len(rebuilt.item_ids) == len(ids)
