"""DTMF: tone generation and RFC 4733 event payloads. In-band detection (to ITU-T Q.24, over many
channels at once) is :mod:`voicecodecs.dtmf_detect`."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DIGITS",
    "HIGH_FREQUENCIES",
    "LOW_FREQUENCIES",
    "TelephoneEvent",
    "digits_to_audio",
    "dtmf_tone",
    "event_code",
    "pack_event",
    "parse_event",
]

LOW_FREQUENCIES = (697.0, 770.0, 852.0, 941.0)
HIGH_FREQUENCIES = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD = ("123A", "456B", "789C", "*0#D")
DIGITS = "0123456789*#ABCD"
"""RFC 4733 event codes 0 to 15, in order: the digit for event ``e`` is ``DIGITS[e]``."""

DEFAULT_AMPLITUDE = 7000.0
"""Peak amplitude of each of the two tones (about -10 dBm0 each for int16 G.711 audio)."""


def _frequencies(digit: str) -> tuple[float, float]:
    for row, keys in enumerate(_KEYPAD):
        column = keys.find(digit.upper())
        if column >= 0:
            return LOW_FREQUENCIES[row], HIGH_FREQUENCIES[column]
    raise ValueError(f"not a DTMF digit: {digit!r}")


def dtmf_tone(
    digit: str, n: int, rate: int = 8000, amplitude: float = DEFAULT_AMPLITUDE, start: int = 0
) -> NDArray[np.int16]:
    """``n`` samples of ``digit``'s tone pair; ``start`` is the sample index, for phase continuity."""
    low, high = _frequencies(digit)
    t = (start + np.arange(n, dtype=np.float64)) / rate
    tone = amplitude * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t))
    return np.rint(tone).astype(np.int16)


def digits_to_audio(
    digits: str,
    rate: int = 8000,
    tone_ms: int = 100,
    gap_ms: int = 100,
    amplitude: float = DEFAULT_AMPLITUDE,
) -> NDArray[np.int16]:
    """Audio for a digit string as Twilio's ``<Play digits>`` reads it: ``w`` waits 0.5 s, ``W`` 1 s."""
    pieces: list[NDArray[np.int16]] = []
    tone_n, gap_n = rate * tone_ms // 1000, rate * gap_ms // 1000
    for digit in digits:
        if digit in "wW":
            pieces.append(np.zeros(rate // 2 if digit == "w" else rate, dtype=np.int16))
        else:
            pieces.append(dtmf_tone(digit, tone_n, rate, amplitude))
            pieces.append(np.zeros(gap_n, dtype=np.int16))
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """An RFC 4733 telephone-event payload."""

    event: int
    end: bool
    volume: int
    duration: int

    @property
    def digit(self) -> str | None:
        return DIGITS[self.event] if self.event < len(DIGITS) else None


_EVENT = struct.Struct("!BBH")


def event_code(digit: str) -> int:
    """The RFC 4733 event code of a DTMF digit (``0``-``9``, ``*`` 10, ``#`` 11, ``A``-``D`` 12-15)."""
    code = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if code < 0:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return code


def pack_event(event: int, end: bool, volume: int, duration: int) -> bytes:
    """The 4-byte payload: event, E bit, volume (0-63, in -dBm0), duration in timestamp units."""
    if not 0 <= event <= 255 or not 0 <= volume <= 63 or not 0 <= duration <= 0xFFFF:
        raise ValueError("telephone-event field out of range")
    return _EVENT.pack(event, (0x80 if end else 0) | volume, duration)


def parse_event(payload: bytes) -> TelephoneEvent:
    """Parse a telephone-event payload (the first 4 bytes; RFC 4733 allows redundant blocks after)."""
    if len(payload) < 4:
        raise ValueError(f"telephone-event payload too short: {len(payload)} bytes")
    event, flags, duration = _EVENT.unpack_from(payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)
