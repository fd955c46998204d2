"""The media engine over real sockets on 127.0.0.1: RTP out every 20 ms, prompts bit-exact through G.711."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator

import numpy as np
import pytest
from numpy.typing import NDArray

from switch.media.engine import EgressDenied, MediaEngine, UnknownChannel
from switch.media.rtp import RtpPacket
from tests.helpers.ports import free_rtp_range
from voicecodecs.dtmf import digits_to_audio
from voicecodecs.g711 import alaw_encode, ulaw_encode

PORTS = free_rtp_range(200)


def _tone(samples: int, freq: float = 440.0, seed: int = 0) -> NDArray[np.int16]:
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 8000
    x = 8000 * np.sin(2 * np.pi * freq * t) + rng.normal(0, 500, samples)
    return x.astype(np.int16)


@pytest.fixture
async def engine() -> AsyncIterator[MediaEngine]:
    eng = MediaEngine("127.0.0.1", PORTS, egress_allowed=lambda ip: ip.startswith("127."))
    await eng.start()
    yield eng
    await eng.stop()


class Sink:
    """A UDP socket the test binds, receiving what the engine sends."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.addr: tuple[str, int] = self.sock.getsockname()

    async def receive(self, count: int) -> list[tuple[float, RtpPacket]]:
        loop = asyncio.get_running_loop()
        out = []
        for _ in range(count):
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 2048), 5)
            out.append((loop.time(), RtpPacket.parse(data)))
        return out

    def close(self) -> None:
        self.sock.close()


MakeSink = Callable[[], Sink]


@pytest.fixture
def sinks() -> Iterator[MakeSink]:
    made: list[Sink] = []

    def make() -> Sink:
        made.append(Sink())
        return made[-1]

    yield make
    for sink in made:
        sink.close()


async def test_prompt_is_sent_as_pcmu_every_20_ms(engine: MediaEngine, sinks: MakeSink) -> None:
    sink = sinks()
    channel = await engine.create_channel()
    port = engine.local_port(channel)
    assert port % 2 == 0 and PORTS[0] <= port <= PORTS[1]
    engine.configure(channel, remote=sink.addr, codec="PCMU", payload_type=0)
    pcm = _tone(8000)
    done = engine.play(channel, pcm)
    got = await sink.receive(60)
    packets = [p for _, p in got]
    assert [p.payload_type for p in packets] == [0] * 60
    assert packets[0].marker and not any(p.marker for p in packets[1:])
    assert {p.ssrc for p in packets} == {packets[0].ssrc}
    assert all(len(p.payload) == 160 for p in packets)
    assert np.all(np.diff([p.sequence_number for p in packets]) % 65536 == 1)
    assert np.all(np.diff([p.timestamp for p in packets]) % 2**32 == 160)
    interval = float(np.mean(np.diff([t for t, _ in got[:51]])))
    assert 0.018 < interval < 0.022
    payload = b"".join(p.payload for p in packets)
    assert payload[:8000] == ulaw_encode(pcm).tobytes()
    assert payload[8000:] == b"\xff" * (len(payload) - 8000)  # silence once the prompt has ended
    await asyncio.wait_for(done, 1)
    stats = engine.stats(channel)
    assert stats.packets_sent >= 60 and stats.octets_sent == 160 * stats.packets_sent


async def test_channels_share_one_tick(engine: MediaEngine, sinks: MakeSink) -> None:
    outs = [sinks() for _ in range(3)]
    channels = [await engine.create_channel() for _ in outs]
    codecs = [("PCMU", 0), ("PCMA", 8), ("PCMU", 0)]
    prompts = [_tone(1600, 300.0 + 200 * i, seed=i) for i in range(3)]
    for channel, sink, (codec, pt) in zip(channels, outs, codecs, strict=True):
        engine.configure(channel, remote=sink.addr, codec=codec, payload_type=pt)
    ticks_before = engine.ticks_run
    futures = [engine.play(c, p) for c, p in zip(channels, prompts, strict=True)]
    results = [await sink.receive(12) for sink in outs]
    await asyncio.wait_for(asyncio.gather(*futures), 1)
    encoders = {"PCMU": ulaw_encode, "PCMA": alaw_encode}
    for got, prompt, (codec, pt) in zip(results, prompts, codecs, strict=True):
        packets = [p for _, p in got]
        assert {p.payload_type for p in packets} == {pt}
        payload = b"".join(p.payload for p in packets[:10])
        assert payload == encoders[codec](prompt).tobytes()
    assert len({got[0][1].ssrc for got in results}) == 3
    # Three channels, one clock: the ticks that ran are the packets of one channel, not three times that.
    sent = [engine.stats(c).packets_sent for c in channels]
    assert sent[0] == sent[1] == sent[2]
    assert engine.ticks_run - ticks_before <= sent[0] + 1


async def test_hold_stops_sending_and_resume_marks_the_first_packet(
    engine: MediaEngine, sinks: Callable[[], Sink]
) -> None:
    sink = sinks()
    channel = await engine.create_channel()
    engine.configure(channel, remote=sink.addr, codec="PCMU", payload_type=0)
    before = [p for _, p in await sink.receive(5)]
    engine.configure(channel, remote=sink.addr, codec="PCMU", payload_type=0, direction="sendonly")
    held_at = engine.stats(channel).packets_sent
    # Drain what was in flight, then wait 10 ticks: nothing is sent while held.
    await engine.wait_ticks(10)
    assert engine.stats(channel).packets_sent == held_at
    while True:
        try:
            sink.sock.recv(2048)
        except BlockingIOError:
            break
    engine.configure(channel, remote=sink.addr, codec="PCMU", payload_type=0, direction="sendrecv")
    after = [p for _, p in await sink.receive(3)]
    assert after[0].marker and not after[1].marker
    assert after[0].ssrc == before[0].ssrc
    assert (after[0].sequence_number - before[0].sequence_number) % 65536 == held_at - 0
    assert (after[0].timestamp - before[-1].timestamp) % 2**32 > 10 * 160  # time went on while held


async def test_second_play_replaces_the_first(engine: MediaEngine, sinks: MakeSink) -> None:
    sink = sinks()
    channel = await engine.create_channel()
    engine.configure(channel, remote=sink.addr, codec="PCMU", payload_type=0)
    first = engine.play(channel, _tone(8000, seed=1), loop=0)
    await sink.receive(3)
    second_pcm = _tone(800, 1000.0, seed=2)
    second = engine.play(channel, second_pcm)
    assert first.done()
    packets = [p for _, p in await sink.receive(10)]
    payload = b"".join(p.payload for p in packets)
    expected = ulaw_encode(second_pcm).tobytes()
    assert expected in payload
    await asyncio.wait_for(second, 1)


async def test_loop_forever_until_stopped(engine: MediaEngine, sinks: MakeSink) -> None:
    sink = sinks()
    channel = await engine.create_channel()
    engine.configure(channel, remote=sink.addr, codec="PCMA", payload_type=8)
    pcm = _tone(100, 2000.0)  # shorter than a frame: repeats inside each packet
    done = engine.play(channel, pcm, loop=0)
    packets = [p for _, p in await sink.receive(10)]
    assert not done.done()
    payload = b"".join(p.payload for p in packets)
    assert payload == alaw_encode(np.tile(pcm, 16)).tobytes()
    engine.stop_playback(channel)
    assert done.done()


async def test_received_rtp_is_counted_and_kept(engine: MediaEngine) -> None:
    channel = await engine.create_channel()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    engine.configure(channel, remote=sender.getsockname(), codec="PCMU", payload_type=0)
    target = ("127.0.0.1", engine.local_port(channel))
    for seq in range(5):
        sender.sendto(
            RtpPacket(
                payload_type=0, sequence_number=seq, timestamp=160 * seq, payload=bytes([seq]) * 160
            ).serialize(),
            target,
        )
    sender.sendto(b"\x00" * 20, target)  # version 0: invalid
    loop = asyncio.get_running_loop()
    for _ in range(100):
        if engine.stats(channel).packets_received + engine.stats(channel).invalid_received >= 6:
            break
        await asyncio.sleep(0.01)
    stats = engine.stats(channel)
    assert (stats.packets_received, stats.octets_received, stats.invalid_received) == (5, 800, 1)
    assert engine.jitter_stats(channel).packets == 5
    assert loop.is_running()
    sender.close()


async def test_rtp_timeout_fires_once_for_a_silent_channel(sinks: MakeSink) -> None:
    engine = MediaEngine("127.0.0.1", PORTS, rtp_timeout=0.1)
    fired: asyncio.Queue[int] = asyncio.Queue()
    engine.on_rtp_timeout = fired.put_nowait
    await engine.start()
    sink = sinks()
    quiet = await engine.create_channel()
    held = await engine.create_channel()
    engine.configure(quiet, remote=sink.addr, codec="PCMU", payload_type=0)
    engine.configure(held, remote=sink.addr, codec="PCMU", payload_type=0, direction="inactive")
    assert await asyncio.wait_for(fired.get(), 5) == quiet
    await engine.wait_ticks(30)
    assert fired.empty()
    await engine.stop()


async def test_configuration_errors(engine: MediaEngine) -> None:
    channel = await engine.create_channel()
    with pytest.raises(EgressDenied, match="RTP to 192.0.2.1 is not allowed"):
        engine.configure(channel, remote=("192.0.2.1", 4000), codec="PCMU", payload_type=0)
    with pytest.raises(ValueError, match="unsupported codec 'G729'"):
        engine.configure(channel, remote=("127.0.0.1", 4000), codec="G729", payload_type=18)
    with pytest.raises(ValueError, match="unsupported ptime 25"):
        engine.configure(channel, remote=("127.0.0.1", 4000), codec="PCMU", payload_type=0, ptime=25)
    # On hold by address: nothing is sent, so nothing is checked against the egress rule.
    engine.configure(channel, remote=("0.0.0.0", 4000), codec="PCMU", payload_type=0)
    await engine.close_channel(channel)
    with pytest.raises(UnknownChannel):
        engine.local_port(channel)


async def test_closing_a_channel_keeps_the_others_running(
    engine: MediaEngine, sinks: Callable[[], Sink]
) -> None:
    outs = [sinks() for _ in range(3)]
    channels = [await engine.create_channel() for _ in outs]
    ports = {engine.local_port(c) for c in channels}
    assert len(ports) == 3
    for channel, sink in zip(channels, outs, strict=True):
        engine.configure(channel, remote=sink.addr, codec="PCMU", payload_type=0)
    pcm = _tone(4000, seed=7)
    done = engine.play(channels[2], pcm)
    await engine.close_channel(channels[0])  # channels[2] moves into the freed slot
    assert engine.channel_count == 2
    payload = b"".join(p.payload for _, p in await outs[2].receive(25))
    assert payload[:4000] == ulaw_encode(pcm).tobytes()
    await asyncio.wait_for(done, 1)


async def test_concurrent_creates_and_closes_keep_channels_and_sockets_together(engine: MediaEngine) -> None:
    """Found by the load harness: creates awaiting their sockets interleaved with closes, and a channel ended
    up with another one's socket (IndexError in close_channel, leaked ports)."""
    first = await asyncio.gather(*(engine.create_channel() for _ in range(12)))
    created = asyncio.gather(*(engine.create_channel() for _ in range(12)))
    await asyncio.gather(*(engine.close_channel(channel) for channel in first[::2]))
    second = await created
    live = set(first[1::2]) | set(second)
    assert engine.channel_count == len(live) == 18
    for channel in live:
        slot = engine._slots[channel]
        transport = engine._transports[slot]
        assert isinstance(transport, asyncio.BaseTransport)  # not the shared port: a socket per channel
        assert transport.get_extra_info("sockname")[1] == engine.local_port(channel)
        assert engine._protocols[slot].channel == channel
    await asyncio.gather(*(engine.close_channel(channel) for channel in live))
    assert engine.channel_count == 0


async def test_a_channel_without_rtp_costs_no_decode_nor_inband_detection(
    engine: MediaEngine, sinks: MakeSink
) -> None:
    sink = sinks()
    channel = await engine.create_channel()
    engine.configure(channel, remote=sink.addr, codec="PCMU", payload_type=0)  # in-band DTMF on
    await engine.wait_ticks(3)
    assert engine._pipeline.inband.active == 1
    assert not engine._pipeline.decoded  # nothing received: nothing to decode or listen to
    packet = RtpPacket(payload_type=0, sequence_number=1, timestamp=0, ssrc=7, payload=bytes(160))
    sink.sock.sendto(packet.serialize(), ("127.0.0.1", engine.local_port(channel)))
    await engine.wait_ticks(3)
    assert engine.stats(channel).packets_received == 1
    assert engine._pipeline.decoded  # now the detector listens, so the tick decodes


async def test_a_channel_configured_while_the_engine_runs_gets_inband_detection(
    engine: MediaEngine, sinks: MakeSink
) -> None:
    """The tick's plan is rebuilt on configure: a later channel's in-band detector is live at once."""
    first = await engine.create_channel()
    engine.configure(first, remote=sinks().addr, codec="PCMU", payload_type=0)
    await engine.wait_ticks(3)  # the plan is built and clean
    got: list[tuple[int, str, str]] = []
    engine.on_dtmf = lambda channel, digit, source: got.append((channel, digit, source))
    sink = sinks()
    channel = await engine.create_channel()
    engine.configure(channel, remote=sink.addr, codec="PCMU", payload_type=0)
    audio = np.concatenate([np.zeros(800, np.int16), digits_to_audio("73"), np.zeros(1600, np.int16)])
    payload = ulaw_encode(audio)
    target = ("127.0.0.1", engine.local_port(channel))
    for i in range(len(payload) // 160):
        packet = RtpPacket(payload_type=0, sequence_number=i, timestamp=160 * i, ssrc=9)
        packet.payload = payload[160 * i : 160 * (i + 1)].tobytes()
        sink.sock.sendto(packet.serialize(), target)
        await asyncio.sleep(0.02)
    await engine.wait_ticks(10)
    assert got == [(channel, "7", "inband"), (channel, "3", "inband")]
