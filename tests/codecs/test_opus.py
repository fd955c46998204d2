"""Opus round trips through libopus: tone and chirp survive, packets are sized by the bitrate."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from voicecodecs.opus import FRAME_SAMPLES, RTP_CLOCK_RATE, SAMPLE_RATE, OpusDecoder, OpusEncoder


def round_trip(x: NDArray[np.int16], bitrate: int = 32000) -> tuple[NDArray[np.int16], list[bytes]]:
    enc = OpusEncoder(bitrate=bitrate)
    dec = OpusDecoder()
    packets = [enc.encode(x[i : i + FRAME_SAMPLES]) for i in range(0, x.size, FRAME_SAMPLES)]
    return np.concatenate([dec.decode(p) for p in packets]), packets


def best_alignment(x: NDArray[np.int16], y: NDArray[np.int16]) -> tuple[int, float]:
    """Lag of y against x with the highest correlation, over a middle stretch."""
    a = x[4800:-4800].astype(np.float64)
    scores = [float(np.corrcoef(a, y[4800 + lag : y.size - 4800 + lag])[0, 1]) for lag in range(0, 1200)]
    lag = int(np.argmax(scores))
    return lag, scores[lag]


def test_constants() -> None:
    assert (SAMPLE_RATE, RTP_CLOCK_RATE, FRAME_SAMPLES) == (48000, 48000, 960)


def test_tone_round_trip() -> None:
    t = np.arange(48000) / SAMPLE_RATE
    x = np.rint(10000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    y, packets = round_trip(x)
    assert y.dtype == np.int16 and y.size == x.size
    assert len(packets) == 50
    lag, corr = best_alignment(x, y)
    assert corr > 0.99
    assert 312 <= lag < 1200  # at least the encoder's 6.5 ms lookahead


def test_chirp_round_trip_and_bitrate() -> None:
    t = np.arange(96000) / SAMPLE_RATE
    x = np.rint(8000 * np.sin(2 * np.pi * (200 * t + 900 * t**2))).astype(np.int16)  # 200 Hz to 3800 Hz
    y, packets = round_trip(x, bitrate=24000)
    _, corr = best_alignment(x, y)
    assert corr > 0.9
    mean_bytes = np.mean([len(p) for p in packets[5:]])
    assert 24000 / 8 / 50 * 0.5 < mean_bytes < 24000 / 8 / 50 * 1.5  # about 60 bytes a packet
    # the TOC byte: config 11 (SILK wideband 20 ms) to 31; mono (s bit 0); one frame (c = 0)
    toc = packets[10][0]
    assert toc & 0x04 == 0
    assert toc & 0x03 == 0


def test_silence_gives_packets_and_quiet_output() -> None:
    y, packets = round_trip(np.zeros(9600, np.int16))
    assert len(packets) == 10 and all(len(p) > 0 for p in packets)
    assert int(np.abs(y.astype(np.int32)).max()) <= 2


def test_rejects_bad_input() -> None:
    enc = OpusEncoder()
    with pytest.raises(ValueError, match="960 samples"):
        enc.encode(np.zeros(480, np.int16))
    with pytest.raises(TypeError, match="int16"):
        enc.encode(np.zeros(960, np.float32))
    with pytest.raises(ValueError, match="bitrate"):
        OpusEncoder(bitrate=1000)
    with pytest.raises(ValueError, match="application"):
        OpusEncoder(application="music")
    with pytest.raises(ValueError, match="empty"):
        OpusDecoder().decode(b"")
