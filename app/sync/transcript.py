"""Zoom transcripts (WebVTT) turned into readable call-record text (pure).

A Zoom transcript cue looks like::

    12
    00:01:02.340 --> 00:01:05.120
    Ada Lovelace: Welcome, everyone.

The text keeps the speaker and what was said, one paragraph per speaker turn: consecutive cues of
the same speaker are joined, and cue numbers, timings, the header, NOTE/STYLE blocks and markup
tags are dropped.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

# HubSpot caps rich-text properties such as hs_call_body at 65,536 characters.
CALL_BODY_LIMIT = 65_536
_TIMING = re.compile(r"^\s*(\d{1,2}:)?\d{1,2}:\d{2}[.,]\d{1,3}\s+-->\s+(\d{1,2}:)?\d{1,2}:\d{2}[.,]\d{1,3}")
_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_VOICE = re.compile(r"<v(?:\.[^ >]*)?\s+([^>]+)>")
# "Name: text" — a speaker label is short and has no sentence punctuation before the colon.
_SPEAKER = re.compile(r"^([^:\n]{1,80}?):\s+(.*)$")


@dataclass(frozen=True, slots=True)
class Turn:
    speaker: str | None
    text: str


def _looks_like_name(label: str) -> bool:
    """Zoom writes "Display Name: text"; a sentence that merely contains a colon is not a speaker."""
    words = label.split()
    if not words or len(words) > 6 or label.endswith((".", "?", "!", ",")):
        return False
    # "Dr. Ada King" is a name; "No speaker here. Really" is a sentence.
    return not any(mark in label for mark in ("? ", "! ")) and not (". " in label and len(words) > 3)


def _cue_text(lines: list[str]) -> Turn | None:
    raw = " ".join(line.strip() for line in lines if line.strip())
    if not raw:
        return None
    speaker: str | None = None
    voice = _VOICE.search(raw)
    if voice:
        speaker = voice.group(1).strip()
    text = html.unescape(_TAG.sub("", raw)).strip()
    if speaker is None:
        match = _SPEAKER.match(text)
        if match and _looks_like_name(match.group(1).strip()):
            speaker, text = match.group(1).strip(), match.group(2).strip()
    return Turn(speaker, text) if text else None


def parse_vtt(content: str) -> list[Turn]:
    """The cues of a WebVTT file as speaker turns, in order (same-speaker cues merged)."""
    text = content.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    turns: list[Turn] = []
    for block in re.split(r"\n\s*\n", text):
        lines = block.split("\n")
        timing_at = next((i for i, line in enumerate(lines) if _TIMING.match(line)), None)
        if timing_at is None:
            continue  # the WEBVTT header, NOTE, STYLE and REGION blocks have no timing line
        turn = _cue_text(lines[timing_at + 1 :])
        if turn is None:
            continue
        if turns and turns[-1].speaker == turn.speaker:
            turns[-1] = Turn(turn.speaker, f"{turns[-1].text} {turn.text}")
        else:
            turns.append(turn)
    return turns


def transcript_text(content: str) -> str:
    return "\n\n".join(f"{t.speaker}: {t.text}" if t.speaker else t.text for t in parse_vtt(content))


def call_body(transcript: str | None, share_url: str | None, limit: int = CALL_BODY_LIMIT) -> str:
    """The call record's body: the transcript, cut to what HubSpot accepts, with a note and the link."""
    link = f"Recording: {share_url}" if share_url else ""
    if not transcript:
        return link
    full = f"{transcript}\n\n{link}" if link else transcript
    if len(full) <= limit:
        return full
    note = "\n\n[Transcript truncated: the full transcript is with the Zoom recording."
    note += f" {link}]" if link else "]"
    room = max(limit - len(note), 0)
    cut = transcript[:room]
    # End at a word boundary so the last word is not chopped.
    space = cut.rfind(" ")
    if space > room * 0.9:
        cut = cut[:space]
    return cut.rstrip() + note
