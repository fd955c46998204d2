"""The in-process engine's counters (what /metrics shows): RTP totals over live and closed channels, trunk
channels left out, the tick histogram; and an engine holding only unconfigured channels does not tick."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from switch.media.engine import MediaEngine
from tests.helpers.ports import free_rtp_range
from tests.media.rtp_peer import Peer, build_stream, tone


@pytest.fixture
async def engine() -> AsyncIterator[MediaEngine]:
    eng = MediaEngine("127.0.0.1", free_rtp_range(20), egress_allowed=lambda ip: ip.startswith("127."))
    await eng.start()
    yield eng
    await eng.stop()


async def _until(condition: object, engine: MediaEngine) -> None:
    for _ in range(100):
        if callable(condition) and condition():
            return
        await engine.wait_ticks(1)


async def test_totals_count_live_and_closed_channels_but_not_private_ones(engine: MediaEngine) -> None:
    peer, trunk_peer = await Peer().open(), await Peer().open()
    try:
        a = await engine.create_channel()
        trunk = await engine.create_channel(private=True)
        for channel, remote in ((a, peer.addr), (trunk, trunk_peer.addr)):
            engine.configure(channel, remote=remote, codec="PCMU", payload_type=0)
        packets = build_stream(tone(300.0, 160 * 30))
        # Two packets never sent (a sequence gap), one sent twice.
        for packet in packets[:10] + packets[12:20] + packets[19:30]:
            peer.send(packet, ("127.0.0.1", engine.local_port(a)))
        for packet in packets[:10]:
            trunk_peer.send(packet, ("127.0.0.1", engine.local_port(trunk)))
        await _until(lambda: engine.counters().packets_received == 29, engine)
        live = engine.counters()
        assert live.packets_received == 29  # the trunk's 10 are not the switch's traffic
        assert live.octets_received == 29 * 160
        assert live.lost == 1  # RFC 3550 A.3: expected 30, received 29 (a duplicate counts as received)
        assert live.duplicate == 1
        assert live.receiving == 1 and live.jitter_seconds >= 0.0
        await _until(lambda: engine.stats(a).packets_sent >= 5, engine)
        sent = engine.stats(a).packets_sent
        await engine.close_channel(a)
        closed = engine.counters()
        assert (closed.packets_received, closed.lost, closed.duplicate) == (29, 1, 1)
        assert sent <= closed.packets_sent <= sent + 1  # the tick may have sent one more before the close
        assert closed.receiving == 0
        assert sum(closed.tick_counts) == engine.ticks_run
        assert 0.0 < closed.tick_seconds < engine.ticks_run * 0.020
    finally:
        peer.close()
        trunk_peer.close()


async def test_an_engine_of_unconfigured_channels_does_not_tick(engine: MediaEngine) -> None:
    spare = await engine.create_channel()
    before, index = engine.ticks_run, engine.tick_index
    await engine.wait_ticks(5)
    assert engine.tick_index >= index + 5
    assert engine.ticks_run == before
    engine.play(spare, tone(400.0, 800))  # a prompt to an unconfigured channel still plays out
    await engine.wait_ticks(3)
    assert engine.ticks_run > before
    await asyncio.sleep(0)
