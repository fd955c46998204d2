"""Call control for inbound calls: the SIP core's events become calls; calls become SIP and media actions.

An INVITE gets 100 Trying at once; the TwiML interpreter then sends 180 while it fetches the first document
and 200 (with the SDP answer) when the first verb runs. BYE, CANCEL, re-INVITE and ACK timeouts end up
here too.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from switch.calls.call import Call
from switch.media.engine import MediaEngine
from switch.media.tts import TextToSpeech
from switch.sip.events import (
    AckReceived,
    AckTimeout,
    CancelReceived,
    Event,
    RequestReceived,
)
from switch.sip.message import Response, make_response
from switch.sip.sdp import NoCommonCodec, SdpError, negotiate, parse_sdp

log = logging.getLogger("switch.calls")

SUPPORTED_CODECS = ("PCMU", "PCMA", "telephone-event")


class SipActions(Protocol):
    """What call control needs of the SIP side (the core behind the transport)."""

    def respond(self, event: RequestReceived, response: Response) -> str | None: ...
    def send_in_dialog(
        self, dialog_id: str, method: str, *, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()
    ) -> str: ...


CallRunner = Callable[[Call], Awaitable[None]]


class CallManager:
    def __init__(
        self,
        sip: SipActions,
        media: MediaEngine,
        tts: TextToSpeech,
        run_call: CallRunner,
        *,
        account_sid: str,
        contact_host: str,
        contact_port: int,
        max_calls: int = 0,
        user_agent: str = "switch",
        allowed_methods: frozenset[str] = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"}),
    ) -> None:
        self.sip = sip
        self.media = media
        self.tts = tts
        self.run_call = run_call
        self.account_sid = account_sid
        self.contact_host = contact_host
        self.contact_port = contact_port
        self.max_calls = max_calls
        self.user_agent = user_agent
        self.allow_header = ", ".join(sorted(allowed_methods))
        self.calls: dict[str, Call] = {}  # by CallSid
        self.by_call_id: dict[str, Call] = {}  # by SIP Call-ID and local tag: "callid;tag"
        self.by_dialog: dict[str, Call] = {}
        self.draining = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._session_id = secrets.randbelow(2**31)
        self.all_ended = asyncio.Event()
        self.all_ended.set()

    # -- SIP actions the calls use ---------------------------------------------------------------------------
    def respond(self, event: RequestReceived, response: Response) -> str | None:
        return self.sip.respond(event, response)

    def send_bye(self, call: Call) -> None:
        if call.dialog_id is not None:
            self.sip.send_in_dialog(call.dialog_id, "BYE")

    # -- events from the SIP core ----------------------------------------------------------------------------
    def handle_event(self, event: Event) -> None:
        if isinstance(event, RequestReceived):
            request = event.request
            if event.dialog_id is None and request.method == "INVITE":
                self._on_invite(event)
            elif event.dialog_id is not None:
                self._on_in_dialog(event)
            else:
                self.respond(event, make_response(request, 405 if request.method != "BYE" else 481))
        elif isinstance(event, CancelReceived):
            call = self._find_invite(event.request.call_id)
            if call is not None:
                call.final_sent = True  # the core answered 487
                call.status = "canceled"
                self.end(call, "canceled")
        elif isinstance(event, AckTimeout):
            call = self.by_dialog.get(event.dialog_id)
            if call is not None:
                log.info("no ACK for the 200 OK CallSid=%s: hanging up", call.sid)
                asyncio.get_running_loop().create_task(call.hangup())
        elif isinstance(event, AckReceived):
            pass

    def _find_invite(self, call_id: str) -> Call | None:
        for call in self.by_call_id.values():
            if call.sip_call_id == call_id and not call.answered:
                return call
        return None

    def _on_invite(self, event: RequestReceived) -> None:
        request = event.request  # the core has already sent 100 Trying
        if self.draining or (self.max_calls and len(self.calls) >= self.max_calls):
            response = make_response(request, 503)
            response.headers.add("Retry-After", "5")
            self.respond(event, response)
            return
        if not request.body:
            # Late offer (no SDP in the INVITE) is legal but not yet supported.
            response = make_response(request, 488)
            response.headers.add("Warning", '399 switch "an SDP offer in the INVITE is required"')
            self.respond(event, response)
            return
        try:
            offer = parse_sdp(request.body)
        except SdpError as exc:
            response = make_response(request, 400, f"Bad SDP: {exc}"[:120])
            self.respond(event, response)
            return
        task = asyncio.get_running_loop().create_task(self._start_call(event, offer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start_call(self, event: RequestReceived, offer: object) -> None:
        request = event.request
        channel = await self.media.create_channel()
        try:
            answer = negotiate(
                offer,  # type: ignore[arg-type]
                local_address=self.contact_host,
                local_port=self.media.local_port(channel),
                supported=SUPPORTED_CODECS,
                session_id=self._session_id,
                session_version=1,
            )
        except NoCommonCodec:
            await self.media.close_channel(channel)
            self.respond(event, make_response(request, 488))
            return
        call = Call(self, event, channel, answer)
        self.calls[call.sid] = call
        self.by_call_id[f"{call.sip_call_id};{call.local_tag}"] = call
        self.all_ended.clear()
        log.info(
            "call start CallSid=%s From=%s To=%s SipCallId=%s",
            call.sid,
            call.from_,
            call.to,
            call.sip_call_id,
        )
        try:
            await self.run_call(call)
        except Exception:
            log.exception("call flow failed CallSid=%s", call.sid)
        finally:
            if not call.ended.is_set():
                await call.hangup()

    def _on_in_dialog(self, event: RequestReceived) -> None:
        request = event.request
        assert event.dialog_id is not None
        call = self.by_dialog.get(event.dialog_id)
        if call is None:
            self.respond(event, make_response(request, 481))
            return
        if request.method == "BYE":
            self.respond(event, make_response(request, 200))
            call.status = "completed"
            self.end(call, "remote BYE")
        elif request.method == "INVITE":
            self._on_reinvite(call, event)
        else:
            self.respond(event, make_response(request, 200 if request.method == "OPTIONS" else 501))

    def _on_reinvite(self, call: Call, event: RequestReceived) -> None:
        request = event.request
        if not request.body:
            response = make_response(request, 200)
            response.body = call.media.sdp
            response.headers.set("Content-Type", "application/sdp")
            response.headers.add("Contact", f"<sip:{self.contact_host}:{self.contact_port}>")
            self.respond(event, response)
            return
        try:
            answer = negotiate(
                parse_sdp(request.body),
                local_address=self.contact_host,
                local_port=self.media.local_port(call.channel),
                supported=(call.media.codec, "telephone-event"),
                session_id=self._session_id,
                session_version=int(time.time()),
            )
        except (SdpError, NoCommonCodec):
            self.respond(event, make_response(request, 488))
            return
        call.reinvite(request, answer)
        response = make_response(request, 200)
        response.body = answer.sdp
        response.headers.set("Content-Type", "application/sdp")
        response.headers.add("Contact", f"<sip:{self.contact_host}:{self.contact_port}>")
        self.respond(event, response)

    # -- the end of a call -----------------------------------------------------------------------------------
    def end(self, call: Call, reason: str) -> None:
        if call.ended.is_set():
            return
        call.end_reason = reason
        call.ended.set()
        self.media.stop_playback(call.channel)
        self.calls.pop(call.sid, None)
        self.by_call_id.pop(f"{call.sip_call_id};{call.local_tag}", None)
        if call.dialog_id is not None:
            self.by_dialog.pop(call.dialog_id, None)
        task = asyncio.get_running_loop().create_task(self.media.close_channel(call.channel))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info(
            "call end CallSid=%s status=%s duration=%d reason=%s",
            call.sid,
            call.status,
            call.duration,
            reason,
        )
        if not self.calls:
            self.all_ended.set()

    def hangup_all(self) -> None:
        for call in list(self.calls.values()):
            asyncio.get_running_loop().create_task(call.hangup())

    async def drain(self, seconds: float) -> None:
        """Refuse new calls (503) and let the calls in progress go on for up to ``seconds``."""
        self.draining = True
        try:
            await asyncio.wait_for(self.all_ended.wait(), seconds)
        except TimeoutError:
            log.info("drain timeout: hanging up %d calls", len(self.calls))
            self.hangup_all()
