"""Conference rooms: start on a moderator's entry, end on endConferenceOnExit or when empty, size limit."""

from __future__ import annotations

import asyncio
from typing import cast

from switch.calls.call import Call
from switch.calls.conferences import ConferenceManager, Member


class FakeCall:
    def __init__(self, sid: str) -> None:
        self.sid = sid
        self.account_sid = "AC" + "0" * 32
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


def test_lookups_status_and_events_in_order() -> None:
    rooms = ConferenceManager()
    events: list[tuple[str, str, str | None]] = []
    rooms.add_listener(lambda room, event, m: events.append((room.sid, event, m.call.sid if m else None)))
    guest = Member(call("CAguest"), start_on_enter=False)
    room = rooms.join(guest, "ops")
    assert room is not None and room.status == "init" and rooms.by_sid(room.sid) is room
    assert rooms.by_sid("CF" + "f" * 32) is None
    assert guest.joined_at >= room.created_at - 1 and not guest.hold
    host = Member(call("CAhost"))
    assert rooms.join(host, "ops") is room and room.status == "in-progress"
    assert rooms.set_muted(room, "CAguest", True) and guest.muted
    assert rooms.set_muted(room, "CAguest", True)  # no change: no second event
    assert not rooms.set_muted(room, "CAnobody", True)
    assert rooms.set_hold(room, "CAhost", True, "http://127.0.0.1:1/hold.xml")
    assert host.hold and host.hold_url == "http://127.0.0.1:1/hold.xml"
    assert rooms.set_hold(room, "CAhost", False) and not host.hold and host.hold_url is None
    assert not rooms.set_hold(room, "CAnobody", True)
    assert rooms.set_muted(room, "CAguest", False)
    before = room.updated_at
    rooms.end(room)
    assert room.status == "completed" and room.ended.is_set() and room.updated_at >= before
    assert guest.removed.is_set() and host.removed.is_set()
    assert rooms.by_sid(room.sid) is None and "ops" not in rooms.rooms
    # Each member's Dial then leaves: nothing more is reported.
    rooms.leave(room, guest.call)
    rooms.leave(room, host.call)
    assert [(e, who) for _, e, who in events] == [
        ("participant-join", "CAguest"),
        ("participant-join", "CAhost"),
        ("conference-start", None),
        ("participant-mute", "CAguest"),
        ("participant-hold", "CAhost"),
        ("participant-unhold", "CAhost"),
        ("participant-unmute", "CAguest"),
        ("participant-leave", "CAhost"),
        ("participant-leave", "CAguest"),
        ("conference-end", None),
    ]
    assert {sid for sid, _, _ in events} == {room.sid}


def test_remove_ends_only_that_members_dial_and_changes_reach_the_member() -> None:
    rooms = ConferenceManager()
    a, b = Member(call("CAa")), Member(call("CAb"))
    changed: list[tuple[str, bool, bool]] = []
    b.on_change = lambda m: changed.append((m.call.sid, m.muted, m.hold))
    room = rooms.join(a, "r")
    assert room is not None and rooms.join(b, "r") is room
    assert rooms.remove(room, "CAa") and a.removed.is_set() and not b.removed.is_set()
    assert not rooms.remove(room, "CAzz")
    rooms.leave(room, a.call)
    assert not room.ended.is_set() and list(room.members) == ["CAb"]
    rooms.set_muted(room, "CAb", True)
    rooms.set_hold(room, "CAb", True)
    assert changed == [("CAb", True, False), ("CAb", True, True)]
