"""G.722 and Opus legs in the engine: the streaming resampler, and each bridged to a PCMU leg over loopback
with RTP built here (G.722 by voicecodecs, Opus by libopus through voicecodecs); tones checked by FFT."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
from numpy.typing import NDArray

from switch.media.engine import MediaEngine
from switch.media.rtp import RtpPacket
from switch.media.wideband import Resampler
from tests.helpers.ports import free_rtp_range
from tests.media.rtp_peer import Peer, build_stream, decode, tone
from voicecodecs.g722 import G722Decoder, G722Encoder
from voicecodecs.opus import OpusDecoder, OpusEncoder


def _sine(freq: float, rate: int, samples: int, amplitude: float = 8000.0) -> NDArray[np.int16]:
    return np.rint(amplitude * np.sin(2 * np.pi * freq * np.arange(samples) / rate)).astype(np.int16)


def _level_db(x: NDArray[np.int16], rate: int, freq: float) -> float:
    """Level of ``freq`` in ``x`` (dB, Hann window), to compare tones."""
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    band = np.abs(freqs - freq) <= 20
    return float(20 * np.log10(spectrum[band].max() + 1e-9))


def _peak(x: NDArray[np.int16], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spectrum))])


def _run(resampler: Resampler, x: NDArray[np.int16], frame: int) -> NDArray[np.int16]:
    return np.concatenate([resampler.process(x[i : i + frame]) for i in range(0, len(x), frame)])


def test_resampler_passes_the_voice_band_and_stops_aliases() -> None:
    # 16 kHz -> 8 kHz: 1 kHz passes, 5 kHz (which would alias to 3 kHz) is stopped.
    down = _run(Resampler(down=2), _sine(1000, 16000, 16000) + _sine(5000, 16000, 16000), 320)
    assert len(down) == 8000
    assert _level_db(down[800:], 8000, 1000) - _level_db(down[800:], 8000, 3000) > 50
    # 8 kHz -> 48 kHz: the 440 Hz tone keeps its level, its images (7560, 8440 Hz) are stopped.
    up = _run(Resampler(up=6), _sine(440, 8000, 8000), 160)
    reference = _sine(440, 48000, 48000)
    assert len(up) == 48000
    assert abs(_level_db(up[4800:], 48000, 440) - _level_db(reference[4800:], 48000, 440)) < 0.5
    assert _level_db(up[4800:], 48000, 440) - _level_db(up[4800:], 48000, 7560) > 50
    # Frame by frame equals one pass over the whole signal (state carried across frames).
    whole = Resampler(down=6).process(_sine(300, 48000, 9600))
    assert np.array_equal(_run(Resampler(down=6), _sine(300, 48000, 9600), 960), whole)


@pytest.fixture
async def engine() -> AsyncIterator[MediaEngine]:
    eng = MediaEngine("127.0.0.1", free_rtp_range(20), egress_allowed=lambda ip: ip.startswith("127."))
    await eng.start()
    yield eng
    await eng.stop()


def _packets(payloads: list[bytes], payload_type: int, step: int) -> list[bytes]:
    return [
        RtpPacket(payload_type=payload_type, marker=i == 0, sequence_number=(60000 + i) % 65536,
                  timestamp=(2**32 - 3 * step + i * step) % 2**32, ssrc=0xD0D0 + payload_type,
                  payload=p).serialize()
        for i, p in enumerate(payloads)
    ]  # fmt: skip


async def _bridge_to_pcmu(
    engine: MediaEngine, codec: str, payload_type: int, packets: list[bytes]
) -> tuple[list[RtpPacket], NDArray[np.int16]]:
    """Bridge a ``codec`` leg to a PCMU leg; the wide peer sends ``packets``, the PCMU peer 440 Hz.

    Returns what the wide peer received and the PCMU peer's decoded audio."""
    wide_peer, narrow_peer = await Peer().open(), await Peer().open()
    try:
        wide = await engine.create_channel()
        narrow = await engine.create_channel()
        engine.configure(wide, remote=wide_peer.addr, codec=codec, payload_type=payload_type)
        engine.configure(narrow, remote=narrow_peer.addr, codec="PCMU", payload_type=0)
        engine.bridge(wide, narrow)
        pcmu = build_stream(tone(440, 8000 * 2))
        await asyncio.gather(
            wide_peer.stream(packets, ("127.0.0.1", engine.local_port(wide))),
            narrow_peer.stream(pcmu, ("127.0.0.1", engine.local_port(narrow))),
        )
        await engine.wait_ticks(5)
        received = [p for p in wide_peer.packets() if p.payload_type == payload_type]
        return received, decode(narrow_peer.packets())
    finally:
        wide_peer.close()
        narrow_peer.close()


def _check_headers(received: list[RtpPacket], step: int) -> None:
    assert len(received) > 80
    seqs = np.array([p.sequence_number for p in received])
    stamps = np.array([p.timestamp for p in received], np.int64)
    assert set(np.diff(seqs) % 65536) == {1}
    assert set(np.diff(stamps) % 2**32) == {step}
    assert len({p.ssrc for p in received}) == 1


async def test_g722_leg_bridged_to_pcmu(engine: MediaEngine) -> None:
    wide_tone = _sine(1000, 16000, 16000 * 2)
    octets = G722Encoder().encode(wide_tone[None, :])[0]
    payloads = [octets[i : i + 160].tobytes() for i in range(0, len(octets), 160)]
    received, narrow_audio = await _bridge_to_pcmu(engine, "G722", 9, _packets(payloads, 9, 160))
    # G.722 as RFC 3551 says: 160 octets per 20 ms, timestamp +160 (clock 8000 for 16 kHz audio).
    _check_headers(received, 160)
    assert {len(p.payload) for p in received} == {160}
    heard_wide = G722Decoder().decode(
        np.frombuffer(b"".join(p.payload for p in received), np.uint8)[None, :]
    )[0]
    tail = heard_wide[-16000:]
    assert _peak(tail, 16000) == pytest.approx(440, abs=5)
    assert np.sqrt(np.mean(tail.astype(np.float64) ** 2)) > 2000  # 6000 amplitude: about 4240 RMS
    narrow_tail = narrow_audio[-8000:]
    assert _peak(narrow_tail, 8000) == pytest.approx(1000, abs=5)
    assert _level_db(narrow_tail, 8000, 1000) - _level_db(narrow_tail, 8000, 3000) > 40


async def test_opus_leg_bridged_to_pcmu(engine: MediaEngine) -> None:
    encoder = OpusEncoder()
    wide_tone = _sine(1000, 48000, 48000 * 2)
    payloads = [encoder.encode(wide_tone[i : i + 960]) for i in range(0, len(wide_tone), 960)]
    received, narrow_audio = await _bridge_to_pcmu(engine, "opus", 111, _packets(payloads, 111, 960))
    # opus/48000/2: timestamp +960 per 20 ms packet.
    _check_headers(received, 960)
    decoder = OpusDecoder()
    heard_wide = np.concatenate([decoder.decode(p.payload) for p in received])
    tail = heard_wide[-48000:]
    assert _peak(tail, 48000) == pytest.approx(440, abs=5)
    assert np.sqrt(np.mean(tail.astype(np.float64) ** 2)) > 2000
    narrow_tail = narrow_audio[-8000:]
    assert _peak(narrow_tail, 8000) == pytest.approx(1000, abs=5)
    assert np.sqrt(np.mean(narrow_tail.astype(np.float64) ** 2)) > 2000


async def test_unknown_codec_and_opus_ptime_are_refused(engine: MediaEngine) -> None:
    channel = await engine.create_channel()
    with pytest.raises(ValueError, match="unsupported codec 'G729'"):
        engine.configure(channel, remote=("127.0.0.1", 9), codec="G729", payload_type=18)
    with pytest.raises(ValueError, match="Opus legs use 20 ms packets"):
        engine.configure(channel, remote=("127.0.0.1", 9), codec="opus", payload_type=111, ptime=40)
