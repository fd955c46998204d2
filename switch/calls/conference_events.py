"""Conference status callbacks (``<Conference statusCallback statusCallbackEvent>``), as Twilio sends them.

``statusCallbackEvent`` names groups: ``start`` (conference-start), ``end`` (conference-end), ``join``
(participant-join), ``leave`` (participant-leave), ``mute`` (participant-mute, -unmute), ``hold``
(participant-hold, -unhold); Twilio's default is ``start end``. The room's callback is the one of the first
member that names one (later members' are ignored, as on Twilio). Each request carries ConferenceSid,
FriendlyName, AccountSid, StatusCallbackEvent, SequenceNumber (1, 2, ... per room), Timestamp (RFC 2822)
and, for participant events, CallSid, Muted, Hold, Coaching, StartConferenceOnEnter, EndConferenceOnExit;
conference-end tells ReasonConferenceEnded and CallSidEndingConference. One room's callbacks are sent one
after the other, in order; a failing callback is logged and never holds a call up.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass, field

from switch.calls.conferences import Conference, ConferenceManager, Member
from switch.twiml.errors import TwimlError
from switch.twiml.session import RunContext, rfc2822

__all__ = ["EVENT_GROUPS", "ConferenceCallbacks", "callbacks_for", "parse_events"]

log = logging.getLogger("switch.calls")

EVENT_GROUPS: dict[str, tuple[str, ...]] = {
    "start": ("conference-start",),
    "end": ("conference-end",),
    "join": ("participant-join",),
    "leave": ("participant-leave",),
    "mute": ("participant-mute", "participant-unmute"),
    "hold": ("participant-hold", "participant-unhold"),
}


def parse_events(text: str) -> frozenset[str]:
    """The conference events a ``statusCallbackEvent`` value (space or comma separated) asks for."""
    events: set[str] = set()
    for word in (text or "start end").replace(",", " ").split():
        group = EVENT_GROUPS.get(word.strip())
        if group is None:
            log.warning("<Conference statusCallbackEvent> has unknown event %r", word)
        else:
            events.update(group)
    return frozenset(events)


@dataclass(slots=True)
class _Subscription:
    url: str
    method: str
    events: frozenset[str]
    ctx: RunContext
    sequence: int = 0
    pending: asyncio.Queue[dict[str, str]] = field(default_factory=asyncio.Queue)
    sending: bool = False


class ConferenceCallbacks:
    """Every room's status callback of one ConferenceManager."""

    def __init__(self, conferences: ConferenceManager) -> None:
        self._rooms: dict[str, _Subscription] = {}
        conferences.add_listener(self.on_event)

    def subscribe(
        self, room: Conference, url: str, method: str, events: frozenset[str], ctx: RunContext
    ) -> bool:
        """Send ``room``'s ``events`` to ``url``; False when the room already has its callback."""
        if room.sid in self._rooms or room.ended.is_set():
            return False
        self._rooms[room.sid] = _Subscription(url, method, events, ctx)
        return True

    def on_event(self, room: Conference, event: str, member: Member | None) -> None:
        sub = self._rooms.get(room.sid)
        if sub is None:
            return
        if event == "conference-end":
            del self._rooms[room.sid]
        if event not in sub.events:
            return
        sub.sequence += 1
        params = {
            "ConferenceSid": room.sid,
            "FriendlyName": room.name,
            "AccountSid": room.account_sid or sub.ctx.settings.account_sid,
            "StatusCallbackEvent": event,
            "SequenceNumber": str(sub.sequence),
            "Timestamp": rfc2822(time.time()),
        }
        if member is not None:
            params.update(
                {
                    "CallSid": member.call.sid,
                    "Muted": _bool(member.muted),
                    "Hold": _bool(member.hold),
                    "Coaching": "false",
                    "StartConferenceOnEnter": _bool(member.start_on_enter),
                    "EndConferenceOnExit": _bool(member.end_on_exit),
                }
            )
        if event == "conference-end":
            params["ReasonConferenceEnded"] = room.end_reason
            if room.ended_by:
                params["CallSidEndingConference"] = room.ended_by
        sub.pending.put_nowait(params)
        if not sub.sending:
            sub.sending = True
            sub.ctx.client.background(_send_all(sub))


async def _send_all(sub: _Subscription) -> None:
    """Send the room's pending callbacks one after the other (one sender per room at a time)."""
    try:
        while not sub.pending.empty():
            params = sub.pending.get_nowait()
            try:
                await sub.ctx.client.send(sub.url, sub.method, params)
            except TwimlError as exc:
                log.warning(
                    "conference status callback %s for %s failed: %s",
                    params["StatusCallbackEvent"],
                    params["ConferenceSid"],
                    exc.message,
                )
    finally:
        sub.sending = False


def _bool(value: bool) -> str:
    return "true" if value else "false"


_BY_MANAGER: weakref.WeakKeyDictionary[ConferenceManager, ConferenceCallbacks] = weakref.WeakKeyDictionary()


def callbacks_for(conferences: ConferenceManager) -> ConferenceCallbacks:
    """The one ConferenceCallbacks of ``conferences`` (made on first use)."""
    found = _BY_MANAGER.get(conferences)
    if found is None:
        found = _BY_MANAGER[conferences] = ConferenceCallbacks(conferences)
    return found
