"""The RTP timeout is suspended while the peer holds the call (sendonly, inactive, 0.0.0.0, on_hold) and
runs again from the re-INVITE that resumes it. Real RTP on loopback; time in engine ticks, no sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from switch.media.engine import MediaEngine
from tests.helpers.ports import free_rtp_range
from tests.media.rtp_peer import Peer, build_stream, tone

TIMEOUT = 0.2  # 10 ticks


@pytest.fixture
async def engine() -> AsyncIterator[MediaEngine]:
    eng = MediaEngine("127.0.0.1", free_rtp_range(20), rtp_timeout=TIMEOUT)
    await eng.start()
    yield eng
    await eng.stop()


@pytest.mark.parametrize(
    "hold",
    [
        {"direction": "sendonly"},
        {"direction": "inactive"},
        {"on_hold": True},
        {"remote": ("0.0.0.0", 0)},
    ],
    ids=["sendonly", "inactive", "on_hold", "zero-address"],
)
async def test_timeout_suspended_during_hold_and_restarted_on_resume(
    engine: MediaEngine, hold: dict[str, object]
) -> None:
    fired: list[tuple[int, int]] = []
    engine.on_rtp_timeout = lambda channel: fired.append((channel, engine.tick_index))
    peer = await Peer().open()
    try:
        channel = await engine.create_channel()
        engine.configure(channel, remote=peer.addr, codec="PCMU", payload_type=0)
        await peer.stream(build_stream(tone(440, 8 * 200)), ("127.0.0.1", engine.local_port(channel)))
        await engine.wait_ticks(2)
        assert engine.stats(channel).packets_received == 10
        options: dict[str, object] = {"remote": peer.addr, **hold}
        engine.configure(channel, codec="PCMU", payload_type=0, **options)  # type: ignore[arg-type]
        held_at = engine.tick_index
        await engine.wait_ticks(50)  # 1 s of silence, five times the timeout
        assert fired == [], f"timed out during hold ({hold})"
        engine.configure(channel, remote=peer.addr, codec="PCMU", payload_type=0)
        resumed_at = engine.tick_index
        await engine.wait_ticks(60)
        assert [c for c, _ in fired] == [channel]
        # It fired after the timeout counted from the resume, not from the last packet before the hold.
        assert fired[0][1] - resumed_at >= TIMEOUT / 0.02
        assert fired[0][1] - held_at > 50
    finally:
        peer.close()


async def test_timeout_fires_for_a_silent_sendrecv_peer(engine: MediaEngine) -> None:
    fired: asyncio.Queue[int] = asyncio.Queue()
    engine.on_rtp_timeout = fired.put_nowait
    peer = await Peer().open()
    try:
        channel = await engine.create_channel()
        engine.configure(channel, remote=peer.addr, codec="PCMU", payload_type=0)
        assert await asyncio.wait_for(fired.get(), 5) == channel
    finally:
        peer.close()
