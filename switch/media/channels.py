"""The media state of every channel as arrays (struct of arrays), and one tick's work over all of them.

No sockets and no asyncio here: :class:`ChannelTable` holds per-channel state in numpy arrays indexed by
slot, keeps the live channels packed in slots ``0..n-1`` (closing a channel moves the last one into its
slot), and :meth:`ChannelTable.render` builds this tick's RTP packet for every channel in a handful of
vectorised operations:

1. gather: every channel's 160 samples come from the shared :class:`PromptPool` through one index array
   (a channel with nothing to play points at the pool's silence);
2. encode: one lookup in a table holding the mu-law and A-law encoders side by side, each channel's index
   offset by its codec;
3. headers: sequence numbers, timestamps and marker bits are written into the packet records as columns.

Everything is allocated in advance and grows by doubling; a tick allocates nothing proportional to the
number of channels except the list of slots that send.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from switch.media.codec_registry import CODECS as _REGISTRY
from switch.media.codec_registry import ENCODE as _ENCODE
from switch.media.codec_registry import codec_index
from switch.media.rtp import RTP_VERSION, packet_dtype

__all__ = [
    "CODECS",
    "FOREVER",
    "FRAME",
    "ChannelTable",
    "PromptPool",
]

FRAME = 160
"""Samples per 20 ms tick at 8 kHz (and G.711 payload bytes per packet)."""
FOREVER = 1 << 62
"""The remaining-sample count of a channel that plays silence or loops forever."""
CODECS = {name: codec_index(name) for name in _REGISTRY}
"""Codec name -> its block in the combined encode and decode tables (see :mod:`codec_registry`)."""


@dataclass(slots=True)
class _Segment:
    offset: int
    length: int
    """Samples of one period (the prompt repeated until at least a frame long)."""
    users: int
    pcm: NDArray[np.int16]
    """The caller's array, kept so its id() stays unique while the segment lives."""


class PromptPool:
    """Every prompt being played, stored once in one int16 buffer so a tick can gather from all of them.

    A prompt of ``L`` samples is stored as whole repeats up to at least :data:`FRAME` samples (its period),
    followed by the first :data:`FRAME` samples of that period again, so a frame read at any position
    within the period is one contiguous slice, wrap-around included. The same array played to many
    channels is stored once (keyed by identity; the TTS cache hands out the same array). Offset 0 is
    silence.
    """

    def __init__(self, capacity: int = 1 << 16) -> None:
        self.buffer = np.zeros(max(capacity, 2 * FRAME), dtype=np.int16)
        self._end = 2 * FRAME  # [0, 2*FRAME) is the silence segment: period FRAME plus its tail
        self._segments: dict[int, _Segment] = {}
        self._garbage = 0

    def acquire(self, pcm: NDArray[np.int16]) -> tuple[int, int]:
        """Store ``pcm`` (or count one more user of it); return its (offset, period)."""
        seg = self._segments.get(id(pcm))
        if seg is None:
            repeats = -(-FRAME // len(pcm))
            period = np.tile(pcm, repeats)
            stored = np.concatenate([period, period[:FRAME]])
            offset = self._allocate(len(stored))
            self.buffer[offset : offset + len(stored)] = stored
            seg = _Segment(offset, len(period), 0, pcm)
            self._segments[id(pcm)] = seg
        seg.users += 1
        return seg.offset, seg.length

    def release(self, pcm: NDArray[np.int16]) -> None:
        seg = self._segments[id(pcm)]
        seg.users -= 1
        if seg.users == 0:
            del self._segments[id(pcm)]
            self._garbage += seg.length + FRAME

    def offset_of(self, pcm: NDArray[np.int16]) -> int:
        return self._segments[id(pcm)].offset

    def _allocate(self, size: int) -> int:
        if self._end + size > len(self.buffer):
            self._compact()
        if self._end + size > len(self.buffer):
            grown = np.zeros(max(2 * len(self.buffer), self._end + size), dtype=np.int16)
            grown[: self._end] = self.buffer[: self._end]
            self.buffer = grown
        offset = self._end
        self._end += size
        return offset

    def _compact(self) -> None:
        """Drop released segments; live ones move, so callers re-read offsets (see ``relocated``)."""
        if not self._garbage:
            return
        end = 2 * FRAME
        for seg in sorted(self._segments.values(), key=lambda s: s.offset):
            size = seg.length + FRAME
            self.buffer[end : end + size] = self.buffer[seg.offset : seg.offset + size]
            seg.offset = end
            end += size
        self._end = end
        self._garbage = 0
        self.relocated = True

    relocated = False
    """Set when a compaction moved segments; the owner refreshes channel offsets and clears it."""


class ChannelTable:
    """Per-channel state as arrays over slots ``0..n-1``, and the tick that renders every packet."""

    def __init__(self, capacity: int = 64) -> None:
        self.n = 0
        self.pool = PromptPool()
        self._gathered = np.zeros(0, np.intp)
        """Rows read from the pool by the last gather (zeroed by the next one unless still playing)."""
        self.prompts: list[NDArray[np.int16] | None] = []
        """Slot -> the array it plays (None for silence), to release it from the pool."""
        self._allocate(max(capacity, 1))

    # -- storage ----------------------------------------------------------------------------------------
    def _allocate(self, capacity: int) -> None:
        old = self.n
        fields: dict[str, tuple[tuple[int, ...], type[np.generic] | np.dtype[np.void]]] = {
            "packets": ((capacity,), packet_dtype(FRAME)),
            "seq": ((capacity,), np.uint16),
            "timestamp": ((capacity,), np.uint32),
            "mpt": ((capacity,), np.uint8),
            "codec_offset": ((capacity,), np.intp),
            "decode_offset": ((capacity,), np.intp),
            "playing": ((capacity,), np.bool_),
            "suppress": ((capacity,), np.bool_),
            "sending": ((capacity,), np.bool_),
            "expect_rx": ((capacity,), np.bool_),
            "timed_out": ((capacity,), np.bool_),
            "base": ((capacity,), np.intp),
            "pos": ((capacity,), np.intp),
            "period": ((capacity,), np.intp),
            "remaining": ((capacity,), np.int64),
            "tx_packets": ((capacity,), np.int64),
            "rtcp_due": ((capacity,), np.int64),
            "kind": ((capacity,), np.uint8),
            "frames": ((capacity, FRAME), np.int16),
            "index": ((capacity, FRAME), np.intp),
            "payload": ((capacity, FRAME), np.uint8),
            "start": ((capacity,), np.intp),
        }
        for name, (shape, dtype) in fields.items():
            arr = np.zeros(shape, dtype=dtype)
            if old:
                arr[:old] = getattr(self, name)[:old]
            setattr(self, name, arr)
        self.capacity = capacity
        self._names = [name for name in fields if name not in ("frames", "index", "payload", "start")]
        mv = self.packets.data.cast("B")
        size = self.packets.dtype.itemsize
        self.packet_views = [mv[i * size : (i + 1) * size] for i in range(capacity)]
        self.packet_bytes: NDArray[np.uint8] = self.packets.view(np.uint8).reshape(capacity, size)
        """The packet records as rows of bytes (what ``sendmmsg`` sends from)."""
        """Slot -> a memoryview of its packet record, made once so sending allocates nothing."""

    packets: NDArray[np.void]
    seq: NDArray[np.uint16]
    timestamp: NDArray[np.uint32]
    mpt: NDArray[np.uint8]
    codec_offset: NDArray[np.intp]
    decode_offset: NDArray[np.intp]
    playing: NDArray[np.bool_]
    """A prompt (not silence) is playing."""
    suppress: NDArray[np.bool_]
    """Send nothing from the vectorised path this tick (the engine sends this channel's packets itself)."""
    sending: NDArray[np.bool_]
    expect_rx: NDArray[np.bool_]
    timed_out: NDArray[np.bool_]
    base: NDArray[np.intp]
    pos: NDArray[np.intp]
    period: NDArray[np.intp]
    remaining: NDArray[np.int64]
    tx_packets: NDArray[np.int64]
    rtcp_due: NDArray[np.int64]
    kind: NDArray[np.uint8]
    """0: a table codec; else the wideband codec (:data:`switch.media.wideband.WIDEBAND`) of the slot."""
    """Tick of the channel's next RTCP report (0: it sends none, e.g. not configured or on hold)."""
    frames: NDArray[np.int16]
    index: NDArray[np.intp]
    payload: NDArray[np.uint8]
    start: NDArray[np.intp]

    def add(self, rng: random.Random | None = None) -> int:
        """A new silent, not yet sending channel with random SSRC, sequence and timestamp; its slot."""
        if self.n == self.capacity:
            self._allocate(2 * self.capacity)
        r = rng or random.SystemRandom()
        slot = self.n
        self.n += 1
        for name in self._names:
            getattr(self, name)[slot] = 0
        self.packets["vpxcc"][slot] = RTP_VERSION << 6
        self.packets["ssrc"][slot] = r.getrandbits(32)
        self.seq[slot] = r.getrandbits(16)
        self.timestamp[slot] = r.getrandbits(32)
        self.prompts.append(None)
        self._set_silence(slot)
        return slot

    def remove(self, slot: int) -> int | None:
        """Free ``slot``; the last channel moves into it. Return the slot that moved (None if none did)."""
        self._release(slot)
        last = self.n - 1
        moved: int | None = None
        if slot != last:
            for name in self._names:
                arr = getattr(self, name)
                arr[slot] = arr[last]
            self.prompts[slot] = self.prompts[last]
            moved = last
        self.prompts.pop()
        self.n -= 1
        return moved

    # -- players ----------------------------------------------------------------------------------------
    def play(self, slot: int, pcm: NDArray[np.int16], loop: int) -> None:
        """Play ``pcm`` ``loop`` times (0: forever) from the next tick, replacing what was playing."""
        self._release(slot)
        if len(pcm) == 0:
            return
        offset, period = self.pool.acquire(pcm)
        self._refresh_offsets()
        self.prompts[slot] = pcm
        self.base[slot] = offset
        self.pos[slot] = 0
        self.period[slot] = period
        self.remaining[slot] = FOREVER if loop == 0 else len(pcm) * loop
        self.playing[slot] = True

    def stop(self, slot: int) -> bool:
        """Back to silence; True if something was playing."""
        was_playing = self.prompts[slot] is not None
        self._release(slot)
        return was_playing

    def _set_silence(self, slot: int) -> None:
        self.playing[slot] = False
        self.base[slot] = 0
        self.pos[slot] = 0
        self.period[slot] = FRAME
        self.remaining[slot] = FOREVER

    def _release(self, slot: int) -> None:
        pcm = self.prompts[slot]
        if pcm is not None:
            self.pool.release(pcm)
            self.prompts[slot] = None
        self._set_silence(slot)

    def _refresh_offsets(self) -> None:
        if self.pool.relocated:
            for slot in range(self.n):
                pcm = self.prompts[slot]
                if pcm is not None:
                    self.base[slot] = self.pool.offset_of(pcm)
            self.pool.relocated = False

    # -- the tick ---------------------------------------------------------------------------------------
    def render(self, ticks: int = 1) -> list[int]:
        """Build this tick's packet of every channel from its player alone; return the slots that ended.

        ``ticks`` is how many 20 ms periods elapsed (more than one when the clock skipped ahead): the
        timestamps advance by all of them, the sequence numbers by one packet.
        """
        ended = self.gather()
        self.encode(self.frames[: self.n], ticks)
        return ended

    def gather(self) -> list[int]:
        """Every channel's next 160 player samples into ``frames`` (silence when nothing plays).

        Only the rows that play are read (one 160-sample window of the pool each); rows that played last
        tick and no longer do are zeroed, so the rows of silent channels stay zero without being touched.
        """
        n = self.n
        if n == 0:
            return []
        frames = self.frames
        stale = self._gathered
        if stale.size:
            frames[stale[stale < self.capacity]] = 0
        rows = np.flatnonzero(self.playing[:n])
        self._gathered = rows
        if rows.size == 0:
            return []
        windows = np.lib.stride_tricks.sliding_window_view(self.pool.buffer, FRAME)
        frames[rows] = windows[self.base[rows] + self.pos[rows]]
        remaining = self.remaining[:n]
        ending = np.flatnonzero(remaining <= FRAME).tolist()
        for slot in ending:
            frames[slot, int(remaining[slot]) :] = 0
        period = self.period[rows]
        pos = self.pos[rows] + FRAME
        np.remainder(pos, period, out=pos)
        self.pos[rows] = pos
        self.remaining[rows] -= FRAME
        for slot in ending:
            self._release(slot)
        return ending

    def encode(self, audio: NDArray[np.int16], ticks: int = 1, rows: NDArray[np.intp] | None = None) -> None:
        """Encode ``audio`` (``(n, FRAME)``) into every channel's packet and advance the headers.

        With ``rows``, only those rows are encoded (the others' payloads are written by someone else: pass-
        through). Channels flagged in ``suppress`` keep their sequence number (the engine sends their
        packets).
        """
        n = self.n
        if n == 0:
            return
        packets = self.packets[:n]
        if rows is None:
            index = self.index[:n]
            np.add(audio.view(np.uint16), self.codec_offset[:n, None], out=index)
            payload = self.payload[:n]
            np.take(_ENCODE, index, out=payload, mode="clip")
            packets["payload"] = payload
        elif rows.size:
            index = audio[rows].view(np.uint16) + self.codec_offset[rows, None]
            self.packets["payload"][rows] = np.take(_ENCODE, index, mode="clip")
        packets["seq"] = self.seq[:n]
        packets["timestamp"] = self.timestamp[:n]
        packets["mpt"] = self.mpt[:n]

        sending = self.sending[:n] & ~self.suppress[:n]
        self.seq[:n] += sending
        self.tx_packets[:n] += sending
        self.timestamp[:n] += np.uint32(FRAME * ticks)
        self.mpt[:n] &= np.where(sending, 0x7F, 0xFF).astype(np.uint8)

    # -- configuration ----------------------------------------------------------------------------------
    def configure(
        self,
        slot: int,
        *,
        codec: str,
        payload_type: int,
        sending: bool,
        expect_rx: bool,
        marker: bool,
        kind: int = 0,
    ) -> None:
        """``codec`` is a table codec; a wideband leg passes ``kind`` (its table codec is then unused)."""
        self.kind[slot] = kind
        self.codec_offset[slot] = CODECS[codec] * 65536
        self.decode_offset[slot] = CODECS[codec] * 256
        self.mpt[slot] = (payload_type & 0x7F) | (0x80 if marker else (self.mpt[slot] & 0x80))
        self.sending[slot] = sending
        self.expect_rx[slot] = expect_rx
        self.timed_out[slot] = False
