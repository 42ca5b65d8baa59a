"""The Docker files, checked without a Docker engine: the compose file's services, ports, volumes
and health checks, and the Dockerfile's essentials."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

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


def test_dockerfile_is_slim_non_root_with_health_check_and_offline_weights():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim", text, re.M)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "/healthz" in text.split("HEALTHCHECK", 1)[1].splitlines()[1]
    assert "download.pytorch.org/whl/cpu torch torchvision" in text  # one index for the pair
    assert "create_tower" in text  # the offline weights load at build time
    assert re.search(r'^CMD \["recsys", "serve"', text, re.M)
    assert "EXPOSE 8000" in text
    for source in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), f"Dockerfile copies {path}, which is not in the repository"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "state", "models", ".git"} <= set(ignored)
