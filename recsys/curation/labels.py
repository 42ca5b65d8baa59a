"""Labels from a few examples (few-shot) or from a text per label (zero-shot).

Few-shot: a logistic regression on the examples' vectors (combined by default) labels every other
item; the confidence is its probability for the label. On fashion-products it beats the simpler
nearest-prototype rule (each label's mean vector) at 1, 5 and 20 examples per label
(``benchmarks/quality_curation.py`` measures both).

Zero-shot: each label's text is encoded by the bundle's own text tower, and every item takes the
label whose text is closest to the item: to its text vector, and to its photo through the bundle's
joint text-image space where it has one (the mean of the two cosines, as search's ``both`` mode,
:func:`recsys.towers.joint.text_query_scores`). Items with neither are left unlabelled (label
``None``, confidence 0). The confidence is the softmax of the scores over the labels at
``TEMPERATURE``: near 1 when one label is clearly closest, ``1 / labels`` when all are alike.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from recsys.bundle import Bundle
from recsys.curation.subset import item_vectors
from recsys.data import schema as S
from recsys.errors import InvalidRequest
from recsys.towers.joint import text_query_scores

__all__ = ["Labels", "example_rows", "label_from_examples", "label_from_prompts", "TEMPERATURE"]

TEMPERATURE = 0.05
_BLOCK = 1 << 14


@dataclass(frozen=True)
class Labels:
    """Attributes:
        version: the bundle version.
        method: ``examples`` or ``prompts``.
        labels: the label names, in the order given.
        items: one row per item not among the examples, in bundle order: ``item_id``, ``label``
            (None where the item has no vector to compare), ``confidence``.
    """

    version: str
    method: str
    labels: list[str]
    items: pd.DataFrame


def _softmax(scores: np.ndarray) -> np.ndarray:
    probs = np.exp((scores - scores.max(axis=1, keepdims=True)) / TEMPERATURE)
    return probs / probs.sum(axis=1, keepdims=True)


def _assign(vectors: np.ndarray, mask: np.ndarray, probabilities, names: list[str],
            rows: np.ndarray, ids) -> pd.DataFrame:
    """Each row's most probable label (``probabilities(vectors)``: per label, in ``names`` order)."""
    label = np.full(len(rows), None, object)
    confidence = np.zeros(len(rows), np.float32)
    for start in range(0, len(rows), _BLOCK):
        part = rows[start:start + _BLOCK]
        probs = probabilities(vectors[part])
        best = probs.argmax(axis=1)
        ok = mask[part]
        label[start:start + len(part)] = np.where(ok, np.asarray(names, object)[best], None)
        confidence[start:start + len(part)] = np.where(ok, probs[np.arange(len(part)), best], 0.0)
    return pd.DataFrame({S.ITEM_ID: [str(ids[r]) for r in rows], "label": label,
                         "confidence": confidence.round(4)})


def example_rows(bundle: Bundle, examples: pd.DataFrame, modality: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(label names in the order given, the examples' bundle rows, their label codes)``.

    Raises:
        InvalidRequest: no examples, fewer than two labels, unknown items, an item with two labels,
            or examples without a ``modality`` vector.
    """
    if not {"label", S.ITEM_ID} <= set(examples.columns):
        raise InvalidRequest("examples need the columns label and item_id "
                             f"(got {', '.join(map(str, examples.columns))})")
    examples = examples.assign(label=examples["label"].astype(str).str.strip(),
                               item_id=examples[S.ITEM_ID].astype(str).str.strip()).drop_duplicates()
    names = list(dict.fromkeys(examples["label"]))
    if len(names) < 2:
        raise InvalidRequest(f"give examples of at least two labels (got {len(names)})")
    clash = examples[examples[S.ITEM_ID].duplicated(keep=False)]
    if len(clash):
        raise InvalidRequest(f"item {clash[S.ITEM_ID].iloc[0]!r} is an example of more than one label")
    unknown = [i for i in examples[S.ITEM_ID] if i not in bundle.item_ids]
    if unknown:
        raise InvalidRequest(f"{len(unknown)} example items are not in bundle {bundle.version}, "
                             f"e.g. {', '.join(map(repr, unknown[:3]))}")
    mask = item_vectors(bundle, modality)[1]
    rows = bundle.item_ids.rows(examples[S.ITEM_ID].tolist())
    if not mask[rows].all():
        missing = examples[S.ITEM_ID].to_numpy()[~mask[rows]]
        raise InvalidRequest(f"example items without {modality} vectors: {', '.join(map(repr, missing[:3]))}")
    return names, rows, np.asarray(pd.Categorical(examples["label"], categories=names).codes)


def label_from_examples(bundle: Bundle, examples: pd.DataFrame, *, modality: str = "combined") -> Labels:
    """Label every item but the examples from ``examples`` (columns ``label``, ``item_id``).

    Raises:
        InvalidRequest: as :func:`example_rows`.
    """
    names, rows, codes = example_rows(bundle, examples, modality)
    vectors, mask = item_vectors(bundle, modality)
    model = LogisticRegression(C=10.0, max_iter=2000).fit(vectors[rows], codes)  # classes_: 0..labels-1
    others = np.setdiff1d(np.arange(len(vectors)), rows)
    return Labels(bundle.version, "examples", names,
                  _assign(vectors, mask, model.predict_proba, names, others, bundle.item_ids.ids))


def label_from_prompts(bundle: Bundle, prompts: pd.DataFrame, encode: Callable[[list[str]], np.ndarray]) -> Labels:
    """Label every item from ``prompts`` (columns ``label``, ``text``) through the text tower.

    Args:
        encode: texts to unit vectors in the bundle's text space: the bundle's own text tower,
            :meth:`recsys.serve.embedder.ItemEmbedder.embed_queries`.

    Raises:
        InvalidRequest: fewer than two labels, an empty text, or a bundle without a text modality.
    """
    if not {"label", "text"} <= set(prompts.columns):
        raise InvalidRequest("prompts need the columns label and text "
                             f"(got {', '.join(map(str, prompts.columns))})")
    if "text" not in bundle.vectors.blocks and bundle.joint is None:
        raise InvalidRequest(f"bundle {bundle.version} has neither text nor a joint text-image space to label by "
                             "prompts")
    labels = prompts["label"].astype(str).str.strip().tolist()
    texts = prompts["text"].fillna("").astype(str).str.strip().tolist()
    if len(set(labels)) < 2 or len(set(labels)) != len(labels):
        raise InvalidRequest("give one prompt for each of at least two labels")
    if not all(texts):
        raise InvalidRequest(f"the prompt of {labels[texts.index('')]!r} is empty")
    blocks = bundle.vectors.blocks
    photos = bundle.joint.place_photos(blocks["image"]) if bundle.joint is not None else None
    scores = text_query_scores(encode(texts), blocks.get("text"), photos, bundle.joint)
    known = np.isfinite(scores[:, 0])
    return Labels(bundle.version, "prompts", labels,
                  _assign(np.where(known[:, None], scores, 0.0), known, _softmax, labels,
                          np.arange(len(scores)), bundle.item_ids.ids))
