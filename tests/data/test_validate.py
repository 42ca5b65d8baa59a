"""Catalog and interaction validation: every error names file, row and column."""
import warnings

import pandas as pd
import pytest

from recsys.data import load_catalog, load_interactions, validate_catalog, validate_interactions
from recsys.errors import DataError, RecsysWarning


def test_ids_become_strings_and_text_is_filled():
    out = validate_catalog(pd.DataFrame({"item_id": [1, 2], "title": ["a", None], "price": ["3", ""]}))
    assert out["item_id"].tolist() == ["1", "2"]
    assert out["title"].tolist() == ["a", ""]
    assert out["price"].iloc[0] == 3.0 and pd.isna(out["price"].iloc[1])


def test_category_is_normalised():
    out = validate_catalog(pd.DataFrame({"item_id": ["a"], "category": [" Women / Shoes>Sneakers "]}))
    assert out["category"].iloc[0] == "women/shoes/sneakers"


@pytest.mark.parametrize("frame, message", [
    (pd.DataFrame({"title": ["x"]}), "catalog.csv: missing required column(s) 'item_id'"),
    (pd.DataFrame({"item_id": ["a", "b", "a"]}),
     "catalog.csv row 3: column 'item_id' is duplicated ('a' also on row 1)"),
    (pd.DataFrame({"item_id": ["a", "b"], "price": [1.0, -3.5]}),
     "catalog.csv row 2: column 'price' must be >= 0 (got -3.5)"),
    (pd.DataFrame({"item_id": ["a", "b"], "price": ["1", "cheap"]}),
     "catalog.csv row 2: column 'price' must be a number (got 'cheap')"),
    (pd.DataFrame({"item_id": ["a", " "]}), "catalog.csv row 2: column 'item_id' is empty"),
    (pd.DataFrame({"item_id": ["a", "x" * 300]}), "longer than 200 characters"),
    (pd.DataFrame({"item_id": ["a", "b\x00c"]}), "non-printable"),
    (pd.DataFrame({"item_id": ["a", "b"], "description": ["ok", "x" * 100_001]}),
     "catalog.csv row 2: column 'description' is 100,001 characters long; the limit is 100,000"),
])
def test_bad_catalogs_name_row_and_column(frame, message):
    with pytest.raises(DataError) as info:
        validate_catalog(frame, source="catalog.csv")
    assert message in str(info.value)


def test_csv_catalog_resolves_relative_images(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "cat.csv").write_text("item_id,title,image\nA,shoe,img/a.jpg\n")
    out = load_catalog(tmp_path / "cat.csv")
    assert out["image"].iloc[0] == str(tmp_path / "img" / "a.jpg")


def test_image_paths_outside_the_catalog_folder_are_left_out_unless_allowed(tmp_path):
    shop, elsewhere = tmp_path / "shop", tmp_path / "photos"
    (shop / "img").mkdir(parents=True)
    elsewhere.mkdir()
    (shop / "img" / "a.jpg").write_bytes(b"x")
    (shop / "img" / "link.jpg").symlink_to("/etc/passwd")
    rows = {"ok": "img/a.jpg", "up": "../../../../../../etc/passwd", "abs": "/etc/shadow",
            "link": "img/link.jpg", "other": str(elsewhere / "b.jpg"), "url": "https://cdn.example/c.jpg"}
    pd.DataFrame({"item_id": list(rows), "image": list(rows.values())}).to_csv(shop / "catalog.csv", index=False)
    with pytest.warns(RecsysWarning, match=r"row 2: 4 image path\(s\) lie outside the catalog's folder"):
        images = load_catalog(shop / "catalog.csv").set_index("item_id")["image"]
    assert images["ok"] == str((shop / "img" / "a.jpg").resolve())
    assert images["up"] == images["abs"] == images["link"] == images["other"] == ""
    assert images["url"] == rows["url"]
    with pytest.warns(RecsysWarning, match="3 image path"):  # another root allowed explicitly
        images = load_catalog(shop / "catalog.csv", image_roots=[elsewhere]).set_index("item_id")["image"]
    assert images["other"] == str(elsewhere / "b.jpg")


def test_a_catalog_whose_every_photo_lies_outside_its_folder_is_refused_naming_the_fix(tmp_path):
    """Absolute photo paths in a catalog file (fashion-products' own layout) would build a bundle
    without a single image: the load stops and says which option allows them."""
    shop, photos = tmp_path / "shop", tmp_path / "photos"
    shop.mkdir()
    photos.mkdir()
    frame = pd.DataFrame({"item_id": ["a", "b", "c"], "title": ["x", "y", "z"],
                          "image": [str(photos / "a.jpg"), str(photos / "b.jpg"), ""]})
    frame.to_csv(shop / "catalog.csv", index=False)
    with pytest.raises(DataError, match=r"every image path \(2\) lies outside .* --image-root DIR"):
        load_catalog(shop / "catalog.csv")
    allowed = load_catalog(shop / "catalog.csv", image_roots=[photos])
    assert allowed["image"].tolist() == [str(photos / "a.jpg"), str(photos / "b.jpg"), ""]
    frame.drop(columns="image").to_csv(shop / "catalog.csv", index=False)
    assert "image" not in load_catalog(shop / "catalog.csv").columns  # no photos named: a text-only shop


def test_unreadable_and_unknown_files(tmp_path):
    with pytest.raises(DataError, match="catalog file not found"):
        load_catalog(tmp_path / "missing.csv")
    (tmp_path / "cat.json").write_text("{}")
    with pytest.raises(DataError, match="unknown file type '.json'"):
        load_catalog(tmp_path / "cat.json")
    with pytest.raises(DataError, match="between 100 and 100,000"):
        load_catalog("synthetic:5")


def _events(**columns):
    base = {"user_id": ["u1", "u2"], "item_id": ["a", "b"], "event": ["view", "purchase"]}
    return pd.DataFrame({**base, **columns})


def test_interactions_are_typed():
    out = validate_interactions(_events(timestamp=[1_700_000_000, 1_700_000_060], value=["1", ""]))
    assert str(out["timestamp"].dt.tz) == "UTC"
    assert out["timestamp"].iloc[1] - out["timestamp"].iloc[0] == pd.Timedelta(seconds=60)
    assert out["value"].iloc[0] == 1.0


@pytest.mark.parametrize("frame, message", [
    (_events(event=["view", "like"]), "row 2: column 'event' is not one of: view, click"),
    (_events(timestamp=["2026-01-01", "yesterday-ish"]), "row 2: column 'timestamp' is not a date"),
    (pd.DataFrame({"user_id": ["u"], "item_id": ["a"]}), "missing required column(s) 'event'"),
])
def test_bad_interactions(frame, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_interactions(frame, source="events.csv")


def test_unknown_items_error_or_warned_drop():
    catalog_ids = pd.Series(["a"])
    with pytest.raises(DataError, match="row 2: column 'item_id' names items not in the catalog"):
        validate_interactions(_events(), item_ids=catalog_ids)
    with pytest.warns(RecsysWarning, match="dropped them"):
        out = validate_interactions(_events(), item_ids=catalog_ids, unknown_items="drop")
    assert out["item_id"].tolist() == ["a"]


def test_movielens_loader(ml_dir):
    catalog = load_catalog(f"movielens:{ml_dir}")
    assert len(catalog) == 9742
    toy = catalog.set_index("item_id").loc["1"]
    assert toy["title"] == "Toy Story" and toy["year"] == 1995
    assert "Animation" in toy["genres"] and "pixar" in toy["tags"]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ratings = load_interactions(f"movielens:{ml_dir}", catalog=catalog)
    # the shared copy carries one stray row naming movie 999999; it is dropped, loudly
    assert len(ratings) == 100_836
    assert any("999999" in str(w.message) for w in seen if issubclass(w.category, RecsysWarning))
    assert set(ratings["event"]) == {"rating"}


def test_interaction_timestamps_from_a_csv_file(tmp_path):
    from recsys.data import load_interactions

    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,event,timestamp\nu1,i1,click,1700000000\nu1,i2,view,1700000060.5\n")
    events = load_interactions(path)
    assert events["timestamp"].tolist() == [pd.Timestamp(1700000000, unit="s", tz="UTC"),
                                            pd.Timestamp(1700000060.5, unit="s", tz="UTC")]
    path.write_text("user_id,item_id,event,timestamp\nu1,i1,click,2024-05-01T10:00:00Z\nu1,i2,view,\n")
    events = load_interactions(path)
    assert events["timestamp"].iloc[0] == pd.Timestamp("2024-05-01 10:00", tz="UTC")
    path.write_text("user_id,item_id,event,timestamp\nu1,i1,click,yesterday\n")
    with pytest.raises(DataError, match="not a date or epoch seconds"):
        load_interactions(path)
