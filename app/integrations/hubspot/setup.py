"""What this service needs in HubSpot (CONTRACT §4), and the set-up step that makes it exist.

The constants here are the single source of truth for the contact properties and the timeline
event templates: the dispatcher writes property values under `PROPERTY_*` names and builds timeline
event tokens with `TEMPLATE_TOKENS` / `encode_tokens`, so the definitions created in HubSpot and
the values sent to them cannot drift apart.

`ensure_hubspot_setup` looks every item up by name first and creates only what is missing. It never
modifies or deletes anything that exists in HubSpot: an existing item that does not fit (a property
of another type, a template without a token we send) is reported as a problem for an admin to fix.
The ids of what is usable are kept in `hubspot_setup_item`:

* scope `"portal:<portalId>"`: the property group and the four properties. HubSpot identifies
  those by name, so `external_id` is the name itself; the row records that the item was checked.
* scope `"app:<appId>"`: the timeline event templates (they belong to the public app, not to a
  portal); `external_id` is HubSpot's template id, which timeline events must name.

Several processes may run the set-up at the same moment (API replicas starting together). HubSpot
refuses a second property group or property of the same name (409), which is read as "found". Writes
to `hubspot_setup_item` are single INSERT … ON CONFLICT statements; a template id is only replaced
when the stored one is stale, so concurrent runs agree on one id even if HubSpot accepted two
templates of the same name (the unused one is reported).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

import httpx
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.engine import Engine

from app.config import Settings
from app.db import dialect_insert, make_engine, unit_of_work, utcnow
from app.integrations.hubspot import (
    EventTemplate,
    EventTemplateToken,
    HubSpotAuthError,
    HubSpotClient,
    HubSpotError,
    HubSpotRateLimited,
    HubSpotServerError,
    HubSpotUnavailable,
    PropertyDefinition,
    PropertyGroup,
)
from app.integrations.shared_rate_limit import DatabaseRateLimiter
from app.migrations import schema_problem
from app.models import HubSpotSetupItem

__all__ = [
    "CONTACT_PROPERTIES",
    "EVENT_TEMPLATES",
    "PROPERTY_ATTENDANCE_COUNT",
    "PROPERTY_AVERAGE_ATTENDANCE_PERCENT",
    "PROPERTY_GROUP",
    "PROPERTY_GROUP_LABEL",
    "PROPERTY_LAST_REGISTERED_WEBINAR_URL",
    "PROPERTY_REGISTRATION_COUNT",
    "TEMPLATE_ATTENDANCE",
    "TEMPLATE_OBJECT_TYPE",
    "TEMPLATE_RECORDABLE_EVENT",
    "TEMPLATE_REGISTRATION",
    "TEMPLATE_TOKENS",
    "ItemKind",
    "ItemStatus",
    "SetupItem",
    "SetupReport",
    "TokenSpec",
    "app_scope",
    "encode_tokens",
    "ensure_hubspot_setup",
    "missing_settings",
    "portal_scope",
    "property_problem",
    "run_setup_command",
    "setup_from_settings",
    "stored_template_ids",
    "template_problem",
]

# --------------------------------------------------------------------------------------------------
# Contact properties (CONTRACT §4, MISSION P1-P4)
# --------------------------------------------------------------------------------------------------

PROPERTY_GROUP = "zoom_webinars"
PROPERTY_GROUP_LABEL = "Zoom webinars"

PROPERTY_AVERAGE_ATTENDANCE_PERCENT = "zoom_webinar_average_attendance_percent"  # P1
PROPERTY_LAST_REGISTERED_WEBINAR_URL = "zoom_last_registered_webinar_url"  # P2
PROPERTY_REGISTRATION_COUNT = "zoom_webinar_registration_count"  # P3
PROPERTY_ATTENDANCE_COUNT = "zoom_webinar_attendance_count"  # P4

PROPERTY_GROUP_DEFINITION = PropertyGroup(name=PROPERTY_GROUP, label=PROPERTY_GROUP_LABEL)

# The average is written as a number from 0 to 100 with one decimal (87.5 means 87.5 %), as the
# contract fixes. HubSpot's `numberDisplayHint: "percentage"` is meant for fractions (0.875 shows as
# 87.5 %), so with it our values would show a hundred times too large. "unformatted" shows the value
# as written; the label and description carry the unit instead.
CONTACT_PROPERTIES: tuple[PropertyDefinition, ...] = (
    PropertyDefinition(
        name=PROPERTY_AVERAGE_ATTENDANCE_PERCENT,
        label="Zoom webinar average attendance (%, 0-100)",
        description=(
            "Average share of each Zoom webinar this contact attended, in percent from 0 to 100 "
            "(100 = present from the webinar's start to its end). Per webinar: time attended "
            "÷ the webinar's actual duration, capped at 100; averaged over the webinars attended."
        ),
        type="number",
        field_type="number",
        group_name=PROPERTY_GROUP,
        number_display_hint="unformatted",
        display_order=1,
    ),
    PropertyDefinition(
        name=PROPERTY_LAST_REGISTERED_WEBINAR_URL,
        label="Last registered Zoom webinar",
        description=(
            "URL of the Zoom webinar this contact most recently registered for (its registration "
            "page, else its join link), whether added by hand in Zoom or by a HubSpot workflow."
        ),
        type="string",
        field_type="text",
        group_name=PROPERTY_GROUP,
        display_order=2,
    ),
    PropertyDefinition(
        name=PROPERTY_REGISTRATION_COUNT,
        label="Total Zoom webinar registrations",
        description=(
            "Number of distinct Zoom webinars this contact registered for "
            "(registrations that were cancelled or denied are not counted)."
        ),
        type="number",
        field_type="number",
        group_name=PROPERTY_GROUP,
        number_display_hint="formatted",
        display_order=3,
    ),
    PropertyDefinition(
        name=PROPERTY_ATTENDANCE_COUNT,
        label="Total Zoom webinar attendances",
        description="Number of distinct Zoom webinars this contact attended.",
        type="number",
        field_type="number",
        group_name=PROPERTY_GROUP,
        number_display_hint="formatted",
        display_order=4,
    ),
)

# Field types under which an existing property of the right type can still take our values.
# Anything else (e.g. a calculated property, `calculation_equation`) is read-only or would show
# the values wrongly, so it is reported rather than used.
_COMPATIBLE_FIELD_TYPES: Mapping[str, frozenset[str]] = {
    "number": frozenset({"number"}),
    "string": frozenset({"text", "textarea"}),
}

# --------------------------------------------------------------------------------------------------
# Timeline event templates (CONTRACT §4, MISSION E1-E3)
# --------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------------


class ItemKind(StrEnum):
    PROPERTY_GROUP = "property group"
    CONTACT_PROPERTY = "contact property"
    EVENT_TEMPLATE = "timeline event template"


class ItemStatus(StrEnum):
    CREATED = "created"
    FOUND = "found"  # already there, usable as is
    PROBLEM = "problem"  # exists but does not fit, or could not be checked/created
    SKIPPED = "skipped"  # not attempted (e.g. no app id for templates)


@dataclass(frozen=True)
class SetupItem:
    kind: ItemKind
    name: str
    status: ItemStatus
    external_id: str | None = None  # template id; for groups and properties their name
    detail: str | None = None


@dataclass
class SetupReport:
    portal_id: int
    app_id: str | None
    items: list[SetupItem] = field(default_factory=list)

    def _with(self, status: ItemStatus) -> list[SetupItem]:
        return [item for item in self.items if item.status is status]

    @property
    def created(self) -> list[SetupItem]:
        return self._with(ItemStatus.CREATED)

    @property
    def found(self) -> list[SetupItem]:
        return self._with(ItemStatus.FOUND)

    @property
    def problems(self) -> list[SetupItem]:
        return self._with(ItemStatus.PROBLEM)

    @property
    def skipped(self) -> list[SetupItem]:
        return self._with(ItemStatus.SKIPPED)

    @property
    def ok(self) -> bool:
        """No problems. Skipped templates (no app id) are not a problem of the set-up itself."""
        return not self.problems

    @property
    def templates_skipped(self) -> bool:
        return any(item.kind is ItemKind.EVENT_TEMPLATE for item in self.skipped)

    @property
    def template_ids(self) -> dict[str, str]:
        """Usable templates of this run: name → HubSpot template id."""
        return {
            item.name: item.external_id
            for item in self.items
            if item.kind is ItemKind.EVENT_TEMPLATE
            and item.status in (ItemStatus.CREATED, ItemStatus.FOUND)
            and item.external_id is not None
        }

    def render(self) -> str:
        """A readable summary for operators (the `setup` command prints it)."""
        app = self.app_id if self.app_id is not None else "not set"
        lines = [f"HubSpot set-up for portal {self.portal_id} (app id: {app})"]
        sections = (
            ("Created", self.created),
            ("Already there", self.found),
            ("Skipped", self.skipped),
            ("Problems", self.problems),
        )
        for title, items in sections:
            if not items and title in ("Skipped", "Problems"):
                continue
            lines.append(f"{title} ({len(items)}):")
            if not items:
                lines.append("  (none)")
            for item in items:
                ident = (
                    f" [id {item.external_id}]"
                    if item.kind is ItemKind.EVENT_TEMPLATE and item.external_id
                    else ""
                )
                lines.append(f"  - {item.kind.value}: {item.name}{ident}")
                if item.detail:
                    lines.append(f"      {item.detail}")
        lines.append("Result: " + ("OK" if self.ok else f"{len(self.problems)} problem(s) to fix in HubSpot"))
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Stored ids
# --------------------------------------------------------------------------------------------------


def portal_scope(portal_id: int) -> str:
    return f"portal:{portal_id}"


def app_scope(app_id: str) -> str:
    return f"app:{app_id}"


_TABLE: Any = HubSpotSetupItem.__table__  # type: ignore[attr-defined]


def _stored_ids(engine: Engine, scope: str) -> dict[str, str]:
    with unit_of_work(engine) as session:
        rows = session.execute(
            select(_TABLE.c.name, _TABLE.c.external_id).where(_TABLE.c.scope == scope)
        ).all()
    return {name: external_id for name, external_id in rows}


def stored_template_ids(engine: Engine, app_id: str) -> dict[str, str]:
    """Template name → HubSpot template id, as recorded by the set-up for `app_id`."""
    return _stored_ids(engine, app_scope(app_id))


def _store_found(engine: Engine, scope: str, name: str, external_id: str) -> None:
    """Record what HubSpot has now: insert, or correct a stored id that differs."""
    stmt = dialect_insert(engine, _TABLE).values(
        scope=scope, name=name, external_id=external_id, created_at=utcnow()
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["scope", "name"],
        set_={"external_id": stmt.excluded.external_id},
        where=_TABLE.c.external_id != stmt.excluded.external_id,
    )
    with unit_of_work(engine) as session:
        session.execute(stmt)


def _store_created(engine: Engine, scope: str, name: str, external_id: str, stale: str | None) -> str:
    """Record a template this run created, unless a concurrent run recorded its own first.

    `stale` is the id stored before the run that HubSpot no longer lists under `name`: only that
    value is replaced. Returns the id now stored, the one every process will use.
    """
    stmt = dialect_insert(engine, _TABLE).values(
        scope=scope, name=name, external_id=external_id, created_at=utcnow()
    )
    if stale is None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["scope", "name"])
    else:
        stmt = stmt.on_conflict_do_update(
            index_elements=["scope", "name"],
            set_={"external_id": stmt.excluded.external_id, "created_at": stmt.excluded.created_at},
            where=_TABLE.c.external_id == stale,
        )
    with unit_of_work(engine) as session:
        session.execute(stmt)
        stored = session.execute(
            select(_TABLE.c.external_id).where(_TABLE.c.scope == scope, _TABLE.c.name == name)
        ).scalar_one()
    return str(stored)


# --------------------------------------------------------------------------------------------------
# The set-up
# --------------------------------------------------------------------------------------------------

# Errors that concern HubSpot or the connection as a whole, not one item: the rest of the section
# would fail the same way, so it stops after one problem entry.
_SECTION_FATAL = (HubSpotAuthError, HubSpotUnavailable, HubSpotServerError, HubSpotRateLimited)


def _is_conflict(exc: HubSpotError) -> bool:
    return exc.status == 409


def property_problem(wanted: PropertyDefinition, existing: PropertyDefinition) -> str | None:
    """Why an existing property cannot hold this service's values, or None when it can."""
    allowed = _COMPATIBLE_FIELD_TYPES.get(wanted.type, frozenset({wanted.field_type}))
    if existing.type != wanted.type or existing.field_type not in allowed:
        return (
            f"exists with type {existing.type!r} / fieldType {existing.field_type!r}; this service "
            f"writes type {wanted.type!r} (fieldType {' or '.join(sorted(allowed))!r}). "
            "Rename or delete that property in HubSpot, then run the set-up again."
        )
    return None


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


async def _ensure_group(client: HubSpotClient, engine: Engine, scope: str) -> SetupItem:
    wanted = PROPERTY_GROUP_DEFINITION
    status = ItemStatus.FOUND
    existing = await client.get_property_group(wanted.name)
    if existing is None:
        try:
            await client.create_property_group(wanted)
            status = ItemStatus.CREATED
        except HubSpotError as exc:
            if not _is_conflict(exc):
                raise
            # Created by a concurrent run between our look-up and our create.
            if await client.get_property_group(wanted.name) is None:
                raise
    detail = None
    if existing is not None and existing.label != wanted.label:
        detail = f"label is {existing.label!r} (left as is)"
    await asyncio.to_thread(_store_found, engine, scope, wanted.name, wanted.name)
    return SetupItem(ItemKind.PROPERTY_GROUP, wanted.name, status, wanted.name, detail)


async def _ensure_property(
    client: HubSpotClient, engine: Engine, scope: str, wanted: PropertyDefinition
) -> SetupItem:
    status = ItemStatus.FOUND
    existing = await client.get_contact_property(wanted.name)
    if existing is None:
        try:
            await client.create_contact_property(wanted)
            status = ItemStatus.CREATED
        except HubSpotError as exc:
            if not _is_conflict(exc):
                raise
            existing = await client.get_contact_property(wanted.name)
            if existing is None:
                raise
    detail = None
    if existing is not None:
        problem = property_problem(wanted, existing)
        if problem is not None:
            return SetupItem(ItemKind.CONTACT_PROPERTY, wanted.name, ItemStatus.PROBLEM, None, problem)
        if existing.group_name != wanted.group_name:
            detail = f"in group {existing.group_name!r}, not {wanted.group_name!r} (left as is)"
    await asyncio.to_thread(_store_found, engine, scope, wanted.name, wanted.name)
    return SetupItem(ItemKind.CONTACT_PROPERTY, wanted.name, status, wanted.name, detail)


async def _ensure_portal_items(client: HubSpotClient, engine: Engine, portal_id: int) -> list[SetupItem]:
    scope = portal_scope(portal_id)
    items: list[SetupItem] = []
    pending = [PROPERTY_GROUP, *(p.name for p in CONTACT_PROPERTIES)]
    try:
        try:
            group = await _ensure_group(client, engine, scope)
        except HubSpotError as exc:
            if isinstance(exc, _SECTION_FATAL):
                raise
            group = SetupItem(ItemKind.PROPERTY_GROUP, PROPERTY_GROUP, ItemStatus.PROBLEM, detail=str(exc))
        items.append(group)
        pending.remove(PROPERTY_GROUP)
        for wanted in CONTACT_PROPERTIES:
            if group.status is ItemStatus.PROBLEM:
                item = SetupItem(
                    ItemKind.CONTACT_PROPERTY,
                    wanted.name,
                    ItemStatus.SKIPPED,
                    detail=f"property group {PROPERTY_GROUP!r} is not available",
                )
            else:
                try:
                    item = await _ensure_property(client, engine, scope, wanted)
                except HubSpotError as exc:
                    if isinstance(exc, _SECTION_FATAL):
                        raise
                    item = SetupItem(
                        ItemKind.CONTACT_PROPERTY, wanted.name, ItemStatus.PROBLEM, detail=str(exc)
                    )
            items.append(item)
            pending.remove(wanted.name)
    except _SECTION_FATAL as exc:
        for name in pending:
            kind = ItemKind.PROPERTY_GROUP if name == PROPERTY_GROUP else ItemKind.CONTACT_PROPERTY
            items.append(SetupItem(kind, name, ItemStatus.PROBLEM, detail=f"not checked: {exc}"))
    return items


def _pick(candidates: Sequence[EventTemplate], preferred: str | None) -> EventTemplate:
    """Among templates sharing a name, the one already in use, else the oldest (lowest id)."""
    for template in candidates:
        if template.id == preferred:
            return template
    return min(candidates, key=lambda t: (len(t.id or ""), t.id or ""))


def _named(templates: Sequence[EventTemplate], name: str) -> list[EventTemplate]:
    return [t for t in templates if t.name == name and t.id]


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
            if isinstance(exc, _SECTION_FATAL) or not _is_conflict(exc):
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
            in_use = await asyncio.to_thread(
                _store_created, engine, scope, wanted.name, created.id, stored_id
            )
            note = None
            if in_use != created.id:
                note = (
                    f"a concurrent set-up created this template too; using id {in_use}, "
                    f"template {created.id} is an unused duplicate (safe to delete)"
                )
            return SetupItem(kind, wanted.name, ItemStatus.CREATED, in_use, note)
    chosen = _pick(candidates, stored_id)
    assert chosen.id is not None
    problem = template_problem(wanted, chosen)
    if problem is not None:
        return SetupItem(kind, wanted.name, ItemStatus.PROBLEM, chosen.id, problem)
    await asyncio.to_thread(_store_found, engine, scope, wanted.name, chosen.id)
    detail = None
    if len(candidates) > 1:
        others = ", ".join(sorted(t.id or "" for t in candidates if t.id != chosen.id))
        detail = f"{len(candidates)} templates share this name; using {chosen.id}, unused: {others}"
    return SetupItem(kind, wanted.name, ItemStatus.FOUND, chosen.id, detail)


async def _ensure_templates(client: HubSpotClient, engine: Engine, app_id: str) -> list[SetupItem]:
    kind = ItemKind.EVENT_TEMPLATE
    try:
        listed = await client.list_event_templates(app_id)
    except HubSpotError as exc:
        detail = f"cannot list the event templates of app {app_id}: {exc}"
        return [SetupItem(kind, t.name, ItemStatus.PROBLEM, detail=detail) for t in EVENT_TEMPLATES]
    stored = await asyncio.to_thread(_stored_ids, engine, app_scope(app_id))
    items: list[SetupItem] = []
    fatal: HubSpotError | None = None
    for wanted in EVENT_TEMPLATES:
        if fatal is not None:
            items.append(SetupItem(kind, wanted.name, ItemStatus.PROBLEM, detail=f"not checked: {fatal}"))
            continue
        try:
            item = await _ensure_template(client, engine, app_id, wanted, listed, stored.get(wanted.name))
        except HubSpotError as exc:
            if isinstance(exc, _SECTION_FATAL):
                fatal = exc
            item = SetupItem(kind, wanted.name, ItemStatus.PROBLEM, detail=str(exc))
        items.append(item)
    return items


async def ensure_hubspot_setup(
    client: HubSpotClient, engine: Engine, *, portal_id: int, app_id: str | None
) -> SetupReport:
    """Make sure the property group, the contact properties and (with an app id) the timeline event
    templates exist; create only what is missing and record the ids. Idempotent and safe to run from
    several processes at once.

    HubSpot failures never escape: they become report entries (`ItemStatus.PROBLEM`), as does an
    existing item that does not fit, which is never modified. Without `app_id` the templates are
    `SKIPPED`: timeline events then cannot be sent. Database errors do propagate.
    """
    report = SetupReport(portal_id=portal_id, app_id=app_id)
    report.items.extend(await _ensure_portal_items(client, engine, portal_id))
    if app_id is None or not str(app_id).strip():
        detail = (
            "no HubSpot app id (HUBSPOT_APP_ID): the timeline event templates cannot be set up, "
            "so timeline events cannot be sent"
        )
        report.items.extend(
            SetupItem(ItemKind.EVENT_TEMPLATE, t.name, ItemStatus.SKIPPED, detail=detail)
            for t in EVENT_TEMPLATES
        )
    else:
        report.items.extend(await _ensure_templates(client, engine, str(app_id).strip()))
    return report


# --------------------------------------------------------------------------------------------------
# The `setup` command (wired in app.cli)
# --------------------------------------------------------------------------------------------------

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_CONFIG = 2


def missing_settings(settings: Settings) -> list[str]:
    """One line per required variable that is not set."""
    missing: list[str] = []
    token = settings.hubspot_access_token
    if token is None or not token.get_secret_value().strip():
        missing.append(
            "HUBSPOT_ACCESS_TOKEN is not set: the set-up needs the portal's bearer token "
            "(private app or OAuth access token)"
        )
    if settings.hubspot_portal_id is None:
        missing.append("HUBSPOT_PORTAL_ID is not set: the set-up needs the id of the HubSpot account")
    return missing


def _load_settings() -> Settings | list[str]:
    try:
        return Settings()
    except ValidationError as exc:
        return [
            f"{'.'.join(str(part) for part in error['loc']).upper()} is invalid: {error['msg']}"
            for error in exc.errors()
        ]


async def setup_from_settings(settings: Settings, engine: Engine) -> SetupReport:
    """Run `ensure_hubspot_setup` for the env-configured portal, with a real HTTP client."""
    assert settings.hubspot_access_token is not None and settings.hubspot_portal_id is not None
    portal_id = settings.hubspot_portal_id
    limiter = DatabaseRateLimiter(engine, settings.hubspot_rate_limit_per_10s)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0)) as http:
        client = HubSpotClient(
            http,
            base_url=settings.hubspot_api_base_url,
            access_token=settings.hubspot_access_token.get_secret_value(),
            portal_id=portal_id,
            rate_limiter=limiter,
        )
        return await ensure_hubspot_setup(client, engine, portal_id=portal_id, app_id=settings.hubspot_app_id)


def run_setup_command(settings: Settings | None = None) -> int:
    """`python -m app.cli setup`: check the configuration and the schema (nothing is migrated),
    set HubSpot up, print the summary. Returns the exit code: 0 all usable, 1 problems, 2 the
    configuration or the database schema is not ready."""
    loaded = settings if settings is not None else _load_settings()
    if isinstance(loaded, list):
        for line in loaded:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_CONFIG
    settings = loaded
    missing = missing_settings(settings)
    if missing:
        for line in missing:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_CONFIG
    engine = make_engine(settings.database_url, pool_size=2)
    try:
        problem = schema_problem(engine)
        if problem is not None:
            print(f"error: {problem}", file=sys.stderr)
            return EXIT_CONFIG
        try:
            report = asyncio.run(setup_from_settings(settings, engine))
        except HubSpotError as exc:  # ensure_hubspot_setup reports these; kept as a safety net
            print(f"error: HubSpot set-up failed: {exc}", file=sys.stderr)
            return EXIT_PROBLEMS
    finally:
        engine.dispose()
    print(report.render())
    if report.templates_skipped:
        print(
            "warning: HUBSPOT_APP_ID is not set, so no timeline event templates: timeline events "
            "(registration, attendance, recordings) cannot be sent.",
            file=sys.stderr,
        )
    return EXIT_OK if report.ok else EXIT_PROBLEMS
