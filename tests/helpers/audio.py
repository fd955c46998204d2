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
    from pesq import pesq  # type: ignore[import-untyped]  # no stubs; imported only where used

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
