"""Cloud recordings of the fake Zoom: the REST listing, downloads (download tokens, signed CDN URLs)
and the control actions that add a recording or its transcript. One mixin of
:class:`~app.sandbox.zoom_state.ZoomSandbox`.
"""

from __future__ import annotations

import hmac
import math
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from app.sandbox.gate import bearer
from app.sandbox.zoom_common import (
    _M4A_HEADER,
    _MP4_HEADER,
    DOWNLOAD_TOKEN_TTL_S,
    JSON,
    ZoomError,
    control_error,
    invalid_token,
    iso,
    no_recording,
    transcript_vtt,
)
from app.sandbox.zoom_core import ZoomCore
from app.sandbox.zoom_records import (
    ActionResult,
    Recording,
    RecordingFile,
    Webinar,
)
from app.sandbox.zoom_webhook_signing import Envelope


class RecordingsMixin(ZoomCore):
    """Cloud recordings: the REST listing, downloads (with download tokens and signed CDN URLs) and
    the control actions that add a recording or its transcript."""

    def get_recordings(self, account_id: str, meeting_id: str, *, include_fields: str | None = None) -> JSON:
        """``GET /meetings/{id}/recordings`` for a webinar id or uuid."""
        w = self.find_webinar(meeting_id)
        if w is None or w.account_id != account_id or w.recording is None:
            raise no_recording()
        body = self._recording_json(w, w.recording, w.recording.files)
        if "download_access_token" in {p.strip() for p in (include_fields or "").split(",")}:
            body["download_access_token"] = self._new_download_token(w.recording)
        return body

    def _recording_json(self, w: Webinar, rec: Recording, files: Sequence[RecordingFile]) -> JSON:
        begin = min((f.start for f in files), default=w.start_time)
        end = max((f.end for f in files), default=w.start_time)
        return {
            "uuid": w.instance_uuid,
            "id": int(w.id),
            "account_id": w.account_id,
            "host_id": w.host.id,
            "topic": w.topic,
            "type": w.type,
            "start_time": iso(w.scenario.actual_start or w.start_time),
            "timezone": w.scenario.timezone,
            "duration": max(1, math.ceil((end - begin).total_seconds() / 60)),
            "total_size": sum(len(f.content) for f in files),
            "recording_count": len(files),
            "share_url": rec.share_url,
            "password": "",
            "recording_play_passcode": rec.passcode,
            "recording_files": [
                f.to_json(public_url=self.public_url, meeting_uuid=w.instance_uuid) for f in files
            ],
        }

    def _new_download_token(self, rec: Recording) -> str:
        token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9." + secrets.token_urlsafe(48)
        rec.download_tokens[token] = self.clock() + DOWNLOAD_TOKEN_TTL_S
        return token

    def download(self, file_id: str, authorization: str | None) -> RecordingFile:
        """The file behind ``/rec/download/{file_id}``: 404 code 3301 when unknown or not ready yet,
        401 code 124 without a valid OAuth token of its account or ``download_token`` of its recording."""
        found = self._files.get(file_id)
        if found is None:
            raise ZoomError(404, 3301, "This recording file does not exist.")
        webinar_id, rec_file = found
        w = self.webinars[webinar_id]
        token = bearer(authorization)
        account = self.account_for_token(token)
        rec = w.recording
        download_ok = (
            token is not None and rec is not None and rec.download_tokens.get(token, 0.0) > self.clock()
        )
        if not download_ok and (account is None or account.id != w.account_id):
            raise invalid_token()
        if not rec_file.downloadable:
            raise ZoomError(404, 3301, "This recording file does not exist yet.")
        return rec_file

    def cdn_file(self, file_id: str, signature: str | None) -> RecordingFile:
        """The target of a download redirect: the signature in the URL is the credential."""
        found = self._files.get(file_id)
        if found is None or not signature or not hmac.compare_digest(found[1].cdn_signature, signature):
            raise ZoomError(403, 403, "Signature does not match.")
        if not found[1].downloadable:
            raise ZoomError(404, 3301, "This recording file does not exist yet.")
        return found[1]

    def cdn_url(self, rec_file: RecordingFile) -> str:
        return f"{self.public_url}/rec/cdn/{rec_file.id}?signature={rec_file.cdn_signature}"

    def _speakers(self, w: Webinar) -> list[str]:
        names = [w.host.display_name]
        for session in w.sorted_sessions():
            name = session.participant.name
            if not session.guest and name not in names:
                names.append(name)
        return names[:3]

    def _new_file(
        self, w: Webinar, file_type: str, extension: str, recording_type: str, content: bytes, status: str
    ) -> RecordingFile:
        begin = (w.scenario.actual_start or w.start_time) + timedelta(seconds=5)
        end = max(begin, (w.scenario.actual_end or begin) - timedelta(seconds=10))
        rec_file = RecordingFile(
            id=str(uuid.UUID(int=self.rng.getrandbits(128))),
            file_type=file_type,
            extension=extension,
            recording_type=recording_type,
            start=begin,
            end=end,
            status=status,
            content=content,
            play_token=self._random_id(24),
            cdn_signature=secrets.token_urlsafe(16),
        )
        self._files[rec_file.id] = (w.id, rec_file)
        return rec_file

    def _transcript_file(self, w: Webinar, rec: Recording, vtt: str | None, status: str) -> RecordingFile:
        content = (vtt if vtt is not None else transcript_vtt(w.topic, self._speakers(w))).encode("utf-8")
        existing = rec.transcript
        if existing is not None:
            if vtt is not None:
                existing.content = content
            return existing
        rec_file = self._new_file(w, "TRANSCRIPT", "VTT", "audio_transcript", content, status)
        rec.files.append(rec_file)
        return rec_file

    def _recording_event(self, w: Webinar, rec: Recording, *, transcript: bool, at: datetime) -> Envelope:
        s = w.scenario
        if transcript:
            envelope = s.transcript_completed(at=at, share_url=rec.share_url)
            files = [f for f in rec.files if f.file_type == "TRANSCRIPT"]
        else:
            envelope = s.recording_completed(at=at, share_url=rec.share_url, with_files=False)
            files = rec.media_files
        s.pop_envelopes()
        # The scenario's shape, with the sandbox's files (their download URLs point at the sandbox).
        obj = envelope["payload"]["object"]
        obj["recording_files"] = [
            f.to_json(public_url=self.public_url, meeting_uuid=w.instance_uuid) for f in files
        ]
        obj["total_size"] = sum(len(f.content) for f in files)
        obj["recording_count"] = len(files)
        rec.download_tokens[str(envelope["download_token"])] = self.clock() + DOWNLOAD_TOKEN_TTL_S
        return envelope

    def _add_recording(
        self,
        webinar_id: str,
        *,
        status: str,
        with_transcript: bool,
        transcript_available: bool,
        vtt: str | None,
        at: datetime | None,
    ) -> tuple[JSON, list[Envelope]]:
        w = self.webinar(webinar_id)
        if w.status != "ended":
            raise control_error(400, f"Webinar {w.id} has not ended; cloud recordings come after the end.")
        when = self._at(at)
        rec = w.recording
        if rec is not None and rec.status == "completed":
            raise control_error(409, f"Webinar {w.id} already has a completed recording.")
        if rec is None:
            w.scenario.recording_completed(at=when, with_files=False)
            w.scenario.pop_envelopes()
            rec = Recording(
                share_url=w.scenario.share_url or "", passcode=self._random_id(6)[:8], status=status
            )
            w.recording = rec
            mp4 = _MP4_HEADER + self.rng.randbytes(2048)
            m4a = _M4A_HEADER + self.rng.randbytes(1024)
            rec.files.append(self._new_file(w, "MP4", "MP4", "shared_screen_with_speaker_view", mp4, status))
            rec.files.append(self._new_file(w, "M4A", "M4A", "audio_only", m4a, status))
        rec.status = status
        for rec_file in rec.files:
            rec_file.status = status
        transcript = None
        if with_transcript:
            transcript = self._transcript_file(w, rec, vtt, status)
            transcript.status = status
            transcript.available = transcript_available
        envelopes: list[Envelope] = []
        if status == "completed":
            envelopes.append(self._recording_event(w, rec, transcript=False, at=when))
            if transcript is not None and transcript.available:
                envelopes.append(self._recording_event(w, rec, transcript=True, at=when))
        return self._recording_json(w, rec, rec.files), envelopes

    def _set_transcript(
        self, webinar_id: str, *, available: bool, vtt: str | None, at: datetime | None
    ) -> tuple[JSON, list[Envelope]]:
        w = self.webinar(webinar_id)
        rec = w.recording
        if rec is None or rec.status != "completed":
            raise control_error(400, f"Webinar {w.id} has no completed recording yet.")
        transcript = self._transcript_file(w, rec, vtt, "completed")
        transcript.status = "completed"
        transcript.available = available
        envelope = self._recording_event(w, rec, transcript=True, at=self._at(at))
        result = transcript.to_json(public_url=self.public_url, meeting_uuid=w.instance_uuid)
        result["available"] = available
        return result, [envelope]

    async def add_recording(
        self,
        webinar_id: str | int,
        *,
        status: Literal["completed", "processing"] = "completed",
        with_transcript: bool = True,
        transcript_available: bool = True,
        vtt: str | None = None,
        at: datetime | None = None,
        emit: bool = True,
    ) -> ActionResult:
        """Cloud recording files (MP4, M4A, and a VTT transcript when ``with_transcript``); a
        ``completed`` recording sends ``recording.completed`` and, for an available transcript,
        ``recording.transcript_completed``. Call again with ``completed`` to finish a ``processing`` one."""
        return await self._act(
            lambda: self._add_recording(
                str(webinar_id),
                status=status,
                with_transcript=with_transcript,
                transcript_available=transcript_available,
                vtt=vtt,
                at=at,
            ),
            emit,
        )

    async def set_transcript(
        self,
        webinar_id: str | int,
        *,
        available: bool = True,
        vtt: str | None = None,
        at: datetime | None = None,
        emit: bool = True,
    ) -> ActionResult:
        """Make the transcript downloadable (or 404, "not found yet"), creating it if needed; sends
        ``recording.transcript_completed`` when ``emit`` - also when not available, to model the race
        of an event that arrives before its file."""
        return await self._act(
            lambda: self._set_transcript(str(webinar_id), available=available, vtt=vtt, at=at), emit
        )
