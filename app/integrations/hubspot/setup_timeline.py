"""Which writer a portal's timeline activities go through (CONTRACT §4.2): the pure rules.

`HUBSPOT_TIMELINE_BACKEND` is `auto` or forces one backend. `auto` picks, in order:

* `app_events` when HUBSPOT_APP_EVENT_TYPES is set and the portal is installed through OAuth (app
  events are an OAuth-only, approved feature: a static token is refused);
* `classic` when HUBSPOT_APP_ID is set and its v3 templates exist or could be created;
* `notes` otherwise, including when HubSpot refuses to create classic templates for an app that never
  had any (HubSpot's rule for apps made after the v3 templates were closed): every account takes notes.

A forced backend that cannot work is a set-up problem (delivery waits, the reason is shown), never a
silent fallback: the operator asked for that writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.models import AuthMode, TimelineBackend

AUTO = "auto"


class TemplatesOutcome(StrEnum):
    """What the classic template step came to (only run when `needs_templates` says so)."""

    READY = "ready"  # every template found or created
    REFUSED = "refused"  # HubSpot refused to create them (an app without classic templates)
    PROBLEM = "problem"  # some other problem (an unfit template, HubSpot down): reported per item


@dataclass(frozen=True)
class TimelineChoice:
    backend: TimelineBackend
    reason: str  # for the set-up report
    problem: str | None = None  # a forced backend that cannot work


def wants_app_events(requested: str, *, has_event_types: bool, auth_mode: AuthMode) -> bool:
    return requested == TimelineBackend.APP_EVENTS or (
        requested == AUTO and has_event_types and auth_mode is AuthMode.OAUTH
    )


def needs_templates(
    requested: str, *, has_event_types: bool, auth_mode: AuthMode, app_id: str | None
) -> bool:
    """Whether the classic templates are to be made sure of (and so whether HubSpot is asked)."""
    if requested == TimelineBackend.CLASSIC:
        return bool(app_id)
    if requested != AUTO or wants_app_events(requested, has_event_types=has_event_types, auth_mode=auth_mode):
        return False
    return bool(app_id)


def choose_timeline(
    requested: str,
    *,
    has_event_types: bool,
    auth_mode: AuthMode,
    app_id: str | None,
    templates: TemplatesOutcome | None,
) -> TimelineChoice:
    """The portal's timeline writer, from the setting, the configuration and the template step."""
    if requested == TimelineBackend.OFF:
        return TimelineChoice(
            TimelineBackend.OFF, "HUBSPOT_TIMELINE_BACKEND=off: no timeline activity is written"
        )
    if requested == TimelineBackend.NOTES:
        return TimelineChoice(TimelineBackend.NOTES, "HUBSPOT_TIMELINE_BACKEND=notes: one note per activity")
    if wants_app_events(requested, has_event_types=has_event_types, auth_mode=auth_mode):
        return _app_events(requested, has_event_types=has_event_types, auth_mode=auth_mode)
    if requested == TimelineBackend.CLASSIC:
        return _classic_forced(app_id, templates)
    # auto, without app events
    if not app_id:
        return TimelineChoice(
            TimelineBackend.NOTES, "no HUBSPOT_APP_ID for classic templates: one note per activity"
        )
    if templates is TemplatesOutcome.REFUSED:
        return TimelineChoice(
            TimelineBackend.NOTES,
            f"HubSpot refused classic timeline templates for app {app_id} (an app without v3 templates "
            "cannot make them): one note per activity instead",
        )
    return TimelineChoice(TimelineBackend.CLASSIC, f"classic v3 templates of app {app_id}")


def _app_events(requested: str, *, has_event_types: bool, auth_mode: AuthMode) -> TimelineChoice:
    forced = requested == TimelineBackend.APP_EVENTS
    problems: list[str] = []
    if not has_event_types:
        problems.append("HUBSPOT_APP_EVENT_TYPES is not set (the app's event type names)")
    if auth_mode is not AuthMode.OAUTH:
        problems.append("app events need a portal installed through OAuth; this portal's token is static")
    how = "HUBSPOT_TIMELINE_BACKEND=app_events" if forced else "OAuth portal with HUBSPOT_APP_EVENT_TYPES"
    if problems:
        return TimelineChoice(
            TimelineBackend.APP_EVENTS, how, problem=f"{how} cannot work: " + "; ".join(problems)
        )
    return TimelineChoice(TimelineBackend.APP_EVENTS, f"{how}: 2026-03 app events")


def _classic_forced(app_id: str | None, templates: TemplatesOutcome | None) -> TimelineChoice:
    how = "HUBSPOT_TIMELINE_BACKEND=classic"
    if not app_id:
        problem = f"{how} cannot work: HUBSPOT_APP_ID is not set (classic templates belong to the app)"
        return TimelineChoice(TimelineBackend.CLASSIC, how, problem=problem)
    if templates is TemplatesOutcome.REFUSED:
        problem = (
            f"{how} cannot work: HubSpot refused to create classic templates for app {app_id} "
            "(an app without v3 templates cannot make them; use auto, notes or app_events)"
        )
        return TimelineChoice(TimelineBackend.CLASSIC, how, problem=problem)
    return TimelineChoice(TimelineBackend.CLASSIC, f"{how}: v3 templates of app {app_id}")
