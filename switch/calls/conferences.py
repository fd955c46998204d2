"""Conference rooms for ``<Dial><Conference>``: who is in which room, who started it, how it ends.

The audio is the media engine's (``join_room``: each member hears the room's total minus their own voice).
A room is created by its first member and gets a ConferenceSid (``CF`` + 32 hex); its status is ``init``
until a member with ``startConferenceOnEnter`` (the default) is in it, then ``in-progress``; members who join
before wait with hold music. It ends (``completed``) when a member with ``endConferenceOnExit`` leaves, when
the last member leaves, or when the REST API ends it.

The manager only keeps the state and tells about it: each change is an event for the listeners
(``conference-start``, ``conference-end``, ``participant-join``, ``participant-leave``, ``participant-mute``,
``participant-unmute``, ``participant-hold``, ``participant-unhold``) and, for the member concerned, a call to
its ``on_change`` (the Dial running that member applies mute and hold to the media); ``removed`` ends
that member's Dial.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from switch.calls.call import Call

__all__ = ["Conference", "ConferenceListener", "ConferenceManager", "Member"]

log = logging.getLogger("switch.calls")


@dataclass(slots=True, eq=False)
class Member:
    call: Call
    muted: bool = False
    start_on_enter: bool = True
    end_on_exit: bool = False
    beep: str = "true"
    """Twilio's beep: true, false, onEnter or onExit."""
    joined_at: float = field(default_factory=time.time)
    hold: bool = False
    hold_url: str | None = None
    removed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when this member must leave: kicked (REST), or the room ended."""
    on_change: Callable[[Member], None] | None = None
    """Called after mute or hold changed, and when the room starts (the Dial running this member applies
    it to the media at once)."""


@dataclass(slots=True, eq=False)
class Conference:
    name: str
    max_participants: int = 250
    sid: str = field(default_factory=lambda: "CF" + uuid.uuid4().hex)
    members: dict[str, Member] = field(default_factory=dict)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    status: str = "init"
    """init (waiting for a moderator), in-progress, completed."""
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    account_sid: str = ""
    end_reason: str = ""
    """Twilio's ReasonConferenceEnded: conference-ended-via-api, participant-with-end-conference-on-exit-left,
    last-participant-left."""
    ended_by: str | None = None
    """CallSidEndingConference: the member whose leaving ended the room."""


ConferenceListener = Callable[[Conference, str, Member | None], None]


class ConferenceManager:
    def __init__(self) -> None:
        self.rooms: dict[str, Conference] = {}
        """Live rooms by name."""
        self._by_sid: dict[str, Conference] = {}
        self._listeners: list[ConferenceListener] = []

    # -- events ----------------------------------------------------------------------------------------
    def add_listener(self, cb: ConferenceListener) -> None:
        self._listeners.append(cb)

    def remove_listener(self, cb: ConferenceListener) -> None:
        if cb in self._listeners:
            self._listeners.remove(cb)

    def _emit(self, room: Conference, event: str, member: Member | None) -> None:
        room.updated_at = time.time()
        log.info(
            "conference event %s ConferenceSid=%s CallSid=%s",
            event,
            room.sid,
            member.call.sid if member is not None else "-",
        )
        for listener in list(self._listeners):
            try:
                listener(room, event, member)
            except Exception:
                log.exception("conference listener failed for %s", room.sid)

    # -- lookups ---------------------------------------------------------------------------------------
    def by_sid(self, sid: str) -> Conference | None:
        """A live room by its ConferenceSid (None once it ended)."""
        return self._by_sid.get(sid)

    def member(self, room: Conference, call_sid: str) -> Member | None:
        return room.members.get(call_sid)

    # -- membership ------------------------------------------------------------------------------------
    def find(self, name: str) -> Conference | None:
        """The live room called ``name``."""
        room = self.rooms.get(name)
        return room if room is not None and not room.ended.is_set() else None

    def create(self, name: str, max_participants: int = 250, account_sid: str = "") -> Conference:
        """The live room ``name``, made now when there is none (a first member about to join)."""
        room = self.find(name)
        if room is None:
            room = self.rooms[name] = Conference(name, max_participants, account_sid=account_sid)
            self._by_sid[room.sid] = room
        return room

    def join(self, member: Member, name: str, max_participants: int = 250) -> Conference | None:
        """Add a member to the room ``name`` (created on first use); None when it is full."""
        room = self.create(name, max_participants, member.call.account_sid)
        if len(room.members) >= room.max_participants:
            return None
        room.members[member.call.sid] = member
        self._emit(room, "participant-join", member)
        if member.start_on_enter and not room.started.is_set():
            room.started.set()
            room.status = "in-progress"
            for waiting in list(room.members.values()):  # out of the wait music, into the mix, now
                self._changed(waiting)
            self._emit(room, "conference-start", None)
        return room

    def leave(self, room: Conference, call: Call) -> None:
        """Take ``call`` out of the room; end the room when it was the moderator or the last one."""
        member = room.members.pop(call.sid, None)
        if member is not None:
            member.removed.set()
            self._emit(room, "participant-leave", member)
        if member is not None and member.end_on_exit:
            self.end(room, "participant-with-end-conference-on-exit-left", call.sid)
        elif not room.members:
            self.end(room, "last-participant-left", call.sid)

    def end(
        self, room: Conference, reason: str = "conference-ended-via-api", call_sid: str | None = None
    ) -> None:
        """End the room: every member's Dial ends and each goes on with its action or next verb."""
        if room.ended.is_set():
            return
        room.end_reason, room.ended_by = reason, call_sid
        room.status = "completed"
        room.ended.set()
        while room.members:  # everyone leaves, then the room ends (the order Twilio reports)
            _, member = room.members.popitem()
            member.removed.set()
            self._emit(room, "participant-leave", member)
        if self.rooms.get(room.name) is room:
            del self.rooms[room.name]
        self._by_sid.pop(room.sid, None)
        self._emit(room, "conference-end", None)

    def remove(self, room: Conference, call_sid: str) -> bool:
        """Kick a member: its Dial ends and it goes on. False when it is not a member."""
        member = room.members.get(call_sid)
        if member is None:
            return False
        member.removed.set()
        return True

    # -- mute and hold ---------------------------------------------------------------------------------
    def set_muted(self, room: Conference, call_sid: str, muted: bool) -> bool:
        member = room.members.get(call_sid)
        if member is None:
            return False
        changed = member.muted != muted
        member.muted = muted
        if changed:
            self._changed(member)
            self._emit(room, "participant-mute" if muted else "participant-unmute", member)
        return True

    def set_hold(self, room: Conference, call_sid: str, hold: bool, hold_url: str | None = None) -> bool:
        """A held member is out of the mix and hears ``hold_url``'s Play/Say (else the default music)."""
        member = room.members.get(call_sid)
        if member is None:
            return False
        changed = member.hold != hold or (hold and hold_url != member.hold_url)
        member.hold = hold
        member.hold_url = hold_url if hold else None
        if changed:
            self._changed(member)
            self._emit(room, "participant-hold" if hold else "participant-unhold", member)
        return True

    @staticmethod
    def _changed(member: Member) -> None:
        if member.on_change is not None:
            try:
                member.on_change(member)
            except Exception:
                log.exception("applying a change to CallSid=%s failed", member.call.sid)
