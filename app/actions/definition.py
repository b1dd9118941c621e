"""The workflow action's definition at HubSpot (`/automation/v4/actions/{appId}`), built from settings.

Registered or updated by `zoom-hubspot register-action`: an existing definition with the same
action URL is updated in place (PATCH), so running the command twice never makes two actions.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import httpx

from app.actions.rules import ActionCode
from app.config import Settings
from app.integrations.hubspot import HubSpotClient, HubSpotError
from app.integrations.hubspot.rate_limit import InProcessRateLimiter

ACTION_PATH = "/hubspot/actions/add-to-webinar"
CONTACT_PROPERTIES = ["email", "firstname", "lastname", "hs_all_assigned_business_unit_ids"]
OUTPUT_FIELDS = ("registrant_id", "join_url", "error_code", "error_message")

_EN_RULES = {
    ActionCode.INVALID_WEBINAR_ID: "The webinar ID is not valid: use digits only (spaces and dashes are removed).",
    ActionCode.WEBINAR_NOT_FOUND: "The Zoom webinar was not found or has expired.",
    ActionCode.REGISTRATION_NOT_ENABLED: "Registration is not enabled for this Zoom webinar.",
    ActionCode.EXTRA_REQUIRED_FIELDS: "The webinar's registration form requires more than first name, last name "
    "and email: {{error_message}}",
    ActionCode.HOST_CANNOT_REGISTER: "The webinar host cannot register for the webinar",
    ActionCode.NOT_PRIMARY_BUSINESS_UNIT: "Only contacts of the primary business unit can be registered.",
    ActionCode.MISSING_CONTACT_FIELDS: "The contact is missing required fields: {{error_message}}",
    ActionCode.SYNC_DISABLED: "Zoom sync is turned off for this HubSpot account.",
    ActionCode.ZOOM_ERROR: "Zoom refused the registration: {{error_message}}",
}
_JA_RULES = {
    ActionCode.INVALID_WEBINAR_ID: "ウェビナーIDが正しくありません（数字のみ。スペースとハイフンは除去されます）。",
    ActionCode.WEBINAR_NOT_FOUND: "Zoomウェビナーが見つからないか、期限切れです。",
    ActionCode.REGISTRATION_NOT_ENABLED: "このZoomウェビナーでは登録が有効になっていません。",
    ActionCode.EXTRA_REQUIRED_FIELDS: "登録フォームに名・姓・メールアドレス以外の必須項目があります: {{error_message}}",
    ActionCode.HOST_CANNOT_REGISTER: "ウェビナーのホストはウェビナーに登録できません",
    ActionCode.NOT_PRIMARY_BUSINESS_UNIT: "登録できるのはメインのビジネスユニットのコンタクトのみです。",
    ActionCode.MISSING_CONTACT_FIELDS: "コンタクトに必須項目がありません: {{error_message}}",
    ActionCode.SYNC_DISABLED: "このHubSpotアカウントではZoom同期がオフになっています。",
    ActionCode.ZOOM_ERROR: "Zoomが登録を拒否しました: {{error_message}}",
}


def _labels(lang: str) -> dict[str, Any]:
    en = lang == "en"
    rules = _EN_RULES if en else _JA_RULES
    execution_rules = {code.value: text for code, text in rules.items()}
    execution_rules["success"] = (
        "Registered for the Zoom webinar." if en else "Zoomウェビナーに登録しました。"
    )
    return {
        "actionName": "Add contact to Zoom webinar" if en else "コンタクトをZoomウェビナーに追加",
        "actionDescription": (
            "Registers the enrolled contact (first name, last name, email) for a Zoom webinar."
            if en
            else "登録されたコンタクト（名・姓・メールアドレス）をZoomウェビナーに登録します。"
        ),
        "appDisplayName": "Zoom webinars",
        "actionCardContent": "Webinar {{webinar_id}}" if en else "ウェビナー {{webinar_id}}",
        "inputFieldLabels": {"webinar_id": "Zoom webinar ID" if en else "ZoomウェビナーID"},
        "inputFieldDescriptions": {
            "webinar_id": (
                "The webinar ID (digits; spaces and dashes allowed), or a contact property holding it."
                if en
                else "ウェビナーID（数字。スペースとハイフン可）、またはそれを持つコンタクトプロパティ。"
            )
        },
        "outputFieldLabels": {
            "registrant_id": "Zoom registrant ID" if en else "Zoom登録者ID",
            "join_url": "Zoom join URL" if en else "Zoom参加URL",
            "error_code": "Error code" if en else "エラーコード",
            "error_message": "Error message" if en else "エラーメッセージ",
        },
        "executionRules": execution_rules,
    }


def action_url(public_base_url: str) -> str:
    return public_base_url.rstrip("/") + ACTION_PATH


# The pieces below are shared by the v4 definition body (legacy public apps, `register-action`) and the
# `workflow-action` component of the 2026.03 project (`app/actions/hubspot_project.py`), so the two can
# never describe different actions.


def input_fields() -> list[dict[str, Any]]:
    return [
        {
            "typeDefinition": {"name": "webinar_id", "type": "string", "fieldType": "text", "options": []},
            "supportedValueTypes": ["STATIC_VALUE", "OBJECT_PROPERTY"],
            "isRequired": True,
        }
    ]


def output_fields() -> list[dict[str, Any]]:
    return [
        {"typeDefinition": {"name": name, "type": "string", "fieldType": "text", "options": []}}
        for name in OUTPUT_FIELDS
    ]


def execution_rules() -> list[dict[str, Any]]:
    """Every failure code has an execution rule so workflow history shows why."""
    rules: list[dict[str, Any]] = [
        {"labelName": code.value, "conditions": {"error_code": code.value}} for code in ActionCode
    ]
    rules.append({"labelName": "success", "conditions": {"hs_execution_state": "SUCCESS"}})
    return rules


def action_labels() -> dict[str, dict[str, Any]]:
    return {"en": _labels("en"), "ja": _labels("ja")}


def action_definition(public_base_url: str, *, published: bool = True) -> dict[str, Any]:
    """The v4 definition body."""
    return {
        "actionUrl": action_url(public_base_url),
        "published": published,
        "objectTypes": ["CONTACT"],
        "objectRequestOptions": {"properties": list(CONTACT_PROPERTIES)},
        "inputFields": input_fields(),
        "outputFields": output_fields(),
        "labels": action_labels(),
        "executionRules": execution_rules(),
        "functions": [],
    }


async def register_action(
    client: HubSpotClient,
    app_id: str,
    public_base_url: str,
    *,
    hapikey: str | None = None,
    published: bool = True,
) -> tuple[str, bool]:
    """Create the definition, or update the one already pointing at this action URL.

    Returns (definition id, created).
    """
    definition = action_definition(public_base_url, published=published)
    existing = await client.list_action_definitions(app_id, hapikey=hapikey)
    for found in existing:
        if found.get("actionUrl") == definition["actionUrl"] and found.get("id"):
            await client.update_action_definition(app_id, str(found["id"]), definition, hapikey=hapikey)
            return str(found["id"]), False
    created = await client.create_action_definition(app_id, definition, hapikey=hapikey)
    return str(created.get("id", "")), True


def run_register_action_command(
    settings: Settings, *, published: bool = True, transport: httpx.AsyncBaseTransport | None = None
) -> int:
    """`zoom-hubspot register-action`: 0 registered, 1 HubSpot refused, 2 configuration missing."""
    app_id, access_token = settings.hubspot_app_id, settings.hubspot_access_token
    missing = [
        name
        for name, value in (
            ("HUBSPOT_APP_ID", app_id),
            ("HUBSPOT_ACCESS_TOKEN", access_token),
            ("HUBSPOT_PORTAL_ID", settings.hubspot_portal_id),
        )
        if not value
    ]
    # A None is in `missing` already; the two checks tell the type checker what the list cannot.
    if missing or app_id is None or access_token is None:
        print("error: set " + ", ".join(missing), file=sys.stderr)
        return 2
    if settings.public_base_url.startswith(("http://127.", "http://localhost")):
        print(
            f"warning: PUBLIC_BASE_URL is {settings.public_base_url}: HubSpot cannot reach that address",
            file=sys.stderr,
        )
    token = access_token.get_secret_value()
    hapikey = (
        settings.hubspot_developer_api_key.get_secret_value() if settings.hubspot_developer_api_key else None
    )

    async def run() -> tuple[str, bool]:
        async with httpx.AsyncClient(transport=transport, timeout=30.0) as http:
            client = HubSpotClient(
                http,
                base_url=settings.hubspot_api_base_url,
                access_token=token,
                portal_id=settings.hubspot_portal_id or 0,
                rate_limiter=InProcessRateLimiter(settings.hubspot_rate_limit_per_10s),
            )
            return await register_action(
                client,
                app_id,
                settings.public_base_url,
                hapikey=hapikey,
                published=published,
            )

    try:
        definition_id, created = asyncio.run(run())
    except HubSpotError as exc:
        print(f"error: HubSpot refused the action definition: {exc}", file=sys.stderr)
        return 1
    verb = "created" if created else "updated"
    print(f"workflow action {verb}: definition {definition_id}, URL {settings.public_base_url}{ACTION_PATH}")
    return 0
