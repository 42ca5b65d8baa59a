"""The Docker files, checked without a Docker engine (none runs on the development machines): the
compose file's services, ports, volumes and health checks, the Dockerfile's essentials, and the
image's install steps (docker/install.sh) run for real into a fresh virtual environment, which then
builds, trains and serves a small shop."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import sysconfig
import time
import venv
from pathlib import Path

import pytest
import yaml

from tests.api.live import free_port, request

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker" / "docker-compose.yml").read_text())


def test_compose_has_redis_with_aof_on_a_volume(compose):
    redis = compose["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    assert any(v.endswith(":/data") and v.split(":")[0] in compose["volumes"] for v in redis["volumes"])
    assert "redis-cli" in redis["healthcheck"]["test"]


def test_compose_runs_a_one_shot_train_then_the_api(compose):
    train, api = compose["services"]["train"], compose["services"]["api"]
    script = " ".join(train["command"])
    for step in ("recsys build", "recsys train", "recsys publish"):
        assert step in script
    assert train["restart"] == "no"
    assert train["depends_on"]["redis"]["condition"] == "service_healthy"
    assert api["depends_on"]["train"]["condition"] == "service_completed_successfully"
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    assert api["ports"] == ["8000:8000"]
    assert api["command"][:2] == ["recsys", "serve"] and "0.0.0.0" in api["command"]
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    for service in (train, api):
        assert service["environment"]["RECSYS_REDIS__URL"] == "redis://redis:6379/0"
        assert service["build"]["dockerfile"] == "docker/Dockerfile"
        assert any(v.split(":")[0] in compose["volumes"] for v in service["volumes"])
    assert "RECSYS_API_KEY" in api["environment"]


def test_dockerfile_builds_wheels_with_a_compiler_and_installs_them_slim_and_non_root():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    builder, image = text.split("\nFROM ", 2)[1:]
    assert re.match(r"python:3\.\d+-slim AS builder", builder) and "build-essential" in builder
    assert "recsys-install wheels" in builder  # the compiled wheels (annoy) are made here ...
    assert re.match(r"python:3\.\d+-slim\n", image) and "build-essential" not in image
    assert "COPY --from=builder /wheels" in image and "recsys-install install /wheels" in image  # ... used here
    assert "+cpu" not in text and "download.pytorch.org" not in text  # PyPI's torch, as pip resolves it
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "/healthz" in text.split("HEALTHCHECK", 1)[1].splitlines()[1]
    assert re.search(r'^CMD \["recsys", "serve"', text, re.M)
    script = (ROOT / "docker" / "install.sh").read_text()
    assert "create_tower" in script  # the offline weights load at build time
    assert "EXPOSE 8000" in text
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):  # the repository's files
        for path in source.split():
            assert (ROOT / path).exists(), f"Dockerfile copies {path}, which is not in the repository"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "state", "models", ".git"} <= set(ignored)


@pytest.mark.slow  # annoy compiled from PyPI's source, a fresh venv, a build, a training and a server: minutes
def test_the_images_install_steps_give_a_cli_that_builds_trains_and_serves(tmp_path):
    """docker/install.sh as both stages run it: the wheels (recsys's, and annoy's compiled from
    PyPI's source), then an install from them into a fresh virtual environment, no source tree on
    its path, whose CLI builds, trains and serves a small shop. The test run's other dependencies
    (torch is gigabytes) reach the venv through a path line, so pip finds them installed."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    script = ROOT / "docker" / "install.sh"
    _run(["sh", script, "wheels", ROOT, tmp_path / "wheels"], tmp_path, {**env, "PYTHON": sys.executable})
    wheels = sorted(p.name.split("-")[0] for p in (tmp_path / "wheels").glob("*.whl"))
    assert wheels == ["annoy", "recsys"], wheels
    target = tmp_path / "venv"
    venv.create(target, with_pip=True)
    python = target / "bin" / "python"
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run([python, "-c", code], tmp_path, env).strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(["sh", script, "install", tmp_path / "wheels"], tmp_path, {**env, "PYTHON": str(python)})
    shop = tmp_path / "shop"
    shop.mkdir()
    env = {**env, "RECSYS_STATE_DIR": str(shop / "state")}
    located = json.loads(_run([python, "-c", "import json, recsys; print(json.dumps(recsys.__file__))"], shop, env))
    assert Path(located).is_relative_to(target)  # the installed wheel, not the repository
    recsys = target / "bin" / "recsys"
    _run([recsys, "build", "--catalog", "synthetic:120", "--out", shop / "models" / "shop", "--no-progress"], shop, env)
    _run([recsys, "train", "--bundle", shop / "models" / "shop", "--interactions", "synthetic", "--no-progress"],
         shop, env)
    port = free_port()
    server = subprocess.Popen([recsys, "serve", "--port", str(port), "--workers", "1", "--bundle",
                               shop / "models" / "shop"], cwd=shop, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if request(port, "GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, server.stderr.read().decode()[-3000:]
            time.sleep(0.5)
        status, headers, body = request(port, "GET", "/v1/items/SKU-000002/similar?k=5")
        assert status == 200 and len(json.loads(body)["items"]) == 5 and headers["X-Recsys-Version"]
        status, _, body = request(port, "GET", "/v1/users/U000001/recommendations?k=5")
        assert status == 200 and json.loads(body)["strategy"] == "ranked"
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # gunicorn and its workers, which this test started
        server.wait(timeout=60)


def _run(args: list, cwd: Path, env: dict) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout
