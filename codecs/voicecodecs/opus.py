"""Opus through PyAV (libopus): mono, 48 kHz, 20 ms frames of 960 samples, one context per channel.

Opus keeps its state in libopus, so each call leg owns one ``OpusEncoder`` and one ``OpusDecoder``;
the work per frame is done in C. RTP (RFC 7587): the clock rate is always 48000 and SDP always says
``opus/48000/2`` even for mono; a 20 ms packet advances the timestamp by 960.

The encoder has an algorithmic delay (lookahead) of 312 samples (6.5 ms) at 48 kHz; the decoded
audio lags the input by that much plus the decoder's own delay, which callers comparing signals
must align for.
"""

from __future__ import annotations

from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

__all__ = ["FRAME_SAMPLES", "RTP_CLOCK_RATE", "SAMPLE_RATE", "OpusDecoder", "OpusEncoder"]

SAMPLE_RATE = 48000
RTP_CLOCK_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms


class OpusEncoder:
    """A libopus encoder for one mono channel; ``encode`` takes 960 int16 samples, gives one packet."""

    def __init__(self, bitrate: int = 32000, application: str = "voip") -> None:
        if not 6000 <= bitrate <= 510000:
            raise ValueError(f"Opus bitrate must be 6000-510000 bit/s, got {bitrate}")
        if application not in ("voip", "audio", "lowdelay"):
            raise ValueError(f"unknown Opus application {application!r}")
        ctx: Any = av.codec.CodecContext.create("libopus", "w")
        ctx.sample_rate = SAMPLE_RATE
        ctx.layout = "mono"
        ctx.format = "s16"
        ctx.bit_rate = bitrate
        ctx.options = {"application": application, "frame_duration": "20"}
        ctx.open()
        self._ctx = ctx
        self._pts = 0
        self.bitrate = bitrate

    def encode(self, pcm: NDArray[np.int16]) -> bytes:
        """Encode one 20 ms frame: ``(960,)`` or ``(1, 960)`` int16 samples at 48 kHz."""
        if pcm.dtype != np.int16:
            raise TypeError(f"Opus encodes int16 samples, got {pcm.dtype}")
        if pcm.size != FRAME_SAMPLES or pcm.ndim not in (1, 2):
            raise ValueError(f"Opus frames are {FRAME_SAMPLES} samples, got shape {pcm.shape}")
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm.reshape(1, FRAME_SAMPLES)), format="s16", layout="mono"
        )
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        self._pts += FRAME_SAMPLES
        return b"".join(bytes(packet) for packet in self._ctx.encode(frame))


class OpusDecoder:
    """A libopus decoder for one mono channel; ``decode`` takes one packet, gives int16 at 48 kHz."""

    def __init__(self) -> None:
        ctx: Any = av.codec.CodecContext.create("libopus", "r")
        ctx.sample_rate = SAMPLE_RATE
        ctx.layout = "mono"
        self._ctx = ctx

    def decode(self, payload: bytes) -> NDArray[np.int16]:
        """Decode one RTP payload into ``(samples,)`` int16 (960 for a 20 ms packet)."""
        if not payload:
            raise ValueError("empty Opus payload")
        frames = [frame.to_ndarray() for frame in self._ctx.decode(av.packet.Packet(payload))]
        if not frames:
            return np.zeros(0, np.int16)
        pcm = np.concatenate([f.reshape(-1) for f in frames])
        if pcm.dtype != np.int16:  # a float decoder (ffmpeg's own) gives +/-1.0 samples
            pcm = np.clip(np.rint(pcm * 32768.0), -32768, 32767)
        return pcm.astype(np.int16)
