"""One tick's audio work over every channel at once, without sockets (the engine sends what it builds).

Order of a tick (all ``(channels, 160)`` arrays allocated in advance):

0. a late tick that stands for skipped ones (``ticks > 1``) first drops, per stream, the whole frames that
   arrived meanwhile (never the newest), so the receive delay stays what it was instead of growing by the
   stall (RTP timestamps on the send side jump by the same time in :meth:`ChannelTable.encode`);
1. players: the next prompt frame of the channels that play (:meth:`ChannelTable.gather`);
2. receive: every channel's next frame from its jitter buffer (two 10 ms slot copies per row, a present
   flag per half frame);
3. decode two bytes per lookup (:data:`~switch.media.codec_registry.DECODE_PAIRS`), zero what is missing,
   conceal the rows that lost a frame (:class:`~switch.media.conceal.RowConcealer`) — skipped entirely when
   no channel needs decoded audio (only pass-through bridges, or no bridge at all);
4. in-band DTMF over the channels that have it enabled, once one of them has received RTP;
5. mix (:meth:`Mixer.render`): a bridge row is a row copy, rooms are summed by groups of rooms of one size,
   int32 only where sums are made, plus players, clipped;
6. recorders take copies of what they need;
7. encode by table the rows that do not pass through, and write the headers (:meth:`ChannelTable.encode`);
8. pass-through: a bridged leg of the same codec as its partner, with no prompt playing to it, gets the
   partner's received payload bytes untouched when the frame arrived complete; when it did not and nothing
   was decoded, the packet is not sent at all (the sequence gap tells the far end it was lost, as a relay
   would).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from switch.media.channels import FRAME, ChannelTable
from switch.media.codec_registry import DECODE_PAIRS
from switch.media.conceal import RowConcealer
from switch.media.dtmf import EventReceiver, InbandDetectors
from switch.media.jitter import JitterBuffer
from switch.media.mixer import Mixer
from switch.media.recorder import Recording, WavWriter, silent_rows
from switch.media.wideband import OPUS, WidebandLegs

__all__ = ["Pipeline", "TickOutput"]


@dataclass(slots=True)
class TickOutput:
    ended: list[int] = field(default_factory=list)
    """Slots whose playback ended this tick."""
    digits: list[tuple[int, str]] = field(default_factory=list)
    """(channel, digit) detected in-band this tick."""
    recordings_ended: list[int] = field(default_factory=list)
    """Channels whose recording ended by itself this tick (silence, max-length)."""
    opus: list[tuple[int, bytes]] = field(default_factory=list)
    """(slot, payload) of this tick's Opus packets, for the engine to send."""


class Pipeline:
    """The receive, mix and record state beside a :class:`ChannelTable`, slot for slot."""

    def __init__(self, table: ChannelTable, slot_of: Callable[[int], int], writer: WavWriter) -> None:
        self.table = table
        self.slot_of = slot_of
        self.writer = writer
        self.jitter = JitterBuffer(table.capacity)
        self.concealer = RowConcealer(table.capacity)
        self.wideband = WidebandLegs()
        self.events = EventReceiver(table.capacity)
        self.mixer = Mixer()
        self.inband = InbandDetectors()
        self.recordings: dict[int, Recording] = {}
        self._record_keys: dict[int, int] = {}
        self.capacity = 0
        self.dirty = True
        self.decoded = False
        """Whether the last tick decoded (for tests and benchmarks)."""
        self._pairs_dst = np.zeros(0, np.intp)
        self._pairs_src = np.zeros(0, np.intp)
        self._same = np.zeros(0, np.bool_)
        self._record_slots = np.zeros(0, np.intp)
        self._record_channels: list[int] = []
        self._grow(table.capacity)

    def _grow(self, capacity: int) -> None:
        self.capacity = capacity
        self.rx_bytes = np.zeros((capacity, FRAME), np.uint8)
        self.present = np.zeros((capacity, FRAME), np.bool_)
        self.heard = np.zeros((capacity, FRAME), np.int16)
        """What each channel's peer sent (decoded and concealed): the input of the mix."""
        self.audio = np.zeros((capacity, FRAME), np.int16)
        """What each channel hears (mix plus players): the output, before encoding."""
        self._pairs = np.zeros((capacity, FRAME // 2), np.intp)
        self.skip = np.zeros(capacity, np.bool_)
        self._keep = np.zeros(capacity, np.bool_)
        self.concealer.ensure(capacity)
        self.jitter.ensure(capacity)
        self.events.ensure(capacity)

    # -- slots ------------------------------------------------------------------------------------------
    def added(self, slot: int) -> None:
        if self.table.capacity > self.capacity:
            self._grow(self.table.capacity)
        self.jitter.clear(slot)
        self.events.clear(slot)
        self.concealer.clear(slot)
        self.wideband.remove(slot)

    def moved(self, source: int, dest: int) -> None:
        self.jitter.move(source, dest)
        self.events.move(source, dest)
        self.concealer.move(source, dest)
        self.wideband.move(source, dest)
        self.dirty = True

    def compile(self) -> None:
        self.mixer.compile(self.slot_of)
        self.inband.compile(self.slot_of)
        self._record_channels = list(self.recordings)
        self._record_slots = np.array([self.slot_of(c) for c in self._record_channels], np.intp)
        dst = self._pairs_dst = self.mixer.bridge_dst
        src = self._pairs_src = self.mixer.bridge_src
        codec, kind = self.table.codec_offset, self.table.kind
        self._same = (codec[dst] == codec[src]) & (kind[dst] == kind[src]) & (kind[dst] != OPUS)
        """Bridge rows whose partner has their codec (the owner marks the pipeline dirty on configure)."""
        self.dirty = False

    # -- recordings -------------------------------------------------------------------------------------
    def start_recording(self, channel: int, key: int, recording: Recording) -> None:
        self.recordings[channel] = recording
        self._record_keys[channel] = key
        self.writer.open(key, recording.path, 2 if recording.dual else 1)
        self.dirty = True

    def end_recording(self, channel: int) -> tuple[int, Recording] | None:
        """Forget a channel's recording (already finished by the caller); its writer key and state."""
        recording = self.recordings.pop(channel, None)
        if recording is None:
            return None
        self.dirty = True
        return self._record_keys.pop(channel), recording

    # -- the tick ---------------------------------------------------------------------------------------
    def run(self, ticks: int = 1) -> TickOutput:
        table = self.table
        n = table.n
        result = TickOutput()
        if n == 0:
            return result
        if self.dirty:
            self.compile()
        if ticks > 1:
            self._catch_up(n, ticks - 1)
        result.ended = table.gather()
        dst, src = self._pairs_dst, self._pairs_src
        playing = table.playing
        passable = self._same & ~playing[dst] if playing[:n].any() else self._same
        inband = self.inband.active and self.inband.live(self.jitter.started)
        need_decode = bool(self.mixer.members.size or self._record_channels or inband)
        need_decode = need_decode or not passable.all()
        # Only pass-through: the received bytes go straight from the rings into the partners' packets.
        lost = self.jitter.pull(n, self.rx_bytes, self.present, fetch=need_decode)
        complete = self.jitter.complete
        heard = self.heard[:n]
        self.decoded = need_decode
        if need_decode:
            self._decode(n, lost, complete)
            if inband:
                result.digits = self.inband.process(self.heard)
            audio = self._mix_audio(n, heard)
        else:
            # Nothing decoded: every bridged row passes its partner's payload through or sends nothing,
            # so what the others hear is their player alone.
            audio = table.frames[:n]
        if self._record_channels:
            self._record(audio, result)
        skip = self.skip[:n]
        skip[:] = False
        if dst.size:
            through = passable & complete[src]
            if through.any():
                rows = dst[through]
                keep = self._keep[:n]
                keep.fill(True)
                keep[rows] = False
                table.encode(audio, ticks, np.flatnonzero(keep))
                self._encode_wideband(audio, result)
                partners = src[through]
                fetched = self.rx_bytes[partners] if need_decode else self.jitter.fetch(partners)
                table.packets["payload"][rows] = fetched
            else:
                table.encode(audio, ticks)
                self._encode_wideband(audio, result)
            if not need_decode:
                skip[dst[~complete[src] & self.jitter.started[src]]] = True
        else:
            table.encode(audio, ticks)
            self._encode_wideband(audio, result)
        return result

    def _catch_up(self, n: int, frames: int) -> None:
        """Drop up to ``frames`` whole frames of every started stream, keeping its newest frame buffered."""
        jitter = self.jitter
        play = jitter.play[:n]
        level = jitter.newest[:n] - play
        level += 0x80000000
        level &= 0xFFFFFFFF
        level -= 0x80000000
        level -= FRAME
        level //= FRAME
        np.clip(level, 0, frames, out=level)
        level *= FRAME
        level *= jitter.started[:n]
        play += level
        play &= 0xFFFFFFFF

    def _encode_wideband(self, audio: NDArray[np.int16], result: TickOutput) -> None:
        if self.wideband:
            result.opus = self.wideband.encode(audio, self.table.packets["payload"])

    def _decode(self, n: int, lost: NDArray[np.bool_], complete: NDArray[np.bool_]) -> None:
        """Decode every row two bytes per lookup, zero the missing samples, conceal the lost rows."""
        heard = self.heard[:n]
        pairs = self._pairs[:n]
        np.add(self.rx_bytes[:n].view(np.uint16), self.table.codec_offset[:n, None], out=pairs)
        np.take(DECODE_PAIRS, pairs, out=heard.view(np.int32), mode="clip")
        partial = np.flatnonzero(~complete)
        if partial.size:
            heard[partial] *= self.present[partial]
        if self.wideband:
            self.wideband.decode(heard, self.rx_bytes, complete, lost, self.present)
        self.concealer.process(heard, lost, self.present)

    def _mix_audio(self, n: int, heard: NDArray[np.int16]) -> NDArray[np.int16]:
        mixer = self.mixer
        players = self.table.frames[:n]
        if not (mixer.bridge_dst.size or mixer.members.size):
            return players
        audio = self.audio[:n]
        mixer.render(heard, players, self.table.playing[:n], audio)
        return audio

    def _record(self, audio: NDArray[np.int16], result: TickOutput) -> None:
        slots = self._record_slots
        caller = self.heard[slots]  # fancy indexing copies: these rows may go to the writer thread
        silent = silent_rows(caller).tolist()
        other = audio[slots] if any(r.dual for r in self.recordings.values()) else None
        for i, channel in enumerate(self._record_channels):
            recording = self.recordings[channel]
            if recording.dual:
                assert other is not None
                frame = np.stack([caller[i], other[i]], axis=1).tobytes()
            else:
                frame = caller[i].tobytes()
            key = self._record_keys[channel]
            for chunk in recording.feed(frame, silent[i]):
                self.writer.write(key, chunk)
            if recording.ended_by is not None:
                result.recordings_ended.append(channel)
