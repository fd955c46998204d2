"""Call records: every call the switch sees, saved to the store on each status change.

`CallRecords.on_status` is a `CallService` listener. It is called synchronously when a call's status
changes; it only enqueues the write (the store's thread commits it). Since the store applies requests in
order, an API read made after the change sees it, committed: a ``completed`` shown by the API is on disk.
"""

from __future__ import annotations

import time
from typing import Protocol

from switch.store.base import Store
from switch.store.records import CallRecord


class CallLike(Protocol):
    """The parts of `switch.calls.call.Call` a record is made of."""

    sid: str
    account_sid: str
    direction: str
    from_: str
    to: str
    caller_name: str
    sip_call_id: str
    status: str
    parent_call_sid: str | None
    started_at: float
    answered_at: float | None
    ended_at: float | None

    @property
    def duration(self) -> int: ...


FINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})


def record_of(call: CallLike, status: str | None = None, now: float | None = None) -> CallRecord:
    """The call as a record, with ``status`` (the call's own by default)."""
    status = call.status if status is None else status
    now = time.time() if now is None else now
    ended = status in FINAL
    end_time = (call.ended_at if call.ended_at is not None else now) if ended else None
    return CallRecord(
        sid=call.sid,
        account_sid=call.account_sid,
        direction=call.direction,
        from_=call.from_,
        to=call.to,
        status=status,
        start_time=call.started_at,
        date_created=call.started_at,
        date_updated=now,
        parent_call_sid=call.parent_call_sid,
        caller_name=call.caller_name,
        answer_time=call.answered_at,
        end_time=end_time,
        duration=call.duration if ended else None,
        sip_call_id=call.sip_call_id,
    )


class CallRecords:
    """Saves calls to the store; register ``on_status`` with ``CallService.add_listener``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_status(self, call: CallLike, status: str) -> None:
        self.store.save_call(record_of(call, status))
