"""The towers compiled with OpenVINO give the PyTorch vectors; the converted network is kept."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from recsys.errors import ConfigError
from recsys.towers.image import ImageTower
from recsys.towers.inference import CompiledNet, converted_models_dir, resolve_precision, resolve_runtime
from recsys.towers.text import TextTower


def test_auto_picks_openvino_and_the_cpu_s_own_precision():
    assert resolve_runtime("auto") == "openvino"  # a dependency of the package
    flags = Path("/proc/cpuinfo").read_text()
    native = "amx_bf16" in flags or "avx512_bf16" in flags
    assert resolve_precision("auto") == ("bf16" if native else "fp32")
    assert resolve_precision("fp32") == "fp32"


@pytest.mark.parametrize("call, value", [(resolve_runtime, "onnx"), (resolve_precision, "int4")])
def test_unknown_runtime_or_precision_is_a_config_error(call, value):
    with pytest.raises(ConfigError, match="must be"):
        call(value)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


@pytest.fixture(scope="module")
def torch_image_vectors(shop):
    sample = shop[shop["image"] != ""].iloc[:8]
    tower = ImageTower(runtime="torch", precision="fp32", num_workers=0)
    return sample, tower.encode(sample, show_progress=False).vectors


@pytest.mark.parametrize("precision, floor", [("fp32", 0.9999), ("auto", 0.99)])
def test_the_compiled_image_tower_gives_the_pytorch_vectors(torch_image_vectors, precision, floor):
    sample, expected = torch_image_vectors
    tower = ImageTower(runtime="openvino", precision=precision, num_workers=0)
    got = tower.encode(sample, show_progress=False).vectors
    assert _cosines(got, expected).min() >= floor
    assert "openvino" in tower.encoder_id() and tower.describe()["runtime"] == "openvino"


TEXTS = ["red running shoes", "a ceramic coffee mug with a blue glaze", "x",
         "slim fit cotton shirt. long sleeves, button-down collar. " * 20]  # longer than the model's limit


@pytest.fixture(scope="module")
def torch_text_vectors():
    return TextTower(runtime="torch", precision="fp32").encode_texts(TEXTS)


@pytest.mark.parametrize("precision, floor", [("fp32", 0.9999), ("auto", 0.99)])
def test_the_compiled_text_tower_gives_the_sentence_transformers_vectors(torch_text_vectors, precision, floor):
    texts, expected = TEXTS, torch_text_vectors
    got = TextTower(runtime="openvino", precision=precision).encode_texts(texts)
    assert _cosines(got, expected).min() >= floor
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def _linear(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Linear(4, 3).eval()


@pytest.mark.slow  # converts a network: about 1.5 seconds
def test_a_converted_network_is_kept_and_read_back_by_its_key(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_MODEL_CACHE", str(tmp_path))
    x = np.ones((2, 4), dtype=np.float32)
    first = CompiledNet(_linear(0), torch.zeros(1, 4), [(-1, 4)], "fp32", key="linear")
    assert converted_models_dir() == tmp_path and len(list(tmp_path.glob("*.xml"))) == 1
    # another module under the same key: what was kept is what runs
    again = CompiledNet(_linear(1), torch.zeros(1, 4), [(-1, 4)], "fp32", key="linear")
    np.testing.assert_allclose(again(x), first(x), rtol=1e-6)
    # without a key the module itself is converted, and nothing more is kept
    fresh = CompiledNet(_linear(1), torch.zeros(1, 4), [(-1, 4)], "fp32")
    with torch.inference_mode():
        np.testing.assert_allclose(fresh(x), _linear(1)(torch.from_numpy(x)).numpy(), rtol=1e-5)
    assert len(list(tmp_path.glob("*.xml"))) == 1 and not list(tmp_path.glob("*.tmp.*"))


def test_an_unwritable_cache_only_costs_the_conversion(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("RECSYS_MODEL_CACHE", str(blocker / "models"))
    net = CompiledNet(_linear(0), torch.zeros(1, 4), [(-1, 4)], "fp32", key="linear")
    assert net(np.ones((1, 4), dtype=np.float32)).shape == (1, 3)


def test_threads_may_share_one_compiled_network():
    net = CompiledNet(_linear(0), torch.zeros(1, 4), [(-1, 4)], "fp32")
    inputs = [np.full((8, 4), i, dtype=np.float32) for i in range(16)]
    expected = [net(x) for x in inputs]
    got: dict[int, np.ndarray] = {}

    def run(i):
        for _ in range(20):
            got[i] = net(inputs[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, want in enumerate(expected):
        np.testing.assert_array_equal(got[i], want)


@pytest.mark.slow  # converts a network twice: about 1.5 seconds
def test_a_damaged_kept_network_is_converted_again(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_MODEL_CACHE", str(tmp_path))
    CompiledNet(_linear(0), torch.zeros(1, 4), [(-1, 4)], "fp32", key="linear")
    (kept,) = tmp_path.glob("*.xml")
    kept.write_text("<net>half a file")
    net = CompiledNet(_linear(0), torch.zeros(1, 4), [(-1, 4)], "fp32", key="linear")
    with torch.inference_mode():
        expected = _linear(0)(torch.ones(1, 4)).numpy()
    np.testing.assert_allclose(net(np.ones((1, 4), dtype=np.float32)), expected, rtol=1e-5)
    assert kept.read_text().startswith("<?xml")  # replaced by a whole one
