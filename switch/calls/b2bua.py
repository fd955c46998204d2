"""``<Dial>`` as a back-to-back user agent: place the legs, bridge the first to answer, end cleanly.

Each noun becomes one or more outbound legs (direction ``outbound-dial``, ParentCallSid = the caller): a
``Sip`` URI (with its username/password for a 401/407), a ``Client`` (every registered contact of the user,
sent where its REGISTER came from), a ``Number`` (through the first trunk of the dialplan that allows it).
All legs ring in parallel; the first to answer is bridged with the caller through the media engine and the
others are cancelled. A caller who hangs up while the legs ring makes the switch CANCEL them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from switch.calls.bridge_record import BridgeRecording
from switch.calls.call import InboundCall, OutboundCall
from switch.calls.conference_dial import dial_conference
from switch.calls.hold import first_of, hold_music, wait_for_star
from switch.calls.ringtones import ring_tone
from switch.dialplan import clean_number
from switch.media.engine import MediaError
from switch.sip.message import make_response
from switch.sip.uri import SipURI, parse_uri
from switch.twiml.dial import DialRequest, DialResult, DialTarget
from switch.twiml.errors import report

if TYPE_CHECKING:
    from switch.calls.call import Call
    from switch.calls.queues import QueueEntry

__all__ = ["LegPlan", "dial", "hold_music", "plan_legs"]

log = logging.getLogger("switch.calls")

INVALID_NUMBER = 13224
"""Twilio's "Dial: invalid phone number"."""
DIAL_REFUSED = 13227
"""Twilio's "Dial: no international authorization": the destination is not one this switch may call."""


@dataclass(frozen=True, slots=True)
class LegPlan:
    """Where one leg goes: the Request-URI, the To, the address/transport to send to, credentials."""

    uri: SipURI
    to: str
    from_: str
    destination: tuple[str, int] | None = None
    transport: str | None = None
    credentials: tuple[str, str] | None = None
    send_digits: str = ""
    url: str = ""
    """The noun's url: a whisper played to the callee once it answered, before the bridge."""
    method: str = "POST"
    status_callback: tuple[str, tuple[str, ...], str] | None = None
    """The noun's statusCallback: (URL, events, method) for the leg."""

    def prepare(self, leg: OutboundCall) -> None:
        """Give ``leg`` the noun's statusCallback before it is announced (so "initiated" reaches it)."""
        if self.status_callback is not None:
            url, events, method = self.status_callback
            leg.status_callback, leg.status_callback_events, leg.status_callback_method = url, events, method


def _user_of(uri_text: str) -> str:
    try:
        uri = parse_uri(uri_text)
    except Exception:
        return uri_text
    return uri.user or "" if isinstance(uri, SipURI) else uri_text


def plan_legs(call: Call, request: DialRequest, now: float) -> list[LegPlan]:
    """The legs ``request`` asks for, in noun order; nouns that lead nowhere are logged and left out."""
    manager = call.manager
    caller_id = request.caller_id or _user_of(call.from_) or "switch"
    plans: list[LegPlan] = []
    for target in request.targets:
        callback = (
            (target.status_callback, target.status_callback_events, target.status_callback_method)
            if target.status_callback
            else None
        )
        plans += [
            replace(plan, status_callback=callback) for plan in _plan_target(call, target, caller_id, now)
        ]
    if not plans:
        log.info("Dial CallSid=%s: no destination to ring", call.sid)
    del manager
    return plans


def _plan_target(call: Call, target: DialTarget, caller_id: str, now: float) -> list[LegPlan]:
    manager = call.manager
    if target.kind == "sip":
        try:
            uri = parse_uri(target.value)
        except Exception:
            uri = None
        if not isinstance(uri, SipURI):
            log.warning("Dial CallSid=%s: <Sip> %r is not a SIP URI", call.sid, target.value)
            return []
        refusal = manager.dialplan.dial_policy.refusal(uri.user, uri.host)
        if refusal is not None:
            report(DIAL_REFUSED, f"<Dial><Sip> to {uri} refused: {refusal}", call_sid=call.sid)
            return []
        credentials = (target.username, target.password or "") if target.username else None
        return [
            LegPlan(uri, str(uri), caller_id, credentials=credentials, url=target.url, method=target.method)
        ]
    if target.kind == "client":
        bindings = manager.registrar.contacts(target.value, now)
        plans = []
        for binding in bindings:
            contact = parse_uri(binding.contact)
            if isinstance(contact, SipURI):
                to = f"sip:{target.value}@{manager.contact_host}:{manager.contact_port}"
                plans.append(
                    LegPlan(
                        contact,
                        to,
                        caller_id,
                        binding.source,
                        binding.transport,
                        url=target.url,
                        method=target.method,
                    )
                )
        if not plans:
            log.info("Dial CallSid=%s: client %r is not registered", call.sid, target.value)
        return plans
    if target.kind == "number":
        number = clean_number(target.value)
        if number is None:
            report(INVALID_NUMBER, f"<Number> {target.value!r} is not a phone number", call_sid=call.sid)
            return []
        trunk = manager.dialplan.trunk_for(number)
        if trunk is None:
            report(DIAL_REFUSED, f"<Number> {number}: no trunk may call it", call_sid=call.sid)
            return []
        gateway = parse_uri(trunk.gateway)
        if not isinstance(gateway, SipURI):
            return []
        uri = SipURI(gateway.scheme, number, None, gateway.host, gateway.port, dict(gateway.params), {})
        credentials = (trunk.username, trunk.password or "") if trunk.username else None
        return [
            LegPlan(
                uri,
                str(uri),
                trunk.caller_id_for(caller_id),
                credentials=credentials,
                send_digits=target.send_digits,
                url=target.url,
                method=target.method,
            )
        ]
    log.warning("Dial CallSid=%s: <%s> is not supported yet", call.sid, target.kind.capitalize())
    return []


def _early_media(call: Call) -> bool:
    """answerOnBridge: 183 Session Progress with the SDP answer, so the caller hears our ring tone while
    the call stays unanswered; False when the call cannot have early media (then a plain 180)."""
    if not isinstance(call, InboundCall) or call.answered or call.final_sent or call.ended.is_set():
        return False
    manager = call.manager
    try:
        call.configure_media(call.offer_answer)
    except MediaError as exc:
        log.info("no early media for CallSid=%s: %s", call.sid, exc)
        return False
    response = make_response(call.invite.request, 183, to_tag=call.local_tag)
    response.headers.add("Contact", manager.contact)
    response.body = call.offer_answer.sdp
    response.headers.set("Content-Type", "application/sdp")
    manager.respond(call.invite, response)
    log.info("early media CallSid=%s: 183 with ring tone", call.sid)
    return True


def _final_status(legs: list[OutboundCall]) -> str:
    statuses = {leg.status for leg in legs}
    for status in ("busy", "no-answer", "failed"):
        if status in statuses:
            return status
    return "canceled" if statuses == {"canceled"} else "failed"


async def dial(call: Call, request: DialRequest) -> DialResult:
    """Run one ``<Dial>`` for ``call``; returns when the bridge (or the attempt) is over."""
    manager = call.manager
    queue = next((t for t in request.targets if t.kind == "queue"), None)
    if queue is not None:
        return await _dial_queue(call, request, queue)
    room = next((t for t in request.targets if t.kind == "conference"), None)
    if room is not None:
        return await dial_conference(call, request, room)
    plans = plan_legs(call, request, time.time())
    if not plans:
        return DialResult("failed")
    loop = asyncio.get_running_loop()
    winner: asyncio.Future[OutboundCall] = loop.create_future()

    def on_answered(leg: OutboundCall) -> None:
        if winner.done() or call.ended.is_set():
            asyncio.ensure_future(leg.hangup())  # a second answer, or too late: BYE
        else:
            winner.set_result(leg)

    legs: list[OutboundCall] = []
    ringing: asyncio.Task[None] | None = None
    early: BridgeRecording | None = None
    """record-from-ringing: started with the ring tone, handed to the bridge (or kept if there is none)."""
    try:
        for plan in plans:
            try:
                leg = await manager.create_leg(
                    call,
                    plan.uri,
                    from_=plan.from_,
                    to=plan.to,
                    timeout=request.timeout,
                    on_answered=on_answered,
                    destination=plan.destination,
                    transport=plan.transport,
                    credentials=plan.credentials,
                    prepare=plan.prepare,
                )
            except (ValueError, MediaError) as exc:
                log.warning("Dial CallSid=%s: cannot call %s: %s", call.sid, plan.uri, exc)
                continue
            legs.append(leg)
        if not legs:
            return DialResult("failed")
        if call.answered or (request.answer_on_bridge and _early_media(call)):
            ringing = asyncio.ensure_future(call.play(ring_tone(request.ring_tone), 0))
            if request.record.startswith("record-from-ringing"):
                early = BridgeRecording(call, request)
                early.start()
        else:
            await call.ringing()
        all_ended = asyncio.ensure_future(_all_ended(legs))
        caller_gone = asyncio.ensure_future(call.ended.wait())
        try:
            racers: set[asyncio.Future[Any]] = {winner, all_ended, caller_gone}
            await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
        finally:
            all_ended.cancel()
            caller_gone.cancel()
        if call.ended.is_set() and not winner.done():
            for leg in legs:
                await leg.hangup()  # CANCEL
            return DialResult("canceled", legs[0].sid if len(legs) == 1 else None)
        if not winner.done():
            return DialResult(_final_status(legs), legs[0].sid if len(legs) == 1 else None)
        leg = winner.result()
        for other in legs:
            if other is not leg:
                await other.hangup()
        plan = plans[legs.index(leg)]
        if plan.url:  # the whisper: the callee hears it, the caller still hears ringing
            from switch.calls.whisper import run_whisper

            whisper = asyncio.ensure_future(run_whisper(leg, plan.url, plan.method))
            await first_of(whisper, call.ended.wait())
            if call.ended.is_set():
                return DialResult("canceled", leg.sid)
            if not whisper.result():
                log.info("Dial CallSid=%s: the callee %s declined in the whisper", call.sid, leg.sid)
                return DialResult("no-answer", leg.sid)
        if ringing is not None:
            ringing.cancel()
        handed, early = early, None
        return await _bridge(call, leg, request, plan.send_digits, handed)
    finally:
        finishing = asyncio.ensure_future(early.finish()) if early is not None else None
        if ringing is not None:
            ringing.cancel()
        if not winner.done():
            winner.cancel()
        for leg in legs:
            if not leg.ended.is_set():
                await leg.hangup()  # CANCEL while ringing, BYE once answered
        if finishing is not None:
            await asyncio.shield(finishing)


async def _bridge(
    call: Call,
    leg: OutboundCall,
    request: DialRequest,
    send_digits: str,
    recording: BridgeRecording | None = None,
) -> DialResult:
    """Bridge the caller and the answered leg until one hangs up, the time limit, or ``*``; ``recording``
    is one already running since the ringing (record-from-ringing)."""
    if not call.answered:
        await call.answer()
    media = call.manager.media
    try:
        media.bridge(call.channel, leg.channel)
    except MediaError as exc:
        log.warning("Dial CallSid=%s: cannot bridge: %s", call.sid, exc)
        await leg.hangup()
        if recording is not None:
            await recording.finish()
        return DialResult("failed", leg.sid)
    call.bridged_with, leg.bridged_with = leg, call
    if recording is None and BridgeRecording.wanted(request):
        recording = BridgeRecording(call, request)
        recording.start()
    extra: dict[str, str] = {}
    if send_digits:
        await leg.send_digits(send_digits)
    try:
        await _while_bridged(call, leg, request)
    finally:
        # The bridge is undone before anything waits: a cancelled Dial must still hang the callee up.
        finishing = asyncio.ensure_future(recording.finish()) if recording is not None else None
        if not call.ended.is_set():
            try:
                media.unbridge(call.channel)
            except MediaError:
                pass
        call.bridged_with = leg.bridged_with = None
        hold_music(call, False)
        hold_music(leg, False)
        if not leg.ended.is_set():
            await leg.hangup()
        if finishing is not None:
            extra = await asyncio.shield(finishing)
    return DialResult("completed", leg.sid, leg.duration, bridged=True, extra=tuple(extra.items()))


async def _while_bridged(call: Call, other: Call, request: DialRequest) -> None:
    """Until either party hangs up, the caller presses * (hangupOnStar) or timeLimit passes."""
    waits: set[asyncio.Future[Any]] = {
        asyncio.ensure_future(other.ended.wait()),
        asyncio.ensure_future(call.ended.wait()),
    }
    if request.hangup_on_star:
        waits.add(asyncio.ensure_future(wait_for_star(call)))
    try:
        await asyncio.wait(waits, timeout=request.time_limit, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waits:
            waiter.cancel()


async def _dial_queue(call: Call, request: DialRequest, target: DialTarget) -> DialResult:
    """``<Dial><Queue>``: take the first caller of the queue and bridge the two until one hangs up."""
    entry = call.manager.queues.take(target.value)
    if entry is None:
        log.info("Dial CallSid=%s: queue %r is empty", call.sid, target.value)
        return DialResult("no-answer")
    caller = entry.call
    if not call.answered:
        await call.answer()
    entry.dequeued.set_result(call.sid)  # the caller's wait music stops
    await asyncio.sleep(0)  # let the caller's <Enqueue> stop its playback before the bridge starts
    if target.url:  # played to the dequeued caller before the bridge
        declined = await _queue_whisper(call, entry, target)
        if declined is not None:
            if not entry.bridge_ended.done():
                entry.bridge_ended.set_result(declined)
            return DialResult("no-answer", caller.sid)
    media = call.manager.media
    started = time.time()
    result = "bridged"
    try:
        media.bridge(call.channel, caller.channel)
    except MediaError as exc:
        log.warning("Dial CallSid=%s: cannot bridge queue caller %s: %s", call.sid, caller.sid, exc)
        result = "system-error"
    call.bridged_with, caller.bridged_with = caller, call
    try:
        if result == "bridged":
            await _while_bridged(call, caller, request)
    finally:
        call.bridged_with = caller.bridged_with = None
        for channel_call in (call, caller):
            hold_music(channel_call, False)
            if not channel_call.ended.is_set():
                try:
                    media.unbridge(channel_call.channel)
                except MediaError:
                    pass
        if not entry.bridge_ended.done():
            entry.bridge_ended.set_result("hangup" if caller.ended.is_set() else result)
    duration = int(time.time() - started)
    return DialResult("completed", caller.sid, duration, bridged=result == "bridged")


async def _queue_whisper(call: Call, entry: QueueEntry, target: DialTarget) -> str | None:
    """Run the Queue noun's url on the dequeued caller; None to bridge, else the caller's QueueResult."""
    from switch.calls.whisper import run_whisper

    caller = entry.call
    extra = {"QueueSid": entry.queue_sid, "QueueTime": str(entry.queue_time()), "DequeingCallSid": call.sid}
    whisper = asyncio.ensure_future(run_whisper(caller, target.url, target.method, extra))
    await first_of(whisper, call.ended.wait(), caller.ended.wait())
    if caller.ended.is_set():
        whisper.cancel()
        return "hangup"
    if not whisper.done():  # the agent left while the caller heard the url
        whisper.cancel()
        return "error"
    if not whisper.result():  # the url's document hung up on the caller
        await caller.hangup()
        return "hangup"
    return None


async def _all_ended(legs: list[OutboundCall]) -> None:
    for leg in legs:
        await leg.ended.wait()
