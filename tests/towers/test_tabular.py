"""Tabular tower: cosine on each part means closeness in that attribute."""
import warnings

import numpy as np
import pandas as pd
import pytest

from recsys.errors import NotReady, RecsysWarning
from recsys.towers.tabular import TabularTower
from tests.towers.contract import TowerContract


@pytest.fixture
def shop_sample(shop):
    return shop.iloc[:12]


class TestTabularTower(TowerContract):
    @pytest.fixture
    def tower(self, shop):
        return TabularTower().fit(shop)


def _cos(tower, frame):
    v = tower.encode(frame, show_progress=False).vectors
    return v @ v.T


def test_colour_is_perceptual():
    frame = pd.DataFrame({"item_id": list("abcd"), "colour": ["red", "#8b0000", "navy", "DarkRed"]})
    cos = _cos(TabularTower().fit(frame), frame)
    assert cos[0, 1] > cos[0, 2] + 0.3  # red ~ dark red, not navy
    assert cos[1, 3] > 0.99  # "#8b0000" is CSS darkred
    frame = pd.DataFrame({"item_id": list("ab"), "colour": ["Gray", "grey"]})
    assert _cos(TabularTower().fit(frame), frame)[0, 1] > 0.99


def test_price_is_smooth_in_log_price():
    prices = [10.0, 12.0, 40.0, 400.0]
    frame = pd.DataFrame({"item_id": list("abcd"), "price": prices})
    tower = TabularTower().fit(pd.DataFrame({"item_id": range(50), "price": np.geomspace(2, 500, 50)}))
    cos = _cos(tower, frame)
    assert cos[0, 1] > cos[0, 2] > cos[0, 3]
    assert cos[0, 1] > 0.9 and cos[0, 3] < 0.05


def test_category_hierarchy():
    frame = pd.DataFrame({"item_id": list("abcd"), "category": [
        "women/shoes/sneakers", "women/shoes/boots", "women/dresses", "home/mugs"]})
    cos = _cos(TabularTower().fit(frame), frame)
    assert cos[0, 1] > cos[0, 2] > cos[0, 3]
    assert cos[0, 3] == 0


def test_colour_from_image_when_attribute_missing(shop):
    with_attr = shop[(shop["colour"] != "") & (shop["image"] != "")].iloc[:40]
    without = with_attr.assign(colour="")
    tower = TabularTower().fit(shop[["item_id", "colour", "image"]])
    a = tower.encode(with_attr, show_progress=False).vectors
    b = tower.encode(without, show_progress=False).vectors
    assert np.mean(np.sum(a * b, axis=1)) > 0.8  # the image's colour agrees with the label


def test_colour_names_as_shops_write_them():
    # names hm-sample and fashion-products use that are not CSS colours, and the colour each is near
    names = {"light beige": "beige", "greyish beige": "beige", "coffee brown": "brown", "grey melange": "grey",
             "other pink": "pink", "off white": "white", "mustard": "gold", "burgundy": "maroon"}
    plain = sorted(set(names.values()))
    frame = pd.DataFrame({"colour": [*names, *plain, "navy blue", "greenish khaki", "yellowish brown",
                                     "skin", "nude", "tan"]})
    frame["item_id"] = range(len(frame))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every name is known
        every = _cos(TabularTower().fit(frame), frame)
    cos = every[:len(names), len(names):len(names) + len(plain)]
    for i, (name, near) in enumerate(names.items()):
        assert plain[cos[i].argmax()] == near and cos[i].max() > 0.8, (name, dict(zip(plain, cos[i].round(2))))
    # skin and nude (fashion-products) lie between beige and tan, as their photos do
    warm = every[-3:-1][:, [len(names) + plain.index("beige"), len(frame) - 1]]
    assert (warm.sum(axis=1) > 1.0).all() and (warm > 0.3).all(), warm


def test_unknown_colour_name_warns_and_falls_back(shop):
    frame = shop.iloc[:5].assign(colour=["moonlight", "moonlight", "sunset", "red", "multi"])
    with pytest.warns(RecsysWarning, match="3 items have a colour name that is not a known colour;") as caught:
        out = TabularTower().fit(frame).encode(frame, show_progress=False)
    assert out.mask.all()  # from the photo
    assert len(caught) == 1  # "multi" names no single colour: the photo's, without a warning


def test_state_round_trip_and_not_fitted(shop):
    tower = TabularTower().fit(shop)
    again = TabularTower(state=tower.get_state())
    np.testing.assert_array_equal(tower.encode(shop.iloc[:5]).vectors, again.encode(shop.iloc[:5]).vectors)
    with pytest.raises(NotReady):
        TabularTower().encode(shop.iloc[:1])


def test_missing_numbers_keep_content_keys_and_encode():
    # regression: MovieLens titles without a year gave NaN, and the cache key join failed
    frame = pd.DataFrame({"item_id": ["a", "b", "c"], "year": [1995.0, np.nan, 1996.0],
                          "genres": ["Comedy", "Drama", "Comedy|Drama"]})
    tower = TabularTower().fit(frame)
    keys = tower.content_keys(frame)
    assert len(set(keys)) == 3
    out = tower.encode(frame, show_progress=False)
    assert out.mask.all()
    np.testing.assert_allclose(np.linalg.norm(out.vectors, axis=1), 1.0, atol=1e-5)
