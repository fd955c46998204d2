"""DTMF generation, batch detection, debouncing and RFC 4733 payloads."""

from __future__ import annotations

import numpy as np
import pytest

from voicecodecs.dtmf import (
    DIGITS,
    DtmfDetector,
    TelephoneEvent,
    detect_frames,
    digits_to_audio,
    dtmf_tone,
    event_code,
    pack_event,
    parse_event,
)
from voicecodecs.g711 import ulaw_decode, ulaw_encode


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


def test_every_digit_is_detected_in_one_batch_through_mu_law() -> None:
    frames = np.stack([dtmf_tone(d, 160, start=13) for d in DIGITS])
    decoded = ulaw_decode(ulaw_encode(frames))
    assert [DIGITS[i] for i in detect_frames(decoded)] == list(DIGITS)


@pytest.mark.parametrize("offset", [0.985, 1.015])
def test_frequency_tolerance_of_one_and_a_half_percent(offset: float) -> None:
    t = np.arange(160) / 8000
    tone = 7000 * (np.sin(2 * np.pi * 852 * offset * t) + np.sin(2 * np.pi * 1477 * offset * t))
    assert detect_frames(tone[None, :].astype(np.int16)).tolist() == [9]


def test_non_dtmf_signals_are_rejected() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(160) / 8000
    frames = np.stack(
        [
            np.zeros(160),
            rng.normal(0, 3000, 160),  # noise
            8000 * np.sin(2 * np.pi * 1000 * t),  # dial-tone-like single tone
            7000 * np.sin(2 * np.pi * 697 * t),  # one DTMF tone alone
            dtmf_tone("1", 160) * 0.005,  # far too quiet
            dtmf_tone("1", 160) + 12000 * np.sin(2 * np.pi * 2400 * t),  # a loud third tone dominates
            7000 * np.sin(2 * np.pi * 697 * t) + 7000 * np.sin(2 * np.pi * 770 * t),  # two low tones
            7000 * np.sin(2 * np.pi * 697 * t) + 500 * np.sin(2 * np.pi * 1209 * t),  # twist far too large
        ]
    ).astype(np.int16)
    assert detect_frames(frames).tolist() == [-1] * 8


def test_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="channels, samples"):
        detect_frames(np.zeros(160, dtype=np.int16))


def test_detector_reports_each_digit_once_after_two_frames() -> None:
    audio = digits_to_audio("12", tone_ms=100, gap_ms=60)  # 800 + 480 samples per digit
    audio = np.concatenate([audio, np.zeros(160, dtype=np.int16)])
    frames = audio[: audio.size // 160 * 160].reshape(-1, 160)
    detector = DtmfDetector(channels=2)
    reported: list[tuple[int, int]] = []
    for tick, frame in enumerate(frames):
        batch = np.stack([frame, np.zeros(160, dtype=np.int16)])  # channel 1 stays silent
        result = detector.process(batch)
        for channel in np.nonzero(result >= 0)[0]:
            reported.append((tick, int(channel)))
            assert DIGITS[result[channel]] == "12"[len(reported) - 1]
    assert reported == [(1, 0), (9, 0)]


def test_detector_reports_repeated_digit_after_a_gap_and_reset_forgets() -> None:
    tone = dtmf_tone("7", 160)[None, :]
    silence = np.zeros((1, 160), dtype=np.int16)
    detector = DtmfDetector(channels=1)
    results = [int(detector.process(f)[0]) for f in (tone, tone, tone, silence, tone, tone)]
    assert results == [-1, 7, -1, -1, -1, 7]
    detector.process(tone)
    detector.reset(0)
    assert int(detector.process(tone)[0]) == -1


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
