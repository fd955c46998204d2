"""Legs whose codec is not a lookup table: G.722 (16 kHz audio, RTP clock 8000) and Opus (opus/48000/2).

The engine mixes at 8 kHz. A G.722 or Opus leg is decoded to its own rate by a codec context of its own
(ffmpeg's ``g722`` and libopus, through PyAV: the work per frame is in C), brought to 8 kHz by a streaming
anti-aliased polyphase FIR resampler that keeps its history across frames, and encoded the other way round
(libopus takes 8 kHz input itself, so an Opus leg resamples only what it receives). Each
leg costs tens of microseconds of C per tick and direction, so these legs are for the channels that
negotiated a wideband codec, not for the bulk of G.711 traffic (which stays one table lookup for all).

G.722 packets are 160 octets per 20 ms and advance the RTP timestamp by 160, exactly like G.711, so they
go through the common jitter buffer and pass-through; only decode and encode differ. Opus packets vary in
size and advance the timestamp by 960, so an Opus leg keeps its own small packet store: a packet is
played 40 ms after the first one's timestamp, one per tick, late ones are dropped, missing ones are
concealed by libopus (decoding an empty packet) or by the tick's concealer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

from voicecodecs.opus import OpusDecoder

__all__ = ["G722", "G722_CLOCK", "OPUS", "OPUS_CLOCK", "WIDEBAND", "Resampler", "WidebandLegs"]

FRAME = 160
G722 = 1
OPUS = 2
WIDEBAND = {"G722": G722, "opus": OPUS}
"""Codec name (as SDP spells it) -> its kind in the channel table (0 is a table codec)."""
G722_CLOCK = 8000
OPUS_CLOCK = 48000
_OPUS_STEP = 960
_OPUS_DELAY = 2 * _OPUS_STEP
_OPUS_STORE = 32


class Resampler:
    """Streaming integer-ratio resampler (by ``up`` or by ``1/down``), windowed-sinc FIR, one channel.

    Polyphase: going down only the kept outputs are computed, going up each input sample gives ``up``
    outputs from one small matrix product, so the work is per low-rate sample. The history of the last
    frame is kept, so frame-by-frame output equals one pass over the whole signal.
    """

    def __init__(self, up: int = 1, down: int = 1) -> None:
        if (up == 1) == (down == 1):
            raise ValueError("a resampler goes up or down by an integer factor")
        factor = max(up, down)
        taps = 48 * factor + 1
        cutoff = 0.45 / factor  # of the high rate, in cycles per sample: 3.6 kHz for 8 kHz audio
        n = np.arange(taps) - (taps - 1) / 2
        h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(taps, 8.0)
        h /= h.sum()
        self.up, self.down = up, down
        if down > 1:
            self._kernel = np.ascontiguousarray(h[::-1], np.float32)
            self._history = np.zeros(taps - 1, np.float32)
        else:
            per_phase = -(-taps // up)
            padded = np.zeros(per_phase * up)
            padded[:taps] = h * up
            # phases[p, m] = h[p + m * up]: output n*up + p = sum over m of x[n - m] * phases[p, m].
            phases = padded.reshape(per_phase, up).T
            self._kernel = np.ascontiguousarray(phases[:, ::-1].T, np.float32)  # (per_phase, up)
            self._history = np.zeros(per_phase - 1, np.float32)

    def process(self, x: NDArray[np.int16]) -> NDArray[np.int16]:
        """Resample one frame (its length a multiple of ``down``; every frame the same length is fastest)."""
        keep = len(self._history)
        if len(x) != self._frame:
            self._allocate(len(x))
        buffer = self._buffer
        buffer[:keep] = self._history
        buffer[keep:] = x
        self._history[:] = buffer[len(buffer) - keep :]
        y = self._windows @ self._kernel
        out: NDArray[np.int16] = np.clip(np.rint(y.reshape(-1)), -32768, 32767).astype(np.int16)
        return out

    _frame = -1

    def _allocate(self, frame: int) -> None:
        """A work buffer of history plus one frame, and the strided view of its windows, made once."""
        self._frame = frame
        self._buffer = np.zeros(len(self._history) + frame, np.float32)
        windows = np.lib.stride_tricks.sliding_window_view(self._buffer, self._kernel.shape[0])
        self._windows = windows[:: self.down] if self.down > 1 else windows


@dataclass(slots=True)
class _G722Leg:
    encoder: Any
    decoder: Any
    to_8k: Resampler = field(default_factory=lambda: Resampler(down=2))
    to_16k: Resampler = field(default_factory=lambda: Resampler(up=2))
    pending: bytearray = field(default_factory=bytearray)
    pts: int = 0


@dataclass(slots=True)
class _OpusLeg:
    encoder: Any
    """libopus fed 8 kHz audio directly (the RTP clock stays 48 kHz, RFC 7587)."""
    decoder: OpusDecoder
    to_8k: Resampler = field(default_factory=lambda: Resampler(down=6))
    pts: int = 0
    store: dict[int, bytes] = field(default_factory=dict)
    play: int = -1
    """RTP timestamp of the next packet to play (-1 before the first packet)."""
    started: bool = False
    late: int = 0
    timestamp: int = 0
    """Our send timestamp (48 kHz units)."""


def _opus_encoder() -> Any:
    encoder: Any = av.codec.CodecContext.create("libopus", "w")
    encoder.sample_rate = 8000
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.bit_rate = 24000
    encoder.options = {"application": "voip", "frame_duration": "20", "compression_level": "5"}
    encoder.open()
    return encoder


def _g722_contexts() -> tuple[Any, Any]:
    encoder: Any = av.codec.CodecContext.create("g722", "w")
    encoder.sample_rate = 16000
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.open()
    decoder: Any = av.codec.CodecContext.create("g722", "r")
    decoder.sample_rate = 16000
    decoder.layout = "mono"
    return encoder, decoder


class WidebandLegs:
    """The G.722 and Opus state of the slots that carry those codecs (the owner keeps slots current)."""

    def __init__(self) -> None:
        self.g722: dict[int, _G722Leg] = {}
        self.opus: dict[int, _OpusLeg] = {}

    def __bool__(self) -> bool:
        return bool(self.g722 or self.opus)

    # -- slots ------------------------------------------------------------------------------------------
    def set_codec(self, slot: int, kind: int, timestamp: int) -> None:
        """Give ``slot`` the state of codec ``kind`` (0: a table codec, no state), keeping what it had."""
        if kind != G722:
            self.g722.pop(slot, None)
        if kind != OPUS:
            self.opus.pop(slot, None)
        if kind == G722 and slot not in self.g722:
            self.g722[slot] = _G722Leg(*_g722_contexts())
        if kind == OPUS and slot not in self.opus:
            self.opus[slot] = _OpusLeg(_opus_encoder(), OpusDecoder(), timestamp=timestamp & 0xFFFFFFFF)

    def remove(self, slot: int) -> None:
        self.g722.pop(slot, None)
        self.opus.pop(slot, None)

    def move(self, source: int, dest: int) -> None:
        for legs in (self.g722, self.opus):
            leg = legs.pop(source, None)
            if leg is not None:
                legs[dest] = leg  # type: ignore[assignment]

    # -- receive ----------------------------------------------------------------------------------------
    def put_opus(self, slot: int, timestamp: int, payload: bytes) -> None:
        """One received Opus packet (the receiver's cold path)."""
        leg = self.opus.get(slot)
        if leg is None:
            return
        if not leg.started:
            leg.started = True
            leg.play = (timestamp - _OPUS_DELAY) & 0xFFFFFFFF
        ahead = ((timestamp - leg.play + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        if ahead < 0:
            leg.late += 1
            return
        if ahead > _OPUS_STORE * _OPUS_STEP:  # a jump: start over on this packet
            leg.store.clear()
            leg.play = (timestamp - _OPUS_DELAY) & 0xFFFFFFFF
        leg.store[timestamp] = bytes(payload)

    # -- the tick ---------------------------------------------------------------------------------------
    def decode(
        self,
        heard: NDArray[np.int16],
        rx_bytes: NDArray[np.uint8],
        complete: NDArray[np.bool_],
        lost: NDArray[np.bool_],
        present: NDArray[np.bool_],
    ) -> None:
        """Overwrite the rows of G.722 and Opus slots in ``heard`` with their decoded 8 kHz audio.

        A G.722 frame that did not arrive whole is left to the concealer (``present`` cleared); an Opus
        leg fills ``lost``/``present`` itself from its packet store.
        """
        for slot, g in self.g722.items():
            if not complete[slot]:
                heard[slot] = 0
                present[slot] = False
                continue
            frames = g.decoder.decode(av.packet.Packet(rx_bytes[slot].tobytes()))
            wide = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.int16)
            heard[slot] = _fit(g.to_8k.process(wide), FRAME)
        for slot, o in self.opus.items():
            if not o.started:
                heard[slot] = 0
                continue
            payload = o.store.pop(o.play, None)
            later = bool(o.store)
            o.play = (o.play + _OPUS_STEP) & 0xFFFFFFFF
            if payload is None:
                heard[slot] = 0
                present[slot] = False
                lost[slot] = later
                continue
            wide = o.decoder.decode(payload)
            heard[slot] = _fit(o.to_8k.process(_fit(wide, _OPUS_STEP)), FRAME)
            present[slot] = True
            lost[slot] = False

    def encode(self, audio: NDArray[np.int16], payload: NDArray[np.uint8]) -> list[tuple[int, bytes]]:
        """Encode the G.722 rows of ``audio`` into ``payload`` rows; return the Opus rows' packets (an empty
        payload when the encoder gave nothing this tick: the timestamp still advances, nothing is sent)."""
        for slot, g in self.g722.items():
            wide = g.to_16k.process(audio[slot])
            frame = av.AudioFrame.from_ndarray(wide[None, :], format="s16", layout="mono")
            frame.sample_rate = 16000
            frame.pts = g.pts
            g.pts += len(wide)
            for packet in g.encoder.encode(frame):
                g.pending += bytes(packet)
            if len(g.pending) >= FRAME:
                payload[slot] = np.frombuffer(g.pending, np.uint8, FRAME)
                del g.pending[:FRAME]
        packets: list[tuple[int, bytes]] = []
        for slot, o in self.opus.items():
            frame = av.AudioFrame.from_ndarray(audio[slot : slot + 1], format="s16", layout="mono")
            frame.sample_rate = 8000
            frame.pts = o.pts
            o.pts += FRAME
            packets.append((slot, b"".join(bytes(p) for p in o.encoder.encode(frame))))
        return packets


def _fit(x: NDArray[np.int16], size: int) -> NDArray[np.int16]:
    """``x`` cut or zero-padded to ``size`` samples."""
    if len(x) == size:
        return x
    out = np.zeros(size, np.int16)
    out[: min(size, len(x))] = x[:size]
    return out
