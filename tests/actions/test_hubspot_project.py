"""The HubSpot developer project (platform 2026.03): its files' shape, the scopes, the action's pieces
shared with the v4 definition, the writer's refusals, and the committed example copy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.actions.definition import CONTACT_PROPERTIES, OUTPUT_FIELDS, action_definition
from app.actions.hubspot_project import (
    ACTION_FILE,
    ACTION_UID,
    APP_FILE,
    APP_UID,
    PROJECT_FILE,
    PROJECT_NAME_MAX,
    README_FILE,
    ProjectError,
    check_public_base_url,
    project_files,
    render_project,
    validate_project_name,
    write_project,
)
from app.actions.rules import ActionCode
from app.integrations.hubspot.scopes import OPTIONAL_SCOPES, REQUIRED_SCOPES, SCOPES_BY_FEATURE

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_URL = "https://zoom-sync.example.com"
EXAMPLE_NAME = "zoom-webinar-sync"


@pytest.fixture
def project() -> dict[str, dict[str, Any]]:
    return render_project("https://sync.example.com/", "my project_1")


def test_the_project_has_exactly_its_three_json_files(project: dict[str, dict[str, Any]]) -> None:
    assert set(project) == {
        "hsproject.json",
        "src/app/app-hsmeta.json",
        "src/app/workflow-actions/add-to-webinar-hsmeta.json",
    }
    assert project[PROJECT_FILE] == {"name": "my project_1", "srcDir": "src", "platformVersion": "2026.03"}


def test_app_component_is_a_private_static_app(project: dict[str, dict[str, Any]]) -> None:
    app = project[APP_FILE]
    assert app["uid"] == APP_UID == "zoom_webinar_sync_app"
    assert app["type"] == "app"
    config = app["config"]
    assert isinstance(config["name"], str) and config["name"]
    assert isinstance(config["description"], str) and config["description"]
    assert config["distribution"] == "private"
    auth = config["auth"]
    assert auth["type"] == "static"
    # Static apps may not declare redirect URLs (only OAuth apps do).
    assert "redirectUrls" not in config and "redirectUrls" not in auth
    assert auth["requiredScopes"] == [
        "oauth",
        "crm.objects.contacts.read",
        "crm.objects.contacts.write",
        "crm.schemas.contacts.write",
        "crm.objects.marketing_events.read",
        "crm.objects.marketing_events.write",
        "automation",
        "settings.users.read",
    ]
    assert auth["optionalScopes"] == ["crm.objects.owners.read", "timeline"]


def test_scopes_are_the_table(project: dict[str, dict[str, Any]]) -> None:
    auth = project[APP_FILE]["config"]["auth"]
    required = [s for need in SCOPES_BY_FEATURE if need.required for s in need.scopes]
    optional = [s for need in SCOPES_BY_FEATURE if not need.required for s in need.scopes]
    assert auth["requiredScopes"] == required == list(REQUIRED_SCOPES)
    assert auth["optionalScopes"] == optional == list(OPTIONAL_SCOPES)
    assert len(set(required + optional)) == len(required + optional)  # none twice, none in both lists
    for need in SCOPES_BY_FEATURE:
        assert need.feature and need.scopes and need.why.strip()


def test_action_component(project: dict[str, dict[str, Any]]) -> None:
    action = project[ACTION_FILE]
    assert action["uid"] == ACTION_UID == "add_to_zoom_webinar"
    assert action["type"] == "workflow-action"
    config = action["config"]
    assert config["actionUrl"] == "https://sync.example.com/hubspot/actions/add-to-webinar"
    assert config["isPublished"] is True
    assert config["supportedClients"] == [{"client": "WORKFLOWS"}]
    assert config["objectTypes"] == ["CONTACT"]
    assert config["objectRequestOptions"] == {"properties": CONTACT_PROPERTIES}
    assert {"email", "firstname", "lastname"} <= set(config["objectRequestOptions"]["properties"])
    [field] = config["inputFields"]
    assert field["typeDefinition"] == {
        "name": "webinar_id",
        "type": "string",
        "fieldType": "text",
        "options": [],
    }
    assert field["supportedValueTypes"] == ["STATIC_VALUE", "OBJECT_PROPERTY"]
    assert field["isRequired"] is True
    outputs = [f["typeDefinition"]["name"] for f in config["outputFields"]]
    assert outputs == ["registrant_id", "join_url", "error_code", "error_message"] == list(OUTPUT_FIELDS)
    assert all(f["typeDefinition"]["type"] == "string" for f in config["outputFields"])
    rules = {r["labelName"]: r["conditions"] for r in config["executionRules"]}
    assert set(rules) == {code.value for code in ActionCode} | {"success"}
    assert rules["webinar_not_found"] == {"error_code": "webinar_not_found"}
    # The v4-only keys stay out of the project component.
    assert "published" not in config and "functions" not in config


def test_the_action_url_follows_the_base_url() -> None:
    for base in ("https://a.example.org", "https://a.example.org/", "https://a.example.org/prefix"):
        config = render_project(base, "p")[ACTION_FILE]["config"]
        assert config["actionUrl"] == base.rstrip("/") + "/hubspot/actions/add-to-webinar"
    assert render_project(EXAMPLE_URL, "p", published=False)[ACTION_FILE]["config"]["isPublished"] is False


def _shape(value: Any) -> Any:
    """The keys of nested dicts, with every leaf replaced by its type."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return type(value).__name__


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    return [value]


def test_labels_in_english_and_japanese_with_the_same_keys(project: dict[str, dict[str, Any]]) -> None:
    labels = project[ACTION_FILE]["config"]["labels"]
    assert set(labels) == {"en", "ja"}
    assert _shape(labels["en"]) == _shape(labels["ja"])
    for lang in ("en", "ja"):
        assert all(isinstance(leaf, str) and leaf.strip() for leaf in _leaves(labels[lang]))
        assert set(labels[lang]["inputFieldLabels"]) == {"webinar_id"}
        assert set(labels[lang]["outputFieldLabels"]) == set(OUTPUT_FIELDS)
        rule_names = {r["labelName"] for r in project[ACTION_FILE]["config"]["executionRules"]}
        assert set(labels[lang]["executionRules"]) == rule_names
    assert labels["en"]["actionName"] != labels["ja"]["actionName"]


def test_project_and_v4_definition_describe_the_same_action(project: dict[str, dict[str, Any]]) -> None:
    config = project[ACTION_FILE]["config"]
    v4 = action_definition("https://sync.example.com")
    for key in ("actionUrl", "objectTypes", "objectRequestOptions", "inputFields", "outputFields", "labels"):
        assert config[key] == v4[key], key
    assert config["executionRules"] == v4["executionRules"]


@pytest.mark.parametrize(
    "name", ["zoom-webinar-sync", "Zoom Webinar Sync", "a", "x_1-2 3", "9", "n" * PROJECT_NAME_MAX]
)
def test_valid_project_names(name: str) -> None:
    assert validate_project_name(name) == name
    assert render_project(EXAMPLE_URL, name)[PROJECT_FILE]["name"] == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("n" * (PROJECT_NAME_MAX + 1), "at most 214"),
        ("a/b", "only letters"),
        ("../x", "only letters"),
        (" lead", "only letters"),
        ("trail ", "only letters"),
        ("ウェビナー", "only letters"),
        ("a.b", "only letters"),
        ("tab\there", "only letters"),
    ],
)
def test_invalid_project_names_are_refused_with_the_reason(name: str, reason: str) -> None:
    with pytest.raises(ProjectError, match=reason):
        validate_project_name(name)
    with pytest.raises(ProjectError):
        render_project(EXAMPLE_URL, name)


def test_public_base_url_rules() -> None:
    assert check_public_base_url("https://zoom-sync.example.com") == []
    assert check_public_base_url("https://zoom-sync.example.com/base") == []
    for local in ("http://127.0.0.1:8000", "http://localhost:8000", "https://localhost", "http://[::1]:8000"):
        [warning] = check_public_base_url(local)
        assert "cannot reach" in warning
    for refused, reason in (
        ("http://zoom-sync.example.com", "must use https"),
        ("http://10.0.0.5", "must use https"),
        ("ftp://zoom-sync.example.com", "http"),
        ("zoom-sync.example.com", "http"),
        ("https://", "http"),
        ("https://user:pw@zoom-sync.example.com", "credentials"),
        ("https://zoom-sync.example.com/?a=1", "query"),
    ):
        with pytest.raises(ProjectError, match=reason):
            check_public_base_url(refused)


def test_readme_explains_the_upload_and_lists_every_scope() -> None:
    readme = project_files(EXAMPLE_URL, EXAMPLE_NAME)[README_FILE]
    for step in (
        "npm install -g @hubspot/cli",
        "hs account auth",
        "hs project upload",
        "Install",
        "HUBSPOT_ACCESS_TOKEN",
        "HUBSPOT_CLIENT_SECRET",
        "HUBSPOT_PORTAL_ID",
        "https://zoom-sync.example.com/hubspot/actions/add-to-webinar",
    ):
        assert step in readme, step
    for scope in (*REQUIRED_SCOPES, *OPTIONAL_SCOPES):
        assert f"`{scope}`" in readme, scope


def test_files_are_json_text_ending_in_a_newline() -> None:
    files = project_files(EXAMPLE_URL, EXAMPLE_NAME)
    assert set(files) == {PROJECT_FILE, APP_FILE, ACTION_FILE, README_FILE}
    assert all(text.endswith("\n") for text in files.values())
    # Japanese labels are written as they read, not as \u escapes.
    assert "ウェビナー" in files[ACTION_FILE]


def test_write_project_into_a_new_or_empty_folder(tmp_path: Path) -> None:
    files = project_files(EXAMPLE_URL, EXAMPLE_NAME)
    out = tmp_path / "new" / "project"
    written = write_project(out, files)
    assert sorted(written) == sorted(out / p for p in files)
    for relative, text in files.items():
        assert (out / relative).read_text(encoding="utf-8") == text
    empty = tmp_path / "empty"
    empty.mkdir()
    write_project(empty, files)
    assert (empty / ACTION_FILE).exists()


def test_write_project_refuses_a_non_empty_folder_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / PROJECT_FILE).write_text("old")
    files = project_files(EXAMPLE_URL, EXAMPLE_NAME)
    with pytest.raises(ProjectError, match=r"not empty.*--force"):
        write_project(tmp_path, files)
    assert (tmp_path / PROJECT_FILE).read_text() == "old"
    assert not (tmp_path / ACTION_FILE).exists()
    write_project(tmp_path, files, force=True)
    assert (tmp_path / PROJECT_FILE).read_text() == files[PROJECT_FILE]
    assert (tmp_path / "notes.txt").read_text() == "mine"  # other files are left alone


def test_write_project_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ProjectError, match="not a folder"):
        write_project(target, project_files(EXAMPLE_URL, EXAMPLE_NAME), force=True)


def test_committed_example_equals_a_fresh_rendering() -> None:
    """`hubspot-project/` is rendered with the example values; this fails when the code changes and
    the copy was not rendered again (`zoom-hubspot hubspot-project --out hubspot-project --force
    --public-base-url https://zoom-sync.example.com`)."""
    folder = ROOT / "hubspot-project"
    expected = project_files(EXAMPLE_URL, EXAMPLE_NAME)
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert on_disk == set(expected)
    for relative, text in expected.items():
        assert (folder / relative).read_text(encoding="utf-8") == text, relative


def test_oauth_app_lists_the_callback_and_the_same_scopes() -> None:
    static = render_project("https://sync.example.com/", "p")[APP_FILE]["config"]["auth"]
    oauth = render_project("https://sync.example.com/", "p", auth="oauth")[APP_FILE]["config"]["auth"]
    assert oauth["type"] == "oauth"
    assert oauth["redirectUrls"] == ["https://sync.example.com/oauth/hubspot/callback"]
    assert oauth["requiredScopes"] == static["requiredScopes"]
    assert oauth["optionalScopes"] == static["optionalScopes"]
    readme = project_files("https://sync.example.com", "p", auth="oauth")[README_FILE]
    assert "https://sync.example.com/oauth/hubspot/install" in readme
    assert "HUBSPOT_CLIENT_ID" in readme and "HUBSPOT_AUTH_MODE=oauth" in readme
    assert "APP_SECRET_KEY" in readme
    assert "HUBSPOT_ACCESS_TOKEN" not in readme  # nothing to copy by hand with OAuth
    with pytest.raises(ProjectError, match="auth"):
        render_project("https://sync.example.com", "p", auth="basic")  # type: ignore[arg-type]
