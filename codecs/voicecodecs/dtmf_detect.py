"""In-band DTMF detection for many channels at once, to ITU-T Q.24 limits.

Analysis: 256-sample windows (32 ms at 8 kHz) hopped by 80 samples (10 ms), so a 20 ms frame yields
two windows per channel. The windows of every channel are stacked into one ``(2 * channels, 256)``
matrix and multiplied by a precomputed ``(256, 112)`` cos/sin basis: for each of the eight Q.23
frequencies a single-bin DFT (what Goertzel computes) at seven points, the nominal frequency times
``1 + k * 1.5 %`` for ``k = -3..3``. The strongest point of each group names the tone and estimates
its deviation; only the three central points (within +/-1.5 %) are accepted, so the decision boundary
is at about +/-2.25 %: tones within 1.5 % operate, tones beyond 3.5 % do not (Q.24).

A window *hits* a digit when, with ``P`` the power of the strongest point of each group:

- each tone is at least ``MIN_LEVEL_DBM0`` (Q.24 operates from -25 dBm0; 5 dB margin below),
- the twist (high minus low, dB) lies in ``[MIN_TWIST_DB, MAX_TWIST_DB]`` (Q.24: +4 / -8 dB, with
  2.5 dB margin for the estimate's scalloping between analysis points),
- the two tones hold at least ``MIN_PURITY`` of the window's power (speech, noise, single tones and a
  window only partly filled by a tone all fail this).

Timing (per channel, over hops): a digit starts after ``ON_HOPS`` consecutive hits of the same digit
and ends after ``OFF_HOPS`` consecutive hops without it. A window is only hit when the tone fills
most of it, so tones of 20 ms never reach two hits while tones of 40 ms always do, and a 40 ms pause
gives at least five empty hops while a 10 ms interruption gives at most three.

Levels use the G.711 reference of :mod:`voicecodecs.tones` (0 dBm0 = sine of RMS 16020.7).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from voicecodecs.tones import DBM0_RMS, DTMF_FREQUENCIES

__all__ = ["HOP", "RATE", "WINDOW", "DtmfDetector", "analyse_windows"]

RATE = 8000
WINDOW = 256
HOP = 80
ON_HOPS = 2
OFF_HOPS = 4
MIN_LEVEL_DBM0 = -30.0
MIN_TWIST_DB = -10.5
MAX_TWIST_DB = 6.5
MIN_PURITY = 0.7

_LOW = np.array([697.0, 770.0, 852.0, 941.0])
_HIGH = np.array([1209.0, 1336.0, 1477.0, 1633.0])
_STEP = 0.015
_OFFSETS = np.arange(-3, 4)  # analysis points per tone: f * (1 + k * 1.5 %)
_ACCEPT = np.abs(_OFFSETS) <= 1
_POINTS = _OFFSETS.size
# Digit of (low index, high index), as a 4x4 table in row/column order.
_KEYPAD = np.array([["1", "2", "3", "A"], ["4", "5", "6", "B"], ["7", "8", "9", "C"], ["*", "0", "#", "D"]])
assert all(DTMF_FREQUENCIES[_KEYPAD[i, j]] == (_LOW[i], _HIGH[j]) for i in range(4) for j in range(4))


def _basis() -> NDArray[np.float32]:
    freqs = np.concatenate([_LOW, _HIGH])[:, None] * (1.0 + _STEP * _OFFSETS[None, :])  # (8, 7)
    omega = 2.0 * np.pi * freqs.reshape(-1) / RATE
    n = np.arange(WINDOW, dtype=np.float64)[:, None]
    return np.concatenate([np.cos(n * omega), np.sin(n * omega)], axis=1).astype(np.float32)


_BASIS = _basis()  # (WINDOW, 2 * 8 * 7)
# A full-window sine of RMS r gives |X|^2 = (r * WINDOW / sqrt(2))^2: scale |X|^2 to power in dBm0 units.
_POWER_SCALE = 2.0 / (WINDOW**2 * DBM0_RMS**2)
_MIN_LEVEL = 10.0 ** (MIN_LEVEL_DBM0 / 10.0)
_MIN_TWIST = 10.0 ** (MIN_TWIST_DB / 10.0)
_MAX_TWIST = 10.0 ** (MAX_TWIST_DB / 10.0)


def analyse_windows(windows: NDArray[np.float32]) -> NDArray[np.int8]:
    """Digit index (0-15 into the keypad, row-major) hit by each ``(rows, WINDOW)`` window, or -1.

    A window's power at any one frequency is at most twice its mean square (Cauchy-Schwarz, with this
    scaling), so windows below ``MIN_LEVEL_DBM0 - 3 dB`` in total cannot hit: they skip the matrix product
    (silence, pauses and listeners cost one mean of squares)."""
    total_all = np.mean(np.square(windows, dtype=np.float32), axis=1) / DBM0_RMS**2
    loud = np.flatnonzero(total_all >= _MIN_LEVEL / 2)
    if loud.size < total_all.size:
        out = np.full(total_all.size, -1, np.int8)
        if loud.size:
            out[loud] = _analyse(windows[loud], total_all[loud])
        return out
    return _analyse(windows, total_all)


def _analyse(windows: NDArray[np.float32], total: NDArray[np.float32]) -> NDArray[np.int8]:
    spectrum = windows @ _BASIS  # the whole batch in one product
    half = spectrum.shape[1] // 2
    power = (np.square(spectrum[:, :half]) + np.square(spectrum[:, half:])) * _POWER_SCALE
    power = power.reshape(-1, 2, 4 * _POINTS)  # (rows, group, tone * point)
    best = np.argmax(power, axis=2)  # (rows, 2)
    peak = np.take_along_axis(power, best[:, :, None], axis=2)[:, :, 0]
    tone = best // _POINTS
    centred = _ACCEPT[best % _POINTS].all(axis=1)
    low, high = peak[:, 0], peak[:, 1]
    ok = (
        centred
        & (low >= _MIN_LEVEL)
        & (high >= _MIN_LEVEL)
        & (high >= low * _MIN_TWIST)
        & (high <= low * _MAX_TWIST)
        & (low + high >= MIN_PURITY * total)
    )
    return np.where(ok, tone[:, 0] * 4 + tone[:, 1], -1).astype(np.int8)


class DtmfDetector:
    """Streaming detector for ``channels`` 8 kHz channels fed frames of a multiple of 80 samples."""

    def __init__(self, channels: int) -> None:
        if channels < 1:
            raise ValueError("channels must be at least 1")
        self.channels = channels
        self._history = np.zeros((channels, WINDOW - HOP), np.float32)
        self._candidate = np.full(channels, -1, np.int8)  # digit being confirmed
        self._run = np.zeros(channels, np.int64)  # consecutive hits of the candidate
        self._active = np.full(channels, -1, np.int8)  # digit reported and still sounding
        self._gap = np.zeros(channels, np.int64)  # consecutive hops without the active digit

    def reset(self, channel: int) -> None:
        """Forget a channel's past (a new call in that slot)."""
        self._history[channel] = 0
        self._candidate[channel] = -1
        self._run[channel] = 0
        self._active[channel] = -1
        self._gap[channel] = 0

    def process(self, frames: NDArray[np.int16]) -> list[str]:
        """Feed one ``(channels, n)`` int16 block; return, per channel, the digits that started in it."""
        if frames.ndim != 2 or frames.shape[0] != self.channels or frames.shape[1] % HOP:
            raise ValueError(f"expected ({self.channels}, k * {HOP}) samples, got {frames.shape}")
        c, n = frames.shape
        hops = n // HOP
        signal = np.concatenate([self._history, frames.astype(np.float32)], axis=1)
        self._history = signal[:, -(WINDOW - HOP) :].copy()
        windows = np.lib.stride_tricks.sliding_window_view(signal, WINDOW, axis=1)[:, ::HOP][:, :hops]
        hits = analyse_windows(windows.reshape(c * hops, WINDOW)).reshape(c, hops)
        started = [""] * c  # no per-channel Python work unless a digit starts
        for h in range(hops):  # a loop over the hops of the block (2 per 20 ms), channels vectorised
            hit = hits[:, h]
            same = hit == self._candidate
            self._run = np.where(same, self._run + 1, (hit >= 0).astype(np.int64))
            self._candidate = hit
            # the active digit ends after OFF_HOPS hops without it
            self._gap = np.where(hit == self._active, 0, self._gap + 1)
            ended = (self._active >= 0) & (self._gap >= OFF_HOPS)
            self._active = np.where(ended, -1, self._active).astype(np.int8)
            new = (hit >= 0) & (self._run >= ON_HOPS) & (hit != self._active)
            if new.any():
                for ch in np.flatnonzero(new):
                    started[ch] += str(_KEYPAD.flat[hit[ch]])
                self._active = np.where(new, hit, self._active).astype(np.int8)
                self._gap = np.where(new, 0, self._gap)
        return started
