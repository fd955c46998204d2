"""Packet-loss concealment in the manner of ITU-T G.711 Appendix I, vectorised over channels.

For each channel the concealer keeps the last 48.75 ms (390 samples at 8 kHz) of what it played.
When a frame is lost:

1. (first lost frame only) the pitch period ``P`` is estimated by normalised cross-correlation of the
   last 20 ms against the history ``P`` samples earlier, for ``P`` from 5 to 15 ms (40 to 120
   samples), every lost channel at once;
2. the last pitch period is taken as a template whose final quarter period is overlap-added with the
   quarter period one period earlier, so the template repeats without a click;
3. the template is repeated, phase continuing from frame to frame, unattenuated for the first 10 ms
   and then faded linearly by 20 % per 10 ms, silent from 60 ms on.

On the first good frame after a loss the continued synthetic signal is overlap-added into the real
one over 4 ms, plus 4 ms for each further 10 ms of loss, at most 10 ms.

Simplifications against Appendix I: no 3.75 ms output delay (so no overlap-add at the start of the
loss: the template starts where the last period started), a single repeated period instead of
widening to two and three periods after 10 and 20 ms, and an exhaustive rather than two-stage pitch
search. The rate is 8 kHz; frames are any length.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["HISTORY", "MAX_PITCH", "MIN_PITCH", "Concealer", "estimate_pitch"]

HISTORY = 390  # 48.75 ms
MIN_PITCH = 40  # 5 ms, 200 Hz
MAX_PITCH = 120  # 15 ms, 66.7 Hz
CORRELATION = 160  # 20 ms compared against the history one period earlier
_ATTENUATION_START = 80  # samples of loss before fading begins (10 ms)
_ATTENUATION_LENGTH = 400  # fade to silence over the next 50 ms (20 % per 10 ms)
_PITCHES = np.arange(MIN_PITCH, MAX_PITCH + 1)


def estimate_pitch(history: NDArray[np.float32]) -> NDArray[np.int64]:
    """Pitch period in samples (40-120) of each ``(rows, HISTORY)`` history, by normalised correlation."""
    target = history[:, -CORRELATION:]
    # Candidate windows start at HISTORY - CORRELATION - P for every P: one strided view, no copies.
    windows = np.lib.stride_tricks.sliding_window_view(history, CORRELATION, axis=1)
    starts = HISTORY - CORRELATION - _PITCHES
    candidates = windows[:, starts]  # (rows, pitches, CORRELATION)
    corr = np.einsum("rw,rpw->rp", target, candidates)
    energy = np.einsum("rpw,rpw->rp", candidates, candidates)
    score = corr / np.sqrt(np.maximum(energy, 1.0))
    return np.asarray(_PITCHES[np.argmax(score, axis=1)], np.int64)


def _templates(history: NDArray[np.float32], pitch: NDArray[np.int64]) -> NDArray[np.float32]:
    """The last period of each history, its final quarter cross-faded with the quarter before the period."""
    n = np.arange(MAX_PITCH)[None, :]
    p = pitch[:, None]
    quarter = np.maximum(p // 4, 1)
    last = np.take_along_axis(history, np.minimum(HISTORY - p + n, HISTORY - 1), axis=1)
    earlier = np.take_along_axis(history, np.minimum(HISTORY - 2 * p + n, HISTORY - 1), axis=1)
    fade_in = np.clip((n - (p - quarter) + 1) / (quarter + 1), 0.0, 1.0)
    return np.asarray(last * (1.0 - fade_in) + earlier * fade_in, dtype=np.float32)


class Concealer:
    """Per-channel concealment state for ``channels`` 8 kHz streams."""

    def __init__(self, channels: int) -> None:
        if channels < 1:
            raise ValueError("channels must be at least 1")
        self.channels = channels
        self._history = np.zeros((channels, HISTORY), np.float32)
        self._lost = np.zeros(channels, np.int64)  # samples concealed in the current loss
        self._pitch = np.full(channels, MAX_PITCH, np.int64)
        self._template = np.zeros((channels, MAX_PITCH), np.float32)

    def _synthesise(self, rows: NDArray[np.intp], n: int) -> NDArray[np.float32]:
        """The next ``n`` samples of the repeated, attenuated period of ``rows``."""
        position = self._lost[rows, None] + np.arange(n)[None, :]
        phase = position % self._pitch[rows, None]
        gain = 1.0 - np.clip((position - _ATTENUATION_START) / _ATTENUATION_LENGTH, 0.0, 1.0)
        return (np.take_along_axis(self._template[rows], phase, axis=1) * gain).astype(np.float32)

    def process(self, frames: NDArray[np.int16], lost: NDArray[np.bool_]) -> NDArray[np.int16]:
        """Return the frames to play: ``frames`` where received, concealment where ``lost`` is True.

        ``frames`` is ``(channels, n)`` int16 (rows of lost channels are ignored), ``lost`` ``(channels,)``.
        """
        if frames.ndim != 2 or frames.shape[0] != self.channels or lost.shape != (self.channels,):
            raise ValueError(f"expected ({self.channels}, n) frames and ({self.channels},) flags")
        n = frames.shape[1]
        out = frames.astype(np.float32)
        concealing = np.flatnonzero(lost)
        recovering = np.flatnonzero(~lost & (self._lost > 0))
        if concealing.size:
            starting = concealing[self._lost[concealing] == 0]
            if starting.size:
                pitch = estimate_pitch(self._history[starting])
                self._pitch[starting] = pitch
                self._template[starting] = _templates(self._history[starting], pitch)
            out[concealing] = self._synthesise(concealing, n)
            self._lost[concealing] += n
        if recovering.size:
            overlap = np.minimum(32 + 32 * ((self._lost[recovering] - 1) // 80), 80)
            weight = np.clip((np.arange(n)[None, :] + 1) / (overlap[:, None] + 1), 0.0, 1.0)
            synthetic = self._synthesise(recovering, n)
            out[recovering] = synthetic * (1.0 - weight) + out[recovering] * weight
            self._lost[recovering] = 0
        if n >= HISTORY:
            self._history = out[:, -HISTORY:].copy()
        else:
            self._history[:, :-n] = self._history[:, n:]
            self._history[:, -n:] = out
        return np.clip(np.rint(out), -32768, 32767).astype(np.int16)
