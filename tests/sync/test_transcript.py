"""VTT transcripts become readable text; long ones are cut to what HubSpot's hs_call_body holds."""

from __future__ import annotations

from app.sync.transcript import Turn, call_body, parse_vtt, transcript_text

VTT = """\ufeffWEBVTT

NOTE this is a comment
that spans lines

1
00:00:01.000 --> 00:00:04.000
Ada Lovelace: Welcome everyone to the
product webinar.

2
00:00:04.500 --> 00:00:06.000
Ada Lovelace: Let us start.

3
00:00:06.200 --> 00:00:09.000 align:start position:0%
Charles Babbage: Thank you, Ada.

4
00:00:09.500 --> 00:00:10.000
<v Grace Hopper>Questions &amp; answers <b>now</b>?</v>

5
00:00:10.500 --> 00:00:11.000
No speaker here. Really: none.

6
00:00:11.000 --> 00:00:11.500

"""


def test_cues_become_speaker_turns() -> None:
    assert parse_vtt(VTT) == [
        Turn("Ada Lovelace", "Welcome everyone to the product webinar. Let us start."),
        Turn("Charles Babbage", "Thank you, Ada."),
        Turn("Grace Hopper", "Questions & answers now?"),
        Turn(None, "No speaker here. Really: none."),
    ]


def test_text_has_no_numbers_or_timings() -> None:
    text = transcript_text(VTT.replace("\n", "\r\n"))
    assert "-->" not in text and "WEBVTT" not in text and "NOTE" not in text
    assert text.startswith("Ada Lovelace: Welcome everyone")
    assert "\n\nCharles Babbage: Thank you, Ada." in text


def test_hour_less_timings_are_cues() -> None:
    assert parse_vtt("WEBVTT\n\n01:02.000 --> 01:03.000\nBob: hi\n") == [Turn("Bob", "hi")]


def test_empty_or_garbage() -> None:
    assert parse_vtt("") == []
    assert parse_vtt("WEBVTT\n\nnothing timed here\n") == []


LINK = '<p>Recording: <a href="https://zoom.us/rec/share/x">https://zoom.us/rec/share/x</a></p>'


def test_call_body_is_html_paragraphs_with_the_link() -> None:
    assert call_body("Ada: hi & bye\n\nBob: yo", "https://zoom.us/rec/share/x") == (
        "<p>Ada: hi &amp; bye</p>\n<p>Bob: yo</p>\n" + LINK
    )
    assert call_body(None, "https://zoom.us/rec/share/x") == LINK
    assert call_body("Ada: hi", None) == "<p>Ada: hi</p>"
    assert '&amp;b=2"' in call_body("x", "https://zoom.us/rec/share/x?a=1&b=2")


def test_call_body_truncated_to_limit_with_note_and_link() -> None:
    transcript = "Ada: intro\n\n" + " ".join(["word"] * 10_000) + "\n\nBob: never shown"
    body = call_body(transcript, "https://zoom.us/rec/share/x", limit=1_000)
    assert len(body) <= 1_000
    assert body.startswith("<p>Ada: intro</p>\n<p>word word")
    assert body.endswith(
        "<p>[Transcript truncated: the full transcript is with the Zoom recording.]</p>\n" + LINK
    )
    assert "never shown" not in body
    assert " wor …" not in body and "word …</p>" in body  # cut at a word boundary


def test_call_body_truncation_counts_escaped_characters() -> None:
    body = call_body("&" * 5_000, None, limit=500)
    assert len(body) <= 500 and body.count("&amp;") > 50
