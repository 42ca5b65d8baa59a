"""How much of the H&M feed's quality is out of reach while known items are left out.

H&M customers buy the same article again. The evaluation leaves every item a user is known to
have bought out of every model's ranking (the service's ``exclude_seen``), so a repurchase in the
held-out part can never be found. This measures, on the validation part of the temporal split
(its training part split again the same way, never the test), the hybrid served with and without
``exclude_seen``, and counts the repurchases in the test part.

    python benchmarks/quality_repeats.py --bundle models/hm-sample

writes ``benchmarks/results/quality_repeats.json``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data import schema as S
from recsys.evaluation.models import EvalData, HybridModel
from recsys.evaluation.runner import evaluate, prepare
from recsys.evaluation.splits import make_split
from recsys.settings import load_settings

HM = Path(__file__).resolve().parents[2] / "shared" / "data" / "hm-sample"
RESULTS = Path(__file__).resolve().parent / "results" / "quality_repeats.json"


class HybridWithRepeats(HybridModel):
    """The hybrid feed with the user's known items allowed back in (``exclude_seen=False``)."""

    name = "hybrid, known items allowed"

    def rank(self, data: EvalData, n: int) -> np.ndarray:
        from recsys.serve import Recommender

        recommender = Recommender.configured(self._trained, data.settings)
        item_ids, trained_users = data.bundle.item_ids, recommender.bundle.collab.user_ids
        out = np.full((len(data.users), n), -1, np.int64)
        for u, user in enumerate(map(str, data.users)):
            known = user in trained_users
            given = [] if user in data.train.user_ids else [i for i in data.recent[u] if i in item_ids]
            feed = recommender.recommend(user if known else None, k=n, recent_items=given, exclude_seen=False)
            rows = item_ids.rows([s.item_id for s in feed if s.item_id in item_ids])
            out[u, :len(rows)] = rows
        return out


def repurchases(train: pd.DataFrame, test: pd.DataFrame) -> dict:
    """Test events whose (user, article) was bought in training: on an earlier day, or the same day."""
    last = train.groupby([S.USER_ID, S.ITEM_ID])[S.TIMESTAMP].max()
    pairs = pd.MultiIndex.from_frame(test[[S.USER_ID, S.ITEM_ID]])
    bought = last.reindex(pairs).to_numpy()
    when = test[S.TIMESTAMP].to_numpy()
    seen = ~pd.isna(bought)
    return {"test_events": len(test), "earlier_day": int((seen & (bought < when)).sum()),
            "same_day": int((seen & (bought == when)).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True,
                        help="the H&M item side: recsys build --catalog hm-sample/catalog.csv")
    args = parser.parse_args()
    settings = load_settings()
    data = prepare(str(HM / "interactions.csv"), bundle=args.bundle, split="temporal", settings=settings,
                   show_progress=False)
    validation = EvalData.build(data.bundle, make_split("temporal", data.split.train), settings)
    report = evaluate(validation, ["content", HybridModel(), HybridWithRepeats()], ks=(10,), show_progress=False)
    result = {"split": "temporal, validation part", "ndcg@10": report.metrics["ndcg@10"].round(4).to_dict(),
              "recall@10": report.metrics["recall@10"].round(4).to_dict(),
              "test_repurchases": repurchases(data.split.train, data.split.test),
              "raw_duplicate_rows": int(pd.read_csv(HM / "interactions.csv", dtype=str).duplicated().sum())}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
