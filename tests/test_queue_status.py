"""Per-portal status: portals known only from `hubspot_portal` count, with how they authenticate."""

from __future__ import annotations

from app.db import read_session, unit_of_work
from app.models import AuthMode, HubSpotPortal, TimelineBackend
from app.queue_status import portals_status
from tests.fixtures.databases import Database


def test_portals_show_auth_mode_reinstall_and_timeline_backend(database: Database) -> None:
    with unit_of_work(database.engine) as session:
        session.add(
            HubSpotPortal(
                portal_id=901,
                auth_mode=AuthMode.OAUTH,
                needs_reinstall=True,
                reinstall_reason="HubSpot refused the refresh token",
                timeline_backend=TimelineBackend.NOTES,
            )
        )
        session.add(HubSpotPortal(portal_id=902))
    with read_session(database.engine) as session:
        status = portals_status(session, env_portal_id=4242)
    assert set(status) == {"901", "902", "4242"}
    assert {
        k: status["901"][k] for k in ("auth_mode", "needs_reinstall", "reinstall_reason", "timeline_backend")
    } == {
        "auth_mode": "oauth",
        "needs_reinstall": True,
        "reinstall_reason": "HubSpot refused the refresh token",
        "timeline_backend": "notes",
    }
    assert (status["902"]["auth_mode"], status["902"]["timeline_backend"]) == ("static", None)
    # The env portal without a row: HUBSPOT_ACCESS_TOKEN, static; the health keys are still there.
    assert status["4242"]["auth_mode"] == "static" and status["4242"]["needs_reinstall"] is False
    assert {"hubspot", "zoom"} <= set(status["4242"])
