"""Tone generation: DTMF (ITU-T Q.23), dual tones for ringback and beeps, with cadences.

Every generator computes the phase from the absolute sample index (``start + arange(n)``), so a tone
cut into 20 ms frames is continuous across frame boundaries and any frame can be made on its own.
Frequencies, levels and start indices broadcast: pass ``(channels,)`` arrays to make one frame for
every channel in one call, each with its own tone and position.

Level reference (ITU-T G.711): the mu-law coder's theoretical maximum load, a sine whose peaks reach
the top decision value (8159 on the 14-bit scale, 32636 on the 16-bit scale used here), is +3.17 dBm0.
So 0 dBm0 is a sine of RMS 32636 * 10**(-3.17 / 20) / sqrt(2) = 16020.7 (peak 22656.6). The G.711
digital milliwatt (mu-law octets 1E 0B 0B 1E 9E 8B 8B 9E, defined as 0 dBm0) decodes to RMS 16016.8,
0.002 dB away. (A-law's maximum is +3.14 dBm0 at 32768; its 0 dBm0 is 0.06 dB higher, ignored here.)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "DBM0_RMS",
    "DTMF_FREQUENCIES",
    "RINGBACK_UK",
    "RINGBACK_US",
    "cadenced_tone",
    "dbm0_to_peak",
    "dtmf_tone",
    "dual_tone",
    "level_dbm0",
]

DBM0_RMS = 32636.0 * 10.0 ** (-3.17 / 20.0) / np.sqrt(2.0)
"""RMS of a 0 dBm0 sine on the int16 scale (see the module docstring)."""

DTMF_FREQUENCIES: dict[str, tuple[float, float]] = {
    digit: (low, high)
    for row, low in zip(("123A", "456B", "789C", "*0#D"), (697.0, 770.0, 852.0, 941.0), strict=True)
    for digit, high in zip(row, (1209.0, 1336.0, 1477.0, 1633.0), strict=True)
}
"""Q.23 pairs: digit -> (low group Hz, high group Hz)."""

# (low Hz, high Hz, on ms, off ms...) cadences of common ringback tones.
RINGBACK_US = (440.0, 480.0, (2000, 4000))
RINGBACK_UK = (400.0, 450.0, (400, 200, 400, 2000))


def dbm0_to_peak(level: ArrayLike) -> NDArray[np.float64]:
    """Peak amplitude (int16 scale) of a sine at ``level`` dBm0."""
    return np.asarray(DBM0_RMS * np.sqrt(2.0) * 10.0 ** (np.asarray(level, np.float64) / 20.0))


def level_dbm0(x: NDArray[np.int16] | NDArray[np.floating]) -> NDArray[np.float64]:
    """Power level in dBm0 of each row of ``x`` (along the last axis); -inf for silence."""
    power = np.mean(np.square(np.asarray(x, np.float64)), axis=-1)
    with np.errstate(divide="ignore"):
        return np.asarray(10.0 * np.log10(power / DBM0_RMS**2))


def _to_int16(x: NDArray[np.float64]) -> NDArray[np.int16]:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def dual_tone(
    f_low: ArrayLike,
    f_high: ArrayLike,
    n: int,
    start: ArrayLike = 0,
    rate: int = 8000,
    level_dbm0: ArrayLike = -10.0,
    twist_db: ArrayLike = 0.0,
) -> NDArray[np.int16]:
    """``n`` samples of two summed sines, from absolute sample index ``start``.

    ``level_dbm0`` is the level of the low tone; the high tone is ``twist_db`` louder. Scalars give
    ``(n,)``; ``(channels,)`` arrays for any argument give ``(channels, n)``. A frequency of 0 turns
    that component off (for single tones and beeps).
    """
    f1 = np.asarray(f_low, np.float64)[..., None]
    f2 = np.asarray(f_high, np.float64)[..., None]
    t = (np.asarray(start, np.float64)[..., None] + np.arange(n, dtype=np.float64)) / rate
    a1 = dbm0_to_peak(level_dbm0)[..., None]
    a2 = a1 * 10.0 ** (np.asarray(twist_db, np.float64)[..., None] / 20.0)
    two_pi_t = 2.0 * np.pi * t
    x = np.where(f1 > 0, a1, 0.0) * np.sin(two_pi_t * f1) + np.where(f2 > 0, a2, 0.0) * np.sin(two_pi_t * f2)
    return _to_int16(x)


def dtmf_tone(
    digit: str, duration_ms: float, rate: int = 8000, level_dbm0: float = -10.0, twist_db: float = 0.0
) -> NDArray[np.int16]:
    """The Q.23 tone pair of ``digit`` (0-9, *, #, A-D) for ``duration_ms``; each tone at ``level_dbm0``."""
    try:
        low, high = DTMF_FREQUENCIES[digit.upper()]
    except KeyError:
        raise ValueError(f"not a DTMF digit: {digit!r}") from None
    n = int(round(duration_ms * rate / 1000.0))
    return dual_tone(low, high, n, 0, rate, level_dbm0, twist_db)


def cadenced_tone(
    f_low: float,
    f_high: float,
    cadence_ms: tuple[int, ...],
    n: int,
    start: ArrayLike = 0,
    rate: int = 8000,
    level_dbm0: float = -19.0,
) -> NDArray[np.int16]:
    """A dual tone switched on and off by ``cadence_ms`` (on, off, on, off...), from sample ``start``.

    Position in the cadence and phase both come from the absolute sample index, so consecutive frames
    join up, and ``(channels,)`` start indices serve many calls at once (ringback for every ringing leg).
    """
    if not cadence_ms or len(cadence_ms) % 2:
        raise ValueError("a cadence is pairs of (on, off) durations")
    edges = np.cumsum(np.asarray(cadence_ms, np.int64) * rate // 1000)
    period = int(edges[-1])
    index = np.asarray(start, np.int64)[..., None] + np.arange(n, dtype=np.int64)
    segment = np.searchsorted(edges, index % period, side="right")
    on = segment % 2 == 0
    return np.where(on, dual_tone(f_low, f_high, n, start, rate, level_dbm0), 0).astype(np.int16)
