"""Call queues: ``<Enqueue>`` puts a caller in line, ``<Dial><Queue>`` takes the first one and bridges.

A queue is created by its first caller and keeps its QueueSid for the life of the process. Each entry has two
futures the two sides meet on: ``dequeued`` (an agent took the caller: the caller's wait music stops) and
``bridge_ended`` (the bridge is over: the caller's ``<Enqueue>`` goes on to its action with QueueResult).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from switch.calls.call import Call

__all__ = ["CallQueue", "QueueEntry", "QueueManager"]

log = logging.getLogger("switch.calls")

DEFAULT_MAX_SIZE = 100


class QueueEntry:
    """One caller waiting in a queue."""

    def __init__(self, queue: CallQueue, call: Call, now: float) -> None:
        loop = asyncio.get_running_loop()
        self.queue = queue
        self.call = call
        self.enqueued_at = now
        self.dequeued: asyncio.Future[str] = loop.create_future()
        """Set to the agent's CallSid when an agent takes this caller."""
        self.bridge_ended: asyncio.Future[str] = loop.create_future()
        """Set to the QueueResult ("bridged", "hangup", ...) when the bridge is over."""

    @property
    def queue_sid(self) -> str:
        return self.queue.sid

    def queue_time(self, now: float | None = None) -> int:
        return int((now if now is not None else time.time()) - self.enqueued_at)

    def wait_params(self, now: float | None = None) -> dict[str, str]:
        """What the waitUrl is requested with (Twilio's names)."""
        queue = self.queue
        position = queue.position(self)
        return {
            "QueuePosition": str(position),
            "QueueSid": queue.sid,
            "QueueTime": str(self.queue_time(now)),
            "AvgQueueTime": str(queue.average_wait),
            "CurrentQueueSize": str(len(queue.entries)),
            "MaxQueueSize": str(queue.max_size),
        }

    def leave(self) -> None:
        """Take the caller out of line (Leave, hangup, error); harmless once dequeued."""
        self.queue.remove(self)


class CallQueue:
    def __init__(self, name: str, max_size: int, sid: str | None = None) -> None:
        self.sid = sid if sid is not None else "QU" + uuid.uuid4().hex
        """The queue's own sid, or the one of its REST record (``Queues.json``) when it has one."""
        self.name = name
        self.max_size = max_size
        self.entries: list[QueueEntry] = []
        self._served = 0
        self._total_wait = 0.0

    @property
    def average_wait(self) -> int:
        return int(self._total_wait / self._served) if self._served else 0

    def position(self, entry: QueueEntry) -> int:
        """1-based place in line; 0 once it left the line."""
        try:
            return self.entries.index(entry) + 1
        except ValueError:
            return 0

    def remove(self, entry: QueueEntry) -> None:
        if entry in self.entries:
            self.entries.remove(entry)

    def take(self, call_sid: str | None = None, now: float | None = None) -> QueueEntry | None:
        """The first live caller (or the one with ``call_sid``), out of line."""
        for entry in list(self.entries):
            if entry.call.ended.is_set():
                self.entries.remove(entry)
                continue
            if call_sid is None or entry.call.sid == call_sid:
                self.entries.remove(entry)
                self._served += 1
                self._total_wait += (now if now is not None else time.time()) - entry.enqueued_at
                return entry
        return None


class QueueManager:
    """Every queue of this switch, by name."""

    def __init__(self) -> None:
        self.queues: dict[str, CallQueue] = {}

    def enqueue(self, call: Call, name: str, max_size: int = DEFAULT_MAX_SIZE) -> QueueEntry | None:
        """Put ``call`` at the end of ``name`` (created on first use); None when the queue is full."""
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = CallQueue(name, max_size or DEFAULT_MAX_SIZE)
        if len(queue.entries) >= queue.max_size:
            return None
        entry = QueueEntry(queue, call, time.time())
        queue.entries.append(entry)
        log.info(
            "enqueue CallSid=%s queue=%s QueueSid=%s position=%d",
            call.sid,
            name,
            queue.sid,
            len(queue.entries),
        )
        return entry

    def take(self, name: str, call_sid: str | None = None) -> QueueEntry | None:
        queue = self.queues.get(name)
        return queue.take(call_sid) if queue is not None else None

    def sid_of(self, name: str) -> str:
        queue = self.queues.get(name)
        return queue.sid if queue is not None else ""
