"""The rules choosing a portal's timeline writer (CONTRACT §4.2): pure, no HubSpot, no database."""

from __future__ import annotations

import pytest

from app.integrations.hubspot.setup_timeline import (
    TemplatesOutcome,
    TimelineChoice,
    choose_timeline,
    needs_templates,
)
from app.models import AuthMode, TimelineBackend

OAUTH, STATIC = AuthMode.OAUTH, AuthMode.STATIC
READY, REFUSED, PROBLEM = TemplatesOutcome.READY, TemplatesOutcome.REFUSED, TemplatesOutcome.PROBLEM


def choose(
    requested: str = "auto",
    *,
    types: bool = False,
    mode: AuthMode = STATIC,
    app_id: str | None = "1001",
    templates: TemplatesOutcome | None = None,
) -> TimelineChoice:
    return choose_timeline(
        requested, has_event_types=types, auth_mode=mode, app_id=app_id, templates=templates
    )


def needs(
    requested: str = "auto", *, types: bool = False, mode: AuthMode = STATIC, app_id: str | None = "1001"
) -> bool:
    return needs_templates(requested, has_event_types=types, auth_mode=mode, app_id=app_id)


# ---- auto -------------------------------------------------------------------------------------------------


def test_auto_picks_app_events_for_an_oauth_portal_with_event_types_without_asking_for_templates() -> None:
    assert not needs(types=True, mode=OAUTH)
    choice = choose(types=True, mode=OAUTH)
    assert (choice.backend, choice.problem) == (TimelineBackend.APP_EVENTS, None)


@pytest.mark.parametrize(("types", "mode"), [(True, STATIC), (False, OAUTH), (False, STATIC)])
def test_auto_without_both_event_types_and_oauth_tries_classic(types: bool, mode: AuthMode) -> None:
    assert needs(types=types, mode=mode)
    choice = choose(types=types, mode=mode, templates=READY)
    assert (choice.backend, choice.problem) == (TimelineBackend.CLASSIC, None)


def test_auto_falls_back_to_notes_when_hubspot_refuses_classic_templates_and_says_why() -> None:
    choice = choose(templates=REFUSED)
    assert (choice.backend, choice.problem) == (TimelineBackend.NOTES, None)
    assert "refused" in choice.reason and "1001" in choice.reason


def test_auto_keeps_classic_when_templates_have_another_problem() -> None:
    # An unfit template or HubSpot down is for an admin or a retry, not a reason to switch writers.
    assert choose(templates=PROBLEM).backend is TimelineBackend.CLASSIC


@pytest.mark.parametrize("app_id", [None, ""])
def test_auto_without_an_app_id_writes_notes_without_asking(app_id: str | None) -> None:
    assert not needs(app_id=app_id)
    choice = choose(app_id=app_id)
    assert (choice.backend, choice.problem) == (TimelineBackend.NOTES, None)
    assert "HUBSPOT_APP_ID" in choice.reason


# ---- forced ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["notes", "off"])
def test_notes_and_off_always_work_and_need_no_templates(backend: str) -> None:
    assert not needs(backend, types=True, mode=OAUTH)
    choice = choose(backend, types=True, mode=OAUTH)
    assert (choice.backend, choice.problem) == (TimelineBackend(backend), None)


def test_forced_app_events_work_for_an_oauth_portal_with_event_types() -> None:
    assert not needs("app_events", types=True, mode=OAUTH)
    assert choose("app_events", types=True, mode=OAUTH) == TimelineChoice(
        TimelineBackend.APP_EVENTS, "HUBSPOT_TIMELINE_BACKEND=app_events: 2026-03 app events"
    )


@pytest.mark.parametrize(
    ("types", "mode", "says"),
    [
        (True, STATIC, ["static"]),
        (False, OAUTH, ["HUBSPOT_APP_EVENT_TYPES"]),
        (False, STATIC, ["static", "HUBSPOT_APP_EVENT_TYPES"]),
    ],
)
def test_forced_app_events_that_cannot_work_are_a_problem_not_a_fallback(
    types: bool, mode: AuthMode, says: list[str]
) -> None:
    choice = choose("app_events", types=types, mode=mode)
    assert choice.backend is TimelineBackend.APP_EVENTS
    assert choice.problem is not None and all(word in choice.problem for word in says), choice.problem


def test_forced_classic_needs_an_app_id() -> None:
    assert not needs("classic", app_id=None)
    choice = choose("classic", app_id=None)
    assert choice.backend is TimelineBackend.CLASSIC
    assert choice.problem is not None and "HUBSPOT_APP_ID" in choice.problem


def test_forced_classic_refused_by_hubspot_is_a_problem() -> None:
    assert needs("classic", types=True, mode=OAUTH)  # forced: app events are not considered
    choice = choose("classic", templates=REFUSED)
    assert choice.backend is TimelineBackend.CLASSIC
    assert choice.problem is not None and "refused" in choice.problem


def test_forced_classic_with_templates_works() -> None:
    choice = choose("classic", templates=READY)
    assert (choice.backend, choice.problem) == (TimelineBackend.CLASSIC, None)
