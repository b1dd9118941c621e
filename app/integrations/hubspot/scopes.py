"""The HubSpot scopes this service needs, by feature (reference/hubspot-platform.md §3).

One table for the developer project (app/actions/hubspot_project.py: hsmeta file and README) and the
OAuth install link (oauth.py), so what the app declares and what the install asks for never differ.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScopeNeed:
    """What one feature of the service needs from HubSpot, and why."""

    feature: str
    scopes: tuple[str, ...]
    required: bool
    why: str


# The one table of scopes: the project's hsmeta file, its README and the OAuth install link are all
# built from it.
# Required scopes are what the service cannot work without; optional ones only turn a feature off.
SCOPES_BY_FEATURE: tuple[ScopeNeed, ...] = (
    ScopeNeed("app", ("oauth",), True, "HubSpot's base scope that every app declares."),
    ScopeNeed(
        "contacts",
        ("crm.objects.contacts.read", "crm.objects.contacts.write"),
        True,
        "Find contacts by email, create or update them with the Zoom properties, and log calls "
        "(recordings) on them: HubSpot's 2026-03 specs write calls and notes with the contacts write scope.",
    ),
    ScopeNeed(
        "contact properties",
        ("crm.schemas.contacts.write",),
        True,
        "`zoom-hubspot setup` creates the `zoom_webinars` property group and its contact properties.",
    ),
    ScopeNeed(
        "marketing events",
        ("crm.objects.marketing_events.read", "crm.objects.marketing_events.write"),
        True,
        "Each webinar is a marketing event; registrations, attendance and cancellations are recorded on it.",
    ),
    ScopeNeed(
        "workflow action",
        ("automation",),
        True,
        "Completes blocked workflow-action executions through HubSpot's callbacks API.",
    ),
    ScopeNeed(
        "account users",
        ("settings.users.read",),
        True,
        "Lists the account's users: an email of a user is never made a contact (R2), so contact "
        "delivery cannot go on without it.",
    ),
    ScopeNeed(
        "owners",
        ("crm.objects.owners.read",),
        False,
        "Looks up HubSpot owners by email (the webinar host as owner of activities); without it, "
        "activities carry no owner.",
    ),
    ScopeNeed(
        "timeline",
        ("timeline",),
        False,
        "Timeline events for registrations, attendance and recordings (classic templates, 2026-03 app "
        "events); HubSpot grants them only to some apps: without it the service writes notes instead.",
    ),
)


def _scopes(required: bool) -> tuple[str, ...]:
    found: list[str] = []
    for need in SCOPES_BY_FEATURE:
        if need.required is required:
            found.extend(s for s in need.scopes if s not in found)
    return tuple(found)


REQUIRED_SCOPES = _scopes(True)
OPTIONAL_SCOPES = _scopes(False)
