"""A simulated shop drives a live ``recsys serve`` over HTTP through experiments, and the reports
are checked against what the simulator knows.

The shop is bench_api's synthetic one (10,000 items, 20,000 users with known tastes: a
category, two colours, a price band). A simulated user reads their feed (k = 10) one to three
times; each shown item is clicked with probability ``0.02 + 0.3 * affinity * (position + 1) **
-0.5`` (affinity: 0.5 for the user's category, 0.3 for one of their colours, 0.2 for their price
band; the power is the position bias), and a clicked item is bought with probability
``0.15 * affinity``. Clicks and purchases are posted with the read's ``request_id``.

* **A/A**: ``AA_SEEDS`` experiments with two identical variants, each with its own salt and
  ``AA_USERS`` users never used before; the share of reports that call a difference
  significant is the false positive rate (nominal 5%), with its binomial interval.
* **A/B**: the control serves feeds with ``diversity`` 0.9 (a large MMR weight: feeds leave the
  user's taste), the treatment the plain feed. The simulator knows each answer's expected clicks
  (the sum of its items' click probabilities), so the true CTR of each variant is known; the
  report's difference should contain the true one, with the right sign, at ``AB_USERS`` users.

    python benchmarks/sim_experiments.py   # writes benchmarks/results/sim_experiments.json
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _common import write_results  # noqa: E402
from bench_api import ITEMS, KEY, USERS, build_bundle  # noqa: E402

from tests.api.live import LiveServer, request  # noqa: E402

AA_SEEDS = int(os.environ.get("AA_SEEDS", "40"))
AA_USERS = int(os.environ.get("AA_USERS", "300"))
AB_USERS = int(os.environ.get("AB_USERS", "3000"))
WRITE = {"X-API-Key": KEY}


class Shop:
    """The simulated users and their click model."""

    def __init__(self, seed: int = 0):
        from recsys.data.synthetic import make_catalog, make_interactions

        catalog = make_catalog(ITEMS, seed=11)
        _, self.users = make_interactions(catalog, USERS, seed=5)
        self.items = catalog.set_index("item_id")
        self.rng = np.random.default_rng(seed)

    def probabilities(self, user, items: list[str]) -> np.ndarray:
        meta = self.items.loc[items]
        affinity = (0.5 * (meta["category"] == user.category).to_numpy()
                    + 0.3 * meta["true_colour"].isin(user.colours.split("|")).to_numpy()
                    + 0.2 * (meta["price_band"] == user.price_band).to_numpy())
        return 0.02 + 0.3 * affinity * (np.arange(1, len(items) + 1) ** -0.5), affinity

    def visit(self, port: int, user) -> float:
        """One user's visit: their feeds, clicks and purchases, posted; the expected clicks of
        what they were shown."""
        expected = 0.0
        for _ in range(self.rng.integers(1, 4)):
            status, _, raw = request(port, "GET", f"/v1/users/{user.user_id}/recommendations?k=10")
            assert status == 200, raw
            body = json.loads(raw)
            items = [row["item_id"] for row in body["items"]]
            p, affinity = self.probabilities(user, items)
            expected += p.sum()
            clicked = self.rng.random(len(items)) < p
            events = []
            for item, a in zip(np.asarray(items)[clicked], affinity[clicked]):
                events.append({"user_id": user.user_id, "item_id": item, "event": "click",
                               "request_id": body["request_id"]})
                if self.rng.random() < 0.15 * a:
                    events.append({"user_id": user.user_id, "item_id": item, "event": "purchase", "value": 1})
            if events:
                assert request(port, "POST", "/v1/interactions", {"events": events}, WRITE)[0] == 202
        return expected


def run(port: int, shop: Shop, experiment: dict, users) -> tuple[dict, dict]:
    """Create ``experiment``, send ``users`` through it, stop it; its report and, per variant,
    the expected clicks the simulator knows."""
    status, _, raw = request(port, "POST", "/v1/experiments", experiment, WRITE)
    assert status == 201, raw
    experiment_id = json.loads(raw)["experiment"]["id"]
    with ThreadPoolExecutor(8) as pool:
        expected = list(pool.map(lambda u: shop.visit(port, u), users))
    request(port, "POST", f"/v1/experiments/{experiment_id}/stop", {}, WRITE)
    status, _, raw = request(port, "GET", f"/v1/experiments/{experiment_id}/report", headers=WRITE, timeout=120)
    assert status == 200, raw
    report = json.loads(raw)
    from recsys.control.experiments import Experiment, assign

    exp = Experiment.model_validate(report["experiment"])
    truth: dict[str, list[float]] = {}
    for user, clicks in zip(users, expected):
        truth.setdefault(assign(exp, user.user_id).name, []).append(clicks)
    return report, {name: float(np.sum(v)) for name, v in truth.items()}


def main() -> None:
    shop = Shop()
    users = list(shop.users.sample(frac=1.0, random_state=0).itertuples())
    results = {"aa": {}, "ab": {}}
    with tempfile.TemporaryDirectory() as tmp:
        bundle = build_bundle(Path(tmp))
        server = LiveServer(Path(tmp) / "serve", {"RECSYS_API__API_KEY": KEY}, bundle=bundle)
        try:
            server.wait_ready()
            start = time.time()
            flagged = {"ctr": 0, "conversion": 0, "revenue_per_user": 0}
            used = 0
            for seed in range(AA_SEEDS):
                cohort, used = users[used:used + AA_USERS], used + AA_USERS
                report, _ = run(server.port, shop, {"name": f"A/A {seed}", "variants": [{"name": "a"},
                                                                                      {"name": "b"}]}, cohort)
                for metric in flagged:
                    flagged[metric] += report["variants"]["b"][f"{metric}_vs_control"]["significant"]
            for metric, n in flagged.items():
                low, high = stats.binomtest(n, AA_SEEDS).proportion_ci(0.95)
                results["aa"][metric] = {"flagged": n, "seeds": AA_SEEDS, "rate": round(n / AA_SEEDS, 3),
                                         "interval": [round(low, 3), round(high, 3)]}
            results["aa"]["users_per_seed"] = AA_USERS
            results["aa"]["seconds"] = round(time.time() - start, 1)
            print("A/A:", results["aa"])
            cohort = users[used:used + AB_USERS]
            report, truth = run(server.port, shop, {"name": "A/B", "variants": [
                {"name": "diverse", "diversity": 0.9}, {"name": "plain"}]}, cohort)
            rows = report["variants"]
            true_ctr = {name: truth[name] / rows[name]["impressions"] for name in ("diverse", "plain")}
            diff = rows["plain"]["ctr_vs_control"]
            true_diff = true_ctr["plain"] - true_ctr["diverse"]
            results["ab"] = {"users": AB_USERS, "true_ctr": {k: round(v, 5) for k, v in true_ctr.items()},
                             "true_difference": round(true_diff, 5), "estimated": diff,
                             "estimate_contains_truth": diff["low"] <= true_diff <= diff["high"],
                             "right_sign": (diff["value"] > 0) == (true_diff > 0),
                             "significant": diff["significant"], "srm": report["srm"],
                             "variants": {name: {k: rows[name][k] for k in ("users", "impressions", "clicks", "ctr",
                                                                          "conversion", "revenue_per_user")}
                                          for name in rows}}
            print("A/B:", json.dumps(results["ab"], indent=1))
        finally:
            server.stop()
    write_results("sim_experiments", results)


if __name__ == "__main__":
    main()
