"""Conference rooms: start on a moderator's entry, end on endConferenceOnExit or when empty, size limit."""

from __future__ import annotations

import asyncio
from typing import cast

from switch.calls.call import Call
from switch.calls.conferences import ConferenceManager, Member


class FakeCall:
    def __init__(self, sid: str) -> None:
        self.sid = sid
        self.ended = asyncio.Event()


def call(sid: str) -> Call:
    return cast(Call, FakeCall(sid))


def test_room_waits_for_a_moderator_and_ends_when_they_leave() -> None:
    rooms = ConferenceManager()
    guest = call("CAguest")
    room = rooms.join(Member(guest, start_on_enter=False), "sales")
    assert room is not None and not room.started.is_set()
    assert room.sid.startswith("CF") and len(room.sid) == 34
    host = call("CAhost")
    assert rooms.join(Member(host, end_on_exit=True), "sales") is room
    assert room.started.is_set() and set(room.members) == {"CAguest", "CAhost"}
    rooms.leave(room, host)
    assert room.ended.is_set() and "sales" not in rooms.rooms
    # The next caller for "sales" gets a new room.
    again = rooms.join(Member(call("CAnext")), "sales")
    assert again is not None and again.sid != room.sid


def test_room_ends_when_the_last_member_leaves_and_has_a_size_limit() -> None:
    rooms = ConferenceManager()
    a, b, c = call("CAa"), call("CAb"), call("CAc")
    room = rooms.join(Member(a), "small", max_participants=2)
    assert room is not None and rooms.join(Member(b), "small") is room
    assert rooms.join(Member(c), "small") is None
    rooms.leave(room, a)
    assert not room.ended.is_set()
    rooms.leave(room, b)
    assert room.ended.is_set()
