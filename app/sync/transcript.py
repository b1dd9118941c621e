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


def _paragraph(text: str) -> str:
    return f"<p>{html.escape(text, quote=False)}</p>"


def _link(share_url: str | None) -> str:
    if not share_url:
        return ""
    url = html.escape(share_url, quote=True)
    return f'<p>Recording: <a href="{url}">{url}</a></p>'


def call_body(transcript: str | None, share_url: str | None, limit: int = CALL_BODY_LIMIT) -> str:
    """The call record's body (HubSpot shows `hs_call_body` as rich text, so HTML paragraphs): the
    transcript, one paragraph per speaker turn, cut to what HubSpot accepts with a note, then the link."""
    link = _link(share_url)
    paragraphs = [_paragraph(p) for p in (transcript or "").split("\n\n") if p.strip()]
    full = "\n".join([*paragraphs, link] if link else paragraphs)
    if len(full) <= limit:
        return full
    note = _paragraph("[Transcript truncated: the full transcript is with the Zoom recording.]")
    room = max(limit - len(note) - len(link) - 2, 0)
    kept: list[str] = []
    used = 0
    for paragraph in paragraphs:
        if used + len(paragraph) + 1 > room:
            # Cut inside the paragraph at a word boundary, so the last words are not chopped.
            text = html.unescape(paragraph[3:-4])
            space = room - used - 1
            # The longest prefix that fits once escaped (escaping may lengthen it): binary search.
            low, high = 0, min(len(text), max(space, 0))
            while low < high:
                mid = (low + high + 1) // 2
                if len(_paragraph(text[:mid] + " …")) <= space:
                    low = mid
                else:
                    high = mid - 1
            cut = text[:low]
            if " " in cut and low < len(text):
                cut = cut[: cut.rfind(" ")]  # end at a word boundary
            if cut.strip():
                kept.append(_paragraph(cut.rstrip() + " …"))
            break
        kept.append(paragraph)
        used += len(paragraph) + 1
    return "\n".join([*kept, note, link] if link else [*kept, note])
