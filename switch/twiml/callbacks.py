"""Call status callbacks (``statusCallback`` / ``statusCallbackEvent``), sent as Twilio sends them.

A call's status changes become events: ``initiated``, ``ringing``, ``answered`` (status in-progress) and
``completed`` (any final status: completed, busy, no-answer, failed, canceled, sent as CallStatus). Only the
configured events are sent, each signed like every webhook, one call's callbacks in order, with
CallDuration, Timestamp (RFC 2822), CallbackSource, SequenceNumber and SipResponseCode. A failing callback is
logged; it never stops or delays a call.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Iterable
from typing import Protocol

from switch.twiml.errors import TwimlError, report
from switch.twiml.fetch import WebhookClient
from switch.twiml.interpreter import API_VERSION
from switch.twiml.session import rfc2822

__all__ = ["CALL_EVENTS", "CallInfo", "StatusCallbacks", "event_for"]

log = logging.getLogger("switch.twiml")

CALL_EVENTS = ("initiated", "ringing", "answered", "completed")
FINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})


class CallInfo(Protocol):
    """What a status callback tells about a call (``switch.calls.call.Call`` has it)."""

    sid: str
    account_sid: str
    parent_call_sid: str | None
    from_: str
    to: str
    caller_name: str
    sip_call_id: str
    direction: str
    sip_response_code: int | None

    @property
    def duration(self) -> int: ...


def event_for(status: str) -> str | None:
    """The statusCallbackEvent a call status belongs to (None for queued and unknown statuses)."""
    if status in ("initiated", "ringing"):
        return status
    if status == "in-progress":
        return "answered"
    if status in FINAL:
        return "completed"
    return None


class StatusCallbacks:
    """Status callbacks to one URL for the events in ``events``; one object may serve many calls."""

    def __init__(
        self,
        client: WebhookClient,
        url: str,
        events: Iterable[str] = ("completed",),
        method: str = "POST",
    ) -> None:
        self.client = client
        self.url = url
        self.events = frozenset(e.strip().lower() for e in events if e.strip())
        self.method = method.upper()
        self._sequence: dict[str, int] = {}
        self._chains: dict[str, asyncio.Future[None]] = {}

    def listener(self, call: CallInfo, status: str) -> None:
        """For ``CallManager.add_listener``: queue the callback behind this call's earlier ones."""
        event = event_for(status)
        if event is None or event not in self.events:
            return
        sid = call.sid
        previous = self._chains.get(sid)
        params = self._params_now(call, status)  # the call as it is now, not when the request goes out
        task = asyncio.ensure_future(self._after(previous, sid, status, params))
        self._chains[sid] = task
        task.add_done_callback(functools.partial(self._forget, sid))
        self.client.keep(task)  # one task per callback, kept by the client until it is done

    def _forget(self, sid: str, done: asyncio.Future[None]) -> None:
        if self._chains.get(sid) is done:
            del self._chains[sid]

    async def _after(
        self, previous: asyncio.Future[None] | None, sid: str, status: str, params: dict[str, str]
    ) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait((previous,))  # in order behind this call's earlier callback; never raises
        await self._send(sid, status, params)

    async def notify(self, call: CallInfo, status: str) -> bool:
        """Send the callback for ``status`` now if its event is configured; True when the app took it."""
        event = event_for(status)
        if event is None or event not in self.events:
            return False
        return await self._send(call.sid, status, self._params_now(call, status))

    def _params_now(self, call: CallInfo, status: str) -> dict[str, str]:
        params = self.params(call, status, time.time())
        if status in FINAL:
            self._sequence.pop(call.sid, None)
        return params

    async def _send(self, sid: str, status: str, params: dict[str, str]) -> bool:
        observe = self.client.settings.on_webhook
        started = time.perf_counter()
        try:
            await self.client.send(self.url, self.method, params)
        except TwimlError as exc:
            report(exc.code, f"status callback {status}: {exc.message}", call_sid=sid, url=self.url)
            return False
        finally:
            if observe is not None:
                observe(time.perf_counter() - started)
        return True

    def params(self, call: CallInfo, status: str, timestamp: float) -> dict[str, str]:
        """Twilio's status callback parameters (numbering this call's callbacks from 0)."""
        sequence = self._sequence.get(call.sid, 0)
        self._sequence[call.sid] = sequence + 1
        params = {
            "CallSid": call.sid,
            "AccountSid": call.account_sid,
            "From": call.from_,
            "To": call.to,
            "CallStatus": status,
            "ApiVersion": API_VERSION,
            "Direction": call.direction,
            "CallerName": call.caller_name,
            "SipCallId": call.sip_call_id,
            "Timestamp": rfc2822(timestamp),
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(sequence),
        }
        if call.parent_call_sid:
            params["ParentCallSid"] = call.parent_call_sid
        if status in FINAL:
            params["CallDuration"] = str(call.duration)
        if call.sip_response_code is not None:
            params["SipResponseCode"] = str(call.sip_response_code)
        return params
