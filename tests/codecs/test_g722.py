"""G.722 against two independent implementations: ffmpeg's (through PyAV) and libg722 (PyPI ``G722``)."""

from __future__ import annotations

import array

import av
import numpy as np
import pytest
from numpy.typing import NDArray

from voicecodecs.g722 import RTP_CLOCK_RATE, SAMPLE_RATE, G722Decoder, G722Encoder

RATE = 16000


def speechlike(seconds: float, seed: int, burst: bool = True) -> NDArray[np.int16]:
    """Harmonics on a gliding pitch, a slow syllable envelope, some noise, maybe a clipped burst."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    f0 = 110 + 60 * np.sin(2 * np.pi * 0.7 * t) + 20 * seed
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 3.1 * t + seed)
    x = 7000 * voiced * envelope + rng.normal(0, 300 if burst else 20, n)
    if burst:
        x[n // 2 : n // 2 + 200] *= 40  # drive the quantisers and the saturation paths
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def ffmpeg_encode(x: NDArray[np.int16]) -> NDArray[np.uint8]:
    ctx = av.codec.CodecContext.create("g722", "w")
    ctx.sample_rate = RATE
    ctx.layout = "mono"
    ctx.format = "s16"
    packets: list[bytes] = []
    for start in range(0, x.size, 320):
        frame = av.AudioFrame.from_ndarray(x[None, start : start + 320], format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = start
        packets += [bytes(p) for p in ctx.encode(frame)]
    packets += [bytes(p) for p in ctx.encode(None)]
    return np.frombuffer(b"".join(packets), np.uint8)


def ffmpeg_decode(octets: NDArray[np.uint8]) -> NDArray[np.int16]:
    ctx = av.codec.CodecContext.create("g722", "r")
    ctx.sample_rate = RATE
    ctx.layout = "mono"
    frames: list[NDArray[np.int16]] = []
    for start in range(0, octets.size, 160):
        for frame in ctx.decode(av.packet.Packet(octets[start : start + 160].tobytes())):
            frames.append(frame.to_ndarray()[0])
    return np.concatenate(frames)


def snr_db(reference: NDArray[np.int16], test: NDArray[np.int16]) -> float:
    ref = reference.astype(np.float64)
    err = ref - test.astype(np.float64)
    return float(10 * np.log10(np.sum(ref**2) / np.sum(err**2)))


def test_constants() -> None:
    assert SAMPLE_RATE == 16000
    assert RTP_CLOCK_RATE == 8000


def test_encoder_bit_exact_with_ffmpeg() -> None:
    x = speechlike(1.0, seed=1)
    ours = G722Encoder(1).encode(x[None])[0]
    assert ours.shape == (x.size // 2,)
    np.testing.assert_array_equal(ours, ffmpeg_encode(x))


def test_decoder_bit_exact_with_ffmpeg_on_random_octets() -> None:
    octets = np.random.default_rng(7).integers(0, 256, 8000).astype(np.uint8)
    ours = G722Decoder(1).decode(octets[None])[0]
    assert ours.shape == (16000,)
    np.testing.assert_array_equal(ours, ffmpeg_decode(octets))


def test_bit_exact_with_libg722() -> None:
    g722 = pytest.importorskip("G722")
    x = speechlike(0.5, seed=2)
    reference = np.frombuffer(g722.G722(16000, 64000).encode(array.array("h", x.tolist())), np.uint8)
    ours = G722Encoder(1).encode(x[None])[0]
    np.testing.assert_array_equal(ours, reference)
    decoded = np.frombuffer(g722.G722(16000, 64000).decode(reference.tobytes()), np.int16)
    np.testing.assert_array_equal(G722Decoder(1).decode(ours[None])[0], decoded)


def test_channels_are_independent_and_frames_carry_state() -> None:
    """Eight channels in 20 ms frames give exactly what each channel gives encoded on its own."""
    block = np.stack([speechlike(0.4, seed=s) for s in range(8)])
    enc = G722Encoder(8)
    dec = G722Decoder(8)
    octets = np.concatenate(
        [enc.encode(block[:, i : i + 320]) for i in range(0, block.shape[1], 320)], axis=1
    )
    pcm = np.concatenate([dec.decode(octets[:, i : i + 160]) for i in range(0, octets.shape[1], 160)], axis=1)
    for ch in range(8):
        alone = G722Encoder(1).encode(block[ch : ch + 1])
        np.testing.assert_array_equal(octets[ch], alone[0])
        np.testing.assert_array_equal(pcm[ch], G722Decoder(1).decode(alone)[0])


def test_round_trip_snr_on_speechlike_signal() -> None:
    """The codec and QMF delay is 22 samples; aligned, the round trip keeps more than 30 dB SNR."""
    x = speechlike(1.0, seed=3, burst=False)
    y = G722Decoder(1).decode(G722Encoder(1).encode(x[None]))[0]
    delay = 22
    lags = [snr_db(x[: x.size - lag], y[lag:]) for lag in range(40)]
    assert int(np.argmax(lags)) == delay
    assert lags[delay] > 30.0


def test_silence_decodes_quiet() -> None:
    octets = G722Encoder(1).encode(np.zeros((1, 3200), np.int16))
    pcm = G722Decoder(1).decode(octets)
    assert int(np.abs(pcm[0, 200:]).max()) <= 3


def test_rejects_bad_input() -> None:
    enc = G722Encoder(2)
    with pytest.raises(ValueError, match="even number"):
        enc.encode(np.zeros((2, 3), np.int16))
    with pytest.raises(ValueError, match=r"\(2, samples\)"):
        enc.encode(np.zeros((1, 4), np.int16))
    with pytest.raises(TypeError, match="int16"):
        enc.encode(np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match="uint8"):
        G722Decoder(1).decode(np.zeros((1, 4), np.int16))
    with pytest.raises(ValueError, match="at least 1"):
        G722Decoder(0)
