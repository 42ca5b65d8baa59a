"""Text tower on the packaged all-MiniLM-L6-v2."""
import numpy as np
import pandas as pd
import pytest

from recsys.errors import ConfigError
from recsys.towers.text import TextTower, item_texts
from tests.towers.contract import TowerContract


@pytest.fixture
def shop_sample(shop):
    return shop[shop["title"] != ""].iloc[:12]


class TestTextTower(TowerContract):
    @pytest.fixture
    def tower(self, text_tower):
        return text_tower


def test_semantics(text_tower):
    vectors = text_tower.encode_texts(["red running shoes", "crimson trainers", "ceramic coffee mug"])
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_fields_are_configurable(text_tower):
    frame = pd.DataFrame({"item_id": ["a"], "title": ["Mug"], "description": [""], "tags": ["gift"]})
    assert item_texts(frame, ["title", "description", "tags"]) == ["Mug. gift"]
    assert item_texts(frame, ["title", "missing_column"]) == ["Mug"]


def test_unloadable_model_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot load sentence model"):
        _ = TextTower(model=str(tmp_path / "no-model")).dim


def test_offline_model_dimension(text_tower):
    assert text_tower.dim == 384
    assert np.isclose(np.linalg.norm(text_tower.encode_texts(["x"])[0]), 1.0, atol=1e-5)


def test_the_declared_dimension_is_the_encoded_one():
    """A fully cached build reads the dimension from the model folder's files (it never loads the
    model); it must be what the model produces."""
    from recsys.towers import create_tower

    tower = create_tower("text")
    declared = tower.dim
    assert tower.encode_texts(["a red summer dress"]).shape == (1, declared) and declared == 384


@pytest.mark.slow  # converts the network for OpenVINO, about 10 s
def test_loading_the_model_draws_no_bar_and_leaves_transformers_as_it_was(capfd, tmp_path, monkeypatch):
    from transformers.utils import logging as hf_logging

    monkeypatch.setenv("RECSYS_MODEL_CACHE", str(tmp_path))  # converted afresh, as on a new machine
    before = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    TextTower(runtime="openvino").load()
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "loss_type" not in err
    assert (hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()) == before


def test_the_colour_ends_a_text_that_does_not_name_it():
    frame = pd.DataFrame({"title": ["Rosa dress", "Navy Blue T-shirt", "", "Mug"],
                          "colour": ["dark red", "navy blue", "black", None]})
    assert item_texts(frame, ["title"], name_colour=True) == ["Rosa dress. dark red", "Navy Blue T-shirt", "", "Mug"]
    assert item_texts(frame, ["title"]) == ["Rosa dress", "Navy Blue T-shirt", "", "Mug"]


def test_a_colour_query_finds_the_item_of_that_colour_whose_title_does_not_say_it(text_tower):
    frame = pd.DataFrame({"item_id": ["a", "b"], "title": ["Rosa dress", "Rosa dress"], "colour": ["red", "black"]})
    query = text_tower.encode_texts(["red dress"])[0]
    with_colour = text_tower.encode(frame, show_progress=False).vectors @ query
    assert text_tower.name_colour and with_colour[0] > with_colour[1] + 0.05
    text_tower.name_colour = False
    without = text_tower.encode(frame, show_progress=False).vectors @ query
    assert without[0] == pytest.approx(without[1])


def test_a_bundle_from_before_name_colour_embeds_put_items_as_its_own_were(built):
    import dataclasses

    from recsys.serve.embedder import ItemEmbedder

    bundle = built[1].bundle
    assert bundle.manifest["encoders"]["text"]["name_colour"] is True
    assert ItemEmbedder(bundle).warm()["text"].name_colour is True
    encoders = bundle.manifest["encoders"]
    text = {k: v for k, v in encoders["text"].items() if k != "name_colour"}
    older = dataclasses.replace(bundle, manifest={**bundle.manifest, "encoders": {**encoders, "text": text}})
    assert ItemEmbedder(older).warm()["text"].name_colour is False
