"""``recsys experiment create | list | stop | report`` against Redis (the embedded server)."""
import json

import pytest
from click.testing import CliRunner

from recsys.cli import cli


@pytest.mark.slow  # builds a shop through the CLI: about a second
def test_the_cli_creates_lists_reports_and_stops_an_experiment(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("RECSYS_REDIS__URL", raising=False)
    monkeypatch.delenv("RECSYS_REDIS_URL", raising=False)
    spec = tmp_path / "exp.json"
    spec.write_text(json.dumps({"name": "diverse feeds", "holdout": 0.1,
                                "variants": [{"name": "control"}, {"name": "diverse", "diversity": 0.3}]}))
    runner = CliRunner()
    made = runner.invoke(cli, ["experiment", "create", str(spec)])
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["id"] == "e1"
    again = runner.invoke(cli, ["experiment", "create", str(spec)])
    assert again.exit_code == 2 and "already takes feeds reads" in again.output
    listed = runner.invoke(cli, ["experiment", "list"])
    assert listed.stdout.split("\t")[:4] == ["e1", "running", "feeds", "control,diverse"]
    report = json.loads(runner.invoke(cli, ["experiment", "report", "e1"]).stdout)
    assert set(report["variants"]) == {"control", "diverse", "holdout"} and report["variants"]["control"]["users"] == 0
    assert runner.invoke(cli, ["experiment", "stop", "e1"]).stdout.startswith("stopped e1 at ")
    spec.write_text(json.dumps({"name": "x", "variants": [{"name": "a"}]}))
    bad = runner.invoke(cli, ["experiment", "create", str(spec)])
    assert bad.exit_code == 2 and "variants" in bad.output
    assert runner.invoke(cli, ["experiment", "report", "e9"]).exit_code == 2
    spec.write_text(json.dumps({"name": "x", "variants": [{"name": "a"}, {"name": "b", "bundle": "20990101T000000Z"}]}))
    unpublished = runner.invoke(cli, ["experiment", "create", str(spec)])
    assert unpublished.exit_code == 2 and "'20990101T000000Z' is not published" in unpublished.output
