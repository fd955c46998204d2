"""In-band DTMF and silence for ``<Play digits>`` and ``<Pause>``: 8 kHz mono int16, built with numpy."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from switch.twiml.session import SAMPLE_RATE

__all__ = ["DIGIT_MS", "GAP_MS", "WAIT_MS", "VALID_DIGITS", "dtmf", "silence"]

DIGIT_MS = 100
GAP_MS = 100
WAIT_MS = 500
"""Twilio: each ``w`` in ``digits`` waits half a second."""

_LOW = {"1": 697, "2": 697, "3": 697, "A": 697, "4": 770, "5": 770, "6": 770, "B": 770}
_LOW |= {"7": 852, "8": 852, "9": 852, "C": 852, "*": 941, "0": 941, "#": 941, "D": 941}
_HIGH = {"1": 1209, "4": 1209, "7": 1209, "*": 1209, "2": 1336, "5": 1336, "8": 1336, "0": 1336}
_HIGH |= {"3": 1477, "6": 1477, "9": 1477, "#": 1477, "A": 1633, "B": 1633, "C": 1633, "D": 1633}
VALID_DIGITS = frozenset(_LOW) | {"w"}
_AMPLITUDE = 0.25 * 32767  # each of the two tones at about -12 dBFS


@lru_cache(maxsize=32)
def _tone(digit: str) -> NDArray[np.int16]:
    n = SAMPLE_RATE * DIGIT_MS // 1000
    t = np.arange(n) / SAMPLE_RATE
    wave = np.sin(2 * np.pi * _LOW[digit] * t) + np.sin(2 * np.pi * _HIGH[digit] * t)
    out = np.zeros(n + SAMPLE_RATE * GAP_MS // 1000, dtype=np.int16)
    out[:n] = np.round(wave * _AMPLITUDE).astype(np.int16)
    out.flags.writeable = False
    return out


def dtmf(digits: str) -> NDArray[np.int16]:
    """Tones for ``digits`` (0-9, *, #, A-D; ``w`` = 0.5 s wait); unknown characters are skipped."""
    wait = silence(WAIT_MS)
    parts = [wait if d == "w" else _tone(d) for d in digits.upper().replace("W", "w") if d in VALID_DIGITS]
    if not parts:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate(parts)


@lru_cache(maxsize=8)
def silence(ms: int) -> NDArray[np.int16]:
    """A shared, read-only block of ``ms`` milliseconds of silence."""
    out = np.zeros(SAMPLE_RATE * ms // 1000, dtype=np.int16)
    out.flags.writeable = False
    return out
