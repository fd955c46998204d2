"""Receive-side jitter buffer for every channel at once, holding samples (payload bytes), not packets.

No sockets and no clock of its own (sans-IO): :meth:`JitterBuffer.put` is called once per received
packet with the arrival time ``now``; :meth:`JitterBuffer.pull` is called once per 20 ms tick and takes
the next frame of every channel as one ``(channels, FRAME)`` array.

Each channel owns a ring of :data:`RING` payload bytes (one byte per 8 kHz timestamp unit, which is what
the registered codecs use) cut into :data:`SLOTS` slots of :data:`BLOCK` bytes (10 ms, the smallest ptime),
addressed by the packet's timestamp relative to the stream's first packet, and one *lap mark* per slot:
a slot is present when its mark equals the lap of the block this tick expects, so what was played never
needs clearing. A packet of 10 to 60 ms is one copy into consecutive slots (two copies at the wrap) and
one write of its slots' marks; a tick's frame is two slot copies per channel, done for every channel at
once by fancy indexing, never a gather per sample. Packets of any of those ptimes mix, arrive in any order
and are played in timestamp order. A packet whose first sample was already played is *late*, a packet whose
first slot is already present is a *duplicate*: both are dropped and counted. A packet too far ahead of the
play point (a timestamp jump), or whose timestamp is not a whole number of slots from the stream's first
packet, resynchronises the channel on it (a stream of packets that are not multiples of 10 ms keeps only
their whole slots).

Delay adapts between :data:`MIN_DELAY` and :data:`MAX_DELAY`: the target is the last packet's length plus
four times the RFC 3550 interarrival jitter estimate. When nothing is buffered at all (an underrun) the play
point stays where it is (the buffer grows by one frame); when more than a frame above the target has been
buffered for half a second the play point skips 10 ms (20 ms for
packets of whole frames). A stream starts a whole number of frames behind its first packet and only ever
skips onto a frame boundary, so each 20 ms packet is one tick's frame: a pass-through bridge forwards
packets, not halves of two. ``delay(slot)`` and the counters say what happened.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "BLOCK",
    "FRAME",
    "MAX_DELAY",
    "MIN_DELAY",
    "START_DELAY",
    "RING",
    "SLOTS",
    "JitterBuffer",
    "JitterStats",
    "PutResult",
]

FRAME = 160
BLOCK = 80
"""Samples per ring slot (10 ms at 8 kHz)."""
SLOTS = 64
RING = SLOTS * BLOCK
"""Bytes (8 kHz samples) per channel ring: 640 ms."""
MIN_DELAY = 160
MAX_DELAY = 1600
START_DELAY = 320
"""The play point of a new stream starts 40 ms behind its first packet, before any jitter is measured."""
_SLOT_MASK = SLOTS - 1
_LAP_SHIFT = 6  # log2(SLOTS)
_EXCESS_TICKS = 25  # half a second above the target before the buffer shrinks by 10 ms
_MAX_PACKET = 960  # 120 ms: the largest payload accepted
_COLUMN = np.arange(FRAME, dtype=np.intp)
_MARK_BYTES = [bytes([0x80 | lap]) * (_MAX_PACKET // BLOCK) for lap in range(128)]


def _lap_mark(block: int) -> int:
    return 0x80 | ((block >> _LAP_SHIFT) & 0x7F)


class PutResult:
    STORED = 0
    LATE = 1
    DUPLICATE = 2
    RESYNC = 3
    INVALID = 4


@dataclass(frozen=True, slots=True)
class JitterStats:
    packets: int
    late: int
    duplicate: int
    concealed_frames: int
    resyncs: int
    delay_ms: float
    target_ms: float
    jitter_ms: float


def _whole_frames(delay: int) -> int:
    """A start delay rounded up to whole frames, so that the stream's packets of 20 ms (and multiples)
    are the tick's frames."""
    return -(-delay // FRAME) * FRAME


def _signed(x: int) -> int:
    """A 32-bit RTP timestamp difference as a signed number."""
    return ((x + 0x80000000) & 0xFFFFFFFF) - 0x80000000


class JitterBuffer:
    """Rings and play points of channel slots ``0..n-1`` (the owner keeps them packed like its table)."""

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = 0
        self._allocate(max(capacity, 1))

    _SCALARS: dict[str, type[np.generic]] = {
        "play": np.int64,
        "origin": np.int64,
        "excess_run": np.int64,
        "newest": np.int64,
        "started": np.bool_,
        "target": np.int64,
        "jitter": np.float64,
        "last_arrival": np.float64,
        "last_ts": np.int64,
        "packet_size": np.int64,
        "packets": np.int64,
        "late": np.int64,
        "duplicate": np.int64,
        "concealed": np.int64,
        "resyncs": np.int64,
    }

    def _allocate(self, capacity: int) -> None:
        old = self.capacity
        for name, dtype in self._SCALARS.items():
            arr = np.zeros(capacity, dtype=dtype)
            if old:
                arr[:old] = getattr(self, name)
            setattr(self, name, arr)
        ring = np.zeros((capacity, RING), np.uint8)
        marks = np.zeros((capacity, SLOTS), np.uint8)
        if old:
            ring[:old] = self.ring
            marks[:old] = self.marks
        self.ring = ring
        self.marks = marks
        self._blocks = ring.reshape(capacity * SLOTS, BLOCK)
        """Every ring slot of every row, one per line: a frame is two lines, taken with ``np.take``
        into a preallocated array (no temporary, and a frame round the ring's end needs no fix-up)."""
        self._base = np.arange(capacity, dtype=np.intp) * SLOTS
        self._lines = np.zeros((capacity, 2), np.intp)
        self._fetched = np.zeros((capacity, FRAME), np.uint8)
        rv = ring.data.cast("B")
        mv = marks.data.cast("B")
        self._ring_views = [rv[i * RING : (i + 1) * RING] for i in range(capacity)]
        self._mark_views = [mv[i * SLOTS : (i + 1) * SLOTS] for i in range(capacity)]
        self._rows = np.arange(capacity, dtype=np.intp)
        self._block = np.zeros(capacity, np.int64)
        self._slot0 = np.zeros(capacity, np.intp)
        self._slot1 = np.zeros(capacity, np.intp)
        self._mark0 = np.zeros(capacity, np.int64)
        self._mark1 = np.zeros(capacity, np.int64)
        self.complete = np.zeros(0, np.bool_)
        """Per slot of the last pull: every sample of the frame was present."""
        self._nothing = np.zeros(capacity, np.bool_)
        self.capacity = capacity
        self.target[old:] = START_DELAY

    play: NDArray[np.int64]
    origin: NDArray[np.int64]
    """Timestamp of the first packet of the stream (frames before it are not losses)."""
    excess_run: NDArray[np.int64]
    """Consecutive ticks with more than a frame above the target buffered."""
    newest: NDArray[np.int64]
    started: NDArray[np.bool_]
    target: NDArray[np.int64]
    jitter: NDArray[np.float64]
    last_arrival: NDArray[np.float64]
    last_ts: NDArray[np.int64]
    packet_size: NDArray[np.int64]
    packets: NDArray[np.int64]
    late: NDArray[np.int64]
    duplicate: NDArray[np.int64]
    concealed: NDArray[np.int64]
    resyncs: NDArray[np.int64]
    ring: NDArray[np.uint8]
    marks: NDArray[np.uint8]

    # -- slots ------------------------------------------------------------------------------------------
    def ensure(self, slots: int) -> None:
        """Make room for ``slots`` slots (grows by doubling)."""
        if slots > self.capacity:
            self._allocate(max(slots, 2 * self.capacity))

    def clear(self, slot: int) -> None:
        """Forget everything of ``slot`` (a new channel, or a new stream on it), counters included."""
        for name in self._SCALARS:
            getattr(self, name)[slot] = 0
        self.target[slot] = START_DELAY
        self.marks[slot] = 0

    def reset_stream(self, slot: int) -> None:
        """Start over with the next packet (a new SSRC); counters and the jitter estimate stay."""
        self.started[slot] = False
        self.target[slot] = max(int(self.target[slot]), START_DELAY)
        self.marks[slot] = 0

    def move(self, source: int, dest: int) -> None:
        """Copy slot ``source`` into ``dest`` (the owner's swap-remove)."""
        for name in self._SCALARS:
            arr = getattr(self, name)
            arr[dest] = arr[source]
        self.ring[dest] = self.ring[source]
        self.marks[dest] = self.marks[source]

    # -- per packet -------------------------------------------------------------------------------------
    def put(self, slot: int, timestamp: int, payload: bytes | memoryview, now: float) -> int:
        """Store one packet's payload (``now`` in seconds); return a :class:`PutResult` value."""
        n = len(payload)
        if n == 0 or n > _MAX_PACKET:
            return PutResult.INVALID
        arrival = now * 8000.0
        result = PutResult.STORED
        if not self.started[slot]:
            self.started[slot] = True
            self.target[slot] = max(int(self.target[slot]), START_DELAY)
            self.play[slot] = (timestamp - _whole_frames(int(self.target[slot]))) & 0xFFFFFFFF
            self.origin[slot] = timestamp
            self.newest[slot] = timestamp
            self.last_ts[slot] = timestamp
            self.last_arrival[slot] = arrival
        else:
            transit = (arrival - self.last_arrival[slot]) - _signed(timestamp - int(self.last_ts[slot]))
            self.jitter[slot] += (abs(transit) - self.jitter[slot]) / 16.0
            self.last_arrival[slot] = arrival
            self.last_ts[slot] = timestamp
        ahead = _signed(timestamp - int(self.play[slot]))
        if ahead < 0:
            self.late[slot] += 1
            return PutResult.LATE
        relative = (timestamp - int(self.origin[slot])) & 0xFFFFFFFF
        if ahead + n > RING - FRAME or relative % BLOCK:
            self.marks[slot] = 0
            self.play[slot] = (timestamp - _whole_frames(int(self.target[slot]))) & 0xFFFFFFFF
            self.origin[slot] = timestamp
            self.newest[slot] = timestamp
            self.resyncs[slot] += 1
            result = PutResult.RESYNC
            relative = 0
        block = relative // BLOCK
        first_slot = block & _SLOT_MASK
        mark = _lap_mark(block)
        marks = self._mark_views[slot]
        if marks[first_slot] == mark:
            self.duplicate[slot] += 1
            return PutResult.DUPLICATE
        ring = self._ring_views[slot]
        pos = first_slot * BLOCK
        end = pos + n
        whole = n // BLOCK
        if end <= RING:
            ring[pos:end] = payload
            marks[first_slot : first_slot + whole] = _MARK_BYTES[mark & 0x7F][:whole]
        else:
            first = RING - pos
            ring[pos:RING] = payload[:first]
            ring[: end - RING] = payload[first:]
            head = SLOTS - first_slot
            marks[first_slot:SLOTS] = _MARK_BYTES[mark & 0x7F][:head]
            marks[: whole - head] = _MARK_BYTES[_lap_mark(block + head) & 0x7F][: whole - head]
        if _signed(timestamp + n - int(self.newest[slot])) > 0:
            self.newest[slot] = (timestamp + n) & 0xFFFFFFFF
        self.packet_size[slot] = n
        self.packets[slot] += 1
        return result

    def put_frames(
        self, slots: NDArray[np.intp], timestamps: NDArray[np.int64], payloads: NDArray[np.uint8], now: float
    ) -> NDArray[np.bool_]:
        """:meth:`put` for one 20 ms packet each of distinct ``slots`` at once (``payloads`` is
        ``(k, FRAME)``). Returns which rows were taken (stored, or counted late or duplicate); the rest
        (a stream's first packet, a resynchronisation) changed nothing and need :meth:`put`."""
        play = self.play[slots]
        origin = self.origin[slots]
        ahead = (timestamps - play + 0x80000000) & 0xFFFFFFFF
        ahead -= 0x80000000
        relative = (timestamps - origin) & 0xFFFFFFFF
        taken: NDArray[np.bool_] = (
            self.started[slots] & (ahead + FRAME <= RING - FRAME) & (relative % BLOCK == 0)
        )
        if not taken.all():
            slots, timestamps, ahead, relative = (
                slots[taken],
                timestamps[taken],
                ahead[taken],
                relative[taken],
            )
            payloads = payloads[taken]
        arrival = now * 8000.0
        since = (timestamps - self.last_ts[slots] + 0x80000000) & 0xFFFFFFFF
        since -= 0x80000000
        transit = np.abs((arrival - self.last_arrival[slots]) - since)
        jitter = self.jitter[slots]
        self.jitter[slots] = jitter + (transit - jitter) / 16.0
        self.last_arrival[slots] = arrival
        self.last_ts[slots] = timestamps
        late = ahead < 0
        if late.any():
            self.late[slots[late]] += 1
        block = relative // BLOCK
        first = block & _SLOT_MASK
        mark = ((block >> _LAP_SHIFT) & 0x7F) | 0x80
        duplicate = ~late & (self.marks[slots, first] == mark)
        if duplicate.any():
            self.duplicate[slots[duplicate]] += 1
        store = ~(late | duplicate)
        if not store.all():
            slots, timestamps, payloads = slots[store], timestamps[store], payloads[store]
            block, first, mark = block[store], first[store], mark[store]
        second = (block + 1) & _SLOT_MASK
        base = slots * SLOTS
        self._blocks[base + first] = payloads[:, :BLOCK]
        self._blocks[base + second] = payloads[:, BLOCK:]
        self.marks[slots, first] = mark
        self.marks[slots, second] = (((block + 1) >> _LAP_SHIFT) & 0x7F) | 0x80
        end = (timestamps + FRAME) & 0xFFFFFFFF
        newest = self.newest[slots]
        later = ((end - newest + 0x80000000) & 0xFFFFFFFF) > 0x80000000
        self.newest[slots] = np.where(later, end, newest)
        self.packet_size[slots] = FRAME
        self.packets[slots] += 1
        return taken

    # -- per tick ---------------------------------------------------------------------------------------
    def pull(
        self, n: int, out: NDArray[np.uint8], present: NDArray[np.bool_], *, fetch: bool = True
    ) -> NDArray[np.bool_]:
        """Take the next frame of slots ``0..n-1`` into ``out`` (bytes) and ``present`` (per sample).

        Returns, per slot, whether the frame is lost: the stream has started, something later is buffered,
        and at least one sample of this frame is missing (the caller conceals those). With ``fetch=False``
        neither the bytes nor the flags are written (``complete`` still is): the caller takes the rows it
        needs with :meth:`fetch` before the next packet is put (a pass-through copies them straight into
        its packets).
        """
        if n == 0:
            return np.zeros(0, np.bool_)
        if not self.started[:n].any():  # no channel has received RTP yet: no frame to take, none lost
            self.complete = nothing = self._nothing[:n]
            if fetch:
                present[:n] = False
            return nothing
        play = self.play[:n]
        block = self._block[:n]
        np.subtract(play, self.origin[:n], out=block)
        block &= 0xFFFFFFFF
        block //= BLOCK
        slot0, slot1 = self._slot0[:n], self._slot1[:n]
        np.bitwise_and(block, _SLOT_MASK, out=slot0)
        np.add(slot0, 1, out=slot1)
        slot1 &= _SLOT_MASK
        mark0, mark1 = self._mark0[:n], self._mark1[:n]
        np.right_shift(block, _LAP_SHIFT, out=mark0)
        mark0 &= 0x7F
        mark0 |= 0x80
        block += 1
        np.right_shift(block, _LAP_SHIFT, out=mark1)
        mark1 &= 0x7F
        mark1 |= 0x80
        rows = self._rows[:n]
        if fetch:
            self._take(self._base[:n], slot0, slot1, out[:n])
        marks = self.marks[:n]
        first = marks[rows, slot0] == mark0
        second = marks[rows, slot1] == mark1
        complete = first & second
        self.complete = complete
        if fetch:
            present[:n, :BLOCK] = first[:, None]
            present[:n, BLOCK:] = second[:, None]
        empty = ~(first | second)
        started = self.started[:n]
        level = self.newest[:n] - play
        level += 0x80000000
        level &= 0xFFFFFFFF
        level -= 0x80000000
        since = play - self.origin[:n]
        since &= 0xFFFFFFFF
        begun = since < 0x80000000
        lost: NDArray[np.bool_] = started & ~complete & (level > FRAME) & begun
        self.concealed[:n] += lost
        hold = started & empty & (level <= 0)
        above = started & (level - FRAME > self.target[:n] + FRAME)
        run = self.excess_run[:n]
        run += above
        run *= above
        excess = run >= _EXCESS_TICKS
        run[excess] = 0
        advance = np.where(hold, 0, FRAME)
        if excess.any():
            # Skip 10 ms, or 20 ms when the packets are whole frames (10 ms onto a frame boundary when the
            # play point is off one): a frame then stays one packet, which a pass-through bridge forwards
            # byte for byte, and a lost packet costs one frame, not two half frames.
            whole = self.packet_size[:n] % FRAME == 0
            skip = np.where(whole, FRAME - since % FRAME, BLOCK)
            advance += np.where(excess, skip, 0)
        play += advance
        play &= 0xFFFFFFFF
        target = np.rint(self.packet_size[:n] + 4.0 * self.jitter[:n]).astype(np.int64)
        target += 79
        target //= 80
        target *= 80
        np.clip(target, MIN_DELAY, MAX_DELAY, out=self.target[:n])
        return lost

    def fetch(self, rows: NDArray[np.intp]) -> NDArray[np.uint8]:
        """The frames of ``rows`` that the last :meth:`pull` took, as ``(len(rows), FRAME)`` (a view of a
        buffer of this object: valid until the next call)."""
        frames = self._fetched[: rows.size]
        self._take(self._base[rows], self._slot0[rows], self._slot1[rows], frames)
        return frames

    def _take(
        self,
        base: NDArray[np.intp],
        slot0: NDArray[np.intp],
        slot1: NDArray[np.intp],
        frames: NDArray[np.uint8],
    ) -> None:
        k = base.size
        lines = self._lines[:k]
        np.add(base, slot0, out=lines[:, 0])
        np.add(base, slot1, out=lines[:, 1])
        halves = frames.view()
        halves.shape = (k, 2, BLOCK)  # raises rather than copy when ``frames`` is not contiguous
        np.take(self._blocks, lines, axis=0, out=halves, mode="clip")

    # -- observation ------------------------------------------------------------------------------------
    def delay(self, slot: int) -> int:
        """Samples buffered ahead of the play point (0 before the stream starts)."""
        if not self.started[slot]:
            return 0
        return max(0, _signed(int(self.newest[slot]) - int(self.play[slot])))

    def stats(self, slot: int) -> JitterStats:
        return JitterStats(
            packets=int(self.packets[slot]),
            late=int(self.late[slot]),
            duplicate=int(self.duplicate[slot]),
            concealed_frames=int(self.concealed[slot]),
            resyncs=int(self.resyncs[slot]),
            delay_ms=self.delay(slot) / 8.0,
            target_ms=int(self.target[slot]) / 8.0,
            jitter_ms=float(self.jitter[slot]) / 8.0,
        )
