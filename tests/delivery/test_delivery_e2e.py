"""Webhooks in, HubSpot (the sandbox) out: contacts, P1-P4, timeline events, marketing events."""

from __future__ import annotations

from typing import Any

import pytest

from app.sandbox.zoom_webhooks import shuffled_with_duplicates
from tests.fixtures.databases import Database
from tests.fixtures.delivery import WEBINAR, build, run_scenario
from tests.fixtures.hubspot_views import hubspot_view
from tests.fixtures.service import ACCOUNT_ID

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_scenario_lands_in_hubspot(database: Database) -> None:
    out = await run_scenario(database, build().envelopes)
    view = hubspot_view(out["state"])
    contacts = view["contacts"]
    # Only the three allowed people became (or touched) contacts; the pre-existing one is untouched.
    assert set(contacts) == {"ann@example.com", "bob@example.com", "cara@example.com", "primary@example.com"}
    ann, bob, cara = contacts["ann@example.com"], contacts["bob@example.com"], contacts["cara@example.com"]
    assert (ann["firstname"], ann["lastname"]) == ("Ann", "Tester")
    # P3: registrations not cancelled; P4: webinars attended; P1: 30/60 min = 50.0, union 40/60 = 66.7
    assert (ann["zoom_webinar_registration_count"], ann["zoom_webinar_attendance_count"]) == ("1", "1")
    assert float(ann["zoom_webinar_average_attendance_percent"]) == 50.0
    assert float(cara["zoom_webinar_average_attendance_percent"]) == 66.7
    assert (bob["zoom_webinar_registration_count"], bob["zoom_webinar_attendance_count"]) == ("0", "0")
    assert bob["zoom_webinar_average_attendance_percent"] in (None, "")
    assert ann["zoom_last_registered_webinar_url"]  # P2: the webinar's URL
    # Timeline: a registration event for each of the three (E3), attendance for the two attendees (E2).
    kinds = [(name, who) for name, who, _ in view["events"]]
    assert sorted(kinds) == sorted(
        [
            ("Zoom webinar registration", "ann@example.com"),
            ("Zoom webinar registration", "bob@example.com"),
            ("Zoom webinar registration", "cara@example.com"),
            ("Zoom webinar attendance", "ann@example.com"),
            ("Zoom webinar attendance", "cara@example.com"),
        ]
    )
    att = {who: dict(tokens) for name, who, tokens in view["events"] if name == "Zoom webinar attendance"}
    assert att["cara@example.com"]["attendance_duration_seconds"] in ("2400", 2400)
    assert float(att["cara@example.com"]["attendance_percent"]) == 66.7
    # Marketing event: created, completed, one state per contact.
    [marketing] = view["marketing"]
    assert marketing["event"][:3] == (ACCOUNT_ID, WEBINAR, "Delivery webinar")
    assert marketing["event"][3] is True
    states = {who: (state, attended) for who, state, attended, _, _ in marketing["states"]}
    assert states == {
        "ann@example.com": ("attend", True),
        "bob@example.com": ("cancel", False),
        "cara@example.com": ("attend", True),
    }
    # Every exclusion has its reason (A3) ...
    reasons = sorted((e["email"] or "", e["reason"]) for e in out["excluded"])
    assert reasons == [
        ("", "no_email"),
        ("alias@example.com", "secondary_email"),
        ("gone@example.com", "deleted_contact"),
        ("me@excluded.example", "excluded_domain"),
        ("not-an-email", "invalid_email"),
        ("staff@ourco.io", "hubspot_user"),
    ]
    # ... and the audit log counts them and names what was delivered.
    codes = {a["code"]: a for a in out["audit"]}
    assert codes["emails_excluded"]["details"]["counts"] == {
        "deleted_contact": 1,
        "excluded_domain": 1,
        "hubspot_user": 1,
        "invalid_email": 1,
        "secondary_email": 1,
    }
    assert codes["hubspot_synced"]["status"] == "success"


async def test_duplicated_shuffled_and_faulty_delivery_converges(database: Database, tmp_path: Any) -> None:
    clean = hubspot_view((await run_scenario(database, build().envelopes))["state"])
    from tests.fixtures.databases import truncate_all

    truncate_all(database.engine)
    noisy = await run_scenario(
        database, shuffled_with_duplicates(build().envelopes, seed=5), error_rate=0.2, burst_429=5, seed=9
    )
    assert hubspot_view(noisy["state"]) == clean
    stats = noisy["state"]["stats"]
    assert stats["throttled"] >= 1 or stats.get("faults", 0) >= 1
