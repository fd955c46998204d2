"""``<Record>``: record the caller into ``recordings_dir/{RecordingSid}.wav`` and tell the application.

Twilio's rules, as this verb keeps them:
- The recording ends on ``timeout`` seconds of silence (0: never), ``maxLength`` seconds, a key of
  ``finishOnKey`` (default ``1234567890*#``, ``""`` for none) or the caller hanging up. ``playBeep`` first.
- The ``action`` URL (the current document's without one) gets ``RecordingUrl``
  (``{public_base_url}/2010-04-01/Accounts/{AccountSid}/Recordings/{RecordingSid}``, no extension),
  ``RecordingDuration`` (whole seconds), ``RecordingSid`` (``RE`` + 32 hex) and ``Digits`` (the key, or
  ``hangup``). After a hangup the action is still requested, and what it answers is not run.
- An empty recording requests no action: the call goes on with the next verb.
- ``recordingStatusCallback`` gets ``RecordingStatus`` for the events of ``recordingStatusCallbackEvent``
  (``in-progress``, ``completed``, ``absent``; default ``completed``). Callbacks never hold the call up.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import ClassVar, Self
from xml.etree.ElementTree import Element

from switch.twiml.errors import TwimlError, report
from switch.twiml.session import HANGUP, NEXT, Action, Outcome, RecordingInfo, RunContext, rfc2822
from switch.twiml.urls import UrlKind, resolve_url, url_kind
from switch.twiml.verbs import Verb, attributes_of, bool_attr, choice_attr, int_attr, no_children, warn

__all__ = ["Record", "new_recording_sid", "recording_url"]

DTMF_KEYS = frozenset("0123456789*#")
RECORDING_EVENTS = ("in-progress", "completed", "absent")
HANGUP_WAIT = 10.0
"""After a hangup, how long the media layer may take to close a recording before it is given up."""


def new_recording_sid() -> str:
    return "RE" + uuid.uuid4().hex


def recording_url(base_url: str, account_sid: str, recording_sid: str) -> str:
    """Where the switch's HTTP server serves a recording (as Twilio: no extension means WAV)."""
    return f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Recordings/{recording_sid}"


@dataclass(frozen=True, slots=True)
class Record(Verb):
    """Record the caller; see the module docstring for the rules."""

    TAG: ClassVar[str] = "Record"
    ATTRIBUTES: ClassVar[frozenset[str]] = frozenset(
        {
            "action",
            "method",
            "timeout",
            "finishOnKey",
            "maxLength",
            "playBeep",
            "trim",
            "recordingStatusCallback",
            "recordingStatusCallbackMethod",
            "recordingStatusCallbackEvent",
            "transcribe",
            "transcribeCallback",
        }
    )
    action: str = ""
    method: str = "POST"
    timeout: int = 5
    finish_on_key: str = "1234567890*#"
    max_length: int = 3600
    play_beep: bool = True
    trim: bool = True
    status_callback: str = ""
    status_callback_method: str = "POST"
    status_callback_events: frozenset[str] = frozenset({"completed"})

    @classmethod
    def from_element(cls, element: Element, base_url: str) -> Self:
        attrs = attributes_of(element, cls.ATTRIBUTES)
        no_children(element)
        keys = attrs.get("finishOnKey", "1234567890*#")
        if any(k not in DTMF_KEYS for k in keys):
            warn(f"<Record finishOnKey={keys!r}> may only hold 0-9 * #; other characters ignored")
            keys = "".join(k for k in keys if k in DTMF_KEYS)
        if bool_attr(element, attrs, "transcribe", False) or "transcribeCallback" in attrs:
            warn("<Record> transcription is not supported; recording without it")
        events: set[str] = set()
        for event in attrs.get("recordingStatusCallbackEvent", "completed").replace(",", " ").split():
            if event in RECORDING_EVENTS:
                events.add(event)
            else:
                warn(f"<Record recordingStatusCallbackEvent> has unknown event {event!r}")
        action = attrs.get("action", "").strip()
        callback = attrs.get("recordingStatusCallback", "").strip()
        return cls(
            action=resolve_url(base_url, action) if action else "",
            method=choice_attr(element, attrs, "method", ("POST", "GET")),
            timeout=int_attr(element, attrs, "timeout", 5),
            finish_on_key=keys,
            max_length=int_attr(element, attrs, "maxLength", 3600, minimum=1),
            play_beep=bool_attr(element, attrs, "playBeep", True),
            trim=choice_attr(element, attrs, "trim", ("trim-silence", "do-not-trim")) == "trim-silence",
            status_callback=resolve_url(base_url, callback) if callback else "",
            status_callback_method=choice_attr(
                element, attrs, "recordingStatusCallbackMethod", ("POST", "GET")
            ),
            status_callback_events=frozenset(events),
        )

    async def run(self, ctx: RunContext) -> Outcome:
        call = ctx.call
        directory = ctx.settings.recordings_dir
        if directory is None:
            warn("<Record> skipped: no recordings directory is configured", call_sid=call.sid)
            return NEXT
        sid = new_recording_sid()
        path = directory / f"{sid}.wav"
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        started = time.time()
        if "in-progress" in self.status_callback_events:
            self._status_callback(ctx, sid, started, None)
        task = asyncio.ensure_future(
            call.record(
                path,
                max_length=float(self.max_length),
                silence_timeout=float(self.timeout) if self.timeout > 0 else None,
                finish_on_digits=self.finish_on_key,
                trim_silence=self.trim,
                beep=self.play_beep,
            )
        )
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if call.ended.is_set():  # the caller hung up: the recording still reaches the application
                ctx.client.background(self._after_hangup(ctx, task, sid, started))
            else:
                task.cancel()
            raise
        if result.ended_by == "closed" or call.ended.is_set():
            ctx.client.background(self._finish(ctx, result, sid, started, hangup=True))
            return HANGUP
        outcome = await self._finish(ctx, result, sid, started, hangup=False)
        return outcome

    async def _after_hangup(
        self, ctx: RunContext, task: asyncio.Future[RecordingInfo], sid: str, started: float
    ) -> None:
        try:
            result = await asyncio.wait_for(task, HANGUP_WAIT)
        except (TimeoutError, asyncio.CancelledError):
            logging.getLogger("switch.twiml").warning(
                "recording %s never closed (call %s)", sid, ctx.call.sid
            )
            return
        except Exception:
            logging.getLogger("switch.twiml").exception("recording %s failed (call %s)", sid, ctx.call.sid)
            return
        await self._finish(ctx, result, sid, started, hangup=True)

    async def _finish(
        self, ctx: RunContext, result: RecordingInfo, sid: str, started: float, *, hangup: bool
    ) -> Outcome:
        """Tell the application about a finished recording; after a hangup, request the action here."""
        if result.duration <= 0:
            if "absent" in self.status_callback_events:
                self._status_callback(ctx, sid, started, result)
            return HANGUP if hangup else NEXT
        if ctx.settings.on_recording is not None and ctx.settings.recordings_dir is not None:
            path = ctx.settings.recordings_dir / f"{sid}.wav"
            ctx.settings.on_recording(ctx.call.sid, sid, path, result.duration, started)
        if "completed" in self.status_callback_events:
            self._status_callback(ctx, sid, started, result)
        url = self.action or ctx.document_url
        if url_kind(url) is not UrlKind.HTTP and not ctx.local:
            warn(f"<Record> has no action to send {sid} to; going on", call_sid=ctx.call.sid)
            return HANGUP if hangup else NEXT
        params = {
            "RecordingUrl": recording_url(ctx.settings.public_base_url, self._account(ctx), sid),
            "RecordingDuration": str(_seconds(result.duration)),
            "RecordingSid": sid,
        }
        if hangup or result.ended_by == "closed":
            params["Digits"] = "hangup"
        elif result.ended_by == "digit" and result.digit:
            params["Digits"] = result.digit
        if not hangup:
            return Outcome(Action.REDIRECT, url, self.method, params, caller_input=True)
        try:  # the call is over: Twilio requests the action and runs nothing it answers
            await ctx.client.fetch(url, self.method, {**ctx.base_params(), **params})
        except TwimlError as exc:
            report(exc.code, exc.message, call_sid=ctx.call.sid, url=url)
        return HANGUP

    def _account(self, ctx: RunContext) -> str:
        return ctx.call.account_sid or ctx.settings.account_sid

    def _status_callback(
        self, ctx: RunContext, sid: str, started: float, result: RecordingInfo | None
    ) -> None:
        if not self.status_callback:
            return
        status = "in-progress" if result is None else ("completed" if result.duration > 0 else "absent")
        params = {
            "AccountSid": self._account(ctx),
            "CallSid": ctx.call.sid,
            "RecordingSid": sid,
            "RecordingUrl": recording_url(ctx.settings.public_base_url, self._account(ctx), sid),
            "RecordingStatus": status,
            "RecordingChannels": "1",
            "RecordingStartTime": rfc2822(started),
            "RecordingSource": "RecordVerb",
            "ErrorCode": "0",
        }
        if result is not None:
            params["RecordingDuration"] = str(_seconds(result.duration))
        ctx.client.background(self._send_callback(ctx, params))

    async def _send_callback(self, ctx: RunContext, params: dict[str, str]) -> None:
        try:
            await ctx.client.send(self.status_callback, self.status_callback_method, params)
        except TwimlError as exc:
            report(exc.code, f"recording status callback: {exc.message}", call_sid=ctx.call.sid)


def _seconds(duration: float) -> int:
    """Whole seconds, at least 1 for any audio at all."""
    return max(1, round(duration)) if duration > 0 else 0
