"""docker-compose.yml, the Dockerfile and the README commands point at things that exist."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_compose_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", "api", "worker"}
    assert "healthcheck" in services["postgres"]
    assert services["migrate"]["command"] == ["alembic", "upgrade", "head"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["api"]["environment"]["RUN_WORKER"] == "false"
    for role in ("api", "worker"):
        assert services[role]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # All roles come from one image built from the Dockerfile at the root.
    for role in ("migrate", "api", "worker"):
        assert services[role]["build"] == "."
    assert (ROOT / "Dockerfile").exists()


def test_compose_commands_exist(compose: dict[str, Any]) -> None:
    services = compose["services"]
    api_cmd = services["api"]["command"]
    module, _, attr = api_cmd[api_cmd.index("uvicorn") + 1].partition(":")
    assert hasattr(importlib.import_module(module), attr)
    worker_cmd = services["worker"]["command"]
    assert worker_cmd[:2] == ["python", "-m"]
    assert importlib.util.find_spec(worker_cmd[2] + ".__main__") is not None
    assert (ROOT / "alembic.ini").exists() and (ROOT / "alembic" / "env.py").exists()


def test_compose_env_names_are_the_contract_variables(compose: dict[str, Any]) -> None:
    contract = {
        "DATABASE_URL",
        "RUN_WORKER",
        "ADMIN_API_TOKEN",
        "ZOOM_WEBHOOK_SECRET_TOKEN",
        "ZOOM_ACCOUNT_ID",
        "ZOOM_CLIENT_ID",
        "ZOOM_CLIENT_SECRET",
        "HUBSPOT_PORTAL_ID",
        "HUBSPOT_ACCESS_TOKEN",
        "HUBSPOT_APP_ID",
        "HUBSPOT_CLIENT_SECRET",
        "HUBSPOT_RATE_LIMIT_PER_10S",
        "PUBLIC_BASE_URL",
    }
    env = set(compose["x-app"]["environment"]) | set(compose["services"]["api"]["environment"])
    assert contract - env == set()


def test_dockerfile_copies_existing_paths() -> None:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), src


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose (v1) not installed")
def test_docker_compose_config_validates() -> None:
    result = subprocess.run(
        ["docker-compose", "config", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_readme_commands_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "python3 dev.py run" in readme and "python3 dev.py test" in readme
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", readme, flags=re.M))
    from app.config import Settings

    fields = {name.upper() for name in Settings.model_fields}
    assert documented, "README has no configuration table"
    assert documented - fields == set(), "README documents variables the code does not read"
    assert {"DATABASE_URL", "HUBSPOT_RATE_LIMIT_PER_10S", "PUBLIC_BASE_URL"} <= documented
