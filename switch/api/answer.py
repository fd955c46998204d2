"""What ``Calls.json`` asks to happen when the call is answered: ``Record=true`` and ``SendDigits``.

`AnswerActions.on_status` is a call-service listener. When a call created with either reaches
``in-progress`` it sends the digits as RFC 4733 events (``w`` is a pause of 0.5 s, ``W`` of 1 s) and records
what the callee says from the answer to the end of the call (``source`` OutboundAPI). The finished recording
is kept in the store (its media served like any other) and posted to ``RecordingStatusCallback`` when given.

A ``<Record>`` the call's TwiML runs takes the call's one recorder: the API's recording stops there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from twilio.request_validator import RequestValidator

from switch.api.records import FINAL
from switch.calls.call import Call
from switch.store.base import Store
from switch.store.records import RecordingRecord, new_sid

log = logging.getLogger("switch.api")

MAX_RECORDING = 4 * 3600.0
"""A call recording stops after four hours, as Twilio's does."""
CLOSE_WAIT = 5.0
"""After the call ended, how long its recording may take to close before it is given up."""
_PAUSES = re.compile(r"([wW]+)")

Sender = Callable[[str, str, Mapping[str, str]], Awaitable[int]]
"""``send(url, method, params)``: a signed webhook request (the switch's `WebhookClient.send`)."""


@dataclass(frozen=True, slots=True)
class AnswerPlan:
    send_digits: str = ""
    record: bool = False
    recording_status_callback: str | None = None
    recording_status_callback_method: str = "POST"
    recording_status_callback_event: tuple[str, ...] = ("completed",)


def digit_groups(digits: str) -> list[tuple[str, float]]:
    """``SendDigits`` as (digits to send, pause before them in seconds): ``"ww12w3"`` is
    ``[("12", 1.0), ("3", 0.5)]``."""
    groups: list[tuple[str, float]] = []
    pause = 0.0
    for part in _PAUSES.split(digits):
        if not part:
            continue
        if part[0] in "wW":
            pause += sum(0.5 if c == "w" else 1.0 for c in part)
        else:
            groups.append((part, pause))
            pause = 0.0
    return groups


class AnswerActions:
    def __init__(self, store: Store, account_sid: str, auth_token: str, recordings_dir: Path) -> None:
        self.store = store
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.recordings_dir = recordings_dir
        self.base_url = ""
        """Where recording media is served (``http://host:port``), set once the server listens."""
        self.sender: Sender | None = None
        self.plans: dict[str, AnswerPlan] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def plan(self, call_sid: str, plan: AnswerPlan) -> None:
        self.plans[call_sid] = plan

    def on_status(self, call: Call, status: str) -> None:
        if not self.plans:
            return
        if status in FINAL:
            self.plans.pop(call.sid, None)
        elif status == "in-progress":
            plan = self.plans.pop(call.sid, None)
            if plan is not None:
                if plan.record:
                    self._spawn(self._record(call, plan))
                if plan.send_digits:
                    self._spawn(self._send_digits(call, plan.send_digits))

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_digits(self, call: Call, digits: str) -> None:
        try:
            for group, pause in digit_groups(digits):
                if pause:
                    await asyncio.sleep(pause)
                if call.ended.is_set():
                    return
                await call.send_digits(group)
        except Exception:
            log.exception("SendDigits failed for CallSid=%s", call.sid)

    async def _record(self, call: Call, plan: AnswerPlan) -> None:
        sid = new_sid("RE")
        path = self.recordings_dir / f"{sid}.wav"
        started = time.time()
        try:
            await asyncio.to_thread(self.recordings_dir.mkdir, parents=True, exist_ok=True)
            recording = asyncio.ensure_future(
                call.record(
                    path,
                    max_length=MAX_RECORDING,
                    silence_timeout=None,
                    finish_on_digits="",
                    trim_silence=False,
                    beep=False,
                )
            )
            ended = asyncio.ensure_future(call.ended.wait())
            await asyncio.wait({recording, ended}, return_when=asyncio.FIRST_COMPLETED)
            ended.cancel()
            result = await asyncio.wait_for(recording, CLOSE_WAIT)
        except Exception:
            log.exception("the recording of CallSid=%s failed", call.sid)
            return
        now = time.time()
        duration = int(round(result.duration))
        record = RecordingRecord(
            sid, self.account_sid, call.sid, str(path), duration, started, now, now, source="OutboundAPI"
        )
        await self.store.add_recording(record)
        if plan.recording_status_callback and "completed" in plan.recording_status_callback_event:
            params = {
                "AccountSid": self.account_sid,
                "CallSid": call.sid,
                "RecordingSid": sid,
                "RecordingUrl": f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Recordings/{sid}",
                "RecordingStatus": "completed",
                "RecordingDuration": str(duration),
                "RecordingChannels": "1",
                "RecordingSource": "OutboundAPI",
                "RecordingStartTime": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(started)),
            }
            await self._callback(
                plan.recording_status_callback, plan.recording_status_callback_method, params
            )

    async def _callback(self, url: str, method: str, params: dict[str, str]) -> None:
        try:
            if self.sender is not None:
                await self.sender(url, method, params)
                return
            if self._session is None:
                self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
            validator = RequestValidator(self.auth_token)
            if method == "GET":
                full = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
                headers = {"X-Twilio-Signature": validator.compute_signature(full, {})}
                request = self._session.get(full, headers=headers)
            else:
                headers = {"X-Twilio-Signature": validator.compute_signature(url, params)}
                request = self._session.post(url, data=params, headers=headers)
            async with request as response:
                await response.read()
        except Exception as exc:
            log.warning("RecordingStatusCallback %s failed: %s", url, exc)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
