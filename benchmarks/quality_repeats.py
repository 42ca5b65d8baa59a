"""Repurchases on H&M: every model with the user's known items left out and let back in.

H&M customers buy the same article again. With ``collab.exclude_seen`` (the default) every model
of the evaluation leaves the items a user already bought out of its ranking, as the service does,
so a repurchase in the held-out part can never be found. This measures, on the validation part of
the temporal split (its training part split again the same way, never the test), every model
both ways, and counts the repurchases in the test part.

    python benchmarks/quality_repeats.py --bundle models/hm-sample

writes ``benchmarks/results/quality_repeats.json``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from recsys.data import schema as S
from recsys.evaluation.models import EvalData
from recsys.evaluation.runner import evaluate, prepare
from recsys.evaluation.splits import make_split
from recsys.settings import load_settings

HM = Path(__file__).resolve().parents[2] / "shared" / "data" / "hm-sample"
RESULTS = Path(__file__).resolve().parent / "results" / "quality_repeats.json"
MODELS = ["popular", "itemknn", "als", "content", "hybrid"]


def repurchases(train: pd.DataFrame, test: pd.DataFrame) -> dict:
    """Test events whose (user, article) was bought in training."""
    bought = train.groupby([S.USER_ID, S.ITEM_ID]).size()
    pairs = pd.MultiIndex.from_frame(test[[S.USER_ID, S.ITEM_ID]])
    return {"test_events": len(test), "bought_before": int(bought.reindex(pairs).notna().sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True,
                        help="the H&M item side: recsys build --catalog hm-sample/catalog.csv")
    args = parser.parse_args()
    settings = load_settings()
    data = prepare(str(HM / "interactions.csv"), bundle=args.bundle, split="temporal", settings=settings,
                   show_progress=False)
    result = {"split": "temporal, validation part", "test_repurchases": repurchases(data.split.train,
                                                                                    data.split.test)}
    for exclude in (True, False):
        chosen = settings.model_copy(update={"collab": settings.collab.model_copy(update={"exclude_seen": exclude})})
        validation = EvalData.build(data.bundle, make_split("temporal", data.split.train), chosen)
        report = evaluate(validation, MODELS, ks=(10,), show_progress=False)
        result[f"exclude_seen={str(exclude).lower()}"] = {
            metric: report.metrics[metric].round(4).to_dict() for metric in ("ndcg@10", "recall@10")}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
