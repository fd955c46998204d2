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

from switch.calls.conferences import Conference, Member
from switch.store.base import Store
from switch.store.records import CallRecord, ConferenceRecord, ParticipantRecord


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


class ConferenceRecords:
    """Keeps conferences and their participants in the store: a `ConferenceManager` listener.

    Also remembers the participants the API dialled that have not joined yet (status ``queued``), and
    which rooms the API ended (their ``reason_conference_ended``).
    """

    def __init__(self, store: Store, account_sid: str) -> None:
        self.store = store
        self.account_sid = account_sid
        self.pending: dict[str, ParticipantRecord] = {}
        """Participants created through the API, by CallSid, until they join or their call ends."""
        self.ended_by_api: set[str] = set()

    def on_event(self, room: Conference, event: str, member: Member | None) -> None:
        account_sid = room.account_sid or self.account_sid
        reason: str | None = None
        if room.status == "completed":
            if room.sid in self.ended_by_api:
                reason = "conference-ended-via-api"
            elif room.members:
                reason = "participant-with-end-conference-on-exit-left"
            else:
                reason = "last-participant-left"
        self.store.save_conference(
            ConferenceRecord(
                room.sid,
                account_sid,
                room.name,
                room.status,
                room.created_at,
                room.updated_at,
                reason_conference_ended=reason,
            )
        )
        if event == "conference-end":
            self.ended_by_api.discard(room.sid)
        if member is not None:
            self.pending.pop(member.call.sid, None)
            status = "complete" if event == "participant-leave" else "connected"
            self.store.save_participant(participant_of(room, member, status, account_sid))

    def on_status(self, call: CallLike, status: str) -> None:
        """A call-service listener: a dialled participant whose call ended without joining is forgotten."""
        if status in FINAL and self.pending:
            self.pending.pop(call.sid, None)


def participant_of(room: Conference, member: Member, status: str, account_sid: str) -> ParticipantRecord:
    return ParticipantRecord(
        conference_sid=room.sid,
        call_sid=member.call.sid,
        account_sid=account_sid,
        status=status,
        muted=member.muted,
        hold=member.hold,
        start_conference_on_enter=member.start_on_enter,
        end_conference_on_exit=member.end_on_exit,
        date_created=member.joined_at,
        date_updated=room.updated_at,
    )
