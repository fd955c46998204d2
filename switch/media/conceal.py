"""Packet-loss concealment for the tick, touching only the rows that lost a frame or are recovering.

The algorithm is voicecodecs' G.711 Appendix I concealer (:mod:`voicecodecs.plc`: pitch by normalised
correlation, the last period as a template cross-faded at its end, repeated and faded from 10 ms on, overlap-
added into the first good frame). What differs is the bookkeeping: the history is a ring of the last three
frames per slot written by one row copy per tick, and everything else runs over the few rows that need it,
so a tick without loss costs one copy, whatever the number of channels.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from voicecodecs.plc import HISTORY, MAX_PITCH, estimate_pitch

__all__ = ["RowConcealer"]

FRAME = 160
_DEPTH = 3  # frames of history kept: 480 samples >= HISTORY
_ATTENUATION_START = 80
_ATTENUATION_LENGTH = 400
_N = np.arange(MAX_PITCH)[None, :]
_COLUMN = np.arange(FRAME)[None, :]


class RowConcealer:
    """Concealment state of slots ``0..capacity-1`` (kept packed by the owner through :meth:`move`)."""

    _history: NDArray[np.int16]
    _lost: NDArray[np.int64]
    _pitch: NDArray[np.int64]
    _template: NDArray[np.float32]

    def __init__(self, capacity: int) -> None:
        self.capacity = 0
        self._cursor = 0
        self._allocate(max(capacity, 1))

    def _allocate(self, capacity: int) -> None:
        old = self.capacity
        history = np.zeros((capacity, _DEPTH, FRAME), np.int16)
        lost = np.zeros(capacity, np.int64)
        pitch = np.full(capacity, MAX_PITCH, np.int64)
        template = np.zeros((capacity, MAX_PITCH), np.float32)
        if old:
            history[:old] = self._history
            lost[:old] = self._lost
            pitch[:old] = self._pitch
            template[:old] = self._template
        self._history = history
        self._lost = lost
        self._pitch = pitch
        self._template = template
        self.capacity = capacity

    def ensure(self, capacity: int) -> None:
        if capacity > self.capacity:
            self._allocate(capacity)

    def clear(self, slot: int) -> None:
        self._history[slot] = 0
        self._lost[slot] = 0

    def move(self, source: int, dest: int) -> None:
        self._history[dest] = self._history[source]
        self._lost[dest] = self._lost[source]
        self._pitch[dest] = self._pitch[source]
        self._template[dest] = self._template[source]

    def _linear_history(self, rows: NDArray[np.intp]) -> NDArray[np.float32]:
        """The last HISTORY samples of ``rows``, oldest first."""
        order = [(self._cursor + k) % _DEPTH for k in range(_DEPTH)]
        frames = self._history[rows][:, order].reshape(len(rows), _DEPTH * FRAME)
        return np.asarray(frames[:, -HISTORY:], np.float32)

    def _synthesise(self, rows: NDArray[np.intp]) -> NDArray[np.float32]:
        position = self._lost[rows, None] + _COLUMN
        phase = position % self._pitch[rows, None]
        gain = 1.0 - np.clip((position - _ATTENUATION_START) / _ATTENUATION_LENGTH, 0.0, 1.0)
        return np.asarray(np.take_along_axis(self._template[rows], phase, axis=1) * gain, np.float32)

    def process(
        self,
        heard: NDArray[np.int16],
        lost: NDArray[np.bool_],
        present: NDArray[np.bool_],
    ) -> None:
        """Conceal in place: ``heard`` is ``(n, FRAME)`` decoded audio (missing samples zero), ``lost`` per
        row, ``present`` per sample (read only for the rows listed in ``partial``, the incomplete ones).

        A lost frame keeps the samples that did arrive and takes the synthetic signal elsewhere; the first
        good frame after a loss is cross-faded from the synthetic signal into the real one.
        """
        n = heard.shape[0]
        concealing = np.flatnonzero(lost[:n])
        recovering = np.flatnonzero(~lost[:n] & (self._lost[:n] > 0))
        if concealing.size:
            starting = concealing[self._lost[concealing] == 0]
            if starting.size:
                history = self._linear_history(starting)
                pitch = estimate_pitch(history)
                self._pitch[starting] = pitch
                self._template[starting] = _templates(history, pitch)
            filler = _to_int16(self._synthesise(concealing))
            rows = heard[concealing]
            np.copyto(rows, filler, where=~present[concealing])
            heard[concealing] = rows
            self._lost[concealing] += FRAME
        if recovering.size:
            overlap = np.minimum(32 + 32 * ((self._lost[recovering] - 1) // 80), 80)
            weight = np.clip((_COLUMN + 1) / (overlap[:, None] + 1), 0.0, 1.0)
            synthetic = self._synthesise(recovering)
            blended = synthetic * (1.0 - weight) + heard[recovering] * weight
            heard[recovering] = _to_int16(blended)
            self._lost[recovering] = 0
        self._history[:n, self._cursor % _DEPTH] = heard
        self._cursor = (self._cursor + 1) % _DEPTH


def _templates(history: NDArray[np.float32], pitch: NDArray[np.int64]) -> NDArray[np.float32]:
    """The last period of each history, its final quarter cross-faded with the quarter before it."""
    p = pitch[:, None]
    quarter = np.maximum(p // 4, 1)
    last = np.take_along_axis(history, np.minimum(HISTORY - p + _N, HISTORY - 1), axis=1)
    earlier = np.take_along_axis(history, np.minimum(HISTORY - 2 * p + _N, HISTORY - 1), axis=1)
    fade_in = np.clip((_N - (p - quarter) + 1) / (quarter + 1), 0.0, 1.0)
    return np.asarray(last * (1.0 - fade_in) + earlier * fade_in, dtype=np.float32)


def _to_int16(x: NDArray[np.floating]) -> NDArray[np.int16]:
    clipped: NDArray[np.int16] = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
    return clipped
