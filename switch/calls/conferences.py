"""Conference rooms for ``<Dial><Conference>``: who is in which room, who started it, how it ends.

The audio is the media engine's (``join_room``: each member hears the room's total minus their own voice).
A room is created by its first member and gets a ConferenceSid (``CF`` + 32 hex). It starts when a member with
``startConferenceOnEnter`` (the default) is in it; members who join before wait with hold music. It ends when
a member with ``endConferenceOnExit`` leaves, or when the last member leaves.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from switch.calls.call import Call

__all__ = ["Conference", "ConferenceManager", "Member"]


@dataclass(slots=True)
class Member:
    call: Call
    muted: bool = False
    start_on_enter: bool = True
    end_on_exit: bool = False


@dataclass(slots=True)
class Conference:
    name: str
    max_participants: int = 250
    sid: str = field(default_factory=lambda: "CF" + uuid.uuid4().hex)
    members: dict[str, Member] = field(default_factory=dict)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class ConferenceManager:
    def __init__(self) -> None:
        self.rooms: dict[str, Conference] = {}

    def join(self, member: Member, name: str, max_participants: int = 250) -> Conference | None:
        """Add a member to the room ``name`` (created on first use); None when it is full."""
        room = self.rooms.get(name)
        if room is None or room.ended.is_set():
            room = self.rooms[name] = Conference(name, max_participants)
        if len(room.members) >= room.max_participants:
            return None
        room.members[member.call.sid] = member
        if member.start_on_enter:
            room.started.set()
        return room

    def leave(self, room: Conference, call: Call) -> None:
        """Take ``call`` out of the room; end the room when it was the moderator or the last one."""
        member = room.members.pop(call.sid, None)
        if (member is not None and member.end_on_exit) or not room.members:
            room.ended.set()
        if room.ended.is_set() and self.rooms.get(room.name) is room:
            del self.rooms[room.name]
