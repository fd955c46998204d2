"""DTMF for the engine: RFC 4733 events in and out, and in-band detection over the channels that want it.

- :class:`EventReceiver` turns telephone-event packets into digits: one digit per event, keyed by the
  event's RTP timestamp (every packet of one event carries the same one), so the three end packets count
  once, and an event whose first packets were lost is still reported by whichever packet arrives first.
- :class:`EventSender` produces one telephone-event payload per 20 ms tick for a digit string: a marked
  first packet, durations growing by 160, the end packet three times, then 40 ms before the next digit.
- :class:`InbandDetectors` runs voicecodecs' Q.24 detector over only the channels with in-band detection
  enabled, as one block: each such channel owns a detector row for as long as it is enabled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from voicecodecs.dtmf import DIGITS, event_code, pack_event
from voicecodecs.dtmf_detect import DtmfDetector

__all__ = ["EventPacket", "EventReceiver", "EventSender", "InbandDetectors"]

FRAME = 160
_GAP_TICKS = 2
_END_REPEATS = 3
_VOLUME = 10


class EventReceiver:
    """Telephone-event state of channel slots (packed like the owner's table)."""

    def __init__(self, capacity: int = 64) -> None:
        self._last = np.full(max(capacity, 1), -1, np.int64)

    def ensure(self, slots: int) -> None:
        if slots > len(self._last):
            grown = np.full(max(slots, 2 * len(self._last)), -1, np.int64)
            grown[: len(self._last)] = self._last
            self._last = grown

    def clear(self, slot: int) -> None:
        self._last[slot] = -1

    def move(self, source: int, dest: int) -> None:
        self._last[dest] = self._last[source]

    def receive(self, slot: int, timestamp: int, payload: bytes | memoryview) -> str | None:
        """The digit a telephone-event packet starts, or None (a repeat, an end packet, not a digit)."""
        if len(payload) < 4:
            return None
        if self._last[slot] == timestamp:
            return None
        self._last[slot] = timestamp
        event = payload[0]
        return DIGITS[event] if event < len(DIGITS) else None


@dataclass(frozen=True, slots=True)
class EventPacket:
    payload: bytes
    marker: bool
    timestamp: int
    """The event's RTP timestamp (its start), the same in all of its packets."""


class EventSender:
    """The telephone-event packets of a digit string, one per tick (see the module)."""

    def __init__(self, digits: str, duration_ms: int = 100) -> None:
        for digit in digits:
            event_code(digit)  # ValueError for anything that is not a DTMF digit
        if not 40 <= duration_ms <= 5000:
            raise ValueError("DTMF duration must be 40-5000 ms")
        self._digits = digits.upper()
        self._length = duration_ms * 8
        self._index = 0
        self._duration = 0
        self._ends = 0
        self._gap = 0
        self._start_ts = 0

    @property
    def done(self) -> bool:
        return self._index >= len(self._digits)

    def next(self, timestamp: int) -> EventPacket | None:
        """This tick's packet (``timestamp``: the channel's current RTP timestamp), or None for audio."""
        if self.done:
            return None
        if self._gap:
            self._gap -= 1
            if self._gap == 0:
                self._index += 1
            return None
        code = event_code(self._digits[self._index])
        first = self._duration == 0
        if first:
            self._start_ts = timestamp
        if self._duration < self._length:
            self._duration = min(self._duration + FRAME, self._length)
            return EventPacket(pack_event(code, False, _VOLUME, self._duration), first, self._start_ts)
        self._ends += 1
        payload = pack_event(code, True, _VOLUME, self._duration)
        if self._ends == _END_REPEATS:
            self._duration = 0
            self._ends = 0
            self._gap = _GAP_TICKS
        return EventPacket(payload, False, self._start_ts)


class InbandDetectors:
    """Detector rows for the channels (by id) with in-band detection enabled."""

    def __init__(self) -> None:
        self._rows: dict[int, int] = {}
        self._free: list[int] = []
        self._detector: DtmfDetector | None = None
        self._capacity = 0
        self.dirty = True
        self._row_index = np.zeros(0, np.intp)
        self._slot_index = np.zeros(0, np.intp)
        self._channels: list[int] = []
        self._block = np.zeros((0, FRAME), np.int16)

    @property
    def active(self) -> int:
        """Channels detected at the last compile."""
        return len(self._channels)

    def enabled(self, channel: int) -> bool:
        return channel in self._rows

    def enable(self, channel: int) -> None:
        if channel in self._rows:
            return
        if not self._free:
            grown = max(8, 2 * self._capacity)
            self._free.extend(range(grown - 1, self._capacity - 1, -1))
            self._capacity = grown
            self._detector = DtmfDetector(grown)  # a new detector: rows in use restart their timing
            self._block = np.zeros((grown, FRAME), np.int16)
        row = self._free.pop()
        assert self._detector is not None
        self._detector.reset(row)
        self._rows[channel] = row
        self.dirty = True

    def disable(self, channel: int) -> None:
        row = self._rows.pop(channel, None)
        if row is not None:
            self._free.append(row)
            self._block[row] = 0
            self.dirty = True

    def compile(self, slot_of: Callable[[int], int]) -> None:
        self._channels = list(self._rows)
        self._row_index = np.array([self._rows[c] for c in self._channels], np.intp)
        self._slot_index = np.array([slot_of(c) for c in self._channels], np.intp)
        self.dirty = False

    def live(self, started: NDArray[np.bool_]) -> bool:
        """Whether any channel with detection has received RTP (``started``: per slot); until one has,
        :meth:`process` has nothing to listen to and the tick skips it (and the decode it needs)."""
        return bool(self._channels) and bool(started[self._slot_index].any())

    def process(self, heard: NDArray[np.int16]) -> list[tuple[int, str]]:
        """Feed this tick's frames (rows are slots); return (channel, digit) for every digit that started."""
        if self._detector is None or not self._channels:
            return []
        self._block[self._row_index] = heard[self._slot_index]
        found = self._detector.process(self._block)
        out: list[tuple[int, str]] = []
        for channel, row in zip(self._channels, self._row_index.tolist(), strict=True):
            for digit in found[row]:
                out.append((channel, digit))
        return out
