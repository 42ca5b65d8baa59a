"""Self-supervised fine-tuning of the image backbone on the shop's own photos (``recsys finetune``):
the methods (:mod:`~recsys.finetune.methods`), the training run (:mod:`~recsys.finetune.train`)
and the kNN evaluation that decides whether the result is kept (:mod:`~recsys.finetune.knn`)."""
from recsys.finetune.knn import evaluate_backbone, knn_accuracy, paired_gain
from recsys.finetune.methods import METHODS
from recsys.finetune.train import FinetuneReport, finetune

__all__ = ["METHODS", "FinetuneReport", "finetune", "evaluate_backbone", "knn_accuracy", "paired_gain"]
