"""A shared RTP port (``MediaEngine(shared_port=True)``) and a peer that carries several calls from one
address (a gateway, an SBC): a second stream from the address of a call that is streaming belongs to
another call (one not configured yet), never to the streaming one; a new SSRC after the old stream has
stopped is the same call's new stream (a phone that restarted its RTP) and is taken."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from switch.media.engine import MediaEngine
from tests.helpers.ports import free_rtp_range
from tests.media.rtp_peer import build_stream, tone


@pytest.fixture
async def engine() -> AsyncIterator[MediaEngine]:
    eng = MediaEngine("127.0.0.1", free_rtp_range(20), shared_port=True)
    await eng.start()
    yield eng
    await eng.stop()


async def test_a_second_stream_from_a_streaming_peer_is_not_taken_as_its_new_stream(
    engine: MediaEngine,
) -> None:
    gateway = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gateway.bind(("127.0.0.1", 0))
    try:
        a = await engine.create_channel()
        engine.configure(a, remote=gateway.getsockname(), codec="PCMU", payload_type=0)
        target = ("127.0.0.1", engine.local_port(a))
        call_a = build_stream(tone(400.0, 160 * 20), ssrc=0xA)
        call_b = build_stream(tone(900.0, 160 * 10), ssrc=0xB)  # a call whose channel does not exist yet
        for index, packet in enumerate(call_a):
            gateway.sendto(packet, target)
            if 5 <= index < 15:
                gateway.sendto(call_b[index - 5], target)
            await asyncio.sleep(0.02)
        await engine.wait_ticks(3)
        stats = engine.stats(a)
        assert stats.packets_received == 20  # call A's stream only, none of call B's
        assert engine.shared is not None and engine.shared.unclaimed == 10
        # The stream stops; after a pause a new SSRC from the same address is call A's new stream.
        await engine.wait_ticks(5)
        restarted = build_stream(tone(400.0, 160 * 5), ssrc=0xC)
        for packet in restarted:
            gateway.sendto(packet, target)
            await asyncio.sleep(0.02)
        await engine.wait_ticks(3)
        assert engine.stats(a).packets_received == 25
        assert engine.shared.unclaimed == 10
    finally:
        gateway.close()
