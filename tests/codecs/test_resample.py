"""Polyphase resampler: lengths, pass band, stop band (aliases and images), no delay, batches."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from voicecodecs.resample import resample, resampled_length

RATIOS = [(22050, 8000), (16000, 8000), (8000, 16000), (48000, 8000), (8000, 48000), (44100, 8000)]


def _tone(freq: float, rate: int, n: int, amplitude: float = 10000.0) -> NDArray[np.int16]:
    return np.rint(amplitude * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.int16)


def _rms_middle(y: NDArray[np.int16]) -> float:
    """RMS of the middle three fifths, away from the zero-padded edges."""
    core = y[y.size // 5 : -(y.size // 5)].astype(np.float64)
    return float(np.sqrt(np.mean(core**2)))


def _db(ratio: float) -> float:
    return 20.0 * float(np.log10(max(ratio, 1e-12)))


@pytest.mark.parametrize(
    ("n", "from_rate", "to_rate"), [(n, f, t) for f, t in RATIOS for n in (0, 1, 7, 441, 22050)]
)
def test_length_is_rounded_ratio(n: int, from_rate: int, to_rate: int) -> None:
    expected = round(n * to_rate / from_rate)
    assert resampled_length(n, from_rate, to_rate) == expected
    assert resample(np.zeros(n, dtype=np.int16), from_rate, to_rate).shape == (expected,)


@pytest.mark.parametrize(("from_rate", "to_rate"), RATIOS)
def test_1khz_tone_passes_within_1db(from_rate: int, to_rate: int) -> None:
    x = _tone(1000, from_rate, from_rate // 2)
    y = resample(x, from_rate, to_rate)
    assert y.dtype == np.int16
    gain_db = _db(_rms_middle(y) / _rms_middle(x))
    assert abs(gain_db) < 1.0, gain_db


@pytest.mark.parametrize(("from_rate", "to_rate"), RATIOS)
def test_output_is_not_delayed(from_rate: int, to_rate: int) -> None:
    x = _tone(1000, from_rate, from_rate // 2)
    y = resample(x, from_rate, to_rate).astype(np.float64)
    ideal = 10000.0 * np.sin(2 * np.pi * 1000 * np.arange(y.size) / to_rate)
    edge = y.size // 10
    assert np.max(np.abs(y[edge:-edge] - ideal[edge:-edge])) <= 3.0


@pytest.mark.parametrize(
    ("from_rate", "to_rate", "freq"),
    [
        (22050, 8000, 4500),
        (22050, 8000, 6000),
        (48000, 8000, 5000),
        (48000, 8000, 12000),
        (16000, 8000, 4400),
        (44100, 8000, 9000),
    ],
)
def test_tone_above_new_nyquist_is_attenuated_40db(from_rate: int, to_rate: int, freq: int) -> None:
    x = _tone(freq, from_rate, from_rate // 2)
    y = resample(x, from_rate, to_rate)
    attenuation_db = _db(_rms_middle(y) / _rms_middle(x))
    assert attenuation_db <= -40.0, attenuation_db


@pytest.mark.parametrize(("from_rate", "to_rate"), [(8000, 16000), (8000, 48000)])
def test_upsampling_images_are_attenuated_40db(from_rate: int, to_rate: int) -> None:
    x = _tone(3000, from_rate, from_rate)
    y = resample(x, from_rate, to_rate).astype(np.float64)
    core = y[y.size // 5 : -(y.size // 5)] * np.hanning(y.size - 2 * (y.size // 5))
    spectrum = np.abs(np.fft.rfft(core))
    freqs = np.fft.rfftfreq(core.size, 1.0 / to_rate)
    wanted = spectrum[np.abs(freqs - 3000) < 50].max()
    images = spectrum[freqs > from_rate / 2 + 100].max()  # the first image is at 5 kHz
    assert _db(images / wanted) <= -40.0


def test_float_input_is_full_scale_one() -> None:
    x = np.full(400, 0.5, dtype=np.float32)
    y = resample(x, 8000, 16000)
    assert y.dtype == np.int16
    assert y[100:700].tolist() == [16384] * 600


def test_same_rate_returns_int16_copy() -> None:
    x = _tone(440, 8000, 160)
    y = resample(x, 8000, 8000)
    np.testing.assert_array_equal(y, x)
    assert y is not x


def test_batch_rows_match_single_rows() -> None:
    rng = np.random.default_rng(3)
    batch = rng.integers(-20000, 20000, size=(3, 2205), dtype=np.int16)
    out = resample(batch, 22050, 8000)
    assert out.shape == (3, 800)
    for row in range(3):
        np.testing.assert_array_equal(out[row], resample(batch[row], 22050, 8000))


def test_loud_input_is_clipped_not_wrapped() -> None:
    square = np.tile(np.array([32767] * 20 + [-32768] * 20, dtype=np.int16), 50)
    y = resample(square, 8000, 48000)
    assert y.max() == 32767 and y.min() == -32768
    # wrapping would put large values of the opposite sign next to the peaks
    assert not np.any((y[:-1] > 30000) & (y[1:] < -30000))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        resample(np.zeros(4, dtype=np.int16), 0, 8000)
    with pytest.raises(TypeError, match="int16"):
        resample(np.zeros(4, dtype=np.int32), 8000, 16000)  # type: ignore[arg-type]
