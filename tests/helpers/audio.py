"""Audio comparison for end-to-end tests: WAV I/O, alignment by cross-correlation, normalised correlation,
PESQ narrowband, and the G.711 round trip that sets the best quality a call can reach."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from voicecodecs import g711

__all__ = [
    "Alignment",
    "Comparison",
    "SpeechMatch",
    "envelope",
    "log_spectrogram",
    "speech_match",
    "align",
    "compare",
    "normalized_correlation",
    "pesq_nb",
    "read_wav",
    "ulaw_round_trip",
    "write_wav",
]


def read_wav(path: Path) -> tuple[int, NDArray[np.int16]]:
    """(sample rate, mono int16 samples) of a 16-bit PCM WAV; stereo is averaged to mono."""
    with wave.open(str(path), "rb") as handle:
        if handle.getsampwidth() != 2:
            raise ValueError(f"{path}: {8 * handle.getsampwidth()}-bit WAV, expected 16-bit")
        rate, channels = handle.getframerate(), handle.getnchannels()
        data = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return rate, data.astype(np.int16)


def write_wav(path: Path, pcm: NDArray[np.int16], rate: int = 8000, *, pad_seconds: float = 0.0) -> Path:
    """Write mono 16-bit PCM, followed by `pad_seconds` of silence."""
    padded = np.concatenate([pcm.astype("<i2"), np.zeros(round(pad_seconds * rate), dtype="<i2")])
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(padded.tobytes())
    return path


def ulaw_round_trip(pcm: NDArray[np.int16]) -> NDArray[np.int16]:
    """What one mu-law encode/decode leaves of `pcm`: the reference a G.711 call is measured against."""
    return g711.ulaw_decode(g711.ulaw_encode(pcm.astype(np.int16)))


def normalized_correlation(a: NDArray[np.generic], b: NDArray[np.generic]) -> float:
    """Correlation of two equally long signals, without mean removal (audio is zero-mean); 0 if silent."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"lengths differ: {x.shape} vs {y.shape}")
    denominator = float(np.sqrt(np.dot(x, x) * np.dot(y, y)))
    return float(np.dot(x, y)) / denominator if denominator > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Alignment:
    """`degraded[lag + i]` lines up with `reference[i]`; the arrays are the overlapping parts."""

    lag: int
    reference: NDArray[np.float64]
    degraded: NDArray[np.float64]


def align(reference: NDArray[np.generic], degraded: NDArray[np.generic]) -> Alignment:
    """Find where `reference` sits in `degraded` (either may be longer) by FFT cross-correlation."""
    ref = np.asarray(reference, dtype=np.float64)
    deg = np.asarray(degraded, dtype=np.float64)
    if ref.size == 0 or deg.size == 0:
        raise ValueError("cannot align an empty signal")
    size = 1 << int(np.ceil(np.log2(ref.size + deg.size)))
    spectrum = np.fft.rfft(deg, size) * np.conj(np.fft.rfft(ref, size))
    correlation = np.fft.irfft(spectrum, size)
    index = int(np.argmax(correlation))
    lag = index if index < size - ref.size + 1 else index - size  # negative: degraded starts late
    start_ref, start_deg = max(0, -lag), max(0, lag)
    length = min(ref.size - start_ref, deg.size - start_deg)
    if length <= 0:
        raise ValueError("signals do not overlap at the best lag")
    return Alignment(lag, ref[start_ref : start_ref + length], deg[start_deg : start_deg + length])


def pesq_nb(reference: NDArray[np.generic], degraded: NDArray[np.generic], rate: int = 8000) -> float:
    """PESQ narrowband MOS-LQO of aligned signals (align first)."""
    from pesq import pesq  # type: ignore[import-untyped,unused-ignore]  # no stubs; imported only where used

    score = pesq(rate, np.asarray(reference, dtype=np.float32), np.asarray(degraded, dtype=np.float32), "nb")
    return float(score)


@dataclass(frozen=True, slots=True)
class Comparison:
    lag: int
    correlation: float
    overlap: int


def compare(reference: NDArray[np.generic], degraded: NDArray[np.generic]) -> Comparison:
    """Align `degraded` to `reference` and measure their normalised correlation over the overlap."""
    aligned = align(reference, degraded)
    return Comparison(
        aligned.lag, normalized_correlation(aligned.reference, aligned.degraded), aligned.reference.size
    )


def envelope(pcm: NDArray[np.generic], hop: int = 80) -> NDArray[np.float64]:
    """RMS of each `hop`-sample frame (10 ms at 8 kHz)."""
    x = np.asarray(pcm, dtype=np.float64)
    frames = x.size // hop
    return np.asarray(np.sqrt(np.mean(x[: frames * hop].reshape(frames, hop) ** 2, axis=1)), dtype=np.float64)


def log_spectrogram(pcm: NDArray[np.generic], hop: int = 80, window: int = 256) -> NDArray[np.float64]:
    """Log power per frame and frequency bin (125 Hz to 3.7 kHz at 8 kHz), frames every `hop` samples."""
    x = np.asarray(pcm, dtype=np.float64)
    count = (x.size - window) // hop
    if count <= 0:
        return np.zeros((0, 0))
    index = np.arange(window)[None, :] + hop * np.arange(count)[:, None]
    spectrum = np.abs(np.fft.rfft(x[index] * np.hanning(window), axis=1))[:, 4:120]
    return np.asarray(np.log10(spectrum**2 + 1e3), dtype=np.float64)


def _pearson(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    x, y = a - a.mean(), b - b.mean()
    denominator = float(np.sqrt(np.sum(x * x) * np.sum(y * y)))
    return float(np.sum(x * y)) / denominator if denominator > 0 else 0.0


@dataclass(frozen=True, slots=True)
class SpeechMatch:
    """How well `degraded` carries the speech of `reference`.

    espeak-ng keeps state between renders (pitch flutter, glottal phase), so two renders of one text agree in
    envelope and spectrum but not sample by sample: compare re-renders with `envelope` and `spectral`
    (about 0.97 to 0.99 for the same text through G.711, under 0.5 for a different sentence), and use
    `waveform` only when the very same samples were sent.
    """

    lag: int
    envelope: float
    spectral: float
    waveform: float
    overlap: int


def speech_match(reference: NDArray[np.generic], degraded: NDArray[np.generic], hop: int = 80) -> SpeechMatch:
    """Align by cross-correlating the 10 ms energy envelopes (then the best of 20 sub-frame shifts), and
    correlate envelopes, log spectrograms and waveforms over the overlap."""
    ref_all = np.asarray(reference, dtype=np.float64)
    deg_all = np.asarray(degraded, dtype=np.float64)
    coarse = align(envelope(ref_all, hop), envelope(deg_all, hop)).lag * hop
    best: tuple[float, int] = (-2.0, coarse)
    for lag in range(coarse - hop // 2, coarse + hop // 2, max(1, hop // 20)):
        ref, deg = _overlap(ref_all, deg_all, lag)
        if ref.size >= hop:
            best = max(best, (_pearson(envelope(ref, hop), envelope(deg, hop)), lag))
    envelope_correlation, lag = best
    ref, deg = _overlap(ref_all, deg_all, lag)
    return SpeechMatch(
        lag=lag,
        envelope=envelope_correlation,
        spectral=_pearson(log_spectrogram(ref).ravel(), log_spectrogram(deg).ravel()),
        waveform=normalized_correlation(ref, deg),
        overlap=ref.size,
    )


def _overlap(
    ref: NDArray[np.float64], deg: NDArray[np.float64], lag: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The parts of `ref` and `deg` that overlap when `deg[lag + i]` lines up with `ref[i]`."""
    start_ref, start_deg = max(0, -lag), max(0, lag)
    length = max(0, min(ref.size - start_ref, deg.size - start_deg))
    return ref[start_ref : start_ref + length], deg[start_deg : start_deg + length]
