"""The package as a user installs it: a wheel built from the repository, installed (not editable)
into a fresh virtual environment, imports every subpackage and runs build -> train -> recommend ->
similar from a folder without the repository on ``sys.path``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(args: list, cwd: Path, env: dict) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    """A virtual environment holding the wheel; the test run's dependencies are reachable through
    a ``.pth`` line (installing torch again would take minutes), but not its editable recsys."""
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", tmp / "dist", ROOT], cwd=tmp, env=env)
    wheels = list((tmp / "dist").glob("recsys-*.whl"))
    assert len(wheels) == 1, wheels
    target = tmp / "venv"
    venv.create(target, with_pip=False)
    python = target / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp, env=env).strip())
    # a plain path line: the editable install's own .pth (its import hook) is not processed
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheels[0]],
         cwd=tmp, env=env)
    return target, env


def test_the_wheel_holds_every_subpackage(installed, tmp_path):
    target, env = installed
    source_packages = sorted(".".join(p.relative_to(ROOT).parent.parts)
                             for p in (ROOT / "recsys").rglob("__init__.py"))
    code = ("import importlib, json, pkgutil, recsys\n"
            "names = sorted(m.name for m in pkgutil.walk_packages(recsys.__path__, 'recsys.')"
            " if m.ispkg)\n"
            "mods = [m.name for m in pkgutil.walk_packages(recsys.__path__, 'recsys.')"
            " if not m.name.endswith('__main__')]\n"
            "[importlib.import_module(m) for m in mods]\n"
            "print(json.dumps({'file': recsys.__file__, 'packages': ['recsys', *names]}))")
    found = json.loads(_run([target / "bin" / "python", "-c", code], cwd=tmp_path, env=env))
    assert Path(found["file"]).is_relative_to(target), found["file"]  # not the repository's
    assert found["packages"] == source_packages
    assert (Path(found["file"]).parent / "web" / "static" / "shop.js").is_file()


def test_the_installed_cli_builds_trains_and_answers(installed, tmp_path):
    target, env = installed
    recsys = target / "bin" / "recsys"
    env = {**env, "RECSYS_STATE_DIR": str(tmp_path / "state")}
    _run([recsys, "build", "--catalog", "synthetic:120", "--out", tmp_path / "models" / "shop",
          "--no-progress"], cwd=tmp_path, env=env)
    _run([recsys, "train", "--bundle", tmp_path / "models" / "shop", "--interactions", "synthetic",
          "--no-progress"], cwd=tmp_path, env=env)
    feed = json.loads(_run([recsys, "recommend", "--bundle", tmp_path / "models" / "shop", "U000001",
                            "--k", "5", "--json"], cwd=tmp_path, env=env))
    assert len(feed["results"]["U000001"]) == 5
    item = feed["results"]["U000001"][0]["item_id"]
    similar = json.loads(_run([recsys, "similar", "--bundle", tmp_path / "models" / "shop", item,
                               "--k", "5", "--json"], cwd=tmp_path, env=env))
    assert len(similar["results"][item]) == 5 and item not in {r["item_id"] for r in similar["results"][item]}
