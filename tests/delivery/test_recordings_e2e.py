"""Recordings and transcripts end to end (RC1, E1, S2, S3, S5, A1 b/f): a webinar played in the Zoom
sandbox, its cloud recording announced by signed webhooks, and what lands in the HubSpot sandbox
(call record, its contact associations, "Zoom: recordable event" timeline events) and in the audit log."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.integrations.hubspot.setup import TEMPLATE_RECORDABLE_EVENT
from tests.fixtures.databases import Database
from tests.fixtures.e2e import HOST_EMAIL, Harness, harness
from tests.fixtures.scenarios import deliver
from tests.fixtures.service import ADMIN, PORTAL_ID

pytestmark = pytest.mark.anyio


def link_paragraph(share_url: str) -> str:
    """The call body ends with the recording link (HTML: hs_call_body is rich text)."""
    return f'<p>Recording: <a href="{share_url}">{share_url}</a></p>'


MINUTE = timedelta(minutes=1)
TOPIC = "Quarterly product update"
ATTENDEES = {"ann@example.com": ("Ann", "Attendee"), "bob@example.com": ("Bob", "Rejoiner")}
ABSENT = ("nina@example.com", "Nina", "Noshow")

# Two speakers, cues spanning several lines, a NOTE block and cue settings (case 10).
MULTILINE_VTT = """WEBVTT

NOTE generated for the test

1
00:00:01.000 --> 00:00:04.000
Ada Lovelace: Welcome everyone to the
quarterly product update.

2
00:00:04.500 --> 00:00:07.000 align:start position:0%
Ada Lovelace: Today we cover
three topics
in detail.

3
00:00:07.500 --> 00:00:10.000
Grace Hopper: Will the slides
be shared afterwards?

4
00:00:10.500 --> 00:00:12.000
Ada Lovelace: Yes, with the recording.
"""


@dataclass
class Played:
    webinar_id: str
    t0: datetime  # actual start; the webinar lasts 60 minutes
    host_user_id: str


def audit_url(webinar_id: str) -> str:
    return f"/api/v1/portals/{PORTAL_ID}/webinars/{webinar_id}/audit-log"


async def audit(h: Harness, webinar_id: str) -> list[dict[str, Any]]:
    r = await h.client.get(audit_url(webinar_id), headers=ADMIN)
    assert r.status_code == 200, r.text
    entries: list[dict[str, Any]] = r.json()
    return entries


async def entries(h: Harness, webinar_id: str, code: str) -> list[dict[str, Any]]:
    return [e for e in await audit(h, webinar_id) if e["code"] == code]


def host_user_id(h: Harness) -> str:
    [user] = [u for u in h.zoom.snapshot()["users"] if u["email"] == HOST_EMAIL]
    return str(user["id"])


async def set_host_switch(h: Harness, zoom_user_id: str, on: bool) -> None:
    r = await h.client.get(f"/api/v1/portals/{PORTAL_ID}/zoom-users", headers=ADMIN)
    assert r.status_code == 200, r.text
    assert zoom_user_id in [u["zoom_user_id"] for u in r.json()], r.json()
    r = await h.client.patch(
        f"/api/v1/portals/{PORTAL_ID}/zoom-users/{zoom_user_id}",
        headers=ADMIN,
        json={"sync_recordings": on},
    )
    assert r.status_code == 200, r.text
    assert r.json()["sync_recordings"] is on


async def play_webinar(
    h: Harness,
    *,
    recording_sync: str = "all",
    recording_sync_users: list[str] | None = None,
    recording_exclusion_domains: list[str] | None = None,
    host_switch: bool = True,
    attend: bool = True,
) -> Played:
    """Settings, then a webinar: created, 3 registrants, started, 2 of them join and leave (Bob twice),
    ended 60 minutes after the start. No recording yet."""
    await h.settings_patch(
        webinar_sync_enabled=True,
        recording_sync=recording_sync,
        recording_sync_users=recording_sync_users or [],
        recording_exclusion_domains=recording_exclusion_domains or [],
    )
    t0 = (datetime.now(UTC) - timedelta(hours=3)).replace(second=0, microsecond=0)
    created = await h.zoom.create_webinar(topic=TOPIC, start_time=t0, at=t0 - timedelta(days=2))
    webinar_id = str(created.result["id"])
    await h.wait_done()  # webinar.created names the host: now it is a Zoom user of the service
    host = host_user_id(h)
    await set_host_switch(h, host, host_switch)

    ids: dict[str, str] = {}
    for email, (first, last) in [*ATTENDEES.items(), (ABSENT[0], ABSENT[1:])]:
        reg = await h.zoom.register(webinar_id, email, first, last, at=t0 - timedelta(days=1))
        ids[email] = str(reg.result["id"])
    await h.zoom.start(webinar_id, at=t0)
    if attend:
        ann, bob = ids["ann@example.com"], ids["bob@example.com"]
        await h.zoom.join(webinar_id, registrant_id=ann, at=t0 + 1 * MINUTE)
        await h.zoom.join(webinar_id, registrant_id=bob, at=t0 + 2 * MINUTE)
        await h.zoom.leave(webinar_id, registrant_id=bob, at=t0 + 20 * MINUTE)
        await h.zoom.join(webinar_id, registrant_id=bob, at=t0 + 30 * MINUTE)  # rejoins
        await h.zoom.leave(webinar_id, registrant_id=bob, at=t0 + 50 * MINUTE)
        await h.zoom.leave(webinar_id, registrant_id=ann, at=t0 + 55 * MINUTE)
    await h.zoom.end(webinar_id, at=t0 + 60 * MINUTE)
    await h.wait_done()
    return Played(webinar_id, t0, host)


async def record(h: Harness, played: Played, **kwargs: Any) -> None:
    await h.zoom.add_recording(played.webinar_id, at=played.t0 + 75 * MINUTE, **kwargs)
    await h.wait_done()


def calls(h: Harness) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = h.portal_state()["calls"]
    return found


def contact_id(h: Harness, email: str) -> str:
    [found] = [c["id"] for c in h.portal_state()["contacts"] if c["properties"].get("email") == email]
    return str(found)


def recordable_events(h: Harness) -> list[dict[str, Any]]:
    [template_id] = [t for t, tpl in h.hubspot.templates.items() if tpl.name == TEMPLATE_RECORDABLE_EVENT]
    events: list[dict[str, Any]] = [
        e for e in h.portal_state()["timeline_events"] if e["eventTemplateId"] == template_id
    ]
    return events


def associated(call: dict[str, Any]) -> set[str]:
    return {a["id"] for a in call["associations"]["contacts"]["results"]}


def zoom_recording(h: Harness, webinar_id: str) -> dict[str, Any]:
    rec: dict[str, Any] = h.zoom.webinar_snapshot(h.zoom.webinar(webinar_id))["recording"]
    return rec


async def assert_not_synced(h: Harness, played: Played, reason: str) -> None:
    assert calls(h) == []
    assert recordable_events(h) == []
    found = await entries(h, played.webinar_id, "recording_not_synced")
    assert [(e["status"], e["details"].get("reason")) for e in found] == [("warning", reason)], found
    assert await entries(h, played.webinar_id, "recording_synced") == []


async def assert_synced(h: Harness, played: Played) -> dict[str, Any]:
    """Exactly one call on exactly the two attendees, with a recordable event each; the call."""
    [call] = calls(h)
    attendee_ids = {contact_id(h, e) for e in ATTENDEES}
    assert associated(call) == attendee_ids
    assert contact_id(h, ABSENT[0]) not in associated(call)
    events = recordable_events(h)
    assert sorted(e["objectId"] for e in events) == sorted(attendee_ids)
    [synced] = await entries(h, played.webinar_id, "recording_synced")
    assert synced["status"] == "success", synced
    assert await entries(h, played.webinar_id, "recording_not_synced") == []
    return call


# ---- 1. everything on ---------------------------------------------------------------------------------


async def test_recording_becomes_one_call_on_the_attendees(database: Database) -> None:
    async with harness(database) as h:
        played = await play_webinar(h)
        await record(h, played)
        call = await assert_synced(h, played)
        rec = zoom_recording(h, played.webinar_id)
        props = call["properties"]
        assert props["hs_call_title"] == TOPIC
        assert props["hs_call_status"] == "COMPLETED"
        assert props["hs_call_recording_url"] == rec["share_url"]
        assert rec["share_url"].startswith("https://")
        stamp = datetime.fromisoformat(props["hs_timestamp"].replace("Z", "+00:00"))
        assert stamp == played.t0
        duration_ms = int(props["hs_call_duration"])
        assert 0 < duration_ms <= 60 * 60_000
        body = props["hs_call_body"]
        # The sandbox's generated transcript: the host and the first attendee speak.
        assert "Welcome everyone to " + TOPIC in body
        assert "Ann Attendee: Thanks for having us." in body
        assert "-->" not in body and "WEBVTT" not in body
        assert rec["share_url"] in body
        for event in recordable_events(h):
            tokens = event["tokens"]
            assert tokens["topic"] == TOPIC
            assert tokens["recording_url"] == rec["share_url"]
            assert int(tokens["start_time"]) == int(played.t0.timestamp() * 1000)
        [transcript] = await entries(h, played.webinar_id, "transcript_synced")
        assert transcript["status"] == "success"
        [synced] = await entries(h, played.webinar_id, "recording_synced")
        assert synced["details"] == {"call_id": call["id"], "contacts": 2, "transcript": True}
        print("HubSpot after one recorded webinar:")
        print(json.dumps({"calls": calls(h), "timeline_events": recordable_events(h)}, indent=2))


# ---- 2-5. settings (S2, S3, S5) -------------------------------------------------------------------------


async def test_recording_sync_none_is_settings_off(database: Database) -> None:
    async with harness(database) as h:
        played = await play_webinar(h, recording_sync="none")
        await record(h, played)
        await assert_not_synced(h, played, "settings_off")
        # The webinar's own data still synced: the attendees are contacts, only the recording is not.
        assert all(h.contact(e) is not None for e in ATTENDEES)


@pytest.mark.parametrize("selected", ["host_email", "host_user_id", "other_user"])
async def test_selected_users(database: Database, selected: str) -> None:
    async with harness(database) as h:
        users = {
            "host_email": [HOST_EMAIL],
            "host_user_id": [host_user_id(h)],
            "other_user": ["someone.else@zoom-sandbox.example"],
        }[selected]
        played = await play_webinar(h, recording_sync="selected", recording_sync_users=users)
        await record(h, played)
        if selected == "other_user":
            await assert_not_synced(h, played, "settings_off")
        else:
            await assert_synced(h, played)


async def test_recording_exclusion_domain_is_settings_off(database: Database) -> None:
    async with harness(database) as h:
        domain = HOST_EMAIL.split("@")[1]
        played = await play_webinar(h, recording_exclusion_domains=["other.example", domain])
        await record(h, played)
        await assert_not_synced(h, played, "settings_off")
        assert all(h.contact(e) is not None for e in ATTENDEES)


async def test_host_switch_off_is_settings_off(database: Database) -> None:
    async with harness(database) as h:
        played = await play_webinar(h, host_switch=False)
        await record(h, played)
        await assert_not_synced(h, played, "settings_off")


# ---- 6-8. what Zoom has (A1 b, A1 f) ----------------------------------------------------------------


async def test_no_attendees_is_no_participants(database: Database) -> None:
    async with harness(database) as h:
        played = await play_webinar(h, attend=False)
        await record(h, played)
        await assert_not_synced(h, played, "no_participants")


async def test_processing_then_completed(database: Database) -> None:
    async with harness(database) as h:
        played = await play_webinar(h)
        await h.zoom.add_recording(played.webinar_id, status="processing", at=played.t0 + 70 * MINUTE)
        # The sandbox (like Zoom) sends no webhook for a recording still processing; the service sees
        # one through a recording event listing it as Zoom's REST API does (processing files).
        listed = h.zoom.get_recordings(h.zoom.default_account_id, played.webinar_id)
        assert {f["status"] for f in listed["recording_files"]} == {"processing"}
        envelope = {
            "event": "recording.completed",
            "event_ts": int((played.t0 + 70 * MINUTE).timestamp() * 1000),
            "payload": {"account_id": listed["account_id"], "object": listed},
        }
        await deliver(h.client, [envelope])
        await h.wait_done()
        await assert_not_synced(h, played, "processing")

        await record(h, played, status="completed")
        call = await assert_synced(h, played)
        assert "Welcome everyone to " + TOPIC in call["properties"]["hs_call_body"]


async def test_processing_seen_by_sync_now(database: Database) -> None:
    async with harness(database) as h:
        played = await play_webinar(h)
        await h.zoom.add_recording(played.webinar_id, status="processing", at=played.t0 + 70 * MINUTE)
        r = await h.client.post(
            f"/api/v1/portals/{PORTAL_ID}/webinars/{played.webinar_id}/sync", headers=ADMIN
        )
        assert r.status_code == 202, r.text
        await h.wait_done()
        await assert_not_synced(h, played, "processing")

        await record(h, played, status="completed")
        await assert_synced(h, played)


async def test_transcript_not_found_then_present(database: Database) -> None:
    async with harness(database) as h:
        played = await play_webinar(h)
        # The transcript is listed but not downloadable yet; only recording.completed is sent.
        await record(h, played, transcript_available=False)
        [first] = calls(h)
        share_url = zoom_recording(h, played.webinar_id)["share_url"]
        assert first["properties"]["hs_call_body"] == link_paragraph(share_url)
        # Its transcript event arrives before the file is ready: the download answers 404.
        await h.zoom.set_transcript(played.webinar_id, available=False, at=played.t0 + 80 * MINUTE)
        await h.wait_done()
        [missing] = await entries(h, played.webinar_id, "sync_error")
        assert missing["status"] == "error"
        assert missing["details"]["reason"] == "transcript_not_found"
        [again] = calls(h)
        assert again["id"] == first["id"]
        assert "-->" not in again["properties"]["hs_call_body"]
        assert associated(again) == {contact_id(h, e) for e in ATTENDEES}

        # Now the file is there: the same call record gets the transcript.
        await h.zoom.set_transcript(played.webinar_id, available=True, at=played.t0 + 90 * MINUTE)
        await h.wait_done()
        call = await assert_synced(h, played)
        assert call["id"] == first["id"]
        body = call["properties"]["hs_call_body"]
        assert "Ann Attendee: Thanks for having us." in body and "-->" not in body
        assert body.endswith(link_paragraph(share_url))
        assert await entries(h, played.webinar_id, "sync_error") == []
        transcript = [e for e in await audit(h, played.webinar_id) if e["code"] == "transcript_synced"]
        assert [e["status"] for e in transcript] == ["success"]
        assert h.portal_state()["stats"]["requests"].get("POST /crm/v3/objects/calls") == 1


# ---- 9. duplicates ------------------------------------------------------------------------------------


async def test_duplicate_recording_webhooks(database: Database) -> None:
    async with harness(database) as h:
        played = await play_webinar(h)
        await record(h, played)
        first = await assert_synced(h, played)
        events = recordable_events(h)
        recording_deliveries = [d for d in h.zoom.deliveries if d.event.startswith("recording.")]
        assert sorted(d.event for d in recording_deliveries) == [
            "recording.completed",
            "recording.transcript_completed",
        ]
        # Zoom's retries (same request id), then the same events again under new request ids.
        for d in recording_deliveries:
            again = await h.zoom.redeliver(d.index)
            assert again.status_code == 200, again.response_body
        await deliver(h.client, [d.envelope for d in recording_deliveries])
        await h.wait_done()
        # The recording is sent to HubSpot again (the host's switch off and on re-plans it).
        await set_host_switch(h, played.host_user_id, False)
        await h.wait_done()
        await set_host_switch(h, played.host_user_id, True)
        await h.wait_done()
        call = await assert_synced(h, played)
        assert call["id"] == first["id"]
        assert call["properties"] == first["properties"]
        assert recordable_events(h) == events
        requests = h.portal_state()["stats"]["requests"]
        assert requests.get("POST /crm/v3/objects/calls") == 1, requests


# ---- 10. the transcript's text ----------------------------------------------------------------------


async def test_multiline_two_speaker_transcript(database: Database) -> None:
    async with harness(database) as h:
        played = await play_webinar(h)
        await record(h, played, vtt=MULTILINE_VTT)
        call = await assert_synced(h, played)
        share_url = zoom_recording(h, played.webinar_id)["share_url"]
        assert call["properties"]["hs_call_body"].split("\n") == [
            "<p>Ada Lovelace: Welcome everyone to the quarterly product update. "
            "Today we cover three topics in detail.</p>",
            "<p>Grace Hopper: Will the slides be shared afterwards?</p>",
            "<p>Ada Lovelace: Yes, with the recording.</p>",
            link_paragraph(share_url),
        ]


# ---- settings turned on afterwards ------------------------------------------------------------------


@pytest.mark.parametrize("turn_on", ["portal_setting", "host_switch"])
async def test_settings_turned_on_later_fill_in(database: Database, turn_on: str) -> None:
    async with harness(database) as h:
        played = await play_webinar(
            h,
            recording_sync="none" if turn_on == "portal_setting" else "all",
            host_switch=turn_on == "portal_setting",
        )
        await record(h, played)
        await assert_not_synced(h, played, "settings_off")
        if turn_on == "portal_setting":
            await h.settings_patch(recording_sync="all")
        else:
            await set_host_switch(h, played.host_user_id, True)
        await h.wait_done()
        call = await assert_synced(h, played)
        assert "Welcome everyone to " + TOPIC in call["properties"]["hs_call_body"]
