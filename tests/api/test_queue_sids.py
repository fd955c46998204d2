"""A live queue carries its REST record's sid from the start (no sid overwritten after creation)."""

from __future__ import annotations

from switch.calls.queues import CallQueue


def test_call_queue_takes_the_sid_it_is_given_or_makes_one() -> None:
    given = "QU" + "7" * 32
    assert CallQueue("support", 10, given).sid == given
    made = CallQueue("support", 10).sid
    assert made.startswith("QU") and len(made) == 34 and made != given
    assert CallQueue("support", 10).sid != made
