"""DTMF and silence blocks for Play digits and Pause."""

from __future__ import annotations

import numpy as np
import pytest

from switch.twiml.tones import DIGIT_MS, GAP_MS, WAIT_MS, dtmf, silence

RATE = 8000
PER_DIGIT = RATE * (DIGIT_MS + GAP_MS) // 1000


def peaks(block: np.ndarray) -> list[int]:
    spectrum = np.abs(np.fft.rfft(block.astype(np.float64), n=RATE))  # 1 Hz bins
    top = np.argsort(spectrum)[::-1]
    found: list[int] = []
    for f in top:
        if all(abs(int(f) - g) > 30 for g in found):
            found.append(int(f))
        if len(found) == 2:
            break
    return sorted(found)


@pytest.mark.parametrize(
    ("digit", "low", "high"),
    [
        ("1", 697, 1209),
        ("5", 770, 1336),
        ("9", 852, 1477),
        ("0", 941, 1336),
        ("#", 941, 1477),
        ("D", 941, 1633),
    ],
)
def test_each_digit_has_its_two_frequencies(digit: str, low: int, high: int) -> None:
    pcm = dtmf(digit)
    assert pcm.dtype == np.int16 and len(pcm) == PER_DIGIT
    tone = pcm[: RATE * DIGIT_MS // 1000]
    assert peaks(tone) == pytest.approx([low, high], abs=10)
    assert not pcm[len(tone) :].any()  # the gap is silent
    assert 0.2 * 32767 < np.abs(tone).max() <= 0.5 * 32767


def test_waits_and_unknown_characters() -> None:
    pcm = dtmf("1w2x")
    assert len(pcm) == 2 * PER_DIGIT + RATE * WAIT_MS // 1000
    assert not pcm[PER_DIGIT : PER_DIGIT + RATE * WAIT_MS // 1000].any()
    assert dtmf("").size == 0 and dtmf("xyz").size == 0


def test_silence_is_shared_and_read_only() -> None:
    one = silence(1000)
    assert len(one) == RATE and not one.any() and silence(1000) is one
    with pytest.raises(ValueError):
        one[0] = 1
