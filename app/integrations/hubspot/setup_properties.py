"""The contact properties this service writes (CONTRACT §4, MISSION P1-P4) and the set-up step
that makes them and their property group exist in a portal.

The `PROPERTY_*` names are the single source of truth: the dispatcher writes values under them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from sqlalchemy.engine import Engine

from app.integrations.hubspot import HubSpotClient, HubSpotError, PropertyDefinition, PropertyGroup
from app.integrations.hubspot.setup_report import SECTION_FATAL, ItemKind, ItemStatus, SetupItem, is_conflict
from app.integrations.hubspot.setup_store import portal_scope, store_found

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


async def _ensure_group(client: HubSpotClient, engine: Engine, scope: str) -> SetupItem:
    wanted = PROPERTY_GROUP_DEFINITION
    status = ItemStatus.FOUND
    existing = await client.get_property_group(wanted.name)
    if existing is None:
        try:
            await client.create_property_group(wanted)
            status = ItemStatus.CREATED
        except HubSpotError as exc:
            if not is_conflict(exc):
                raise
            # Created by a concurrent run between our look-up and our create.
            if await client.get_property_group(wanted.name) is None:
                raise
    detail = None
    if existing is not None and existing.label != wanted.label:
        detail = f"label is {existing.label!r} (left as is)"
    await asyncio.to_thread(store_found, engine, scope, wanted.name, wanted.name)
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
            if not is_conflict(exc):
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
    await asyncio.to_thread(store_found, engine, scope, wanted.name, wanted.name)
    return SetupItem(ItemKind.CONTACT_PROPERTY, wanted.name, status, wanted.name, detail)


async def ensure_portal_items(client: HubSpotClient, engine: Engine, portal_id: int) -> list[SetupItem]:
    scope = portal_scope(portal_id)
    items: list[SetupItem] = []
    pending = [PROPERTY_GROUP, *(p.name for p in CONTACT_PROPERTIES)]
    try:
        try:
            group = await _ensure_group(client, engine, scope)
        except HubSpotError as exc:
            if isinstance(exc, SECTION_FATAL):
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
                    if isinstance(exc, SECTION_FATAL):
                        raise
                    item = SetupItem(
                        ItemKind.CONTACT_PROPERTY, wanted.name, ItemStatus.PROBLEM, detail=str(exc)
                    )
            items.append(item)
            pending.remove(wanted.name)
    except SECTION_FATAL as exc:
        for name in pending:
            kind = ItemKind.PROPERTY_GROUP if name == PROPERTY_GROUP else ItemKind.CONTACT_PROPERTY
            items.append(SetupItem(kind, name, ItemStatus.PROBLEM, detail=f"not checked: {exc}"))
    return items
