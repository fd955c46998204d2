"""The channel table without sockets: gathering, looping, ending, slot moves and pool compaction."""

from __future__ import annotations

import random

import numpy as np

from switch.media.channels import FRAME, ChannelTable
from voicecodecs.g711 import alaw_encode, ulaw_encode


def _pcm(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-20000, 20000, n).astype(np.int16)


def _table(count: int, codec: str = "PCMU") -> ChannelTable:
    table = ChannelTable(capacity=2)  # grows while adding
    rng = random.Random(5)
    for _ in range(count):
        slot = table.add(rng)
        table.configure(slot, codec=codec, payload_type=0, sending=True, expect_rx=True, marker=True)
    return table


def test_prompt_plays_loop_times_then_silence_and_reports_the_end() -> None:
    table = _table(3)
    pcm = _pcm(400, 1)  # 2.5 frames
    table.play(1, pcm, 2)
    out, ended_at = [], []
    for tick in range(7):
        ended = table.render()
        out.append(table.packets["payload"][1].copy())
        if ended:
            ended_at.append((tick, ended))
    assert np.array_equal(np.concatenate(out)[:800], ulaw_encode(np.tile(pcm, 2)))
    assert np.all(np.concatenate(out)[800:] == 0xFF)
    assert ended_at == [(4, [1])]
    assert np.all(table.packets["payload"][[0, 2]] == 0xFF)


def test_headers_advance_and_marker_clears() -> None:
    table = _table(2, codec="PCMA")
    seq0, ts0 = table.seq[:2].tolist(), table.timestamp[:2].tolist()
    table.render()
    assert list(table.packets["mpt"][:2]) == [0x80, 0x80]
    table.sending[1] = False
    table.render(ticks=3)
    assert list(table.packets["mpt"][:2]) == [0, 0]
    assert list(table.packets["seq"][:2]) == [(seq0[0] + 1) % 65536, (seq0[1] + 1) % 65536]
    assert list(table.seq[:2]) == [(seq0[0] + 2) % 65536, (seq0[1] + 1) % 65536]
    assert list(table.timestamp[:2]) == [(int(t) + 4 * FRAME) % 2**32 for t in ts0]
    assert list(table.tx_packets[:2]) == [2, 1]
    assert table.packets[0].tobytes()[:2] == b"\x80\x00"
    assert np.array_equal(table.packets["payload"][0], alaw_encode(np.zeros(FRAME, np.int16)))


def test_removing_a_slot_moves_the_last_channel_with_its_state() -> None:
    table = _table(3)
    pcm = _pcm(1000, 2)
    table.play(2, pcm, 1)
    table.render()
    ssrc = int(table.packets["ssrc"][2])
    assert table.remove(0) == 2
    assert table.n == 2 and int(table.packets["ssrc"][0]) == ssrc
    table.render()
    assert np.array_equal(table.packets["payload"][0], ulaw_encode(pcm[FRAME : 2 * FRAME]))


def test_pool_stores_a_shared_prompt_once_and_compacts() -> None:
    table = _table(4)
    shared = _pcm(2000, 3)
    for slot in range(3):
        table.play(slot, shared, 0)
    used = table.pool._end
    table.play(3, _pcm(30000, 4), 1)  # forces the pool to grow
    for slot in range(3):
        table.stop(slot)
    for i in range(4):
        table.play(i % 3, _pcm(20000, 10 + i), 1)  # forces a compaction; slot 3 keeps its offset valid
    table.render()
    assert used == 2 * FRAME + 2000 + FRAME
    assert np.array_equal(table.packets["payload"][3], ulaw_encode(_pcm(30000, 4)[:FRAME]))
    assert np.array_equal(table.packets["payload"][0], ulaw_encode(_pcm(20000, 13)[:FRAME]))
