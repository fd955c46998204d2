"""Call records: every call the switch sees, saved to the store when it is created and when it ends.

`CallRecords.on_status` is a `CallService` listener. It is called synchronously when a call's status
changes; it only enqueues the write (the store's thread commits it). A call leaves the call service's live
calls in the same step as its end is enqueued, and the store applies requests in order, so an API read that
does not find the call live sees its end committed: a ``completed`` shown by the API is on disk. Writes of the
changes in between (ringing, in-progress) are not made: they cost the switch 14 % of its CPU under load.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

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


Listener = Callable[[Any, str], None]


class CallRecords:
    """Saves calls to the store; register ``on_status`` with ``CallService.add_listener``.

    A call is written twice: when it is first seen (created) and when it ends. In between the REST API reads
    it from the call service. The end's write is kept until it is committed: `after_commit` wraps a listener
    (the status callbacks) so that it hears of the end only then.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._created: set[str] = set()
        self._ending: dict[str, asyncio.Future[None]] = {}

    def on_status(self, call: CallLike, status: str) -> None:
        sid = call.sid
        if status in FINAL:
            self._created.discard(sid)
            future = self.store.save_call(record_of(call, status))
            if not future.done():
                self._ending[sid] = future
                future.add_done_callback(lambda _: self._ending.pop(sid, None))
        elif sid not in self._created:
            self._created.add(sid)
            self.store.save_call(record_of(call, status))

    def committed(self, sid: str) -> asyncio.Future[None] | None:
        """The commit of the call's end record while it is on its way, else None."""
        return self._ending.get(sid)

    def after_commit(self, listener: Listener) -> Listener:
        """``listener`` as a call-service listener that hears a call's end once its record is committed.

        Register it after `on_status`."""

        def wrapped(call: Any, status: str) -> None:
            future = self._ending.get(call.sid) if status in FINAL else None
            if future is None:
                listener(call, status)
            else:
                future.add_done_callback(lambda _: listener(call, status))

        return wrapped
