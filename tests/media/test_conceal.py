"""The tick's row concealer: the same concealment as voicecodecs' Appendix I concealer, but only the rows
that lost a frame (or recover from one) are touched."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from switch.media.conceal import FRAME, RowConcealer
from voicecodecs.plc import Concealer


def _voice(frames: int, seed: int) -> NDArray[np.int16]:
    rng = np.random.default_rng(seed)
    t = np.arange(frames * FRAME) / 8000
    pitch = 120 + 10 * seed
    x = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 6)) * 5000
    return np.rint(x + rng.normal(0, 50, t.size)).astype(np.int16)


def test_matches_the_appendix_i_concealer_and_leaves_other_rows_alone() -> None:
    frames = 30
    signals = np.stack([_voice(frames, s) for s in range(3)])
    lost_frames = {8, 9, 10, 20}
    rows = RowConcealer(4)
    reference = Concealer(1)
    out = np.zeros((3, frames * FRAME), np.int16)
    expected = np.zeros(frames * FRAME, np.int16)
    for k in range(frames):
        block = signals[:, k * FRAME : (k + 1) * FRAME].copy()
        lost = np.array([k in lost_frames, False, False])
        present = np.ones_like(block, np.bool_)
        if lost[0]:
            block[0] = 0
            present[0] = False
        heard = block.copy()
        rows.process(heard, lost, present)
        out[:, k * FRAME : (k + 1) * FRAME] = heard
        expected[k * FRAME : (k + 1) * FRAME] = reference.process(block[:1], lost[:1])[0]
    # Rows 1 and 2 never lost anything: untouched, bit for bit.
    assert np.array_equal(out[1:], signals[1:])
    # Row 0 is the Appendix I concealment (within int16 rounding of the history).
    assert np.abs(out[0].astype(np.int32) - expected).max() <= 2
    # And the concealment is not silence: the lost 30 ms carry the voice's energy, faded.
    gap = out[0, 8 * FRAME : 11 * FRAME].astype(np.float64)
    assert np.sqrt(np.mean(gap**2)) > 1000


def test_partial_frames_keep_what_arrived_and_slots_move() -> None:
    rows = RowConcealer(2)
    signal = _voice(6, 1)
    for k in range(5):
        heard = np.stack([signal[k * FRAME : (k + 1) * FRAME], np.zeros(FRAME, np.int16)])
        rows.process(heard, np.zeros(2, np.bool_), np.ones((2, FRAME), np.bool_))
    rows.move(0, 1)  # slot 0's history now lives in slot 1
    heard = np.zeros((2, FRAME), np.int16)
    arrived = signal[5 * FRAME : 6 * FRAME]
    present = np.ones((2, FRAME), np.bool_)
    present[1, 80:] = False
    heard[1, :80] = arrived[:80]
    rows.process(heard, np.array([False, True]), present)
    assert np.array_equal(heard[1, :80], arrived[:80])
    assert np.abs(heard[1, 80:]).max() > 1000  # concealed from the moved history, not silence
    assert not heard[0].any()
