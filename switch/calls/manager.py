"""Call control: the SIP core's events become calls; calls become SIP and media actions.

Inbound: the core has sent 100 Trying; the TwiML interpreter sends 180 while it fetches the first document and
200 (with the SDP answer) when the first verb runs. Outbound (``originate``): INVITE with an SDP offer, the
application runs once the callee answers. BYE, CANCEL, re-INVITE, INFO (DTMF) and timeouts end up here too.
Every status change is told to the listeners (the REST API's records, status callbacks).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from typing import Literal, Protocol

from switch.calls.call import FINAL_STATUSES, Call, InboundCall, OutboundCall
from switch.calls.conferences import ConferenceManager
from switch.calls.dtmf import digits_from_info
from switch.calls.queues import QueueManager
from switch.calls.registrar import Authenticator, Registrar
from switch.dialplan import Dialplan, Route
from switch.media.control import MediaControl
from switch.media.engine import MediaError
from switch.media.tts import TextToSpeech
from switch.sip.auth import AuthError, NonceManager, build_authorization, parse_digest_challenge
from switch.sip.errors import SipParseError
from switch.sip.events import (
    AckReceived,
    AckTimeout,
    CancelReceived,
    Event,
    RequestReceived,
    ResponseReceived,
    TransactionTimeout,
)
from switch.sip.headers import Headers
from switch.sip.message import Request, Response, make_response
from switch.sip.sdp import (
    NoCommonCodec,
    SdpError,
    SessionDescription,
    create_offer,
    negotiate,
    parse_answer,
    parse_sdp,
)
from switch.sip.uri import SipURI, parse_uri

log = logging.getLogger("switch.calls")

SUPPORTED_CODECS = ("PCMU", "PCMA", "G722", "opus", "telephone-event")
"""What the switch accepts in an offer (the offerer's first usable one): every codec the engine carries."""
LATE_OFFER_CODECS = ("PCMU", "PCMA", "G722", "opus", "telephone-event")
"""What the switch offers in the 200 to an INVITE without SDP: every codec the media engine carries."""
BUSY_CODES = frozenset({486, 600, 603})
NO_ANSWER_CODES = frozenset({408, 480, 487})


class SipActions(Protocol):
    """What call control needs of the SIP side (the core behind the transport)."""

    def respond(self, event: RequestReceived, response: Response) -> str | None: ...

    def send_request(self, request: Request, destination: tuple[str, int], transport: str) -> str: ...

    def send_in_dialog(
        self, dialog_id: str, method: str, *, body: bytes = b"", headers: Iterable[tuple[str, str]] = ()
    ) -> str: ...

    def cancel(self, transaction_id: str) -> str | None: ...


CallRunner = Callable[[Call, str, str, bytes | None], Awaitable[None]]
Listener = Callable[[Call, str], None]


class CallManager:
    def __init__(
        self,
        sip: SipActions,
        media: MediaControl,
        tts: TextToSpeech,
        run_call: CallRunner,
        *,
        account_sid: str,
        contact_host: str,
        contact_port: int,
        app_url: str,
        egress_allowed: Callable[[str], bool] = lambda ip: True,
        max_calls: int = 0,
        overloaded: Callable[[], bool] = lambda: False,
        allowed_methods: frozenset[str] = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"}),
        dialplan: Dialplan | None = None,
        nonce_lifetime: float = 300.0,
    ) -> None:
        self.sip = sip
        self.media = media
        self.tts = tts
        self.run_call = run_call
        self.account_sid = account_sid
        self.contact_host = contact_host
        self.contact_port = contact_port
        self.contact = f"<sip:switch@{contact_host}:{contact_port}>"
        self.app_url = app_url
        self.egress_allowed = egress_allowed
        self.max_calls = max_calls
        self.overloaded = overloaded
        """Capacity protection beyond --max-calls (the event loop lags): new calls get 503."""
        self.allow_header = ", ".join(sorted(allowed_methods))
        self.calls: dict[str, Call] = {}  # live calls by CallSid
        self.by_dialog: dict[str, Call] = {}
        self.by_channel: dict[int, Call] = {}
        self.by_transaction: dict[str, OutboundCall] = {}  # outbound INVITE client transactions
        self.draining = False
        self._listeners: list[Listener] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._app_tasks: dict[str, dict[int, asyncio.Task[None]]] = {}  # CallSid -> generation -> task
        self._session_id = secrets.randbelow(2**31)
        self.dialplan = dialplan or Dialplan()
        self.auth = Authenticator(
            self.dialplan.users,
            self.dialplan.realm,
            NonceManager(secrets.token_bytes(32), nonce_lifetime),
            algorithms=self.dialplan.algorithms,
        )
        self.registrar = Registrar(self.auth)
        self.queues = QueueManager()
        self.conferences = ConferenceManager()
        self.all_ended = asyncio.Event()
        self.all_ended.set()
        media.on_dtmf = self._on_dtmf
        media.on_rtp_timeout = self._on_rtp_timeout

    # -- status ------------------------------------------------------------------------------------------
    def add_listener(self, callback: Listener) -> None:
        self._listeners.append(callback)

    def set_status(self, call: Call, status: str) -> None:
        if call.status == status:
            return
        call.status = status
        for listener in self._listeners:
            try:
                listener(call, status)
            except Exception:
                log.exception("status listener failed for CallSid=%s", call.sid)

    def _track(self, call: Call) -> None:
        self.calls[call.sid] = call
        self.by_channel[call.channel] = call
        self.all_ended.clear()

    def finish(self, call: Call, status: str, reason: str) -> None:
        """The call is over: release its media, forget it, tell the listeners."""
        if call.ended.is_set():
            return
        call.end_reason = reason
        call.ended_at = time.time()
        call.ended.set()
        if isinstance(call, OutboundCall) and call.timeout_handle is not None:
            call.timeout_handle.cancel()
        self.calls.pop(call.sid, None)
        self.by_channel.pop(call.channel, None)
        if call.dialog_id is not None:
            self.by_dialog.pop(call.dialog_id, None)
        self._spawn(self._close_channel(call.channel))
        self.set_status(call, status if status in FINAL_STATUSES else "failed")
        log.info(
            "call end CallSid=%s status=%s duration=%d reason=%s",
            call.sid,
            call.status,
            call.duration,
            reason,
        )
        if not self.calls:
            self.all_ended.set()

    async def _close_channel(self, channel: int) -> None:
        try:
            await self.media.close_channel(channel)
        except MediaError:
            pass

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- SIP actions the calls use -------------------------------------------------------------------------
    def respond(self, event: RequestReceived, response: Response) -> str | None:
        return self.sip.respond(event, response)

    def send_bye(self, call: Call) -> None:
        if call.dialog_id is not None:
            try:
                self.sip.send_in_dialog(call.dialog_id, "BYE")
            except KeyError:  # the dialog already ended
                pass

    # -- the application ---------------------------------------------------------------------------------
    def start_application(
        self, call: Call, url: str, method: str = "POST", twiml: bytes | None = None
    ) -> None:
        """Run (or replace) the call's TwiML application; when the last one ends, the call is hung up."""
        call.app_generation += 1
        generation = call.app_generation
        self._spawn(self._run_application(call, generation, url, method, twiml))

    async def _run_first_application(self, call: Call, url: str) -> None:
        """The first application of a new inbound call, in the task that set the call up (no new task)."""
        call.app_generation += 1
        await self._run_application(call, call.app_generation, url, "POST", None)

    async def _run_application(
        self, call: Call, generation: int, url: str, method: str, twiml: bytes | None
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        call_tasks = self._app_tasks.setdefault(call.sid, {})
        for old in call_tasks.values():
            old.cancel()
        call_tasks[generation] = task
        try:
            await self.run_call(call, url, method, twiml)
        except asyncio.CancelledError:
            if call.app_generation == generation:
                raise
            return  # replaced by a newer application
        except Exception:
            log.exception("call flow failed CallSid=%s", call.sid)
        finally:
            call_tasks.pop(generation, None)
            if not call_tasks:
                self._app_tasks.pop(call.sid, None)
        if call.app_generation == generation and not call.ended.is_set():
            await call.hangup()

    async def redirect(self, call: Call, *, url: str | None, twiml: str | None, method: str = "POST") -> None:
        """Replace the application of a live call (REST ``Url`` or ``Twiml``)."""
        if call.ended.is_set():
            raise ValueError("the call has ended")
        body = twiml.encode() if twiml is not None else None
        self.start_application(call, url or "", method, body)

    async def hangup(self, call: Call) -> None:
        await call.hangup()

    # -- events from the SIP core ---------------------------------------------------------------------------
    def handle_event(self, event: Event) -> None:
        if isinstance(event, RequestReceived):
            request = event.request
            if event.dialog_id is None and request.method == "INVITE":
                self._on_invite(event)
            elif event.dialog_id is None and request.method == "REGISTER":
                response = self.registrar.handle_register(
                    request, event.source, event.transport, event.connection, time.time()
                )
                self.respond(event, response)
            elif event.dialog_id is not None:
                self._on_in_dialog(event)
            else:
                self.respond(event, make_response(request, 481 if request.method == "BYE" else 405))
        elif isinstance(event, CancelReceived):
            call = self._ringing_inbound(event.request.call_id, event.request.from_.tag)
            if call is not None:
                call.final_sent = True  # the core answered 487
                call.sip_response_code = 487
                self.finish(call, "canceled", "caller canceled")
        elif isinstance(event, ResponseReceived):
            outbound = self.by_transaction.get(event.transaction_id)
            if outbound is not None:
                self._on_outbound_response(outbound, event)
        elif isinstance(event, TransactionTimeout):
            outbound = self.by_transaction.pop(event.transaction_id, None)
            if outbound is not None and not outbound.answered:
                self.finish(
                    outbound, "no-answer" if outbound.cancel_status == "no-answer" else "failed", "timeout"
                )
        elif isinstance(event, AckReceived):
            acknowledged = self.by_dialog.get(event.dialog_id)
            if acknowledged is not None:
                if acknowledged.media is None and isinstance(acknowledged, InboundCall):
                    self.on_late_answer(acknowledged, event.request)
                acknowledged.acked.set()
        elif isinstance(event, AckTimeout):
            unacknowledged = self.by_dialog.get(event.dialog_id)
            if unacknowledged is not None:
                log.info("no ACK for the 200 OK CallSid=%s: hanging up", unacknowledged.sid)
                unacknowledged.acked.set()  # the transaction gave up: BYE may go now (RFC 3261 §15)
                self._spawn(unacknowledged.hangup())

    def on_late_answer(self, call: InboundCall, ack: Request) -> None:
        """The ACK of a late-offer call carries the SDP answer to our offer: configure the media channel,
        or end the call with BYE when there is no usable answer (RFC 3264 §4: the ACK must carry it)."""
        try:
            if not ack.body:
                raise SdpError("the ACK carries no SDP answer")
            answer = parse_answer(ack.body, LATE_OFFER_CODECS)
            # Our offer stays the session description a body-less re-INVITE is answered with.
            call.configure_media(replace(answer, sdp=call.late_offer))
        except (SdpError, MediaError, ValueError) as exc:
            log.warning("late offer CallSid=%s: %s: hanging up", call.sid, exc)
            self.send_bye(call)
            self.finish(call, "failed", f"no usable SDP answer in the ACK ({exc})")

    def _ringing_inbound(self, call_id: str, from_tag: str | None) -> InboundCall | None:
        for call in self.calls.values():
            if isinstance(call, InboundCall) and call.sip_call_id == call_id and not call.answered:
                if call.invite.request.from_.tag == from_tag:
                    return call
        return None

    def _on_invite(self, event: RequestReceived) -> None:
        request = event.request
        if self.draining or (self.max_calls and len(self.calls) >= self.max_calls) or self.overloaded():
            response = make_response(request, 503)
            response.headers.add("Retry-After", "5")
            self.respond(event, response)
            return
        offer: SessionDescription | None = None  # None: a late offer, the switch offers in its 200
        if request.body:
            try:
                offer = parse_sdp(request.body)
            except SdpError as exc:
                self.respond(event, make_response(request, 400, f"Bad SDP: {exc}"[:120]))
                return
        called = (request.uri.user if isinstance(request.uri, SipURI) else "") or ""
        route = self.dialplan.route_for(called, authenticated=True)
        user = self._caller(event, route)
        if user is False:
            return
        self._spawn(self._inbound(event, offer, route, user))

    def _caller(self, event: RequestReceived, route: Route | None) -> str | None | Literal[False]:
        """Who places this INVITE to ``route`` (None: anonymous), or False once it was challenged.

        The answer never depends on whether the From names a configured user (no user enumeration):
        a private route challenges every caller without valid credentials (a name that is no user's can
        never authenticate); a public destination (a public route, or none: the default application)
        challenges nobody, and is anonymous unless the INVITE carries credentials, which must then be
        right (wrong ones, or anyone's for a name that is no user's, are challenged again)."""
        request = event.request
        proxy_auth = request.headers.get_all("Proxy-Authorization")
        private = route is not None and not route.public
        if not private and not proxy_auth:
            return None
        now = time.time()
        result = self.auth.check(request, now, proxy=True)
        from_uri = request.from_.uri
        from_user = from_uri.user if isinstance(from_uri, SipURI) else None
        if result.user is not None and result.user == from_user:
            return result.user
        self.respond(event, self.auth.challenge(request, 407, now, user=from_user, stale=result.stale))
        return False

    async def _inbound(
        self, event: RequestReceived, offer: SessionDescription | None, route: Route | None, user: str | None
    ) -> None:
        """One task per inbound call: set it up, then run its first application.

        Whatever goes wrong while the call starts, its INVITE gets a final response: an unanswered
        INVITE server transaction has no timer (RFC 3261) and would hold its request for ever."""
        try:
            call = await self._start_inbound(event, offer, route, user)
        except Exception:
            log.exception("call set-up failed for SipCallId=%s", event.request.call_id)
            self.respond(event, make_response(event.request, 500))
            return
        if call is not None:
            await self._run_first_application(call, route.twiml if route is not None else self.app_url)

    async def _start_inbound(
        self, event: RequestReceived, offer: SessionDescription | None, route: Route | None, user: str | None
    ) -> InboundCall | None:
        """The call with its media channel and SDP answer, announced initiated and ringing (None when it
        was refused: 503 without a channel, 488 without a common codec)."""
        request = event.request
        try:
            channel = await self.media.create_channel()
        except MediaError as exc:
            log.warning("no media channel for a new call: %s", exc)
            response = make_response(request, 503)
            response.headers.add("Retry-After", "5")
            self.respond(event, response)
            return None
        if offer is None:
            late_offer = create_offer(
                self.contact_host, self.media.local_port(channel), LATE_OFFER_CODECS, self._session_id, 1
            )
            call = InboundCall(self, event, channel, None, late_offer=late_offer)
        else:
            try:
                answer = negotiate(
                    offer,
                    local_address=self.contact_host,
                    local_port=self.media.local_port(channel),
                    supported=SUPPORTED_CODECS,
                    session_id=self._session_id,
                    session_version=1,
                )
            except NoCommonCodec:
                await self._close_channel(channel)
                self.respond(event, make_response(request, 488))
                return None
            call = InboundCall(self, event, channel, answer)
        call.user = user
        if route is not None and route.fallback:
            call.fallback_url = route.fallback
        if route is not None and route.status_callback:
            call.status_callback = route.status_callback
            call.status_callback_events = ("initiated", "ringing", "answered", "completed")
        self._track(call)
        log.info(
            "call start CallSid=%s From=%s To=%s SipCallId=%s",
            call.sid,
            call.from_,
            call.to,
            call.sip_call_id,
        )
        call.status = "queued"  # an inbound call is announced as initiated, then ringing, as on Twilio
        self.set_status(call, "initiated")
        self.set_status(call, "ringing")
        return call

    def _on_in_dialog(self, event: RequestReceived) -> None:
        request = event.request
        assert event.dialog_id is not None
        call = self.by_dialog.get(event.dialog_id)
        if call is None:
            self.respond(event, make_response(request, 481))
            return
        if request.method == "BYE":
            self.respond(event, make_response(request, 200))
            self.finish(call, "completed", "remote BYE")
        elif request.method == "INVITE":
            self._on_reinvite(call, event)
        elif request.method == "INFO":
            digits = digits_from_info(request.content_type, request.body)
            self.respond(event, make_response(request, 200 if digits is not None else 415))
            for digit in digits or "":
                call.digits.put_nowait(digit)
        else:
            self.respond(event, make_response(request, 200 if request.method == "OPTIONS" else 501))

    def _on_reinvite(self, call: Call, event: RequestReceived) -> None:
        request = event.request
        current = call.media
        if current is None:
            self.respond(event, make_response(request, 491))
            return
        if not request.body:  # no offer (RFC 3261 §14.2): our offer is the current session again
            sdp = current.sdp
            if isinstance(call, OutboundCall) and call.invite_request is not None:
                sdp = call.invite_request.body  # current.sdp is the callee's answer, not our session
            self._answer_sdp(event, sdp)
            return
        try:
            answer = negotiate(
                parse_sdp(request.body),
                local_address=self.contact_host,
                local_port=self.media.local_port(call.channel),
                supported=(current.codec, "telephone-event"),
                session_id=self._session_id,
                session_version=int(time.time()),
            )
            call.configure_media(answer)
        except (SdpError, NoCommonCodec, MediaError) as exc:
            response = make_response(request, 488)
            response.headers.add("Warning", f'399 switch "{exc}"')
            self.respond(event, response)
            return
        self._answer_sdp(event, answer.sdp)
        peer = call.bridged_with
        if peer is not None:
            from switch.calls.b2bua import hold_music

            hold_music(peer, answer.on_hold)

    def _answer_sdp(self, event: RequestReceived, sdp: bytes) -> None:
        response = make_response(event.request, 200)
        response.body = sdp
        response.headers.set("Content-Type", "application/sdp")
        response.headers.add("Contact", self.contact)
        self.respond(event, response)

    # -- outbound calls --------------------------------------------------------------------------------------
    async def originate(
        self,
        *,
        to: str,
        from_: str,
        url: str | None,
        twiml: str | None,
        method: str = "POST",
        fallback_url: str | None = None,
        status_callback: str | None = None,
        status_callback_event: Iterable[str] = ("completed",),
        status_callback_method: str = "POST",
        timeout: int = 60,
    ) -> OutboundCall:
        """Place a call to a SIP URI; the application (``url`` or ``twiml``) runs once it is answered.

        Raises ValueError when ``to`` is not a SIP URI the switch may reach (no DNS: an IP address).
        """
        uri = parse_uri(to.strip())
        if not isinstance(uri, SipURI):
            raise ValueError(f"To must be a SIP URI, not {to!r}")
        if not self.egress_allowed(uri.host.strip("[]")):
            raise ValueError(f"To {to!r} is not a destination this switch may call")
        if url is None and twiml is None:
            raise ValueError("Url or Twiml is required")
        if self.draining:
            raise ValueError("the switch is shutting down")
        channel = await self.media.create_channel()
        call = OutboundCall(self, channel, from_=from_, to=str(uri), sip_call_id=f"{uuid.uuid4().hex}@switch")
        call.status_callback = status_callback
        call.status_callback_events = tuple(status_callback_event)
        call.status_callback_method = status_callback_method
        call.fallback_url = fallback_url
        self._track(call)
        for listener in self._listeners:
            listener(call, call.status)
        log.info("call start CallSid=%s From=%s To=%s direction=outbound-api", call.sid, from_, call.to)
        self._spawn(self._dial(call, uri, url, twiml, method, timeout))
        return call

    async def _dial(
        self, call: OutboundCall, uri: SipURI, url: str | None, twiml: str | None, method: str, timeout: int
    ) -> None:
        call.application = (url or "", method, twiml.encode() if twiml is not None else None)
        self.send_invite(call, uri, timeout=timeout)

    async def create_leg(
        self,
        parent: Call,
        uri: SipURI,
        *,
        from_: str,
        timeout: float,
        on_answered: Callable[[OutboundCall], None],
        destination: tuple[str, int] | None = None,
        transport: str | None = None,
        credentials: tuple[str, str] | None = None,
        to: str | None = None,
        prepare: Callable[[OutboundCall], None] | None = None,
    ) -> OutboundCall:
        """An outbound leg for ``<Dial>`` (direction outbound-dial, child of ``parent``), INVITE sent.

        ``destination``/``transport`` override where the INVITE goes (a registered contact behind NAT);
        ``credentials`` answer a 401/407; ``on_answered(leg)`` runs when it answers (no application);
        ``prepare(leg)`` runs before the leg is announced (a noun's statusCallback then hears "initiated").
        Raises MediaError when no channel is free, ValueError for a destination the switch may not reach.
        """
        target = destination or (uri.host.strip("[]"), uri.port or 5060)
        if not self.egress_allowed(target[0]):
            raise ValueError(f"{uri} is not a destination this switch may call")
        channel = await self.media.create_channel(near=parent.channel)  # both legs of a bridge on one worker
        leg = OutboundCall(
            self,
            channel,
            from_=from_,
            to=to or str(uri),
            sip_call_id=f"{uuid.uuid4().hex}@switch",
            parent_call_sid=parent.sid,
            direction="outbound-dial",
        )
        leg.credentials = credentials
        leg.on_answered = on_answered
        if prepare is not None:
            prepare(leg)
        self._track(leg)
        for listener in self._listeners:
            listener(leg, leg.status)
        log.info(
            "call start CallSid=%s From=%s To=%s direction=outbound-dial ParentCallSid=%s",
            leg.sid,
            from_,
            leg.to,
            parent.sid,
        )
        self.send_invite(leg, uri, timeout=timeout, destination=destination, transport=transport)
        return leg

    def send_invite(
        self,
        call: OutboundCall,
        uri: SipURI,
        *,
        timeout: float,
        destination: tuple[str, int] | None = None,
        transport: str | None = None,
    ) -> None:
        """The first INVITE of an outbound call (with our SDP offer) and its no-answer timer."""
        offer = create_offer(
            self.contact_host, self.media.local_port(call.channel), SUPPORTED_CODECS, self._session_id, 1
        )
        from_uri = call.from_
        if not from_uri.startswith(("sip:", "sips:")):  # a number or a name: our own address, with that user
            from_uri = f"sip:{from_uri or 'switch'}@{self.contact_host}:{self.contact_port}"
        headers = Headers(
            [
                ("From", f"<{from_uri}>;tag={secrets.token_hex(8)}"),
                ("To", f"<{uri}>"),
                ("Call-ID", call.sip_call_id),
                ("CSeq", "1 INVITE"),
                ("Contact", self.contact),
                ("Allow", self.allow_header),
                ("Content-Type", "application/sdp"),
            ]
        )
        call.transport = (transport or uri.params.get("transport") or "udp").upper()
        call.destination = destination or (uri.host.strip("[]"), uri.port or 5060)
        self._send_invite(call, Request("INVITE", uri, headers, offer))
        self.set_status(call, "initiated")
        call.timeout_handle = asyncio.get_running_loop().call_later(
            timeout, self.cancel_outbound, call, "no-answer"
        )

    def _send_invite(self, call: OutboundCall, request: Request) -> None:
        call.invite_request = request
        call.invite_transaction = self.sip.send_request(request, call.destination, call.transport)
        self.by_transaction[call.invite_transaction] = call

    def _retry_invite(self, call: OutboundCall, response: Response) -> bool:
        """Answer a 401/407 with credentials, or follow a 3xx's Contact; False when neither applies."""
        request = call.invite_request
        if request is None or call.ended.is_set():
            return False
        status = response.status
        headers = request.headers.copy()
        uri = request.uri
        if status in (401, 407) and call.credentials is not None and call.auth_attempts < 2:
            name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
            challenges = []
            for value in response.headers.get_all(name):
                try:
                    challenges.append(parse_digest_challenge(value))
                except AuthError:
                    continue
            if not challenges:
                return False
            challenge = next((c for c in challenges if c.algorithm == "SHA-256"), challenges[0])
            username, password = call.credentials
            call.auth_attempts += 1
            authorization = build_authorization(
                challenge, username, password, "INVITE", str(uri), secrets.token_hex(8), 1
            )
            headers.set("Authorization" if status == 401 else "Proxy-Authorization", authorization)
        elif 300 <= status < 400 and call.redirects < 3:
            try:
                contacts = response.contacts
            except SipParseError:
                return False
            target = next((c.uri for c in contacts if isinstance(c.uri, SipURI)), None)
            if not isinstance(target, SipURI) or not self.egress_allowed(target.host.strip("[]")):
                return False
            call.redirects += 1
            uri = target
            call.destination = (target.host.strip("[]"), target.port or 5060)
            call.transport = (target.params.get("transport") or "udp").upper()
            log.info("CallSid=%s redirected (%d) to %s", call.sid, status, target)
        else:
            return False
        headers.set("CSeq", f"{request.cseq.seq + 1} INVITE")
        self._send_invite(call, Request("INVITE", uri, headers, request.body))
        return True

    def cancel_outbound(self, call: OutboundCall, status: str) -> None:
        """Stop an outbound call that is not answered yet: CANCEL it if it is ringing."""
        if call.answered or call.ended.is_set():
            return
        call.cancel_status = status
        if call.invite_transaction is None or self.sip.cancel(call.invite_transaction) is None:
            self.finish(call, status, "canceled before the INVITE went out")

    def _on_outbound_response(self, call: OutboundCall, event: ResponseReceived) -> None:
        response = event.response
        status = response.status
        if status < 200:
            if status in (180, 183) and call.status in ("queued", "initiated"):
                self.set_status(call, "ringing")
            return
        self.by_transaction.pop(event.transaction_id, None)
        call.sip_response_code = status
        if 300 <= status < 500 and status != 487 and self._retry_invite(call, response):
            return
        if call.timeout_handle is not None:
            call.timeout_handle.cancel()
        if status >= 300:
            if status == 487:
                final = call.cancel_status
            elif status in BUSY_CODES:
                final = "busy"
            elif status in NO_ANSWER_CODES:
                final = "no-answer"
            else:
                final = "failed"
            self.finish(call, final, f"{status} {response.reason}")
            return
        call.dialog_id = event.dialog_id
        if event.dialog_id is not None:
            self.by_dialog[event.dialog_id] = call
            self.sip.send_in_dialog(event.dialog_id, "ACK")
        call.acked.set()
        if call.ended.is_set():  # hung up while the 200 was on its way
            self.send_bye(call)
            return
        try:
            call.configure_media(parse_answer(response.body, SUPPORTED_CODECS))
        except (SdpError, MediaError) as exc:
            log.warning("unusable SDP answer CallSid=%s: %s", call.sid, exc)
            self.send_bye(call)
            self.finish(call, "failed", "bad SDP answer")
            return
        call.answered = True
        call.answered_at = time.time()
        self.set_status(call, "in-progress")
        if call.on_answered is not None:
            call.on_answered(call)
            return
        url, method, twiml = call.application
        self.start_application(call, url, method, twiml)

    # -- media events --------------------------------------------------------------------------------------
    def _on_dtmf(self, channel: int, digit: str, source: str) -> None:
        call = self.by_channel.get(channel)
        if call is not None:
            call.digits.put_nowait(digit)

    def _on_rtp_timeout(self, channel: int) -> None:
        call = self.by_channel.get(channel)
        if call is not None:
            log.info("RTP timeout CallSid=%s: hanging up", call.sid)
            self._spawn(call.hangup())

    # -- shutdown ------------------------------------------------------------------------------------------
    def hangup_all(self) -> None:
        for call in list(self.calls.values()):
            self._spawn(call.hangup())

    async def drain(self, seconds: float) -> None:
        """Refuse new calls (503) and let the calls in progress go on for up to ``seconds``."""
        self.draining = True
        try:
            await asyncio.wait_for(self.all_ended.wait(), seconds)
        except TimeoutError:
            log.info("drain timeout: hanging up %d calls", len(self.calls))
            self.hangup_all()
