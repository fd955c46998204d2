"""The engine's second stage over real RTP on 127.0.0.1: DTMF in and out, bridges, rooms, recording,
the jitter buffer under loss, latching and ptime. Peers are the project's own numpy RTP sender. Every test
runs twice: against the engine in this process and behind ``--media-workers 2`` (WorkerMediaEngine)."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import numpy as np
import pytest
from numpy.typing import NDArray

from switch.media.control import MediaControl
from switch.media.engine import ChannelStats, MediaEngine
from switch.media.jitter import JitterStats
from switch.media.receiver import LATCH_PACKETS
from switch.media.rtp import RtpPacket
from switch.media.tts import TextToSpeech
from switch.media.workers import WorkerMediaEngine
from tests.helpers.audio import align, pesq_nb
from tests.helpers.ports import free_rtp_range
from tests.media.rtp_peer import Impairment, Peer, build_stream, decode, event_packets, tone
from voicecodecs.dtmf import digits_to_audio, event_code, parse_event
from voicecodecs.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode


def loopback_only(ip: str) -> bool:
    return ip.startswith("127.")


class Engine(MediaControl, Protocol):
    """What these tests use of either engine."""

    def stats(self, channel: int) -> ChannelStats: ...

    def jitter_stats(self, channel: int) -> JitterStats: ...

    async def wait_ticks(self, count: int) -> None: ...


@pytest.fixture(params=["in-process", "workers-2", "in-process-shared-port", "workers-2-shared-port"])
async def engine(request: pytest.FixtureRequest) -> AsyncIterator[Engine]:
    eng: Engine
    shared = request.param.endswith("shared-port")
    if request.param.startswith("in-process"):
        eng = MediaEngine("127.0.0.1", free_rtp_range(40), egress_allowed=loopback_only, shared_port=shared)
    else:
        eng = WorkerMediaEngine(
            "127.0.0.1", free_rtp_range(60), workers=2, egress_allowed=loopback_only, shared_port=shared
        )
    await eng.start()
    yield eng
    await eng.stop()


@pytest.fixture
async def peers() -> AsyncIterator[list[Peer]]:
    made: list[Peer] = []
    yield made
    for peer in made:
        peer.close()


async def _peer(peers: list[Peer]) -> Peer:
    peers.append(await Peer().open())
    return peers[-1]


async def _leg(engine: Engine, peer: Peer, **options: object) -> tuple[int, tuple[str, int]]:
    channel = await engine.create_channel()
    engine.configure(channel, remote=peer.addr, codec="PCMU", payload_type=0, **options)  # type: ignore[arg-type]
    return channel, ("127.0.0.1", engine.local_port(channel))


def _digits(engine: Engine) -> list[tuple[int, str, str]]:
    got: list[tuple[int, str, str]] = []
    engine.on_dtmf = lambda channel, digit, source: got.append((channel, digit, source))
    return got


async def test_rfc4733_digits_arrive_once_each(engine: Engine, peers: list[Peer]) -> None:
    peer = await _peer(peers)
    channel, target = await _leg(engine, peer, telephone_event_pt=101)
    got = _digits(engine)
    stream = event_packets(event_code("5"), seq=10, timestamp=8000)
    stream += event_packets(event_code("#"), seq=18, timestamp=9600)[3:]  # its first three packets lost
    stream += event_packets(event_code("5"), seq=23, timestamp=11200)  # the same digit again: a new event
    for packet in stream:
        peer.send(packet, target)
        await asyncio.sleep(0.002)
    await engine.wait_ticks(5)
    assert got == [(channel, "5", "rfc4733"), (channel, "#", "rfc4733"), (channel, "5", "rfc4733")]


async def test_inband_digits_are_detected_when_no_telephone_event(engine: Engine, peers: list[Peer]) -> None:
    peer = await _peer(peers)
    channel, target = await _leg(engine, peer)
    got = _digits(engine)
    audio = np.concatenate([np.zeros(800, np.int16), digits_to_audio("19*#D"), np.zeros(1600, np.int16)])
    await peer.stream(build_stream(audio), target)
    await engine.wait_ticks(10)
    assert got == [(channel, d, "inband") for d in "19*#D"]


async def test_speech_gives_no_inband_digits(engine: Engine, peers: list[Peer]) -> None:
    peer = await _peer(peers)
    _, target = await _leg(engine, peer)
    got = _digits(engine)
    speech = await TextToSpeech().synthesize("Press one for sales, two for support, or hold for an agent.")
    await peer.stream(build_stream(speech), target)
    await engine.wait_ticks(5)
    assert got == []


async def test_pcmu_bridge_passes_payloads_bit_exact(engine: Engine, peers: list[Peer]) -> None:
    a_peer, b_peer = await _peer(peers), await _peer(peers)
    a, a_target = await _leg(engine, a_peer, telephone_event_pt=101)
    b, _ = await _leg(engine, b_peer, telephone_event_pt=101)
    engine.bridge(a, b)
    rng = np.random.default_rng(4)
    payload = rng.integers(0, 256, 160 * 40, dtype=np.uint8)  # includes 0x7F, which decode-encode changes
    packets = build_stream(ulaw_decode(payload))
    packets = [p[:12] + payload[160 * i : 160 * (i + 1)].tobytes() for i, p in enumerate(packets)]
    await a_peer.stream(packets, a_target)
    await engine.wait_ticks(6)
    received = b"".join(p.payload for p in b_peer.packets())
    assert payload.tobytes() in received
    if isinstance(engine, MediaEngine):  # 0x7F arrived unchanged already; in process, look inside too
        assert not engine._pipeline.decoded  # nothing needed decoding: payloads passed through


async def test_room_of_four_hears_every_other_tone_and_not_its_own(engine: Engine, peers: list[Peer]) -> None:
    freqs = [350.0, 650.0, 1050.0, 1450.0]
    legs = []
    for _ in freqs:
        peer = await _peer(peers)
        channel, target = await _leg(engine, peer, telephone_event_pt=101)
        engine.join_room(channel, "r")
        legs.append((peer, target))
    await asyncio.gather(
        *(
            peer.stream(build_stream(tone(f, 8000 * 2, 3000)), t)
            for (peer, t), f in zip(legs, freqs, strict=True)
        )
    )
    for (peer, _), own in zip(legs, freqs, strict=True):
        audio = decode(peer.packets())[-12000:-4000].astype(np.float64)  # 1 s from inside the stream
        spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
        power = {f: spectrum[int(round(f * len(audio) / 8000))] for f in freqs}
        others = [power[f] for f in freqs if f != own]
        assert min(others) > 30 * power[own], (own, power)  # 30 dB down: G.711 noise, not the tone


async def test_recording_has_the_right_duration_and_content(
    engine: Engine, peers: list[Peer], tmp_path: Path
) -> None:
    peer = await _peer(peers)
    channel, target = await _leg(engine, peer, telephone_event_pt=101)
    path = tmp_path / "rec" / "caller.wav"
    done = engine.record(channel, path, silence_timeout=0.6, trim_silence=True, dual=True)
    signal = tone(500.0, 8000, 4000)
    audio = np.concatenate([np.zeros(1600, np.int16), signal, np.zeros(8000, np.int16)])
    await peer.stream(build_stream(audio), target)
    result = await asyncio.wait_for(done, 5)
    assert result.ended_by == "silence" and result.path == path
    assert abs(result.duration - 1.0) <= 0.06
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
        frames = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, 2)
    assert abs(len(frames) / 8000 - result.duration) < 1e-9
    caller = frames[:, 0].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(caller))
    assert abs(np.argmax(spectrum) * 8000 / len(caller) - 500.0) < 5
    assert np.sqrt(np.mean(caller**2)) > 2000
    assert np.sqrt(np.mean(frames[:, 1].astype(np.float64) ** 2)) == 0  # nobody else on the call


async def test_recording_ends_on_a_digit(engine: Engine, peers: list[Peer], tmp_path: Path) -> None:
    peer = await _peer(peers)
    channel, target = await _leg(engine, peer, telephone_event_pt=101)
    done = engine.record(channel, tmp_path / "r.wav", finish_on_digits="#*", silence_timeout=None)
    await peer.stream(build_stream(tone(440.0, 4000)), target)
    for packet in event_packets(event_code("*"), timestamp=2**31):
        peer.send(packet, target)
    result = await asyncio.wait_for(done, 5)
    assert (result.ended_by, result.digit) == ("digit", "*")
    assert 0.3 < result.duration <= 0.5


async def test_concealment_beats_zero_fill_under_seeded_loss(
    engine: Engine, peers: list[Peer], tmp_path: Path
) -> None:
    peer = await _peer(peers)
    channel, target = await _leg(engine, peer, telephone_event_pt=101)
    speech = await TextToSpeech().synthesize(
        "The quick brown fox jumps over the lazy dog. A switch carrying voice must hide lost packets well."
    )
    speech = speech[: len(speech) // 160 * 160]
    reference = ulaw_decode(ulaw_encode(speech))
    done = engine.record(channel, tmp_path / "jb.wav", silence_timeout=None, trim_silence=False)
    impairment = Impairment(loss=0.05, reorder=0.05, jitter_ms=4.0, seed=11)
    lost = await peer.stream(build_stream(speech), target, impairment=impairment)
    await engine.wait_ticks(15)
    stats = engine.jitter_stats(channel)
    engine.stop_recording(channel)
    result = await asyncio.wait_for(done, 5)
    with wave.open(str(result.path)) as w:
        received = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    zero_filled = reference.copy().reshape(-1, 160)
    zero_filled[lost] = 0
    assert len(lost) >= 5
    assert stats.concealed_frames >= len(lost) - 2  # a loss at the very end is not seen as one
    assert stats.late + stats.duplicate == 0  # reordered packets were put back in order
    assert stats.jitter_ms > 1 and stats.target_ms > 20  # the target delay followed the jitter
    concealed_score = pesq_nb(reference, received)
    zero_score = pesq_nb(reference, zero_filled.reshape(-1))
    assert concealed_score > zero_score + 0.1, (concealed_score, zero_score)


async def test_speech_through_a_transcoding_bridge_scores_pesq_of_the_codecs_alone(
    engine: Engine, peers: list[Peer]
) -> None:
    """PCMU in, PCMA out: jitter buffer, decode, mix and encode cost at most 0.05 PESQ against the same two
    codecs applied without the engine (the reference computed in this test)."""
    a_peer, b_peer = await _peer(peers), await _peer(peers)
    a, a_target = await _leg(engine, a_peer)
    b = await engine.create_channel()
    engine.configure(b, remote=b_peer.addr, codec="PCMA", payload_type=8)
    engine.bridge(a, b)
    speech = await TextToSpeech().synthesize("Your call is important to us. Please hold while we connect.")
    speech = speech[: len(speech) // 160 * 160]
    sent = ulaw_decode(ulaw_encode(speech))
    codecs_only = alaw_decode(alaw_encode(sent))
    await engine.wait_ticks(2)
    await a_peer.stream(build_stream(speech), a_target)
    await engine.wait_ticks(10)
    heard = decode(b_peer.packets(), payload_type=8)
    aligned = align(codecs_only, heard)
    assert aligned.lag >= 0 and aligned.reference.size == codecs_only.size  # all of it arrived
    reference_score = pesq_nb(speech, codecs_only)
    engine_score = pesq_nb(speech, aligned.degraded)
    assert reference_score > 3.5
    assert engine_score >= reference_score - 0.05, (engine_score, reference_score)


async def test_latching_needs_a_clean_run_and_happens_once_per_configure(
    engine: Engine, peers: list[Peer]
) -> None:
    sdp_peer, stray, other = await _peer(peers), await _peer(peers), await _peer(peers)
    channel, target = await _leg(engine, sdp_peer)
    packets = build_stream(tone(300.0, 160 * 40))

    async def send(peer: Peer, chunk: list[bytes]) -> None:
        for p in chunk:
            peer.send(p, target)
        await asyncio.sleep(0.05)

    await send(stray, packets[: LATCH_PACKETS - 1])
    assert engine.stats(channel).remote == sdp_peer.addr
    # Interleaved with the SDP source, the stray never gets a clean run.
    for i in range(LATCH_PACKETS, 2 * LATCH_PACKETS + 2):
        await send(stray, packets[i : i + 1])
        await send(sdp_peer, packets[i : i + 1])
    assert engine.stats(channel).remote == sdp_peer.addr
    # Out of order sequence numbers do not count either.
    await send(other, packets[20:24][::-1] + packets[24:25])
    assert engine.stats(channel).remote == sdp_peer.addr
    # A clean run of one SSRC in order moves the channel, and sending follows.
    await send(stray, packets[25 : 25 + LATCH_PACKETS])
    assert engine.stats(channel).remote == stray.addr
    before = len(stray.received)
    await engine.wait_ticks(3)
    assert len(stray.received) > before
    # Once latched, another source cannot take over until the next configure().
    await send(other, packets[30:40])
    assert engine.stats(channel).remote == stray.addr
    assert engine.stats(channel).foreign_received >= 10
    engine.configure(channel, remote=sdp_peer.addr, codec="PCMU", payload_type=0)
    await send(other, [p[:2] + bytes([0, i]) + p[4:] for i, p in enumerate(packets[:LATCH_PACKETS])])
    assert engine.stats(channel).remote == other.addr


async def test_send_dtmf_as_rfc4733(engine: Engine, peers: list[Peer]) -> None:
    peer = await _peer(peers)
    channel, _ = await _leg(engine, peer, telephone_event_pt=101)
    await asyncio.wait_for(engine.send_dtmf(channel, "7#", duration_ms=60), 5)
    await engine.wait_ticks(2)
    packets = peer.packets()
    events = [p for p in packets if p.payload_type == 101]
    parsed = [parse_event(p.payload) for p in events]
    assert "".join(dict.fromkeys(e.digit or "" for e in parsed)) == "7#"
    assert [e.end for e in parsed] == ([False] * 3 + [True] * 3) * 2
    assert [p.marker for p in events] == ([True] + [False] * 5) * 2
    seqs = [p.sequence_number for p in packets]
    assert np.all(np.diff(seqs) % 65536 == 1)  # events and audio share one sequence


@pytest.mark.parametrize("ptime", [10, 30, 60])
async def test_ptime_sets_the_packet_size(engine: Engine, peers: list[Peer], ptime: int) -> None:
    peer = await _peer(peers)
    channel, _ = await _leg(engine, peer, ptime=ptime)
    pcm = tone(700.0, 8000)
    engine.play(channel, pcm)
    packets: list[RtpPacket] = await peer.wait_for(1000 // ptime)
    assert {len(p.payload) for p in packets} == {ptime * 8}
    assert np.all(np.diff([p.timestamp for p in packets]) % 2**32 == ptime * 8)
    assert np.all(np.diff([p.sequence_number for p in packets]) % 65536 == 1)
    assert packets[0].marker and not any(p.marker for p in packets[1:])
    payload: NDArray[np.uint8] = np.frombuffer(b"".join(p.payload for p in packets), np.uint8)
    expected = ulaw_encode(pcm)
    if isinstance(engine, WorkerMediaEngine):
        # The worker may tick between the configure and the play command: silence until the prompt.
        silence = np.flatnonzero(payload != 0xFF)[0] // 160 * 160
        assert set(payload[:silence].tolist()) <= {0xFF}
        payload = payload[silence:]
    assert payload.size >= 4000  # at least half a second of the prompt
    assert payload.tobytes() == expected[: len(payload)].tobytes()
