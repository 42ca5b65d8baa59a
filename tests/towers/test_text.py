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
