"""The media engine's audio behaviours through WorkerMediaEngine with 2 worker processes, over real RTP on
127.0.0.1: a prompt arrives bit-exact, a bridge passes payloads, a room, DTMF events come back, a recording
is written, and placement keeps groups on one worker."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from switch.media.engine import MediaError, UnknownChannel
from switch.media.workers import WorkerMediaEngine, split_port_range
from tests.helpers.ports import free_rtp_range
from tests.media.rtp_peer import Peer, build_stream, decode, event_packets, tone
from voicecodecs.dtmf import event_code
from voicecodecs.g711 import ulaw_decode, ulaw_encode


def loopback_only(ip: str) -> bool:
    return ip.startswith("127.")


@pytest.fixture
async def engine() -> AsyncIterator[WorkerMediaEngine]:
    eng = WorkerMediaEngine(
        "127.0.0.1", free_rtp_range(60), workers=2, egress_allowed=loopback_only, rtcp_interval=0.2
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


async def _leg(
    engine: WorkerMediaEngine, peers: list[Peer], group: str | None = None, **options: object
) -> tuple[int, Peer, tuple[str, int]]:
    peer = await Peer().open()
    peers.append(peer)
    channel = await engine.create_channel(group)
    engine.configure(channel, remote=peer.addr, codec="PCMU", payload_type=0, **options)  # type: ignore[arg-type]
    return channel, peer, ("127.0.0.1", engine.local_port(channel))


async def _prompt_heard(peer: Peer, count: int) -> bytes:
    """``count`` packets of payload from the first one that is not silence (a configured channel sends
    silence until the play command reaches its worker, which may be a tick later)."""
    silence = bytes([0xFF]) * 160
    while True:
        packets = await peer.wait_for(len(peer.received) + 1)
        payloads = [p.payload for p in packets]
        start = next((i for i, p in enumerate(payloads) if p != silence), None)
        if start is not None and len(payloads) - start >= count:
            return b"".join(payloads[start : start + count])


def test_port_range_split_into_even_shares() -> None:
    assert split_port_range((20001, 20011), 2) == [(20002, 20007), (20008, 20011)]
    with pytest.raises(ValueError, match="too small"):
        split_port_range((20000, 20001), 2)


async def test_prompt_arrives_bit_exact_and_crosses_once_per_worker(
    engine: WorkerMediaEngine, peers: list[Peer]
) -> None:
    a, a_peer, _ = await _leg(engine, peers)
    b, b_peer, _ = await _leg(engine, peers)
    assert {engine.worker_of(a), engine.worker_of(b)} == {0, 1}  # no group: spread over the workers
    pcm = tone(700.0, 8000)
    done = [engine.play(a, pcm), engine.play(b, pcm), engine.play(a, pcm)]
    assert engine.pcm_sent == 2  # once per worker; the third play reuses the cached copy
    await asyncio.wait_for(done[0], 5)  # settled: replaced by the third play
    assert done[0].done() and not done[1].done()
    for peer in (a_peer, b_peer):
        payload = await _prompt_heard(peer, 40)
        assert payload == ulaw_encode(pcm)[: len(payload)].tobytes()
        assert {len(p.payload) for p in peer.packets()} == {160}
    await asyncio.wait_for(asyncio.gather(done[1], done[2]), 5)
    stats = engine.stats(b)
    assert stats.packets_sent >= 50 and stats.remote == b_peer.addr


async def _bridge_carries_payloads_bit_exact(
    engine: WorkerMediaEngine, a_peer: Peer, a_target: tuple[str, int], b_peer: Peer
) -> None:
    payload = np.random.default_rng(4).integers(0, 256, 160 * 30, dtype=np.uint8)
    packets = build_stream(ulaw_decode(payload))
    packets = [p[:12] + payload[160 * i : 160 * (i + 1)].tobytes() for i, p in enumerate(packets)]
    await a_peer.stream(packets, a_target)
    await engine.wait_ticks(10)
    assert payload.tobytes() in b"".join(p.payload for p in b_peer.packets())


async def test_bridge_of_one_group_passes_payloads_bit_exact(
    engine: WorkerMediaEngine, peers: list[Peer]
) -> None:
    a, a_peer, a_target = await _leg(engine, peers, "call-1", telephone_event_pt=101)
    b, b_peer, _ = await _leg(engine, peers, "call-1", telephone_event_pt=101)
    assert engine.worker_of(a) == engine.worker_of(b)
    other = await engine.create_channel()
    beside = await engine.create_channel(near=other)
    assert engine.worker_of(beside) == engine.worker_of(other) != engine.worker_of(a)
    engine.bridge(a, b)
    await _bridge_carries_payloads_bit_exact(engine, a_peer, a_target, b_peer)
    received = await engine.stats_async(a)
    assert received.packets_received == 30


async def test_bridge_across_workers_goes_through_a_trunk_bit_exact(
    engine: WorkerMediaEngine, peers: list[Peer]
) -> None:
    a, a_peer, a_target = await _leg(engine, peers, telephone_event_pt=101)
    b, b_peer, _ = await _leg(engine, peers, telephone_event_pt=101)
    assert engine.worker_of(a) != engine.worker_of(b)
    engine.bridge(a, b)
    assert engine.channel_count == 2  # trunk channels are not counted
    await _bridge_carries_payloads_bit_exact(engine, a_peer, a_target, b_peer)
    with pytest.raises(MediaError, match="one media worker"):
        engine.add_listen_route(a, b)
    engine.unbridge(b)
    await engine.wait_ticks(25)
    before = len(b_peer.received)
    await a_peer.stream(build_stream(tone(300.0, 1600, 6000)), a_target)
    await engine.wait_ticks(5)
    heard = decode([p for p in b_peer.packets()[before:]])
    assert len(heard) >= 1600 and np.abs(heard.astype(np.int32)).max() <= 8  # silence: not bridged


async def _hears_others_not_itself(legs: list[tuple[Peer, tuple[str, int], float]]) -> None:
    freqs = [f for _, _, f in legs]
    await asyncio.gather(*(peer.stream(build_stream(tone(f, 8000 * 2, 3000)), t) for peer, t, f in legs))
    for peer, _, own in legs:
        audio = decode(peer.packets())[-12000:-4000].astype(np.float64)
        spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
        power = {f: spectrum[int(round(f * len(audio) / 8000))] for f in freqs}
        assert min(power[f] for f in freqs if f != own) > 30 * power[own], (own, power)


async def test_room_members_hear_each_other_not_themselves(
    engine: WorkerMediaEngine, peers: list[Peer]
) -> None:
    legs = []
    for f in [450.0, 850.0, 1250.0]:
        channel, peer, target = await _leg(engine, peers, "room-7", telephone_event_pt=101)
        engine.join_room(channel, "room-7")
        legs.append((peer, target, f))
    await _hears_others_not_itself(legs)


async def test_a_member_on_another_worker_joins_through_a_trunk(
    engine: WorkerMediaEngine, peers: list[Peer]
) -> None:
    legs, channels = [], []
    for f in [450.0, 850.0, 1250.0]:
        channel, peer, target = await _leg(
            engine, peers, None if f > 1000 else "conf", telephone_event_pt=101
        )
        engine.join_room(channel, "conf")
        legs.append((peer, target, f))
        channels.append(channel)
    assert engine.worker_of(channels[2]) != engine.worker_of(channels[0]) == engine.worker_of(channels[1])
    await _hears_others_not_itself(legs)
    engine.set_muted(channels[2], True)  # muted on the room's worker, through the trunk
    await engine.wait_ticks(25)  # the trunk's jitter buffer and concealment drain
    before = len(legs[0][0].received)
    await legs[2][0].stream(build_stream(tone(1250.0, 4000, 3000)), legs[2][1])
    heard = decode(legs[0][0].packets()[before:])
    assert np.abs(heard.astype(np.int32)).max() <= 8


async def test_dtmf_events_come_back_with_the_parent_channel_id(
    engine: WorkerMediaEngine, peers: list[Peer]
) -> None:
    await _leg(engine, peers)  # channel 1 on worker 0: the next one lands on worker 1 with local id 1
    channel, peer, target = await _leg(engine, peers, telephone_event_pt=101)
    assert engine.worker_of(channel) == 1
    got: list[tuple[int, str, str]] = []
    engine.on_dtmf = lambda ch, digit, source: got.append((ch, digit, source))
    for packet in event_packets(event_code("7"), seq=10) + event_packets(
        event_code("#"), seq=18, timestamp=9600
    ):
        peer.send(packet, target)
        await asyncio.sleep(0.002)
    await engine.wait_ticks(3)
    assert got == [(channel, "7", "rfc4733"), (channel, "#", "rfc4733")]
    await asyncio.wait_for(engine.send_dtmf(channel, "4", duration_ms=60), 5)
    events = [p for p in peer.packets() if p.payload_type == 101]
    assert len(events) == 6 and events[0].marker


async def test_recording_is_written_by_the_worker(
    engine: WorkerMediaEngine, peers: list[Peer], tmp_path: Path
) -> None:
    channel, peer, target = await _leg(engine, peers, telephone_event_pt=101)
    path = tmp_path / "rec" / "caller.wav"
    done = engine.record(channel, path, silence_timeout=0.6)
    audio = np.concatenate([np.zeros(1600, np.int16), tone(500.0, 8000, 4000), np.zeros(8000, np.int16)])
    await peer.stream(build_stream(audio), target)
    result = await asyncio.wait_for(done, 5)
    assert result.ended_by == "silence" and result.path == path
    assert engine.rtcp_stats(channel).packets_lost == 0
    assert abs(result.duration - 1.0) <= 0.06
    with wave.open(str(path)) as w:
        frames = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float64)
    assert abs(np.argmax(np.abs(np.fft.rfft(frames))) * 8000 / len(frames) - 500.0) < 5
    assert engine.jitter_stats(channel).packets >= 100


async def test_errors_raise_in_the_parent(engine: WorkerMediaEngine, peers: list[Peer]) -> None:
    channel, _, _ = await _leg(engine, peers)
    with pytest.raises(ValueError, match="unsupported codec"):
        engine.configure(channel, remote=("127.0.0.1", 9), codec="GSM", payload_type=3)
    with pytest.raises(MediaError, match="not allowed"):
        engine.configure(channel, remote=("192.0.2.1", 9), codec="PCMU", payload_type=0)
    with pytest.raises(MediaError, match="in no room"):
        engine.set_muted(channel, True)
    await engine.close_channel(channel)
    assert engine.channel_count == 0
    with pytest.raises(UnknownChannel):
        engine.play(channel, tone(400.0, 160))


async def test_a_burst_of_commands_and_a_large_prompt_do_not_block(
    engine: WorkerMediaEngine, peers: list[Peer]
) -> None:
    channel, peer, _ = await _leg(engine, peers)
    for _ in range(3000):  # far more than a pipe buffer holds
        engine.configure(channel, remote=peer.addr, codec="PCMU", payload_type=0)
    pcm = np.random.default_rng(9).integers(-8000, 8000, 8000 * 120, dtype=np.int16)  # 1.9 MB
    done = engine.play(channel, pcm)
    payload = await _prompt_heard(peer, 25)
    assert payload == ulaw_encode(pcm)[: len(payload)].tobytes()
    engine.stop_playback(channel)
    await asyncio.wait_for(done, 5)


async def test_a_dead_worker_reports_its_channels_as_timed_out(
    engine: WorkerMediaEngine, peers: list[Peer]
) -> None:
    a, _, _ = await _leg(engine, peers)
    b, _, _ = await _leg(engine, peers)
    timed_out: list[int] = []
    gone = asyncio.Event()

    def on_timeout(channel: int) -> None:
        timed_out.append(channel)
        gone.set()

    engine.on_rtp_timeout = on_timeout
    victim = engine._workers[engine.worker_of(b)].process
    victim.kill()
    await asyncio.wait_for(gone.wait(), 10)
    assert timed_out == [b]
    with pytest.raises(MediaError, match="has ended"):
        engine.play(b, tone(400.0, 800))
    with pytest.raises(MediaError, match="has ended"):  # not one of its spare channels
        await engine.create_channel(near=b)
    assert engine.stats(a).remote[1] > 0  # the other worker carries on
