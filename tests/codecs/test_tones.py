"""Tone generation: Q.23 frequencies, dBm0 levels, phase continuity, cadences."""

from __future__ import annotations

import numpy as np
import pytest

from voicecodecs.g711 import ulaw_decode, ulaw_encode
from voicecodecs.tones import (
    DBM0_RMS,
    DTMF_FREQUENCIES,
    RINGBACK_US,
    cadenced_tone,
    dbm0_to_peak,
    dtmf_tone,
    dual_tone,
    level_dbm0,
)


def spectrum_peaks(x: np.ndarray, rate: int, count: int) -> list[float]:
    mag = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(x.size)))
    freqs = np.fft.rfftfreq(x.size, 1.0 / rate)
    peaks: list[float] = []
    for _ in range(count):
        k = int(np.argmax(mag))
        peaks.append(float(freqs[k]))
        mag[max(0, k - 20) : k + 21] = 0
    return sorted(peaks)


def test_q23_table() -> None:
    assert len(DTMF_FREQUENCIES) == 16
    assert DTMF_FREQUENCIES["1"] == (697.0, 1209.0)
    assert DTMF_FREQUENCIES["0"] == (941.0, 1336.0)
    assert DTMF_FREQUENCIES["#"] == (941.0, 1477.0)
    assert DTMF_FREQUENCIES["*"] == (941.0, 1209.0)
    assert DTMF_FREQUENCIES["D"] == (941.0, 1633.0)


@pytest.mark.parametrize("digit", list("0123456789*#ABCD"))
def test_dtmf_tone_contains_exactly_its_pair(digit: str) -> None:
    x = dtmf_tone(digit, 1000)
    assert x.shape == (8000,) and x.dtype == np.int16
    low, high = DTMF_FREQUENCIES[digit]
    assert spectrum_peaks(x, 8000, 2) == pytest.approx([low, high], abs=1.0)


def test_digital_milliwatt_is_zero_dbm0() -> None:
    """G.711 Table 5: the mu-law digital milliwatt sequence is 0 dBm0 by definition."""
    dmw = ulaw_decode(np.array([0x1E, 0x0B, 0x0B, 0x1E, 0x9E, 0x8B, 0x8B, 0x9E], np.uint8))
    assert float(level_dbm0(dmw)) == pytest.approx(0.0, abs=0.01)
    assert DBM0_RMS == pytest.approx(16020.7, abs=0.1)
    assert float(dbm0_to_peak(3.17)) == pytest.approx(32636.0, abs=0.5)


def test_levels_per_tone_and_twist() -> None:
    x = dtmf_tone("5", 1000, level_dbm0=-10.0)
    # two tones of -10 dBm0 each: -7 dBm0 together
    assert float(level_dbm0(x)) == pytest.approx(-10 + 10 * np.log10(2), abs=0.02)
    single = dual_tone(1000.0, 0.0, 8000, level_dbm0=-20.0)
    assert float(level_dbm0(single)) == pytest.approx(-20.0, abs=0.02)
    twisted = dual_tone(770.0, 1336.0, 8000, level_dbm0=-20.0, twist_db=4.0)
    spec = np.abs(np.fft.rfft(twisted.astype(np.float64)))
    assert 20 * np.log10(spec[1336] / spec[770]) == pytest.approx(4.0, abs=0.05)
    # survives mu-law at 0 dBm0 per tone without clipping (peak 2 * 22657 would clip int16)
    loud = dtmf_tone("9", 100, level_dbm0=-6.0)
    assert int(np.abs(loud.astype(np.int32)).max()) < 32767
    assert float(level_dbm0(ulaw_decode(ulaw_encode(loud)))) == pytest.approx(-3.0, abs=0.1)


def test_frames_are_phase_continuous() -> None:
    whole = dual_tone(697.0, 1209.0, 1600, start=0)
    frames = np.concatenate([dual_tone(697.0, 1209.0, 160, start=s) for s in range(0, 1600, 160)])
    np.testing.assert_array_equal(frames, whole)


def test_channels_at_once() -> None:
    lows = np.array([697.0, 770.0, 852.0])
    highs = np.array([1209.0, 1336.0, 1477.0])
    starts = np.array([0, 160, 8000])
    block = dual_tone(lows, highs, 160, start=starts, level_dbm0=np.array([-10.0, -20.0, -30.0]))
    assert block.shape == (3, 160)
    for ch in range(3):
        one = dual_tone(lows[ch], highs[ch], 160, start=int(starts[ch]), level_dbm0=[-10.0, -20.0, -30.0][ch])
        np.testing.assert_array_equal(block[ch], one)


def test_cadence_on_off_and_continuity() -> None:
    low, high, cadence = RINGBACK_US
    six_seconds = cadenced_tone(low, high, cadence, 48000)
    on = np.abs(six_seconds.astype(np.int32)).reshape(-1, 800).max(axis=1) > 0  # 100 ms blocks
    assert on.tolist() == [True] * 20 + [False] * 40
    frames = np.concatenate([cadenced_tone(low, high, cadence, 160, start=s) for s in range(0, 48000, 160)])
    np.testing.assert_array_equal(frames, six_seconds)
    # during "on", the tone equals the plain dual tone at the same sample index
    np.testing.assert_array_equal(six_seconds[:16000], dual_tone(low, high, 16000, level_dbm0=-19.0))
    many = cadenced_tone(low, high, cadence, 160, start=np.array([0, 16000, 48000]))
    assert [bool(np.any(row)) for row in many] == [True, False, True]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="not a DTMF digit"):
        dtmf_tone("X", 100)
    with pytest.raises(ValueError, match="pairs"):
        cadenced_tone(440.0, 480.0, (100,), 160)
