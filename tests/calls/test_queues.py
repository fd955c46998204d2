"""The queue table: order, positions, size limit, leaving, and what the waitUrl is told."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from switch.calls.call import Call
from switch.calls.queues import QueueManager
from switch.twiml.parser import parse_twiml
from switch.twiml.queues import DEFAULT_WAIT_URL, Enqueue, Leave


class FakeCall:
    def __init__(self, sid: str) -> None:
        self.sid = sid
        self.ended = asyncio.Event()


def calls(*sids: str) -> list[Call]:
    return [cast(Call, FakeCall(sid)) for sid in sids]


async def test_first_in_first_out_with_positions() -> None:
    queues = QueueManager()
    a, b, c = calls("CAa", "CAb", "CAc")
    entries = [queues.enqueue(call, "support", 10) for call in (a, b, c)]
    assert all(entry is not None for entry in entries)
    first, second, third = (e for e in entries if e is not None)
    assert third.wait_params(third.enqueued_at + 7) == {
        "QueuePosition": "3",
        "QueueSid": queues.sid_of("support"),
        "QueueTime": "7",
        "AvgQueueTime": "0",
        "CurrentQueueSize": "3",
        "MaxQueueSize": "10",
    }
    assert queues.sid_of("support").startswith("QU") and len(queues.sid_of("support")) == 34
    taken = queues.take("support")
    assert taken is first
    assert third.wait_params()["QueuePosition"] == "2"
    second.leave()
    assert third.wait_params()["QueuePosition"] == "1"
    assert queues.take("support") is third
    assert queues.take("support") is None
    assert queues.take("nobody-here") is None


async def test_full_queue_refuses_and_hung_up_callers_are_skipped() -> None:
    queues = QueueManager()
    a, b, c = calls("CAa", "CAb", "CAc")
    assert queues.enqueue(a, "small", 2) is not None
    second = queues.enqueue(b, "small", 2)
    assert queues.enqueue(c, "small", 2) is None  # queue-full
    cast(Any, a).ended.set()
    assert queues.take("small") is second


async def test_take_a_given_caller() -> None:
    queues = QueueManager()
    a, b = calls("CAa", "CAb")
    queues.enqueue(a, "q", 5)
    wanted = queues.enqueue(b, "q", 5)
    assert queues.take("q", "CAb") is wanted
    assert queues.take("q", "CAzz") is None


def test_enqueue_and_leave_parse() -> None:
    document = parse_twiml(
        b'<Response><Enqueue action="/done" waitUrl="/wait" maxQueueSize="3">support</Enqueue>'
        b"<Leave/></Response>",
        base_url="http://127.0.0.1:9/app",
    )
    enqueue, leave = document.verbs
    assert enqueue == Enqueue(
        name="support", action="http://127.0.0.1:9/done", wait_url="http://127.0.0.1:9/wait", max_size=3
    )
    assert isinstance(leave, Leave)
    [default] = parse_twiml(b"<Response><Enqueue>x</Enqueue></Response>", base_url="http://h/").verbs
    assert isinstance(default, Enqueue) and default.wait_url == DEFAULT_WAIT_URL
