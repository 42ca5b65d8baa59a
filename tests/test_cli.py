"""The CLI through click's runner: build, train, similar, recommend (table and --json), items, errors."""
import json
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner

from recsys.bundle import read_bundle
from recsys.cli import cli
from tests.conftest import use_session_state


@pytest.fixture
def runner(session_dir, monkeypatch):
    use_session_state(monkeypatch, session_dir)
    return CliRunner()


@pytest.mark.slow  # a build through the CLI: about 2 seconds
def test_build_then_similar(runner, tmp_path):
    out = tmp_path / "models" / "cli"
    result = runner.invoke(cli, ["build", "--catalog", "synthetic:120", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    for line in ("items     120", "modality  image:", "recall@10 combined:", "time "):
        assert line in result.output
    result = runner.invoke(cli, ["similar", "--bundle", str(out), "SKU-000001", "SKU-000002", "--k", "3"])
    assert result.exit_code == 0, result.output
    assert "similar to SKU-000001" in result.output and "similar to SKU-000002" in result.output
    result = runner.invoke(cli, ["similar", "--bundle", str(out), "SKU-000001", "SKU-000003", "--k", "4",
                                 "--weights", "image:0.6,text:0.3,tabular:0.1", "--json"])
    payload = json.loads(result.output)
    assert set(payload["results"]) == {"SKU-000001", "SKU-000003"}
    assert all(len(rows) == 4 for rows in payload["results"].values())
    assert payload["weights"] == {"image": 0.6, "text": 0.3, "tabular": 0.1}
    assert {"item_id", "score", "title", "category", "price"} <= set(payload["results"]["SKU-000001"][0])
    ids = json.loads(runner.invoke(cli, ["items", "--bundle", str(out), "--limit", "3", "--json"]).output)
    assert ids == ["SKU-000000", "SKU-000001", "SKU-000002"]


@pytest.mark.parametrize("args, code, message", [
    (["similar", "--bundle", "{bundle}", "NOPE"], 2, "error: unknown item_id 'NOPE'"),
    (["similar", "--bundle", "{bundle}", "SKU-000001", "--weights", "colour:1"], 2, "unknown modality 'colour'"),
    (["similar", "--bundle", "{bundle}", "SKU-000001", "--k", "0"], 2, "k must be an integer from 1 to 1000"),
    (["similar", "--bundle", "{missing}", "x"], 1, "error: bundle not found"),
    (["build", "--catalog", "{missing}/cat.csv", "--out", "{missing}"], 2, "catalog file not found"),
    (["demo", "--catalog", "{missing}/cat.csv"], 2, "a catalog file needs its interactions"),
    (["recommend", "--bundle", "{bundle}", "U1"], 2, "has no user tower; run `recsys train"),
    (["similar", "--bundle", "{bundle}", "SKU-000001", "--min-price", "9", "--max-price", "1"], 2,
     "min_price (9) is above max_price (1)"),
    (["train", "--bundle", "{bundle}", "--interactions", "{missing}/events.csv"], 2,
     "interactions file not found"),
])
def test_errors_are_one_clear_line(runner, built, tmp_path, args, code, message):
    args = [a.format(bundle=built[0].path, missing=tmp_path / "missing") for a in args]
    result = runner.invoke(cli, args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_settings_name_the_variable(runner, monkeypatch, tmp_path):
    monkeypatch.setenv("RECSYS_INDEX__N_TREES", "0")
    result = runner.invoke(cli, ["build", "--catalog", "synthetic:100", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "RECSYS_INDEX__N_TREES: Input should be greater than 0" in result.output


@pytest.fixture
def shop_copy(built, tmp_path):
    """The session shop bundle copied, so training adds versions beside the copy only."""
    target = tmp_path / "models" / "shop" / built[0].path.name
    shutil.copytree(built[0].path, target)
    return target.parent


def test_train_then_recommend(runner, shop_copy):
    result = runner.invoke(cli, ["train", "--bundle", str(shop_copy), "--interactions", "synthetic",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    for line in ("users     150", "items     ", "cold (placed by content)", "recall@10 cf:", "time      ",
                 "content   weight ", "(content weight ", "fit ", "feeds ", "write "):
        assert line in result.output
    assert len([p for p in shop_copy.iterdir() if not p.name.startswith(".")]) == 2  # a new version

    result = runner.invoke(cli, ["recommend", "--bundle", str(shop_copy), "U000001", "stranger",
                                 "--k", "7", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert set(payload["results"]) == {"U000001", "stranger"}
    assert all(len(rows) == 7 for rows in payload["results"].values())
    assert payload["strategy"] == {"U000001": "collaborative", "stranger": "popular"}
    assert "unknown user_id 'stranger'" in payload["messages"]["stranger"]
    assert {"item_id", "score", "cold", "title", "category", "price"} <= set(payload["results"]["U000001"][0])

    result = runner.invoke(cli, ["recommend", "--bundle", str(shop_copy), "--recent", "SKU-000010,SKU-000011",
                                 "--k", "5", "--category", "home", "--max-price", "100"])
    assert result.exit_code == 0, result.output
    assert "feed for anonymous (fold-in)" in result.output
    assert result.output.count("home/") >= 5

    result = runner.invoke(cli, ["recommend", "--bundle", str(shop_copy), "--recent", "SKU-000010,NOPE"])
    assert result.exit_code == 2 and "recent_items names unknown item_id 'NOPE'" in result.output
    result = runner.invoke(cli, ["recommend", "--bundle", str(shop_copy)])
    assert result.exit_code == 2 and "give at least one USER_ID" in result.output
    result = runner.invoke(cli, ["similar", "--bundle", str(shop_copy), "SKU-000001", "--k", "4",
                                 "--category", "women", "--json"])
    rows = json.loads(result.output)["results"]["SKU-000001"]
    assert len(rows) == 4 and all(r["category"].startswith("women/") for r in rows)


@pytest.mark.redis_server
def test_publish_says_which_redis_and_warns_about_misspelt_variables(runner, built, monkeypatch, tmp_path):
    """RECSYS_REDIS_URL (the short name) reaches the shared server; a misspelt variable is named
    with the one it resembles instead of being ignored without a word; RECSYS_REDIS__BUNDLE_FILES
    puts the bundle's files in that folder."""
    import uuid

    from recsys.store import RedisStore, connect
    from tests.conftest import LOCAL_REDIS, _local_redis_up

    if not _local_redis_up():
        pytest.skip(f"no Redis server at {LOCAL_REDIS}")
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("RECSYS_REDIS_URL", LOCAL_REDIS)
    monkeypatch.setenv("RECSYS_REDIS__PREFIX", prefix)
    monkeypatch.setenv("RECSYS_REDIS_ULR", "redis://elsewhere:6379")  # silently ignored before
    monkeypatch.setenv("RECSYS_REDIS__BUNDLE_FILES", str(tmp_path / "share"))
    try:
        result = runner.invoke(cli, ["publish", "--bundle", str(built[0].path), "--no-activate"])
        assert result.exit_code == 0, result.output
        assert f"using Redis at {LOCAL_REDIS}" in result.stderr
        assert "RECSYS_REDIS_ULR is not a recsys setting" in result.stderr
        assert "did you mean RECSYS_REDIS_URL?" in result.stderr
        assert RedisStore(connect(LOCAL_REDIS), prefix=prefix).versions() == [built[1].version]
        shared = tmp_path / "share" / built[0].path.parent.name / built[0].path.name
        assert (shared / "manifest.json").is_file() and (shared / "vectors" / "combined.npy").is_file()
    finally:
        RedisStore(connect(LOCAL_REDIS), prefix=prefix).clear()


def test_training_on_the_redis_log_skips_bad_events_and_keeps_them_aside(runner, shop_copy, redis_url,
                                                                         redis_prefix, monkeypatch, tmp_path):
    """Events that an older server let into the log (a zero-width id, a millisecond timestamp)
    are skipped and written to a quarantine file; they never stop training."""
    from recsys.data.synthetic import make_interactions
    from recsys.store import ActivityStore, connect
    from recsys.store.activity import Event

    monkeypatch.setenv("RECSYS_REDIS__URL", redis_url)
    monkeypatch.setenv("RECSYS_REDIS__PREFIX", redis_prefix)
    monkeypatch.setenv("RECSYS_STATE_DIR", str(tmp_path / "state"))
    items = read_bundle(shop_copy).items
    frame, _ = make_interactions(items, 80, seed=4)
    events = [Event(str(r.user_id), str(r.item_id), r.event, 1.7e9) for r in frame.itertuples()]
    item = str(items["item_id"].iloc[0])
    events += [Event("u\u200b1", item, "view", 1.7e9), Event("u2", item, "view", 1.7e12)]
    ActivityStore(connect(redis_url), prefix=redis_prefix).append(events)
    result = runner.invoke(cli, ["train", "--bundle", str(shop_copy), "--interactions", "redis", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "skipped 2 bad event(s)" in result.stderr
    quarantined = pd.read_csv(next((tmp_path / "state" / "quarantine").glob("interactions-*.csv")))
    assert len(quarantined) == 2
    assert "non-printable" in quarantined["reason"].iloc[0] and "milliseconds" in quarantined["reason"].iloc[1]


@pytest.mark.slow
def test_a_build_stopped_part_way_embeds_only_the_rest_when_run_again(tmp_path):
    """`recsys build` killed (SIGKILL) once the embedding cache holds its first parts: the next
    run takes those from the cache and embeds only what is left."""
    import os
    import re
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    from recsys.data.synthetic import make_catalog

    catalog = make_catalog(1500, seed=2).drop(columns=["image"], errors="ignore")
    catalog.to_csv(tmp_path / "catalog.csv", index=False)
    env = {**os.environ, "RECSYS_STATE_DIR": str(tmp_path / "state"), "RECSYS_TOWERS__SAVE_EVERY": "100",
           "RECSYS_INDEX__N_TREES": "5"}
    env.pop("RECSYS_TOWERS__CACHE_DIR", None)
    command = [sys.executable, "-m", "recsys", "build", "--catalog", str(tmp_path / "catalog.csv"),
               "--out", str(tmp_path / "models" / "shop"), "--no-progress"]
    cache = tmp_path / "state" / "embeddings" / "cache.sqlite3"

    def stored() -> int:
        try:
            with sqlite3.connect(cache, timeout=5) as db:
                return db.execute("SELECT COUNT(*) FROM emb").fetchone()[0]
        except sqlite3.Error:
            return 0

    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while stored() < 200 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    kept = stored()
    assert 200 <= kept < 1500, kept  # stopped part way, its first parts kept
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    line = next(x for x in second.stdout.splitlines() if x.startswith("embedded"))
    new, cached = (int(n.replace(",", "")) for n in re.search(r"text: ([\d,]+) new, ([\d,]+) cached",
                                                               line).groups())
    # what the killed run stored comes from the cache; only the rest is embedded again
    has_text = (catalog[["title", "description", "tags"]].fillna("") != "").any(axis=1).sum()
    assert cached == kept and new + cached == has_text, line


def test_tables_leave_a_missing_value_blank(capsys):
    from recsys.cli.query import _print_table

    _print_table("similar to A", [{"item_id": "B", "price": None, "colour": "red"},
                                  {"item_id": "C", "price": 9.5, "colour": None}], "none")
    out = capsys.readouterr().out
    assert "NaN" not in out and "None" not in out and "9.5" in out
