"""Recordings and transcripts end to end (RC1, E1, S2, S3, S5, A1 b/f): a webinar played in the Zoom
sandbox, its cloud recording announced by signed webhooks, and what lands in the HubSpot sandbox
(call record, its contact associations, "Zoom: recordable event" timeline events) and in the audit log."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from tests.fixtures.databases import Database
from tests.fixtures.e2e import HOST_EMAIL, harness
from tests.fixtures.recordings import (
    ATTENDEES,
    MINUTE,
    TOPIC,
    assert_not_synced,
    assert_synced,
    associated,
    audit,
    calls,
    contact_id,
    entries,
    host_user_id,
    play_webinar,
    record,
    recordable_events,
    set_host_switch,
    zoom_recording,
)
from tests.fixtures.scenarios import deliver
from tests.fixtures.service import ADMIN, PORTAL_ID

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def link_paragraph(share_url: str) -> str:
    """The call body ends with the recording link (HTML: hs_call_body is rich text)."""
    return f'<p>Recording: <a href="{share_url}">{share_url}</a></p>'


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
