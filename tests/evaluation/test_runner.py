"""Evaluations end to end on the synthetic market (users with known tastes), and the CLI."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from recsys.cli import cli
from recsys.errors import ConfigError
from recsys.evaluation import MODELS, EvalData, create_model, evaluate, make_split
from recsys.settings import load_settings

# whole evaluations (every model fitted, a report, a trained bundle, the CLI): `make test` runs
# them; `make check` keeps the tests that each model ranks and places new users as it should
end_to_end = pytest.mark.slow


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return load_settings(state_dir=tmp_path_factory.mktemp("eval-state"), index={"recall_sample": 0})


@pytest.fixture(scope="module")
def temporal(market, market_events, settings):
    return EvalData.build(market, make_split("temporal", market_events[0], test_fraction=0.2), settings)


@pytest.fixture(scope="module")
def report(temporal):
    return evaluate(temporal, list(MODELS), ks=(5, 10), show_progress=False)


@pytest.mark.slow  # fits every model: about 2 seconds
def test_every_model_ranks_unseen_items_only(temporal):
    for name in MODELS:
        model = create_model(name, temporal.settings)
        model.fit(temporal)
        ranked = model.rank(temporal, 10)
        assert ranked.shape == (len(temporal.users), 10)
        for u in range(0, len(temporal.users), 97):
            known = set(temporal.known[u].indices)
            listed = ranked[u][ranked[u] >= 0]
            assert not known & set(listed.tolist()), name
            assert len(set(listed.tolist())) == len(listed)


def test_item_knn_keeps_its_nearest_neighbours_and_shrinks_rare_pairs(temporal):
    from recsys.evaluation.models import ItemKNNModel

    every, near, shrunk = ItemKNNModel(), ItemKNNModel(neighbours=5), ItemKNNModel(shrinkage=100.0)
    for model in (every, near, shrunk):
        model.fit(temporal)
    assert np.diff(near._sim.indptr).max() == 5 < np.diff(every._sim.indptr).max()
    assert (shrunk._sim.data < every._sim.data).all()  # the same pairs, each counting less
    ranked = near.rank(temporal, 10)
    assert ranked.shape == (len(temporal.users), 10) and (ranked[:, 0] >= 0).all()


@pytest.mark.slow  # fits every setting on a validation cut: about 2 seconds
def test_a_tuned_baseline_picks_its_setting_on_the_validation_part(temporal):
    from recsys.evaluation.models import PopularModel, RandomModel
    from recsys.evaluation.tuning import Tuned, validation_part

    inner = validation_part(temporal)
    # the validation part lies inside the training part, made as the test was: the test is never read
    assert len(inner.split.train) + len(inner.split.test) <= len(temporal.split.train)
    assert inner.split.kind == temporal.split.kind == "temporal"
    latest = inner.split.train.groupby("user_id")["timestamp"].max()
    assert (inner.split.test.groupby("user_id")["timestamp"].min() >= latest[inner.split.test_users]).all()
    tuned = Tuned("t", lambda s: RandomModel() if s == "random" else PopularModel(), ["random", "popular"])
    tuned.fit(temporal)
    assert tuned.chosen == "popular" and tuned.scores["popular"] > tuned.scores["random"]
    assert tuned.rank(temporal, 10).shape == (len(temporal.users), 10)
    # the report says what each tuned model chose, and on what
    info = evaluate(temporal, [tuned], ks=(10,), show_progress=False).info
    assert info["tuned"]["t"]["chosen"] == "popular" and set(info["tuned"]["t"]["validation_ndcg@10"]) == {
        "random", "popular"}
    assert info["tuned"]["t"]["past_the_grid"] == []  # a list of settings has no axes to step along


@pytest.mark.slow  # fits five settings on a validation cut: about 2 seconds
def test_a_grid_whose_best_sits_on_its_edge_is_tried_one_step_past_it(temporal):
    """Popular lists with each user's top ``depth`` shuffled: the less shuffled, the better. From
    depths 4 and 16 the tuning steps past 4 to 1 (4 x 4 / 16) and keeps it; a 0 at the edge is a
    bound, tried no further."""
    from recsys.evaluation.models import Model, PopularModel
    from recsys.evaluation.tuning import Tuned

    class Shuffled(Model):
        def __init__(self, depth: int):
            self.depth = depth

        def rank(self, data, n):
            ranked = PopularModel().rank(data, max(n, self.depth))
            order = np.random.default_rng(0).permuted(np.tile(np.arange(self.depth), (len(ranked), 1)), axis=1)
            ranked[:, :self.depth] = np.take_along_axis(ranked[:, :self.depth], order, axis=1)
            return ranked[:, :n]

    stepped = Tuned("shuffled", lambda p: Shuffled(**p), axes={"depth": (4, 16)})
    stepped.fit(temporal)
    assert set(stepped.scores) == {"{'depth': 4}", "{'depth': 16}", "{'depth': 1}"}
    assert stepped.chosen == {"depth": 1} and stepped.edges == ["depth"]
    assert stepped.scores["{'depth': 1}"] > stepped.scores["{'depth': 4}"] > stepped.scores["{'depth': 16}"]
    bounded = Tuned("shuffled", lambda p: Shuffled(**p), axes={"depth": (0, 4, 16)})
    bounded.fit(temporal)
    assert bounded.chosen == {"depth": 0} and len(bounded.scores) == 3 and bounded.edges == []
    with pytest.raises(ValueError, match="one of the two"):
        Tuned("t", Shuffled, [1], axes={"depth": (1,)})


@end_to_end
def test_a_report_records_exclude_seen_new_items_and_gains_with_intervals(temporal):
    settings = temporal.settings.model_copy(
        update={"collab": temporal.settings.collab.model_copy(update={"exclude_seen": False})})
    data = EvalData.build(temporal.bundle, temporal.split, settings)
    report = evaluate(data, ["popular", "repurchase", "itemknn", "hybrid"], ks=(10,), show_progress=False)
    assert report.info["exclude_seen"] is False
    assert {"ndcg_new@10", "map_new@10", "recall_new@10"} <= set(report.metrics.columns)
    gains = report.gains.set_index("metric")
    assert set(gains["model"]) == {"hybrid"}
    row = gains.loc["ndcg@10"]
    assert row["baseline"] == report.metrics.loc[["popular", "repurchase", "itemknn"], "ndcg@10"].idxmax()
    assert row["low"] <= row["gain"] <= row["high"]
    assert "95% interval" in report.gains_table()


@end_to_end
def test_without_exclude_seen_every_model_may_rank_known_items(temporal):
    """With collab.exclude_seen off (repurchases allowed), known items come back in every model
    that scores them: ALS and the hybrid rank a user's own items high."""
    settings = temporal.settings.model_copy(
        update={"collab": temporal.settings.collab.model_copy(update={"exclude_seen": False})})
    data = EvalData.build(temporal.bundle, temporal.split, settings)
    for name in ("als", "content", "hybrid"):
        model = create_model(name, settings)
        model.fit(data)
        ranked = model.rank(data, 10)
        again = sum(len(set(data.known[u].indices) & set(ranked[u].tolist())) for u in range(len(data.users)))
        assert again > len(data.users) // 2, name


@end_to_end
def test_the_report_orders_the_models_as_the_tastes_predict(report, temporal):
    m = report.metrics
    assert list(m.index) == list(MODELS)
    for column in m.columns:
        if column.split("@")[0] in ("precision", "recall", "ndcg", "map", "hitrate", "mrr", "coverage",
                                    "popularity", "gini", "diversity"):
            assert m[column].between(0, 1).all(), column
    # the synthetic users shop by taste: learning from interactions beats guessing, the hybrid
    # beats popularity, and popularity has the least coverage and the most popularity bias
    assert m.loc["random", "ndcg@10"] < m.loc["popular", "ndcg@10"] < m.loc["hybrid", "ndcg@10"]
    assert m.loc["als", "ndcg@10"] > m.loc["popular", "ndcg@10"]
    assert m["coverage@10"].idxmin() == "popular" and m["popularity@10"].idxmax() == "popular"
    assert m.loc["random", "novelty@10"] > m.loc["popular", "novelty@10"]
    assert report.info["test_users"] == int((temporal.truth.sizes > 0).sum())
    per_user = report.per_user["hybrid"]
    assert per_user.loc[temporal.truth.sizes > 0, "ndcg@10"].mean() == pytest.approx(m.loc["hybrid", "ndcg@10"])


@end_to_end
def test_segments_break_the_metrics_down(report):
    s = report.segments
    assert set(s["breakdown"]) == {"user activity", "item popularity", "item warmth"}
    hybrid = s[s["model"] == "hybrid"].set_index(["breakdown", "segment"])
    assert {"light", "medium", "heavy"} <= set(hybrid.loc["user activity"].index)
    shares = hybrid.loc["item popularity", "share@10"]
    assert shares.sum() == pytest.approx(1.0)  # every recommended item is head, torso or tail
    popular = s[(s["model"] == "popular") & (s["segment"] == "head")]
    assert popular["share@10"].iloc[0] == pytest.approx(1.0)


@end_to_end
def test_the_report_is_saved_as_csv_and_json(report, tmp_path):
    paths = report.save(tmp_path / "out")
    payload = json.loads(paths["json"].read_text())
    assert [row["model"] for row in payload["metrics"]] == list(MODELS)
    assert paths["metrics"].read_text().startswith("model,precision@5")
    assert "breakdown" in paths["segments"].read_text().splitlines()[0]
    assert "| hybrid |" in report.table()


@pytest.mark.slow  # fits every model once per given count: about 2 seconds
def test_cold_users_are_placed_by_their_given_events(market, market_events, settings):
    split = make_split("cold-users", market_events[0], user_fraction=0.2, given=3, seed=0)
    data = EvalData.build(market, split, settings)
    assert not set(data.users) & set(split.train["user_id"])
    m = evaluate(data, ["random", "content", "hybrid"], ks=(10,), show_progress=False).metrics
    assert m.loc["hybrid", "ndcg@10"] > 2 * m.loc["random", "ndcg@10"]
    assert m.loc["content", "ndcg@10"] > 2 * m.loc["random", "ndcg@10"]


@pytest.mark.slow  # a whole evaluation with bootstrap intervals: about 2 seconds
def test_users_with_no_history_are_scored_apart_with_intervals(market, market_events, settings):
    events = market_events[0]
    moment = events["timestamp"].quantile(0.8)
    users = np.array(sorted(events["user_id"].unique()))
    newcomers = set(users[::5])  # a fifth of the users: their events before the cutoff are taken out
    kept = events[~(events["user_id"].isin(newcomers) & (events["timestamp"] <= moment))]
    split = make_split("cutoff", kept, cutoff=moment)
    later = set(kept.loc[kept["timestamp"] > moment, "user_id"])
    assert newcomers & later <= set(split.newcomers["user_id"]) and not set(split.test["user_id"]) & newcomers
    data = EvalData.build(market, split, settings)
    report = evaluate(data, ["random", "popular", "hybrid"], ks=(10,), show_progress=False)
    assert report.info["newcomers"] == split.newcomers["user_id"].nunique() > 100
    assert len(report.newcomers["hybrid"]) == report.info["newcomers"]
    m = report.metrics
    assert m.loc["popular", "recall_newcomers@10"] > 2 * m.loc["random", "recall_newcomers@10"]
    assert m.loc["hybrid", "recall_newcomers@10"] > 2 * m.loc["random", "recall_newcomers@10"]  # its popular feed
    row = report.gains.set_index(["model", "metric"]).loc[("hybrid", "ndcg_newcomers@10")]
    assert row["baseline"] == "popular" and row["users"] > 100 and row["low"] <= row["gain"] <= row["high"]
    # the main test is the users with history, as before
    assert len(data.users) == split.test["user_id"].nunique()
    # in a cold-items split, users who bought only withheld items are not shoppers new to the shop
    from dataclasses import replace

    cold = EvalData.build(market, replace(split, kind="cold-items"), settings)
    info = evaluate(cold, ["popular"], ks=(10,), show_progress=False).info
    assert info["newcomers"] == 0


@end_to_end
def test_a_trained_bundle_is_evaluated_as_it_is(market, temporal, report, tmp_path):
    from tests.conftest import train

    trained = train(market, temporal.split.train, tmp_path)
    m = evaluate(temporal, [f"bundle:{trained.path}"], ks=(10,), show_progress=False).metrics
    assert m.iloc[0]["ndcg@10"] == pytest.approx(report.metrics.loc["hybrid", "ndcg@10"], abs=1e-3)
    with pytest.raises(ConfigError, match="no user tower"):
        evaluate(temporal, [f"bundle:{market.path}"], show_progress=False)
    with pytest.raises(ConfigError, match="unknown model 'magic'"):
        create_model("magic", temporal.settings)


@end_to_end
def test_recsys_evaluate(market, market_events, tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_STATE_DIR", str(tmp_path / "state"))
    events = tmp_path / "events.csv"
    frame = market_events[0].copy()
    frame["timestamp"] = frame["timestamp"].astype("int64") // 10**9  # epoch seconds in the file
    frame.to_csv(events, index=False)
    runner = CliRunner()
    args = ["evaluate", "--data", str(events), "--bundle", str(market.path), "--split", "temporal",
            "--last-n", "2", "--k", "5,10", "--models", "popular,content", "--out", str(tmp_path / "out"),
            "--no-progress"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "temporal, last 2 per user" in result.output and "| content |" in result.output
    assert (tmp_path / "out" / "report.json").is_file()
    result = runner.invoke(cli, ["evaluate", "--data", str(events), "--no-progress"])
    assert result.exit_code == 2 and "give --catalog SOURCE or --bundle DIR" in result.output
    result = runner.invoke(cli, [*args[:-3], "--k", "ten"])
    assert result.exit_code == 2 and "comma-separated integers" in result.output
    result = runner.invoke(cli, [*args, "--given", "3"])
    assert result.exit_code == 2 and "unexpected keyword argument 'given'" in result.output
    np.testing.assert_array_equal(frame.columns, market_events[0].columns)
