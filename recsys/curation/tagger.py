"""A tagger that stays: labels learned from a few examples, kept in the bundle under a name, shown
on every read and given to each item as it arrives (docs/curation.md#a-tagger-that-stays).

A tagger is :func:`~recsys.curation.labels.label_from_examples`'s logistic regression with two
things added. Its confidences are calibrated: the examples are split in folds, each fold's
probabilities come from a model fitted on the others, and one temperature that divides the logits
is chosen to fit those held-out answers best (the least log loss). And an item unlike every example
of its best label is tagged "none of these" (``None``) rather than guessed: a probability among the
labels cannot say that an item is none of them (a hat, for labels of bags and shoes, still gets a
best label, often at a high probability), but its cosine to the nearest example of that label can.
The bar (``min_similarity``) is a low quantile (``SIMILARITY_QUANTILE``) of each example's cosine
to the nearest other example of its label, so that most items of a label clear it. An item is also
"none" when its calibrated confidence is under ``min_confidence``. With one example of a label
there is nothing to hold out: the tagger is neither calibrated nor barred, and always guesses.

A tagger is plain numbers (the weights, the intercepts, the temperature, the bars) and its
examples' item ids, stored as JSON in the bundle whose vectors it reads: no pickle.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import log_softmax, softmax

from recsys.bundle import Bundle
from recsys.errors import InvalidRequest
from recsys.towers.item import ItemVectors

__all__ = ["Tagger", "fit_tagger", "refit_tagger", "labels_by_hand", "reliability", "tagger_summary",
           "bundle_taggers", "tag_items", "MIN_CONFIDENCE", "SIMILARITY_QUANTILE", "NAME_PATTERN"]

# the calibrated confidence under which the tag is "none of these": the label is no likelier than not
MIN_CONFIDENCE = 0.5
# the quantile of the examples' held-out cosines that sets min_similarity, chosen on a validation
# label set of fashion-products (benchmarks/quality_tagger.py), never on its test label set
SIMILARITY_QUANTILE = 0.1
NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,39}$"
_FOLDS = 5
_BLOCK = 1 << 14


@dataclass(frozen=True)
class Tagger:
    """Attributes:
        name: the name reads show the tag under.
        labels: the label names.
        modality: the vectors it reads (``combined`` or one modality).
        weights: ``(labels, dim)`` float32. intercepts: ``(labels,)`` float32.
        temperature: the logits are divided by it before the softmax (1: as fitted).
        examples: ``(examples, dim)`` float32, the examples' unit vectors; ``example_labels``:
            ``(examples,)`` the index of each one's label; ``example_ids``: their item ids.
        min_similarity: an item whose cosine to the nearest example of its best label is under
            it is tagged ``None``.
        min_confidence: below it the tag is ``None``.
        report: what fitting measured: examples per label, whether the temperature was fitted
            on held-out examples, their accuracy and expected calibration error before and after.
    """

    name: str
    labels: list[str]
    modality: str
    weights: np.ndarray
    intercepts: np.ndarray
    temperature: float
    examples: np.ndarray
    example_labels: np.ndarray
    example_ids: list[str]
    min_similarity: float = -1.0
    min_confidence: float = MIN_CONFIDENCE
    report: dict = field(default_factory=dict)

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """``(n, labels)``: each row's calibrated probability of each label."""
        logits = (np.asarray(vectors, np.float32) @ self.weights.T + self.intercepts) / self.temperature
        return softmax(logits, axis=1)

    def tag(self, vectors: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Each row's tag (``None`` where it is unlike its best label's examples, under
        ``min_confidence``, or where ``mask`` is False) and the confidence of its best label."""
        vectors = np.asarray(vectors, np.float32)
        probs = self.probabilities(vectors)
        best = probs.argmax(axis=1)
        confidence = probs[np.arange(len(probs)), best]
        cosines = vectors @ self.examples.T
        nearest = np.full(len(vectors), -np.inf, np.float32)
        for label in range(len(self.labels)):
            of = best == label
            if of.any():
                nearest[of] = cosines[np.ix_(of, self.example_labels == label)].max(axis=1)
        sure = (confidence >= self.min_confidence) & (nearest >= self.min_similarity)
        if mask is not None:
            sure &= mask
            confidence = np.where(mask, confidence, 0.0)
        return np.where(sure, np.asarray(self.labels, object)[best], None), confidence

    def with_bars(self, min_similarity: float, min_confidence: float) -> Tagger:
        return dataclasses.replace(self, min_similarity=min_similarity, min_confidence=min_confidence)

    def to_json(self) -> dict:
        """The tagger as JSON (the examples by item id: their vectors are the bundle's)."""
        return {"name": self.name, "labels": self.labels, "modality": self.modality,
                "weights": self.weights.tolist(), "intercepts": self.intercepts.tolist(),
                "temperature": self.temperature, "examples": self.example_ids,
                "example_labels": self.example_labels.tolist(), "min_similarity": self.min_similarity,
                "min_confidence": self.min_confidence, "report": self.report}

    @classmethod
    def from_json(cls, data: dict, vectors: ItemVectors, ids) -> Tagger:
        """The tagger ``to_json`` wrote, its examples' vectors read from ``vectors`` (rows by ``ids``,
        an :class:`~recsys.data.ids.IdMap`)."""
        x = vectors.space(data["modality"])[0]
        return cls(data["name"], list(data["labels"]), data["modality"], np.asarray(data["weights"], np.float32),
                   np.asarray(data["intercepts"], np.float32), float(data["temperature"]),
                   np.asarray(x[ids.rows(list(data["examples"]))], np.float32),
                   np.asarray(data["example_labels"], np.int64), list(data["examples"]),
                   float(data["min_similarity"]), float(data["min_confidence"]), dict(data.get("report", {})))


def fit_tagger(bundle: Bundle, examples: pd.DataFrame, name: str, *, modality: str = "combined",
               min_confidence: float = MIN_CONFIDENCE, quantile: float = SIMILARITY_QUANTILE,
               seed: int = 0) -> Tagger:
    """A tagger from ``examples`` (columns ``label``, ``item_id``), its temperature and
    ``min_similarity`` set from held-out examples where every label has at least two (else a
    temperature of 1 and no bar, and the report says so).

    Raises:
        InvalidRequest: a bad name or ``min_confidence``, or examples
            :func:`~recsys.curation.labels.label_from_examples` refuses.
    """
    from recsys.curation.labels import example_rows  # scikit-learn: loaded to fit, not to serve

    if not re.match(NAME_PATTERN, name):
        raise InvalidRequest(f"a tagger's name is 1 to 40 lower-case letters, digits, '-' or '_', "
                             f"starting with a letter (got {name!r})")
    if not 0.0 <= min_confidence <= 1.0:
        raise InvalidRequest(f"min_confidence must be from 0 to 1 (got {min_confidence})")
    names, rows, codes = example_rows(bundle, examples, modality)
    x = bundle.vectors.space(modality)[0][rows]
    counts = np.bincount(codes, minlength=len(names))
    report = {"examples_per_label": {n: int(c) for n, c in zip(names, counts)}, "calibrated": False}
    temperature, min_similarity = 1.0, -1.0
    if counts.min() >= 2:
        logits = _held_out_logits(x, codes, min(_FOLDS, int(counts.min())), seed)
        temperature = _fit_temperature(logits, codes)
        before, after = softmax(logits, axis=1), softmax(logits / temperature, axis=1)
        min_similarity = float(np.quantile(_nearest_other(x, codes), quantile))
        report.update(calibrated=True, held_out_accuracy=round(float((before.argmax(1) == codes).mean()), 4),
                      held_out_ece_before=round(reliability(before, codes)["ece"], 4),
                      held_out_ece_after=round(reliability(after, codes)["ece"], 4))
    else:  # probabilities fitted on one example per label are not calibrated: they say nothing is "none"
        min_confidence = 0.0
    weights, intercepts = _fit(x, codes, len(names))
    ids = [str(i) for i in bundle.item_ids.ids[rows]]
    return Tagger(name, names, modality, weights, intercepts, round(float(temperature), 4), x.astype(np.float32),
                  codes.astype(np.int64), ids, round(min_similarity, 4), min_confidence, report)


def refit_tagger(bundle: Bundle, saved: dict, by_hand: dict[str, str | None] | None = None,
                 seed: int = 0) -> tuple[Tagger, dict]:
    """A saved tagger (the JSON :meth:`Tagger.to_json` wrote) fitted again on another bundle's
    vectors, as a new build carries it: from its examples still in the catalog and the labels
    reviewers set by hand (``by_hand``: item id to label; ``None``, none of these, leaves an
    example out), with its confidence bar; and what it was fitted from: ``examples``, ``gone``
    (examples no longer in the catalog), ``by_hand``.

    Raises:
        InvalidRequest: no example of some label is left.
    """
    labels = list(saved["labels"])
    examples = dict(zip(saved["examples"], (labels[code] for code in saved["example_labels"])))
    kept = {item: label for item, label in examples.items() if item in bundle.item_ids}
    hand = {item: label for item, label in (by_hand or {}).items()
            if item in bundle.item_ids and (label is None or label in labels)}
    for item, label in hand.items():
        if label is None:
            kept.pop(item, None)
        else:
            kept[item] = label
    missing = sorted(set(labels) - set(kept.values()))
    if missing:
        raise InvalidRequest(f"no example of {', '.join(map(repr, missing))} is left in the catalog")
    frame = pd.DataFrame({"label": list(kept.values()), "item_id": list(kept)})
    tagger = fit_tagger(bundle, frame, saved["name"], modality=saved["modality"],
                        min_confidence=float(saved["min_confidence"]), seed=seed)
    return tagger, {"examples": len(kept), "gone": sum(item not in bundle.item_ids for item in examples),
                    "by_hand": len(hand)}


def labels_by_hand(items: pd.DataFrame, name: str) -> dict[str, str | None]:
    """The labels reviewers set under the tagger ``name``, by item id, from a catalog's ``labels``
    column (JSON by tagger, as ``recsys curate export`` writes it); a cell that is not such JSON
    is skipped."""
    if "labels" not in items.columns:
        return {}
    out = {}
    for item, cell in zip(items["item_id"], items["labels"]):
        try:
            labels = json.loads(cell) if isinstance(cell, str) and cell else None
        except ValueError:
            continue
        if isinstance(labels, dict) and name in labels and (labels[name] is None or isinstance(labels[name], str)):
            out[str(item)] = labels[name]
    return out


def _nearest_other(x: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Each example's cosine to the nearest other example of its label."""
    cosines = x @ x.T
    np.fill_diagonal(cosines, -np.inf)
    cosines[codes[:, None] != codes[None, :]] = -np.inf
    return cosines.max(axis=1)


def reliability(probabilities: np.ndarray, truth: np.ndarray, bins: int = 10) -> dict:
    """The reliability of confidences: per confidence bin (of the most probable label) the items,
    their mean confidence and their accuracy, and the expected calibration error (the items'
    share-weighted gap between the two)."""
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == truth
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        if not inside.any():
            continue
        mean, accuracy = float(confidence[inside].mean()), float(right[inside].mean())
        ece += inside.mean() * abs(mean - accuracy)
        table.append({"from": round(float(edges[b]), 2), "to": round(float(edges[b + 1]), 2),
                      "items": int(inside.sum()), "confidence": round(mean, 4), "accuracy": round(accuracy, 4)})
    return {"ece": float(ece), "bins": table}


def _fit(x: np.ndarray, codes: np.ndarray, labels: int) -> tuple[np.ndarray, np.ndarray]:
    """The logistic regression's weights and intercepts, one row per label (two labels: the one
    logit it fits, as the second label's against zero)."""
    from sklearn.linear_model import LogisticRegression  # fitting only: serving reads the numbers

    model = LogisticRegression(C=10.0, max_iter=2000).fit(x, codes)
    weights, intercepts = model.coef_.astype(np.float32), model.intercept_.astype(np.float32)
    if labels == 2:
        weights = np.vstack([np.zeros_like(weights), weights])
        intercepts = np.array([0.0, intercepts[0]], np.float32)
    return weights, intercepts


def _held_out_logits(x: np.ndarray, codes: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Each example's logits from a model fitted without its fold."""
    from sklearn.model_selection import StratifiedKFold

    labels = int(codes.max()) + 1
    out = np.zeros((len(codes), labels), np.float32)
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, codes):
        weights, intercepts = _fit(x[train], codes[train], labels)
        out[test] = x[test] @ weights.T + intercepts
    return out


def _fit_temperature(logits: np.ndarray, codes: np.ndarray) -> float:
    """The temperature with the least log loss of the held-out answers."""
    from scipy.optimize import minimize_scalar

    def loss(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t), axis=1)[np.arange(len(codes)), codes].mean())

    return float(np.exp(minimize_scalar(loss, bounds=(np.log(0.05), np.log(20.0)), method="bounded").x))


def bundle_taggers(bundle: Bundle) -> dict[str, Tagger]:
    """The taggers saved in ``bundle``, by name."""
    return {name: Tagger.from_json(data, bundle.vectors, bundle.item_ids) for name, data in bundle.taggers.items()}


def tag_items(taggers: dict[str, Tagger], vectors: ItemVectors) -> dict[str, np.ndarray]:
    """Each tagger's tag (``None`` for "none of these") of every row of ``vectors``."""
    out = {}
    for name, tagger in taggers.items():
        x, mask = vectors.space(tagger.modality)
        out[name] = np.concatenate([tagger.tag(x[start:start + _BLOCK], mask[start:start + _BLOCK])[0]
                                    for start in range(0, len(x), _BLOCK)]) if len(x) else np.array([], object)
    return out


def tagger_summary(tagger: Tagger) -> dict:
    """What a listing of taggers shows: everything but the weights."""
    return {k: v for k, v in tagger.to_json().items() if k not in ("weights", "intercepts", "example_labels")}
