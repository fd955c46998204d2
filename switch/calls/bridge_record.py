"""``<Dial record="record-from-answer[-dual]">``: a recording of the bridge, kept like ``<Record>``'s.

The media engine records the caller's channel in two channels (left: what the caller says, right: what it
hears, i.e. the callee). ``-dual`` keeps that stereo file; the mono modes mix the two down. The recording goes
to ``recordings_dir/{RecordingSid}.wav`` and to the store (``on_recording``); ``recordingStatusCallback``
gets RecordingStatus (in-progress, completed, absent) with RecordingSource=DialVerb, and the Dial action gets
RecordingUrl, RecordingSid and RecordingDuration.
"""

from __future__ import annotations

import asyncio
import logging
import time
import wave
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from switch.media.engine import MediaError
from switch.twiml.dial import DIAL_CONTEXT, DialRequest
from switch.twiml.errors import TwimlError
from switch.twiml.record import new_recording_sid, recording_url
from switch.twiml.session import RunContext, rfc2822

if TYPE_CHECKING:
    from switch.calls.call import Call
    from switch.media.recorder import RecordingResult

__all__ = ["BridgeRecording", "downmix"]

log = logging.getLogger("switch.calls")


def downmix(path: Path) -> None:
    """Rewrite a stereo 16-bit WAV file as mono, the mean of its two channels."""
    with wave.open(str(path), "rb") as source:
        if source.getnchannels() != 2:
            return
        rate = source.getframerate()
        frames = np.frombuffer(source.readframes(source.getnframes()), dtype="<i2").reshape(-1, 2)
    mono = ((frames[:, 0].astype(np.int32) + frames[:, 1]) // 2).astype("<i2")
    with wave.open(str(path), "wb") as target:
        target.setnchannels(1)
        target.setsampwidth(2)
        target.setframerate(rate)
        target.writeframes(mono.tobytes())


class BridgeRecording:
    """One recording of one bridge; ``start`` when the callee answered, ``finish`` when the bridge ended."""

    def __init__(
        self,
        call: Call,
        request: DialRequest,
        *,
        source: str = "DialVerb",
        extra: dict[str, str] | None = None,
    ) -> None:
        self.call = call
        self.request = request
        self.source = source
        """RecordingSource: DialVerb, or Conference (a room recorded through one member's channel)."""
        self.extra = extra or {}
        """More callback parameters (a conference's ConferenceSid)."""
        self.dual = request.record.endswith("-dual")
        self.sid = new_recording_sid()
        self.ctx: RunContext | None = DIAL_CONTEXT.get()
        self.started = 0.0
        self._future: asyncio.Future[RecordingResult] | None = None
        self.path: Path | None = None

    @staticmethod
    def wanted(request: DialRequest) -> bool:
        return request.record not in ("", "do-not-record")

    def start(self) -> None:
        ctx = self.ctx
        if ctx is None or ctx.settings.recordings_dir is None:
            log.warning("Dial CallSid=%s: nowhere to keep recordings; not recording", self.call.sid)
            return
        ctx.settings.recordings_dir.mkdir(parents=True, exist_ok=True)
        self.path = ctx.settings.recordings_dir / f"{self.sid}.wav"
        self.started = time.time()
        try:
            self._future = self.call.manager.media.record(
                self.call.channel,
                self.path,
                max_length=float(self.request.time_limit),
                silence_timeout=None,
                trim_silence=self.request.trim == "trim-silence",
                dual=True,
            )
        except MediaError as exc:
            log.warning("Dial CallSid=%s: cannot record: %s", self.call.sid, exc)
            return
        if "in-progress" in self.request.recording_status_callback_events:
            self._callback("in-progress", None)

    async def finish(self) -> dict[str, str]:
        """Stop and keep the recording; the Dial action's recording parameters ({} when none was kept)."""
        future, ctx, path = self._future, self.ctx, self.path
        if future is None or ctx is None or path is None:
            return {}
        self._future = None
        if not future.done() and not self.call.ended.is_set():
            self.call.manager.media.stop_recording(self.call.channel)
        try:
            result = await asyncio.wait_for(asyncio.shield(future), 10.0)
        except (TimeoutError, MediaError) as exc:
            log.warning("Dial CallSid=%s: recording %s lost: %s", self.call.sid, self.sid, exc)
            return {}
        if result.duration <= 0:
            if "absent" in self.request.recording_status_callback_events:
                self._callback("absent", 0)
            return {}
        if not self.dual:
            await asyncio.to_thread(downmix, path)
        duration = max(1, round(result.duration))
        if ctx.settings.on_recording is not None:
            ctx.settings.on_recording(self.call.sid, self.sid, path, result.duration, self.started)
        if "completed" in self.request.recording_status_callback_events:
            self._callback("completed", duration)
        log.info("Dial recording CallSid=%s RecordingSid=%s duration=%d", self.call.sid, self.sid, duration)
        return {
            "RecordingUrl": self._url(ctx),
            "RecordingSid": self.sid,
            "RecordingDuration": str(duration),
        }

    def _url(self, ctx: RunContext) -> str:
        account = self.call.account_sid or ctx.settings.account_sid
        return recording_url(ctx.settings.public_base_url, account, self.sid)

    def _callback(self, status: str, duration: int | None) -> None:
        ctx, url = self.ctx, self.request.recording_status_callback
        if ctx is None or not url:
            return
        params = {
            "AccountSid": self.call.account_sid or ctx.settings.account_sid,
            "CallSid": self.call.sid,
            "RecordingSid": self.sid,
            "RecordingUrl": self._url(ctx),
            "RecordingStatus": status,
            "RecordingChannels": "2" if self.dual else "1",
            "RecordingStartTime": rfc2822(self.started),
            "RecordingSource": self.source,
            "ErrorCode": "0",
            **self.extra,
        }
        if duration is not None:
            params["RecordingDuration"] = str(duration)
        method = self.request.recording_status_callback_method
        ctx.client.background(_send(ctx, url, method, params, self.call.sid))


async def _send(ctx: RunContext, url: str, method: str, params: dict[str, str], call_sid: str) -> None:
    try:
        await ctx.client.send(url, method, params)
    except TwimlError as exc:
        log.warning("recording status callback for CallSid=%s failed: %s", call_sid, exc.message)
