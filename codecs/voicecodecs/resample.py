"""Rational sample-rate conversion: a polyphase windowed-sinc filter in numpy (no scipy).

The ratio ``to_rate / from_rate`` is reduced to ``up / down`` (22050 -> 8000 is 160 / 441). Conceptually
the input is upsampled by ``up`` (zeros inserted), low-pass filtered below the lower of the two Nyquist
frequencies, and decimated by ``down``; only the outputs that are kept are computed. Output ``k`` sits
at input position ``k * down / up``; the filter is centred there, so the output has no delay.

The filter is a Kaiser-windowed sinc with its -6 dB point at ``ROLLOFF`` times the lower Nyquist
frequency. Each of the ``up`` phases is normalised to a DC gain of exactly one.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from math import ceil, gcd

import numpy as np
from numpy.typing import NDArray

__all__ = ["ROLLOFF", "ZERO_CROSSINGS", "KAISER_BETA", "resample", "resampled_length"]

ROLLOFF = 0.88
"""Cut-off (-6 dB) as a fraction of the lower Nyquist frequency."""
ZERO_CROSSINGS = 24
"""Zero crossings of the sinc kept on each side of the centre."""
KAISER_BETA = 7.0
"""Kaiser window shape: about 70 dB of stop-band attenuation."""

_CHUNK_ELEMENTS = 1 << 20  # bounds the (outputs, taps) gather matrix to a few MB


def resampled_length(n: int, from_rate: int, to_rate: int) -> int:
    """The number of output samples for ``n`` input samples: ``round(n * to_rate / from_rate)``.

    Computed exactly (Python's round, halves to even) so no float error creeps into long inputs.
    """
    up, down = _ratio(from_rate, to_rate)
    return round(Fraction(n * up, down))


def _ratio(from_rate: int, to_rate: int) -> tuple[int, int]:
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    g = gcd(from_rate, to_rate)
    return to_rate // g, from_rate // g


@lru_cache(maxsize=32)
def _phase_table(up: int, down: int) -> tuple[NDArray[np.float64], int]:
    """Filter taps per phase, shape ``(up, taps)``, and the index offset of tap 0.

    Row ``r`` holds the weights for an output whose position falls ``r / up`` of an input sample past
    input ``n0``; tap ``j`` multiplies input ``n0 + j - offset``.
    """
    fc = 0.5 * ROLLOFF / max(up, down)  # cycles per upsampled sample
    half = ZERO_CROSSINGS / (2.0 * fc)  # half length in upsampled samples
    offset = ceil(half / up)
    taps = 2 * offset + 2
    r = np.arange(up, dtype=np.float64)[:, None]
    j = np.arange(taps, dtype=np.float64)[None, :]
    t = r - (j - offset) * up  # distance from the output position, in upsampled samples
    inside = np.abs(t) <= half
    window = np.zeros_like(t)
    window[inside] = np.i0(KAISER_BETA * np.sqrt(1.0 - (t[inside] / half) ** 2)) / np.i0(KAISER_BETA)
    table = np.sinc(2.0 * fc * t) * window
    table /= table.sum(axis=1, keepdims=True)
    table.setflags(write=False)
    return table, offset


def resample(x: NDArray[np.int16] | NDArray[np.floating], from_rate: int, to_rate: int) -> NDArray[np.int16]:
    """Convert ``x`` from ``from_rate`` to ``to_rate`` along its last axis, returning int16.

    ``x`` is int16 samples, or floats at full scale +/-1.0 (as PyAV and most audio libraries give
    them). A ``(channels, samples)`` batch is converted row by row. The result has
    ``resampled_length(n, from_rate, to_rate)`` samples per row, rounded and clipped to int16.
    """
    up, down = _ratio(from_rate, to_rate)
    if np.issubdtype(x.dtype, np.integer):
        if x.dtype != np.int16:
            raise TypeError(f"integer samples must be int16, got {x.dtype}")
        samples = x.astype(np.float64)
    elif np.issubdtype(x.dtype, np.floating):
        samples = x.astype(np.float64) * 32768.0
    else:
        raise TypeError(f"cannot resample samples of type {x.dtype}")
    n = samples.shape[-1]
    length = resampled_length(n, from_rate, to_rate)
    if up == down:
        return _to_int16(samples)
    table, offset = _phase_table(up, down)
    taps = table.shape[1]
    pad = offset + 2
    widths = [(0, 0)] * (samples.ndim - 1) + [(pad, pad)]
    padded = np.pad(samples, widths)
    out = np.empty(samples.shape[:-1] + (length,), dtype=np.float64)
    tap_index = np.arange(taps, dtype=np.int64) - offset + pad
    rows = max(1, int(np.prod(samples.shape[:-1])))
    chunk = max(1, _CHUNK_ELEMENTS // (taps * rows))
    for start in range(0, length, chunk):
        k = np.arange(start, min(start + chunk, length), dtype=np.int64)
        position = k * down
        n0 = position // up
        phase = position - n0 * up
        gathered = padded[..., n0[:, None] + tap_index[None, :]]  # (..., outputs, taps)
        out[..., start : start + k.size] = np.einsum("...kt,kt->...k", gathered, table[phase])
    return _to_int16(out)


def _to_int16(samples: NDArray[np.float64]) -> NDArray[np.int16]:
    return np.clip(np.rint(samples), -32768, 32767).astype(np.int16)
