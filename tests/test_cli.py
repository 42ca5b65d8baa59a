"""The CLI through click's runner: build, similar (table and --json), items, and clear errors."""
import json

import pytest
from click.testing import CliRunner

from recsys.cli import cli


@pytest.fixture
def runner(session_dir, monkeypatch):
    # the same state dir as the session build: the embedding cache makes this build quick
    monkeypatch.setenv("RECSYS_STATE_DIR", str(session_dir / "state"))
    monkeypatch.setenv("RECSYS_INDEX__N_TREES", "10")
    return CliRunner()


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
