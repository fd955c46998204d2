"""RFC 4733 events in and out, without sockets."""

from __future__ import annotations

import pytest

from switch.media.dtmf import EventReceiver, EventSender
from voicecodecs.dtmf import event_code, pack_event, parse_event


def test_one_digit_per_event_end_packets_counted_once() -> None:
    rx = EventReceiver(2)
    got = []
    for timestamp, code in ((1000, 5), (2000, 11)):
        for i in range(8):
            digit = rx.receive(0, timestamp, pack_event(code, i >= 5, 10, 160 * min(i + 1, 5)))
            if digit:
                got.append(digit)
    assert got == ["5", "#"]


def test_an_event_whose_first_packets_were_lost_is_still_one_digit() -> None:
    rx = EventReceiver(1)
    got = [rx.receive(0, 4000, pack_event(1, True, 10, 800)) for _ in range(3)]
    assert got == ["1", None, None]


def test_slots_are_independent_and_move() -> None:
    rx = EventReceiver(2)
    assert rx.receive(0, 500, pack_event(2, False, 10, 160)) == "2"
    assert rx.receive(1, 500, pack_event(2, False, 10, 160)) == "2"
    rx.move(1, 0)
    assert rx.receive(0, 500, pack_event(2, False, 10, 320)) is None


def test_sender_packets_for_two_digits() -> None:
    sender = EventSender("1#", duration_ms=60)
    packets = []
    timestamp = 10_000
    while not sender.done:
        packets.append(sender.next(timestamp))
        timestamp += 160
    sent = [p for p in packets if p is not None]
    events = [parse_event(p.payload) for p in sent]
    first = [e for e in events if e.event == event_code("1")]
    assert [e.duration for e in first] == [160, 320, 480, 480, 480, 480]
    assert [e.end for e in first] == [False, False, False, True, True, True]
    assert [p.marker for p in sent] == [True] + [False] * 5 + [True] + [False] * 5
    assert {p.timestamp for p in sent[:6]} == {10_000}
    assert {p.timestamp for p in sent[6:]} == {10_000 + 8 * 160}  # 6 packets, a 2-tick gap
    assert packets[6:8] == [None, None]


def test_sender_rejects_what_is_not_a_digit() -> None:
    with pytest.raises(ValueError, match="not a DTMF digit"):
        EventSender("1x")
