"""`register-action`: the action definition HubSpot gets, created once and updated in place."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.actions.definition import CONTACT_PROPERTIES, action_definition, run_register_action_command
from app.actions.rules import ActionCode
from app.config import Settings
from app.sandbox.hubspot import create_hubspot_sandbox, sandbox_of

TOKEN = "hs-def-token"


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "hubspot_access_token": TOKEN,
        "hubspot_portal_id": 77,
        "hubspot_app_id": "1001",
        "hubspot_api_base_url": "http://hubspot.test",
        "public_base_url": "https://sync.example.com",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def test_definition_shape() -> None:
    body = action_definition("https://sync.example.com/")
    assert body["actionUrl"] == "https://sync.example.com/hubspot/actions/add-to-webinar"
    assert body["objectTypes"] == ["CONTACT"]
    assert body["objectRequestOptions"]["properties"] == CONTACT_PROPERTIES
    [field] = body["inputFields"]
    assert field["typeDefinition"]["name"] == "webinar_id"
    assert set(field["supportedValueTypes"]) == {"STATIC_VALUE", "OBJECT_PROPERTY"}
    outputs = {f["typeDefinition"]["name"] for f in body["outputFields"]}
    assert outputs == {"registrant_id", "join_url", "error_code", "error_message"}
    assert set(body["labels"]) == {"en", "ja"}
    for lang in ("en", "ja"):
        rules = body["labels"][lang]["executionRules"]
        assert {code.value for code in ActionCode} <= set(rules)
    assert body["labels"]["en"]["executionRules"]["host_cannot_register"] == (
        "The webinar host cannot register for the webinar"
    )
    conditions = {r["labelName"]: r["conditions"] for r in body["executionRules"]}
    assert conditions["webinar_not_found"] == {"error_code": "webinar_not_found"}


def test_register_twice_creates_once_then_updates(capsys: pytest.CaptureFixture[str]) -> None:
    app = create_hubspot_sandbox(tokens={TOKEN: 77}, app_id="1001")
    transport = httpx.ASGITransport(app=app)
    assert run_register_action_command(settings(), transport=transport) == 0
    assert "created" in capsys.readouterr().out
    assert run_register_action_command(settings(), transport=transport, published=False) == 0
    assert "updated" in capsys.readouterr().out
    [definition] = sandbox_of(app).action_definitions.values()
    assert definition["revisionId"] == "2" and definition["published"] is False


def test_register_needs_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_register_action_command(settings(hubspot_app_id=None)) == 2
    assert "HUBSPOT_APP_ID" in capsys.readouterr().err


def test_register_reports_a_refusal(capsys: pytest.CaptureFixture[str]) -> None:
    app = create_hubspot_sandbox(tokens={TOKEN: 77}, app_id="999")  # another app id: 404
    assert run_register_action_command(settings(), transport=httpx.ASGITransport(app=app)) == 1
    assert "refused" in capsys.readouterr().err
