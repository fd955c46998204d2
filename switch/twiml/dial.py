"""``<Dial>`` and its nouns (Number, Sip, Client, Queue): connect the caller to another party.

The verb only describes what to dial; the call layer does it (``Dialer.dial``: the B2BUA places the legs,
bridges the first that answers and returns how it went). After the bridge the caller goes on with the
``action`` document (DialCallStatus, DialCallSid, DialCallDuration, DialBridged) or with the next verb.
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from dataclasses import dataclass
from typing import ClassVar, Protocol, Self, runtime_checkable
from xml.etree.ElementTree import Element

from switch.twiml.session import HANGUP, NEXT, Action, Outcome, RunContext
from switch.twiml.urls import resolve_url
from switch.twiml.verbs import Verb, attributes_of, bool_attr, choice_attr, int_attr, warn

__all__ = ["DIAL_CONTEXT", "Dial", "DialRequest", "DialResult", "DialTarget", "Dialer"]

log = logging.getLogger("switch.twiml")

DIAL_CONTEXT: ContextVar[RunContext | None] = ContextVar("DIAL_CONTEXT", default=None)
"""The running ``<Dial>``'s context (webhook client, settings): the call layer requests the nouns' url,
waitUrl and statusCallback with it."""

NOUNS = ("Number", "Sip", "Client", "Queue", "Conference")
RECORD_MODES = (
    "do-not-record",
    "record-from-answer",
    "record-from-ringing",
    "record-from-answer-dual",
    "record-from-ringing-dual",
)
_LEG_CALLBACK = ("statusCallback", "statusCallbackEvent", "statusCallbackMethod")
_LEG_EVENTS = ("initiated", "ringing", "answered", "completed")
_NOUN_ATTRIBUTES = {
    "Number": frozenset({"sendDigits", "url", "method", "byoc", *_LEG_CALLBACK}),
    "Sip": frozenset({"username", "password", "url", "method", *_LEG_CALLBACK}),
    "Client": frozenset({"url", "method", *_LEG_CALLBACK}),
    "Queue": frozenset({"url", "method", "reservationSid", "postWorkActivitySid"}),
    "Conference": frozenset(
        {
            "muted",
            "beep",
            "startConferenceOnEnter",
            "endConferenceOnExit",
            "waitUrl",
            "waitMethod",
            "maxParticipants",
            "record",
            "recordingStatusCallback",
            "recordingStatusCallbackMethod",
            "recordingStatusCallbackEvent",
            "trim",
            "statusCallback",
            "statusCallbackEvent",
            "statusCallbackMethod",
        }
    ),
}

_URL_OPTIONS = frozenset({"waitUrl", "statusCallback", "recordingStatusCallback"})


@dataclass(frozen=True, slots=True)
class DialTarget:
    """One noun: ``kind`` is number, sip, client, queue or conference; ``value`` its text."""

    kind: str
    value: str
    username: str | None = None
    password: str | None = None
    send_digits: str = ""
    url: str = ""
    method: str = "POST"
    options: tuple[tuple[str, str], ...] = ()
    """The noun's other attributes as written (Conference: muted, startConferenceOnEnter, ...)."""
    status_callback: str = ""
    """Number, Sip, Client: where the status changes of the leg placed for this noun are posted."""
    status_callback_events: tuple[str, ...] = ("completed",)
    status_callback_method: str = "POST"

    def option(self, name: str, default: str = "") -> str:
        return next((value for key, value in self.options if key == name), default)


@dataclass(frozen=True, slots=True)
class DialRequest:
    targets: tuple[DialTarget, ...]
    timeout: int = 30
    caller_id: str | None = None
    time_limit: int = 14400
    hangup_on_star: bool = False
    answer_on_bridge: bool = False
    record: str = "do-not-record"
    ring_tone: str | None = None
    recording_status_callback: str = ""
    recording_status_callback_method: str = "POST"
    recording_status_callback_events: tuple[str, ...] = ("completed",)
    trim: str = "do-not-trim"


@dataclass(frozen=True, slots=True)
class DialResult:
    """``status``: completed, busy, no-answer, failed or canceled (Twilio's DialCallStatus)."""

    status: str
    call_sid: str | None = None
    duration: int = 0
    bridged: bool = False
    extra: tuple[tuple[str, str], ...] = ()
    """More action parameters (a recording's RecordingUrl, RecordingSid, RecordingDuration)."""


@runtime_checkable
class Dialer(Protocol):
    """What a call needs to run ``<Dial>`` (the call layer's calls implement it)."""

    async def dial(self, request: DialRequest) -> DialResult: ...


def _noun(element: Element, base_url: str) -> DialTarget | None:
    tag = element.tag
    if tag not in _NOUN_ATTRIBUTES:
        warn(f"<Dial> cannot nest <{tag}>; ignored")
        return None
    attrs = attributes_of(element, _NOUN_ATTRIBUTES[tag])
    text = (element.text or "").strip()
    if tag == "Client" and not text:  # <Client><Identity>alice</Identity></Client>
        identity = element.find("Identity")
        text = (identity.text or "").strip() if identity is not None else ""
    if not text:
        warn(f"<{tag}> inside <Dial> is empty; ignored")
        return None
    url = attrs.get("url", "").strip()
    callback = attrs.get("statusCallback", "").strip() if tag in ("Number", "Sip", "Client") else ""
    return DialTarget(
        kind=tag.lower(),
        value=text,
        username=attrs.get("username"),
        password=attrs.get("password"),
        send_digits=attrs.get("sendDigits", "").strip(),
        url=resolve_url(base_url, url) if url else "",
        method=choice_attr(element, attrs, "method", ("POST", "GET")),
        options=tuple(
            (k, resolve_url(base_url, v.strip()) if k in _URL_OPTIONS and v.strip() else v)
            for k, v in attrs.items()
            if k not in ("username", "password", "sendDigits", "url", "method")
        )
        if tag == "Conference"
        else (),
        status_callback=resolve_url(base_url, callback) if callback else "",
        status_callback_events=leg_events(tag, attrs.get("statusCallbackEvent", ""))
        if callback
        else ("completed",),
        status_callback_method=choice_attr(element, attrs, "statusCallbackMethod", ("POST", "GET"))
        if callback
        else "POST",
    )


def leg_events(tag: str, text: str) -> tuple[str, ...]:
    """A leg noun's statusCallbackEvent (initiated ringing answered completed, by spaces or commas);
    ``completed`` when none is named."""
    events: list[str] = []
    for event in text.replace(",", " ").split():
        if event in _LEG_EVENTS and event not in events:
            events.append(event)
        elif event not in _LEG_EVENTS:
            warn(f"<{tag} statusCallbackEvent> has unknown event {event!r}")
    return tuple(events) or ("completed",)


@dataclass(frozen=True, slots=True)
class Dial(Verb):
    TAG: ClassVar[str] = "Dial"
    ATTRIBUTES: ClassVar[frozenset[str]] = frozenset(
        {
            "action",
            "method",
            "timeout",
            "callerId",
            "hangupOnStar",
            "timeLimit",
            "record",
            "answerOnBridge",
            "ringTone",
            "sequential",
            "recordingStatusCallback",
            "recordingStatusCallbackMethod",
            "recordingStatusCallbackEvent",
            "trim",
            "referUrl",
            "referMethod",
        }
    )
    request: DialRequest
    action: str = ""
    method: str = "POST"

    @classmethod
    def from_element(cls, element: Element, base_url: str) -> Self:
        attrs = attributes_of(element, cls.ATTRIBUTES)
        targets: list[DialTarget] = []
        text = (element.text or "").strip()
        if text:  # <Dial>+15551234</Dial>
            targets.append(DialTarget("number", text))
        for child in element:
            target = _noun(child, base_url)
            if target is not None:
                targets.append(target)
        if not targets:
            warn("<Dial> has nothing to dial")
        action = attrs.get("action", "").strip()
        callback = attrs.get("recordingStatusCallback", "").strip()
        return cls(
            request=DialRequest(
                targets=tuple(targets),
                timeout=int_attr(element, attrs, "timeout", 30, minimum=1),
                caller_id=attrs.get("callerId") or None,
                time_limit=int_attr(element, attrs, "timeLimit", 14400, minimum=1),
                hangup_on_star=bool_attr(element, attrs, "hangupOnStar", False),
                answer_on_bridge=bool_attr(element, attrs, "answerOnBridge", False),
                record=choice_attr(element, attrs, "record", RECORD_MODES),
                ring_tone=attrs.get("ringTone") or None,
                recording_status_callback=resolve_url(base_url, callback) if callback else "",
                recording_status_callback_method=choice_attr(
                    element, attrs, "recordingStatusCallbackMethod", ("POST", "GET")
                ),
                recording_status_callback_events=recording_events(
                    attrs.get("recordingStatusCallbackEvent", "completed")
                ),
                trim=choice_attr(element, attrs, "trim", ("do-not-trim", "trim-silence")),
            ),
            action=resolve_url(base_url, action) if action else "",
            method=choice_attr(element, attrs, "method", ("POST", "GET")),
        )

    @property
    def answers_later(self) -> bool:
        """answerOnBridge: the interpreter leaves the call unanswered when this verb comes first; the
        bridge answers it (or this verb, when the Dial ends without one and the caller goes on)."""
        return self.request.answer_on_bridge

    async def run(self, ctx: RunContext) -> Outcome:
        call = ctx.call
        if not isinstance(call, Dialer):
            warn("<Dial> is not available on this call; skipped", call_sid=call.sid)
            return NEXT
        if not self.request.targets:
            return NEXT
        if not self.request.answer_on_bridge:
            await call.answer()
        DIAL_CONTEXT.set(ctx)  # copied into the dial task's context
        task = asyncio.ensure_future(call.dial(self.request))
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if call.ended.is_set() and self.action:
                # The caller hung up: the session ends, but the action still hears how the Dial went.
                task.add_done_callback(lambda done: self._report_late(ctx, done))
            else:
                task.cancel()
            raise
        log.info(
            "Dial ended CallSid=%s DialCallStatus=%s DialCallSid=%s bridged=%s",
            call.sid,
            result.status,
            result.call_sid,
            result.bridged,
        )
        if self.action:
            return Outcome(Action.REDIRECT, self.action, self.method, _action_params(result))
        if call.ended.is_set():
            return HANGUP
        await call.answer()  # answerOnBridge without a bridge: the next verb needs an answered call
        return NEXT

    def _report_late(self, ctx: RunContext, done: asyncio.Future[DialResult]) -> None:
        if done.cancelled() or done.exception() is not None:
            return
        call = ctx.call
        params = {
            "CallSid": call.sid,
            "AccountSid": call.account_sid or ctx.settings.account_sid,
            "From": call.from_,
            "To": call.to,
            "CallStatus": "completed",
            "ApiVersion": "2010-04-01",
            "Direction": call.direction,
            **_action_params(done.result()),
        }
        task = asyncio.ensure_future(_post_quietly(ctx, self.action, self.method, params))
        _LATE_REPORTS.add(task)
        task.add_done_callback(_LATE_REPORTS.discard)


_LATE_REPORTS: set[asyncio.Future[None]] = set()


def _action_params(result: DialResult) -> dict[str, str]:
    params = {
        "DialCallStatus": result.status,
        "DialCallDuration": str(result.duration),
        "DialBridged": "true" if result.bridged else "false",
    }
    if result.call_sid:
        params["DialCallSid"] = result.call_sid
    params.update(result.extra)
    return params


def recording_events(text: str) -> tuple[str, ...]:
    """The recordingStatusCallbackEvent values (in-progress, completed, absent) named in ``text``."""
    events = []
    for event in (text or "completed").replace(",", " ").split():
        if event in ("in-progress", "completed", "absent"):
            events.append(event)
        else:
            warn(f"<Dial recordingStatusCallbackEvent> has unknown event {event!r}")
    return tuple(events)


async def _post_quietly(ctx: RunContext, url: str, method: str, params: dict[str, str]) -> None:
    """Request the action after the caller left; its TwiML is not run (there is nobody to run it for)."""
    try:
        await ctx.client.fetch(url, method, params)
    except Exception as exc:  # the fetcher's errors are reported by it; nothing is waiting on this
        log.info("Dial action %s after hangup failed: %s", url, exc)
