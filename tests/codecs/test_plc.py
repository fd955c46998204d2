"""Concealment against zero-fill and last-frame repeat on a voiced signal, and its bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from voicecodecs.plc import Concealer, estimate_pitch

FRAME = 160


def voiced(seconds: float, f0: float, seed: int = 0) -> NDArray[np.int16]:
    """A vowel-like signal: harmonics of a slowly wandering pitch, each with its own amplitude."""
    t = np.arange(int(seconds * 8000)) / 8000
    pitch = f0 * (1 + 0.03 * np.sin(2 * np.pi * 0.8 * t + seed))
    phase = 2 * np.pi * np.cumsum(pitch) / 8000
    amps = [1.0, 0.8, 0.6, 0.5, 0.3, 0.2, 0.15, 0.1]
    x = sum(a * np.sin((k + 1) * phase + k) for k, a in enumerate(amps))
    return np.rint(4000 * x).astype(np.int16)


def play(signal: NDArray[np.int16], lost_frames: set[int], method: str) -> NDArray[np.int16]:
    frames = signal.reshape(-1, FRAME)
    out = np.empty_like(frames)
    concealer = Concealer(1)
    for i, frame in enumerate(frames):
        lost = i in lost_frames
        if method == "plc":
            out[i] = concealer.process(frame[None], np.array([lost]))[0]
        elif method == "zero":
            out[i] = 0 if lost else frame
        else:  # repeat the last frame played
            out[i] = out[i - 1] if lost else frame
    return out.reshape(-1)


def snr_over(reference: NDArray[np.int16], test: NDArray[np.int16], frames: list[int]) -> float:
    idx = np.concatenate([np.arange(f * FRAME, (f + 1) * FRAME) for f in frames])
    ref = reference[idx].astype(np.float64)
    err = ref - test[idx].astype(np.float64)
    return float(10 * np.log10(np.sum(ref**2) / np.sum(err**2)))


@pytest.mark.parametrize("f0", [110.0, 150.0, 220.0])
def test_beats_zero_fill_and_frame_repeat_on_voiced_speech(f0: float) -> None:
    signal = voiced(3.0, f0)
    lost = {10, 25, 26, 40, 55, 70, 71, 85, 100, 120, 135}
    judged = sorted(lost | {f + 1 for f in lost})  # the lost frames and the recovery frames
    scores = {m: snr_over(signal, play(signal, lost, m), judged) for m in ("plc", "zero", "repeat")}
    # zero fill leaves exactly as much error as signal on the lost frames: 0 dB
    assert snr_over(signal, play(signal, lost, "zero"), sorted(lost)) == pytest.approx(0.0, abs=1e-6)
    assert scores["plc"] > 8.0
    assert scores["plc"] > scores["repeat"] + 6.0
    assert scores["plc"] > scores["zero"] + 6.0


def test_received_frames_pass_through_untouched() -> None:
    signal = voiced(0.5, 130.0)
    np.testing.assert_array_equal(play(signal, set(), "plc"), signal)
    # after the recovery overlap (at most 10 ms), frames are the received ones again
    out = play(signal, {5}, "plc")
    np.testing.assert_array_equal(out[7 * FRAME :], signal[7 * FRAME :])
    np.testing.assert_array_equal(out[: 5 * FRAME], signal[: 5 * FRAME])


def test_long_loss_fades_to_silence_after_60ms() -> None:
    signal = voiced(1.0, 140.0)
    out = play(signal, set(range(10, 20)), "plc")
    level = np.abs(out.astype(np.int32)).reshape(-1, 80).max(axis=1)  # 10 ms blocks
    assert level[20] > 3000  # first 10 ms of the loss at full level
    assert level[21] > level[25] > 0  # then fading
    assert level[26:40].tolist() == [0] * 14  # silent from 60 ms into the loss (block 20 + 6 on)


def test_pitch_estimate() -> None:
    for period in (45, 64, 100, 118):
        t = np.arange(390)
        x = np.sin(2 * np.pi * t / period) + 0.5 * np.sin(4 * np.pi * t / period + 1)
        assert int(estimate_pitch(x[None].astype(np.float32))[0]) == period


def test_channels_at_once_match_channels_alone() -> None:
    signals = np.stack([voiced(1.0, f, seed=i) for i, f in enumerate((100.0, 130.0, 170.0, 210.0))])
    lost = np.zeros((4, 50), bool)
    lost[0, 10] = lost[1, 10:13] = lost[2, 20] = lost[3, [5, 30, 31]] = True
    together = Concealer(4)
    alone = [Concealer(1) for _ in range(4)]
    for i in range(50):
        block = signals[:, i * FRAME : (i + 1) * FRAME]
        out = together.process(block, lost[:, i])
        for ch in range(4):
            np.testing.assert_array_equal(
                out[ch], alone[ch].process(block[ch : ch + 1], lost[ch, i : i + 1])[0]
            )


def test_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(2, n\)"):
        Concealer(2).process(np.zeros((3, 160), np.int16), np.zeros(3, bool))
