"""DTMF: tone generation, batch detection over many channels, and RFC 4733 event payloads.

Detection evaluates the eight DTMF frequencies of every channel's frame at once as one matrix
product (a single-bin DFT per frequency, which is what Goertzel computes), then applies the usual
checks: enough level, the two tones carry most of the energy, each tone clearly beats its group
neighbours, and the twist is within limits. ``DtmfDetector`` adds per-channel debouncing so a
digit is reported once, when it has been present for ``min_frames`` consecutive frames.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DIGITS",
    "HIGH_FREQUENCIES",
    "LOW_FREQUENCIES",
    "DtmfDetector",
    "TelephoneEvent",
    "detect_frames",
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
_DIGIT_INDEX = np.array([DIGITS.index(_KEYPAD[r][c]) for r in range(4) for c in range(4)], dtype=np.int8)

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


_BASIS_CACHE: dict[tuple[int, int], tuple[NDArray[np.float32], NDArray[np.float32]]] = {}


def _basis(n: int, rate: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    key = (n, rate)
    if key not in _BASIS_CACHE:
        freqs = np.array(LOW_FREQUENCIES + HIGH_FREQUENCIES)
        phase = 2 * np.pi * np.outer(np.arange(n), freqs) / rate
        _BASIS_CACHE[key] = (np.cos(phase).astype(np.float32), np.sin(phase).astype(np.float32))
    return _BASIS_CACHE[key]


MIN_TONE_RMS = 150.0
"""Each tone must have at least this RMS (about -38 dBm0 for int16 G.711 audio)."""
MIN_TONE_SHARE = 0.55
"""The two tones must carry this share of the frame's energy."""
MAX_TWIST_DB = 8.0
"""Largest allowed level difference between the two tones."""
MIN_NEIGHBOUR_DB = 6.0
"""Each tone must beat the other frequencies of its group by this much."""


def detect_frames(frames: NDArray[np.int16] | NDArray[np.floating], rate: int = 8000) -> NDArray[np.int8]:
    """The DTMF event code (0-15) present in each row of ``frames`` (channels, samples), or -1.

    No state: each frame is judged alone. Frames of 20 ms or more (160 samples at 8 kHz) work well.
    """
    x = np.asarray(frames, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"frames must be (channels, samples), got shape {x.shape}")
    n = x.shape[1]
    cos, sin = _basis(n, rate)
    # tone power as the mean-square it contributes: |X|^2 * 2 / n^2 equals A^2 / 2 for amplitude A
    power = ((x @ cos) ** 2 + (x @ sin) ** 2) * (2.0 / (n * n))
    total = np.einsum("ij,ij->i", x, x) / n
    low, high = power[:, :4], power[:, 4:]
    row, col = np.argmax(low, axis=1), np.argmax(high, axis=1)
    index = np.arange(x.shape[0])
    p_low, p_high = low[index, row], high[index, col]
    neighbour = 10.0 ** (-MIN_NEIGHBOUR_DB / 10.0)
    low_rest = np.where(np.arange(4) == row[:, None], 0.0, low).max(axis=1)
    high_rest = np.where(np.arange(4) == col[:, None], 0.0, high).max(axis=1)
    twist = 10.0 ** (MAX_TWIST_DB / 10.0)
    ok = (
        (p_low >= MIN_TONE_RMS**2)
        & (p_high >= MIN_TONE_RMS**2)
        & (p_low + p_high >= MIN_TONE_SHARE * total)
        & (low_rest <= neighbour * p_low)
        & (high_rest <= neighbour * p_high)
        & (p_low <= twist * p_high)
        & (p_high <= twist * p_low)
    )
    return np.where(ok, _DIGIT_INDEX[row * 4 + col], -1).astype(np.int8)


class DtmfDetector:
    """Debounced detection for ``channels`` channels, fed one frame per channel per tick.

    ``process`` returns, per channel, the event code of a digit that has just been confirmed
    (present in ``min_frames`` consecutive frames), else -1. A digit is reported again only after
    a frame without it.
    """

    def __init__(self, channels: int, rate: int = 8000, min_frames: int = 2) -> None:
        self.rate = rate
        self.min_frames = min_frames
        self._current = np.full(channels, -1, dtype=np.int8)
        self._count = np.zeros(channels, dtype=np.int32)

    def reset(self, channel: int) -> None:
        """Forget the state of ``channel`` (when its slot is reused for a new call)."""
        self._current[channel] = -1
        self._count[channel] = 0

    def process(self, frames: NDArray[np.int16]) -> NDArray[np.int8]:
        detected = detect_frames(frames, self.rate)
        same = (detected == self._current) & (detected >= 0)
        self._count = np.where(same, self._count + 1, np.where(detected >= 0, 1, 0)).astype(np.int32)
        self._current = detected
        return np.where(self._count == self.min_frames, detected, -1).astype(np.int8)


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
