"""Offline evaluation: splits, ranking and beyond-accuracy metrics, baselines, reports.

See :func:`recsys.evaluation.runner.prepare` and :func:`recsys.evaluation.runner.evaluate`, or
``recsys evaluate`` on the command line.
"""
from recsys.evaluation.metrics import ACCURACY, Truth, accuracy, ndcg_at_k, recall_at_k
from recsys.evaluation.models import MODELS, EvalData, Model
from recsys.evaluation.registry import create_model
from recsys.evaluation.runner import Report, evaluate, item_bundle, prepare, sample_users, segments_of
from recsys.evaluation.splits import SPLITS, Split, make_split, temporal_split

__all__ = ["ACCURACY", "Truth", "accuracy", "ndcg_at_k", "recall_at_k", "MODELS", "EvalData", "Model",
           "create_model", "Report", "evaluate", "item_bundle", "prepare", "sample_users",
           "segments_of", "SPLITS", "Split", "make_split", "temporal_split"]
