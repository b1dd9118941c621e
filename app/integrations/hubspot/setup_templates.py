"""The timeline event templates this service sends events with (CONTRACT §4, MISSION E1-E3), how
their tokens are encoded, and the set-up step that makes them exist for the public app.

`TEMPLATE_TOKENS` / `encode_tokens` are the single source of truth: the dispatcher builds timeline
event tokens with them, so the templates created in HubSpot and the values sent cannot drift apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy.engine import Engine

from app.integrations.hubspot import EventTemplate, EventTemplateToken, HubSpotClient, HubSpotError
from app.integrations.hubspot.setup_report import SECTION_FATAL, ItemKind, ItemStatus, SetupItem, is_conflict
from app.integrations.hubspot.setup_store import app_scope, store_created, store_found, stored_ids

TEMPLATE_REGISTRATION = "Zoom webinar registration"  # E3
TEMPLATE_ATTENDANCE = "Zoom webinar attendance"  # E2
TEMPLATE_RECORDABLE_EVENT = "Zoom: recordable event"  # E1
TEMPLATE_OBJECT_TYPE = "contacts"

TokenType = Literal["string", "number", "date"]


@dataclass(frozen=True)
class TokenSpec:
    """One token of a template: its HubSpot definition and what the sender must put in it.

    HubSpot takes every token value as a string on the wire; `encode_tokens` produces the right
    value from Python data:

    * `string`: text as is.
    * `number`: a decimal number (`decimals` fixes the rounding; 0 means an integer).
    * `date`: the moment as UNIX epoch **milliseconds** (UTC), from an aware `datetime`. HubSpot
      renders it with `{{#formatDate token}}{{/formatDate}}` and filters lists by it as a date.
    """

    name: str
    label: str
    type: TokenType
    sends: str
    decimals: int = 0

    def definition(self) -> EventTemplateToken:
        return EventTemplateToken(name=self.name, label=self.label, type=self.type)


TEMPLATE_TOKENS: Mapping[str, tuple[TokenSpec, ...]] = {
    TEMPLATE_REGISTRATION: (
        TokenSpec(
            "webinar_id",
            "Webinar ID",
            "string",
            "Zoom webinar id as text, e.g. '81234567890' (an id, not a quantity)",
        ),
        TokenSpec("webinar_name", "Webinar name", "string", "the webinar's topic as shown in Zoom"),
    ),
    TEMPLATE_ATTENDANCE: (
        TokenSpec(
            "webinar_id",
            "Webinar ID",
            "string",
            "Zoom webinar id as text, e.g. '81234567890' (an id, not a quantity)",
        ),
        TokenSpec("webinar_name", "Webinar name", "string", "the webinar's topic as shown in Zoom"),
        TokenSpec(
            "webinar_date",
            "Webinar date",
            "date",
            "the webinar's actual start, epoch milliseconds UTC",
        ),
        TokenSpec(
            "join_time",
            "Join time",
            "date",
            "when the contact first joined (clipped to the webinar's start), epoch milliseconds UTC",
        ),
        TokenSpec(
            "leave_time",
            "Leave time",
            "date",
            "when the contact last left (clipped to the webinar's end), epoch milliseconds UTC",
        ),
        TokenSpec(
            "attendance_duration_seconds",
            "Attendance duration (seconds)",
            "number",
            "attended time in whole seconds: length of the union of join-leave intervals",
        ),
        TokenSpec(
            "attendance_percent",
            "Attendance (%, 0-100)",
            "number",
            "100 * attended / the webinar's actual duration, capped at 100, one decimal",
            decimals=1,
        ),
    ),
    TEMPLATE_RECORDABLE_EVENT: (
        TokenSpec("topic", "Topic", "string", "the meeting's or webinar's topic"),
        TokenSpec("start_time", "Start time", "date", "the meeting's start, epoch milliseconds UTC"),
        TokenSpec("recording_url", "Recording URL", "string", "the recording's share/play URL"),
    ),
}

_HEADERS: Mapping[str, str] = {
    TEMPLATE_REGISTRATION: "Registered for Zoom webinar **{{webinar_name}}**",
    TEMPLATE_ATTENDANCE: (
        "Attended Zoom webinar **{{webinar_name}}**"
        "{{#if attendance_percent}} ({{attendance_percent}}% of it){{/if}}"
    ),
    TEMPLATE_RECORDABLE_EVENT: "Zoom recording: **{{topic}}**",
}

_DETAILS: Mapping[str, str] = {
    TEMPLATE_REGISTRATION: (
        "Registered for the Zoom webinar **{{webinar_name}}**.\n\n- Webinar ID: {{webinar_id}}\n"
    ),
    TEMPLATE_ATTENDANCE: (
        "**{{webinar_name}}** (webinar ID {{webinar_id}})\n\n"
        "{{#if webinar_date}}- Webinar date: {{#formatDate webinar_date}}{{/formatDate}}\n{{/if}}"
        "{{#if join_time}}- Joined: {{#formatDate join_time}}{{/formatDate}}\n{{/if}}"
        "{{#if leave_time}}- Left: {{#formatDate leave_time}}{{/formatDate}}\n{{/if}}"
        "- Time attended: {{attendance_duration_seconds}} seconds\n"
        "- Share of the webinar attended: {{attendance_percent}}%\n"
    ),
    TEMPLATE_RECORDABLE_EVENT: (
        "**{{topic}}**\n\n"
        "{{#if start_time}}- Started: {{#formatDate start_time}}{{/formatDate}}\n{{/if}}"
        "{{#if recording_url}}- Recording: [{{recording_url}}]({{recording_url}})\n{{/if}}"
    ),
}

EVENT_TEMPLATES: tuple[EventTemplate, ...] = tuple(
    EventTemplate(
        name=name,
        object_type=TEMPLATE_OBJECT_TYPE,
        header_template=_HEADERS[name],
        detail_template=_DETAILS[name],
        tokens=[spec.definition() for spec in specs],
    )
    for name, specs in TEMPLATE_TOKENS.items()
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _encode_token(template_name: str, spec: TokenSpec, value: object) -> str | int | float:
    where = f"token {spec.name!r} of {template_name!r}"
    if spec.type == "date":
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise TypeError(f"{where} takes an aware datetime, got {value!r}")
        return (value.astimezone(UTC) - _EPOCH) // timedelta(milliseconds=1)
    if spec.type == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{where} takes a number, got {value!r}")
        if spec.decimals == 0:
            return round(value)
        return round(float(value), spec.decimals)
    if not isinstance(value, str):
        raise TypeError(f"{where} takes a string, got {value!r}")
    return value


def encode_tokens(template_name: str, values: Mapping[str, object]) -> dict[str, str | int | float]:
    """The `tokens` of one timeline event of `template_name`, encoded as HubSpot expects.

    `values` maps token names to Python values (str, int/float, aware datetime per `TokenSpec`);
    `None` values are left out (HubSpot then shows the token as unknown). Unknown names raise.
    """
    specs = {spec.name: spec for spec in TEMPLATE_TOKENS[template_name]}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ValueError(f"tokens not defined on {template_name!r}: {', '.join(unknown)}")
    return {
        name: _encode_token(template_name, specs[name], value)
        for name, value in values.items()
        if value is not None
    }


def template_problem(wanted: EventTemplate, existing: EventTemplate) -> str | None:
    """Why an existing template cannot take this service's events, or None when it can."""
    reasons: list[str] = []
    if existing.object_type != wanted.object_type:
        reasons.append(f"it is for {existing.object_type!r}, not {wanted.object_type!r}")
    have = {token.name: token.type for token in existing.tokens}
    missing = [token.name for token in wanted.tokens if token.name not in have]
    if missing:
        reasons.append("tokens missing: " + ", ".join(missing))
    wrong = [
        f"{token.name} is {have[token.name]!r} (needs {token.type!r})"
        for token in wanted.tokens
        if token.name in have and have[token.name] != token.type
    ]
    if wrong:
        reasons.append("token types differ: " + "; ".join(wrong))
    if not reasons:
        return None
    return "exists but " + "; ".join(reasons) + ". Fix the template in the app's settings."


def _pick(
    candidates: Sequence[tuple[str, EventTemplate]], preferred: str | None
) -> tuple[str, EventTemplate]:
    """Among templates sharing a name, the one already in use, else the oldest (lowest id)."""
    for template_id, template in candidates:
        if template_id == preferred:
            return template_id, template
    return min(candidates, key=lambda candidate: (len(candidate[0]), candidate[0]))


def _named(templates: Sequence[EventTemplate], name: str) -> list[tuple[str, EventTemplate]]:
    """The templates listed under `name`, each with its id (one without an id cannot be used)."""
    return [(t.id, t) for t in templates if t.name == name and t.id]


async def _ensure_template(
    client: HubSpotClient,
    engine: Engine,
    app_id: str,
    wanted: EventTemplate,
    listed: Sequence[EventTemplate],
    stored_id: str | None,
) -> SetupItem:
    """One template: use the one HubSpot lists under the name, else create it. Section-fatal
    HubSpot errors propagate; the others become a problem entry."""
    scope = app_scope(app_id)
    kind = ItemKind.EVENT_TEMPLATE
    candidates = _named(listed, wanted.name)
    if not candidates:
        try:
            created = await client.create_event_template(app_id, wanted)
        except HubSpotError as exc:
            if isinstance(exc, SECTION_FATAL) or not is_conflict(exc):
                raise
            # HubSpot refused a second template of that name: a concurrent run created it.
            candidates = _named(await client.list_event_templates(app_id), wanted.name)
            if not candidates:
                raise
        else:
            if not created.id:
                why = "HubSpot returned no template id"
                return SetupItem(kind, wanted.name, ItemStatus.PROBLEM, detail=why)
            # HubSpot lists nothing under that name, so any id stored for it is stale.
            in_use = await asyncio.to_thread(store_created, engine, scope, wanted.name, created.id, stored_id)
            note = None
            if in_use != created.id:
                note = (
                    f"a concurrent set-up created this template too; using id {in_use}, "
                    f"template {created.id} is an unused duplicate (safe to delete)"
                )
            return SetupItem(kind, wanted.name, ItemStatus.CREATED, in_use, note)
    chosen_id, chosen = _pick(candidates, stored_id)
    problem = template_problem(wanted, chosen)
    if problem is not None:
        return SetupItem(kind, wanted.name, ItemStatus.PROBLEM, chosen_id, problem)
    await asyncio.to_thread(store_found, engine, scope, wanted.name, chosen_id)
    detail = None
    if len(candidates) > 1:
        others = ", ".join(sorted(template_id for template_id, _ in candidates if template_id != chosen_id))
        detail = f"{len(candidates)} templates share this name; using {chosen_id}, unused: {others}"
    return SetupItem(kind, wanted.name, ItemStatus.FOUND, chosen_id, detail)


async def ensure_templates(client: HubSpotClient, engine: Engine, app_id: str) -> list[SetupItem]:
    kind = ItemKind.EVENT_TEMPLATE
    try:
        listed = await client.list_event_templates(app_id)
    except HubSpotError as exc:
        detail = f"cannot list the event templates of app {app_id}: {exc}"
        return [SetupItem(kind, t.name, ItemStatus.PROBLEM, detail=detail) for t in EVENT_TEMPLATES]
    stored = await asyncio.to_thread(stored_ids, engine, app_scope(app_id))
    items: list[SetupItem] = []
    fatal: HubSpotError | None = None
    for wanted in EVENT_TEMPLATES:
        if fatal is not None:
            items.append(SetupItem(kind, wanted.name, ItemStatus.PROBLEM, detail=f"not checked: {fatal}"))
            continue
        try:
            item = await _ensure_template(client, engine, app_id, wanted, listed, stored.get(wanted.name))
        except HubSpotError as exc:
            if isinstance(exc, SECTION_FATAL) or refused_for_new_app(exc, listed):
                fatal = exc
            status = ItemStatus.REFUSED if refused_for_new_app(exc, listed) else ItemStatus.PROBLEM
            item = SetupItem(kind, wanted.name, status, detail=str(exc))
        items.append(item)
    if fatal is not None and refused_for_new_app(fatal, listed):
        # Not one template could be made: the rest were not tried, and are refused the same way.
        items = [
            SetupItem(kind, item.name, ItemStatus.REFUSED, detail=item.detail)
            if item.status is ItemStatus.PROBLEM
            else item
            for item in items
        ]
    return items


def refused_for_new_app(exc: HubSpotError, listed: Sequence[EventTemplate]) -> bool:
    """HubSpot refusing a template create (403, or 400) for an app that lists none: classic v3
    templates are closed to apps that never had any ("requests to this endpoint will fail")."""
    return not listed and exc.status in (400, 403)
