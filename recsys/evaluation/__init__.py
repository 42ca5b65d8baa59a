"""Offline evaluation: splits and ranking metrics over held-out interactions."""
from recsys.evaluation.metrics import ndcg_at_k as ndcg_at_k
from recsys.evaluation.metrics import recall_at_k as recall_at_k
from recsys.evaluation.splits import temporal_split as temporal_split
