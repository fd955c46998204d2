"""Decoding WAV and MP3 bytes to 8 kHz mono int16."""

from __future__ import annotations

import io
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from switch.media.decode import AudioDecodeError, decode_audio, decode_audio_async


def _tone(rate: int, seconds: float, freq: float = 440.0) -> NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    return (10000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def _wav(pcm: NDArray[np.int16], rate: int, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(pcm, channels).tobytes())
    return buf.getvalue()


def _dominant_frequency(pcm: NDArray[np.int16]) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.argmax(spectrum) * 8000 / len(pcm))


def test_8k_mono_wav_is_returned_sample_exact() -> None:
    pcm = _tone(8000, 0.5)
    assert np.array_equal(decode_audio(_wav(pcm, 8000)), pcm)


def test_44k_stereo_wav_is_resampled_to_8k_mono() -> None:
    out = decode_audio(_wav(_tone(44100, 1.0, 1000.0), 44100, channels=2))
    assert out.dtype == np.int16
    assert abs(len(out) - 8000) <= 64
    assert abs(_dominant_frequency(out) - 1000.0) < 5
    assert np.abs(out[1000:7000]).max() > 8000


def test_mp3_is_decoded(tmp_path: Path) -> None:
    src = tmp_path / "tone.wav"
    dst = tmp_path / "tone.mp3"
    src.write_bytes(_wav(_tone(22050, 1.0, 600.0), 22050))
    subprocess.run(["sox", str(src), str(dst)], check=True, capture_output=True)
    out = decode_audio(dst.read_bytes())
    assert 7800 <= len(out) <= 8800  # MP3 adds encoder delay and padding
    assert abs(_dominant_frequency(out) - 600.0) < 5


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage" * 100, b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(10), b"%PDF-1.4\n" + bytes(500)],
)
def test_garbage_raises_audio_decode_error(data: bytes) -> None:
    with pytest.raises(AudioDecodeError, match="^cannot decode audio: "):
        decode_audio(data)


def test_other_container_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "tone.wav"
    dst = tmp_path / "tone.flac"
    src.write_bytes(_wav(_tone(8000, 0.5), 8000))
    subprocess.run(["sox", str(src), str(dst)], check=True, capture_output=True)
    with pytest.raises(AudioDecodeError, match="format 'flac' is not WAV or MP3"):
        decode_audio(dst.read_bytes())


async def test_async_decode_matches() -> None:
    data = _wav(_tone(16000, 0.25), 16000)
    assert np.array_equal(await decode_audio_async(data), decode_audio(data))
