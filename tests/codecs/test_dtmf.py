"""DTMF generation and RFC 4733 payloads (in-band detection: test_dtmf_detect.py)."""

from __future__ import annotations

import numpy as np
import pytest

from voicecodecs.dtmf import (
    TelephoneEvent,
    digits_to_audio,
    dtmf_tone,
    event_code,
    pack_event,
    parse_event,
)


def test_tone_contains_its_two_frequencies() -> None:
    tone = dtmf_tone("5", 8000).astype(np.float64)  # 770 Hz + 1336 Hz, one second
    spectrum = np.abs(np.fft.rfft(tone))
    peaks = sorted(int(i) for i in np.argsort(spectrum)[-2:])
    assert peaks == [770, 1336]
    assert int(np.abs(tone).max()) <= 14000


def test_tone_phase_is_continuous_across_frames() -> None:
    whole = dtmf_tone("9", 320)
    np.testing.assert_array_equal(
        np.concatenate([dtmf_tone("9", 160), dtmf_tone("9", 160, start=160)]), whole
    )


def test_digits_to_audio_lengths_and_waits() -> None:
    assert digits_to_audio("1w2W", tone_ms=100, gap_ms=50).size == 2 * (800 + 400) + 4000 + 8000
    assert digits_to_audio("").size == 0
    with pytest.raises(ValueError, match="not a DTMF digit"):
        digits_to_audio("1x")


def test_rfc4733_payload_round_trip() -> None:
    payload = pack_event(event_code("#"), end=True, volume=10, duration=1280)
    assert payload == bytes([11, 0x80 | 10, 0x05, 0x00])
    assert parse_event(payload) == TelephoneEvent(11, True, 10, 1280)
    assert parse_event(payload).digit == "#"
    assert parse_event(bytes([16, 0x05, 0, 160])).digit is None  # flash
    assert parse_event(bytes([5, 0x3F, 0xFF, 0xFF, 1, 2, 3, 4])) == TelephoneEvent(5, False, 63, 65535)


def test_rfc4733_errors() -> None:
    with pytest.raises(ValueError, match="too short"):
        parse_event(b"\x01\x02\x03")
    with pytest.raises(ValueError, match="out of range"):
        pack_event(1, end=False, volume=64, duration=0)
    assert [event_code(d) for d in "09*#aD"] == [0, 9, 10, 11, 12, 15]
    with pytest.raises(ValueError):
        event_code("E")
