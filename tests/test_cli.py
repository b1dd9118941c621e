"""`zoom-hubspot hubspot-project`: the command writes the HubSpot project and refuses what would not work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app import cli as cli_module
from app.actions.hubspot_project import ACTION_FILE, PROJECT_FILE, project_files


@pytest.fixture(autouse=True)
def no_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings() must not read a developer's .env or PUBLIC_BASE_URL."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_module.cli, ["hubspot-project", *args])
    return result.exit_code, result.stdout, result.stderr


def test_writes_the_project_to_a_new_folder(tmp_path: Path) -> None:
    out = tmp_path / "hs"
    code, stdout, stderr = run("--out", str(out), "--public-base-url", "https://sync.example.net/")
    assert code == 0, stderr
    expected = project_files("https://sync.example.net", "zoom-webinar-sync")
    for relative, text in expected.items():
        assert (out / relative).read_text(encoding="utf-8") == text
        assert relative in stdout
    assert "https://sync.example.net/hubspot/actions/add-to-webinar" in stdout
    assert "hs project upload" in stdout and "HUBSPOT_CLIENT_SECRET" in stdout
    assert stderr == ""


def test_name_and_default_url_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://from-settings.example.com/")
    out = tmp_path / "hs"
    code, _, stderr = run("--out", str(out), "--name", "Acme Zoom Sync")
    assert code == 0, stderr
    assert json.loads((out / PROJECT_FILE).read_text())["name"] == "Acme Zoom Sync"
    action = json.loads((out / ACTION_FILE).read_text())
    assert action["config"]["actionUrl"] == "https://from-settings.example.com/hubspot/actions/add-to-webinar"


def test_refuses_a_non_empty_folder_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "hs"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, stderr = run("--out", str(out), "--public-base-url", "https://sync.example.net")
    assert code == 2
    assert "not empty" in stderr and "--force" in stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    code, _, stderr = run("--out", str(out), "--public-base-url", "https://sync.example.net", "--force")
    assert code == 0, stderr
    assert (out / ACTION_FILE).exists() and (out / "keep.txt").read_text() == "mine"


def test_refuses_plain_http_to_a_public_host(tmp_path: Path) -> None:
    out = tmp_path / "hs"
    code, _, stderr = run("--out", str(out), "--public-base-url", "http://sync.example.net")
    assert code == 2
    assert "https" in stderr
    assert not out.exists()


def test_loopback_url_only_warns(tmp_path: Path) -> None:
    # The default PUBLIC_BASE_URL is this machine's own address.
    out = tmp_path / "hs"
    code, _, stderr = run("--out", str(out))
    assert code == 0
    assert "warning" in stderr and "cannot reach" in stderr
    action = json.loads((out / ACTION_FILE).read_text())
    assert action["config"]["actionUrl"] == "http://127.0.0.1:8000/hubspot/actions/add-to-webinar"


def test_refuses_a_bad_project_name(tmp_path: Path) -> None:
    out = tmp_path / "hs"
    code, _, stderr = run("--out", str(out), "--name", "a/b", "--public-base-url", "https://sync.example.net")
    assert code == 2
    assert "project name" in stderr
    assert not out.exists()


def test_oauth_project_and_a_bad_auth_type(tmp_path: Path) -> None:
    out = tmp_path / "hs"
    code, stdout, stderr = run(
        "--out", str(out), "--public-base-url", "https://s.example.net", "--auth", "oauth"
    )
    assert code == 0, stderr
    app = (out / "src/app/app-hsmeta.json").read_text(encoding="utf-8")
    assert '"type": "oauth"' in app and "https://s.example.net/oauth/hubspot/callback" in app
    assert "https://s.example.net/oauth/hubspot/install" in stdout
    code, _, stderr = run("--out", str(tmp_path / "other"), "--auth", "magic")
    assert code == 2 and "--auth must be static or oauth" in stderr
    assert not (tmp_path / "other").exists()
