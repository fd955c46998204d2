"""One call: its SIP side (the INVITE transaction and dialog) and its media side (a channel of the engine).

`InboundCall` and `OutboundCall` implement `switch.twiml.session.CallControl`, which is all the TwiML
interpreter knows of a call. The SIP work is done by the `CallManager` they belong to.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from switch.media.engine import PTIMES, MediaError
from switch.sip.errors import SipParseError
from switch.sip.events import RequestReceived
from switch.sip.headers import parse_name_addr
from switch.sip.message import Request, Response, make_response
from switch.sip.sdp import AudioAnswer
from switch.twiml.session import CallEnd

if TYPE_CHECKING:
    from switch.calls.manager import CallManager
    from switch.calls.queues import QueueEntry
    from switch.media.recorder import RecordingResult
    from switch.twiml.dial import DialRequest, DialResult

log = logging.getLogger("switch.calls")

ACK_WAIT = 4.0
"""How long a hang-up waits for the caller's ACK before it sends BYE all the same."""

FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})


_sid_random = random.Random(secrets.randbits(128))

MAX_X_HEADERS = 32
"""At most this many ``X-`` headers of an INVITE are passed on to webhooks (as ``SipHeader_X-...``)."""
MAX_X_HEADER_BYTES = 1024
"""An ``X-`` header whose name and value are longer than this (UTF-8) is not passed on."""
MAX_X_HEADERS_TOTAL = 8192
"""Nor more than this many bytes of ``X-`` headers in all: a caller cannot make every webhook huge."""


def x_headers_of(request: Request) -> dict[str, str]:
    """The ``X-`` headers of an INVITE, as Twilio passes them to webhooks (``SipHeader_<name>``).

    Names keep their spelling; a repeated header keeps its first value. Bounded by ``MAX_X_HEADERS``,
    ``MAX_X_HEADER_BYTES`` and ``MAX_X_HEADERS_TOTAL``: what is over is left out, never truncated.
    """
    found: dict[str, str] = {}
    seen: set[str] = set()
    total = 0
    for name, value in request.headers.items():
        if not name[:2].lower() == "x-":
            continue
        key = name.lower()
        if key in seen:
            continue
        seen.add(key)
        size = len(name.encode()) + len(value.encode())
        if size > MAX_X_HEADER_BYTES or total + size > MAX_X_HEADERS_TOTAL:
            continue
        total += size
        found[name] = value
        if len(found) >= MAX_X_HEADERS:
            break
    return found


def forwarded_from_of(request: Request) -> str:
    """The URI of the topmost ``Diversion`` header (RFC 5806: the last redirection), else blank."""
    value = request.headers.get("Diversion")
    if not value:
        return ""
    try:
        return str(parse_name_addr(value.split(",")[0]).uri)
    except SipParseError:
        return ""


def new_call_sid() -> str:
    """``CA`` and 32 hex digits: 128 random bits (a PRNG seeded from the OS: no system call per call)."""
    return f"CA{_sid_random.getrandbits(128):032x}"


class Call:
    """What inbound and outbound calls share: identity, status, media and the end of the call."""

    direction = "inbound"

    def __init__(
        self,
        manager: CallManager,
        channel: int,
        *,
        from_: str,
        to: str,
        caller_name: str,
        sip_call_id: str,
        parent_call_sid: str | None = None,
    ) -> None:
        self.manager = manager
        self.channel = channel
        self.sid = new_call_sid()
        self.account_sid = manager.account_sid
        self.parent_call_sid = parent_call_sid
        self.from_ = from_
        self.to = to
        self.caller_name = caller_name
        self.sip_call_id = sip_call_id
        self.sip_source_ip = ""
        """The address the INVITE came from (inbound calls), as Twilio's ``SipSourceIp``."""
        self.sip_headers: Mapping[str, str] = {}
        """The INVITE's ``X-`` headers (inbound calls), sent to webhooks as ``SipHeader_<name>``."""
        self.forwarded_from = ""
        """The Diversion of the INVITE (inbound calls), as Twilio's ``ForwardedFrom``."""
        self.media: AudioAnswer | None = None
        self.dialog_id: str | None = None
        self.answered = False
        self.status = "queued"
        self.sip_response_code: int | None = None
        self.ended: asyncio.Event = CallEnd()
        self.acked = asyncio.Event()
        """Set when the ACK for our 2xx arrived (inbound) or we sent ours (outbound)."""
        self.digits: asyncio.Queue[str] = asyncio.Queue()
        self.started_at = time.time()
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.end_reason = ""
        self.user: str | None = None
        """The dialplan user this call authenticated as (a call from a registered phone), else None."""
        self.status_callback: str | None = None
        """Where this call's status changes are posted (REST StatusCallback, a dialplan route's)."""
        self.status_callback_events: tuple[str, ...] = ("completed",)
        self.status_callback_method = "POST"
        self.fallback_url: str | None = None
        self.bridged_with: Call | None = None
        """The call this one is bridged to by <Dial> (hold music goes there when this one holds)."""
        self.app_generation = 0
        """Bumped when the running application is replaced (REST update, Redirect from outside)."""

    # -- CallControl: the parts every call has ------------------------------------------------------------
    async def ringing(self) -> None:
        return None

    async def answer(self) -> None:
        return None

    async def reject(self, status: int) -> None:
        await self.hangup()

    async def hangup(self) -> None:
        if self.ended.is_set():
            return
        if self.answered:
            self.manager.send_bye(self)
            self.manager.finish(self, "completed", "hangup")
        else:
            self.manager.finish(self, "canceled", "hangup before answer")

    async def play(self, pcm: NDArray[np.int16], loop: int = 1) -> None:
        if self.ended.is_set():
            return
        media = self.manager.media
        future = media.play(self.channel, pcm, loop)
        try:
            await future
        finally:
            # Cancelling the waiting task cancels the engine's future too: stop the sound then as well.
            if (not future.done() or future.cancelled()) and not self.ended.is_set():
                media.stop_playback(self.channel)

    async def say(self, text: str, voice: str | None, language: str | None) -> NDArray[np.int16]:
        return await self.manager.tts.synthesize(text, voice=voice, language=language)

    async def decode(self, data: bytes) -> NDArray[np.int16]:
        from switch.media.decode import decode_audio_async

        pcm: NDArray[np.int16] = await decode_audio_async(data)
        return pcm

    async def record(
        self,
        path: Path,
        *,
        max_length: float,
        silence_timeout: float | None,
        finish_on_digits: str,
        trim_silence: bool,
        beep: bool,
    ) -> RecordingResult:
        future = self.manager.media.record(
            self.channel,
            path,
            max_length=max_length,
            silence_timeout=silence_timeout,
            finish_on_digits=finish_on_digits,
            trim_silence=trim_silence,
            beep=beep,
        )
        try:
            return await future
        finally:
            if (not future.done() or future.cancelled()) and not self.ended.is_set():
                self.manager.media.stop_recording(self.channel)

    async def echo(self) -> None:
        if self.ended.is_set():
            return
        media = self.manager.media
        media.bridge(self.channel, self.channel)  # a channel bridged to itself hears itself
        try:
            await self.ended.wait()
        finally:
            if not self.ended.is_set():
                media.unbridge(self.channel)

    async def send_digits(self, digits: str) -> None:
        if not self.ended.is_set():
            await self.manager.media.send_dtmf(self.channel, digits)

    async def dial(self, request: DialRequest) -> DialResult:
        """Run ``<Dial>``: ring the nouns' destinations, bridge the first to answer (switch.calls.b2bua)."""
        from switch.calls.b2bua import dial

        return await dial(self, request)

    def enqueue(self, name: str, max_size: int) -> QueueEntry | None:
        """Put this caller in line in the queue ``name`` (``<Enqueue>``); None when it is full."""
        return self.manager.queues.enqueue(self, name, max_size)

    # -- media -----------------------------------------------------------------------------------------
    def configure_media(self, answer: AudioAnswer) -> None:
        """Point the channel at what offer/answer agreed (again on a re-INVITE: hold, resume, move)."""
        self.media = answer
        # Send packets of the length the peer asked to receive (its a=ptime), where the engine can;
        # otherwise 20 ms, which every G.711 peer accepts (RFC 3264 makes ptime a hint).
        ptime = answer.ptime if answer.ptime in PTIMES and answer.codec != "opus" else 20
        self.manager.media.configure(
            self.channel,
            remote=(answer.remote_address, answer.remote_port),
            codec=answer.codec,
            payload_type=answer.payload_type,
            ptime=ptime,
            telephone_event_pt=answer.telephone_event_pt,
            direction=answer.remote_direction,
            on_hold=answer.on_hold,
        )

    @property
    def duration(self) -> int:
        if self.answered_at is None:
            return 0
        end = self.ended_at if self.ended_at is not None else time.time()
        return int(round(end - self.answered_at))


class InboundCall(Call):
    """A call that reached the switch: answered (or rejected) as the TwiML application says."""

    direction = "inbound"

    def __init__(
        self,
        manager: CallManager,
        invite: RequestReceived,
        channel: int,
        answer: AudioAnswer | None,
        *,
        late_offer: bytes = b"",
    ) -> None:
        """``answer`` is our answer to the INVITE's SDP offer; None for a late offer (an INVITE without
        SDP, RFC 3264 §4, RFC 3261 §13.2.1): the 200 carries ``late_offer``, the ACK the answer."""
        request = invite.request
        super().__init__(
            manager,
            channel,
            from_=str(request.from_.uri),
            to=str(request.to.uri),
            caller_name=request.from_.display_name or "",
            sip_call_id=request.call_id,
        )
        self.invite = invite
        self.sip_source_ip = invite.source[0]
        self.sip_headers = x_headers_of(request)
        self.forwarded_from = forwarded_from_of(request)
        self._offer_answer = answer
        self.late_offer = late_offer
        self.local_tag = secrets.token_hex(8)
        self.final_sent = False
        self.status = "ringing"
        self._ringing_sent = False

    @property
    def offer_answer(self) -> AudioAnswer:
        """Our answer to the INVITE's offer. A late-offer call has none before its ACK, so it can have no
        early media (no SDP in a provisional response, RFC 3261 §13.2.1): raises MediaError then."""
        if self._offer_answer is None:
            raise MediaError("a late-offer call has no SDP answer before its ACK: no early media")
        return self._offer_answer

    def _response(self, status: int, *, body: bytes = b"") -> Response:
        manager = self.manager
        response = make_response(self.invite.request, status, to_tag=self.local_tag)
        if status < 300:
            response.headers.add("Contact", manager.contact)
        response.headers.add("Allow", manager.allow_header)
        if body:
            response.body = body
            response.headers.set("Content-Type", "application/sdp")
        return response

    def send_final(self, status: int, *, warning: str | None = None) -> None:
        """A final response (3xx-6xx) to the INVITE, once."""
        if self.final_sent:
            return
        self.final_sent = True
        self.sip_response_code = status
        response = self._response(status)
        if warning:
            response.headers.add("Warning", f'399 switch "{warning}"')
        self.manager.respond(self.invite, response)

    async def ringing(self) -> None:
        if self._ringing_sent or self.final_sent or self.ended.is_set():
            return
        self._ringing_sent = True
        self.manager.respond(self.invite, self._response(180))

    async def answer(self) -> None:
        if self.answered or self.final_sent or self.ended.is_set():
            return
        manager = self.manager
        if self._offer_answer is None:
            await self._answer_with_offer()
            return
        try:
            self.configure_media(self._offer_answer)
        except MediaError as exc:
            log.warning("cannot answer CallSid=%s: %s", self.sid, exc)
            self.send_final(488, warning=str(exc))
            manager.finish(self, "failed", "media refused")
            return
        self.final_sent = True
        self.answered = True
        self.answered_at = time.time()
        self.sip_response_code = 200
        self.dialog_id = manager.respond(self.invite, self._response(200, body=self._offer_answer.sdp))
        if self.dialog_id is not None:
            manager.by_dialog[self.dialog_id] = self
        manager.set_status(self, "in-progress")

    async def _answer_with_offer(self) -> None:
        """Answer a late offer: our offer goes in the 200; the media channel is configured when the ACK
        brings the answer (``CallManager.on_late_answer``), which this waits for, so the verb that follows
        has media. An ACK without a usable answer, or none, ends the call with BYE."""
        manager = self.manager
        self.final_sent = True
        self.answered = True
        self.answered_at = time.time()
        self.sip_response_code = 200
        self.dialog_id = manager.respond(self.invite, self._response(200, body=self.late_offer))
        if self.dialog_id is not None:
            manager.by_dialog[self.dialog_id] = self
        manager.set_status(self, "in-progress")
        if self.dialog_id is not None and not self.acked.is_set():  # no dialog: no ACK will be matched
            acked = asyncio.ensure_future(self.acked.wait())
            ended = asyncio.ensure_future(self.ended.wait())
            try:
                await asyncio.wait((acked, ended), return_when=asyncio.FIRST_COMPLETED)
            finally:
                acked.cancel()
                ended.cancel()
        if self.media is None and not self.ended.is_set():  # the ACK never came (timer H)
            await self.hangup()

    async def reject(self, status: int) -> None:
        if self.final_sent or self.ended.is_set():
            return
        self.send_final(status)
        self.manager.finish(self, "busy" if status == 486 else "failed", "rejected")

    async def hangup(self) -> None:
        if self.ended.is_set():
            return
        if not self.answered:
            # Unanswered and the application is done with it: 480, as Twilio's "no answer" would.
            self.send_final(480)
            self.manager.finish(self, "failed", "hangup before answer")
            return
        if not self.acked.is_set():
            # RFC 3261 §15: no BYE on a dialog until the ACK for our 2xx has come (or its transaction
            # gave up). An application that hangs up at once would otherwise race the caller's ACK.
            try:
                async with asyncio.timeout(ACK_WAIT):  # a timer, not a task as wait_for makes
                    await self.acked.wait()
            except TimeoutError:
                log.info("no ACK within %.1f s CallSid=%s: sending BYE anyway", ACK_WAIT, self.sid)
        await super().hangup()


class OutboundCall(Call):
    """A call the switch places (REST API ``Calls.json``): INVITE out, the application runs once answered."""

    direction = "outbound-api"

    def __init__(
        self,
        manager: CallManager,
        channel: int,
        *,
        from_: str,
        to: str,
        sip_call_id: str,
        parent_call_sid: str | None = None,
        direction: str = "outbound-api",
    ) -> None:
        super().__init__(
            manager,
            channel,
            from_=from_,
            to=to,
            caller_name="",
            sip_call_id=sip_call_id,
            parent_call_sid=parent_call_sid,
        )
        self.direction = direction
        self.invite_transaction: str | None = None
        self.cancel_status = "canceled"
        """What a CANCEL we send ends as: canceled (the API asked) or no-answer (our timeout)."""
        self.timeout_handle: asyncio.TimerHandle | None = None
        self.application: tuple[str, str, bytes | None] = ("", "POST", None)
        """The application to run once answered: (url, method, inline TwiML)."""
        self.invite_request: Request | None = None
        """The INVITE as last sent (no Via): sent again with credentials after 401/407, or to a 3xx target."""
        self.destination: tuple[str, int] = ("127.0.0.1", 5060)
        self.transport = "UDP"
        self.connection: object | None = None
        self.credentials: tuple[str, str] | None = None
        """(username, password) to answer a 401/407 challenge with (Dial's Sip noun, a trunk)."""
        self.auth_attempts = 0
        self.redirects = 0
        self.on_answered: Callable[[OutboundCall], None] | None = None
        """Called instead of starting an application when answered (a Dial leg: the B2BUA bridges it)."""

    async def hangup(self) -> None:
        if self.ended.is_set():
            return
        if not self.answered:
            self.manager.cancel_outbound(self, "canceled")
            return
        await super().hangup()
