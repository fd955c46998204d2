"""The jitter buffer without sockets: arrival times are passed in, frames pulled tick by tick."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from switch.media.jitter import FRAME, MIN_DELAY, START_DELAY, JitterBuffer, PutResult

TS0 = 2**32 - 1000  # wraps during every test


def _payload(index: int, size: int = FRAME) -> bytes:
    return bytes([(index * 7 + k) % 251 for k in range(size)])


def _pull(jb: JitterBuffer, n: int = 1) -> tuple[NDArray[np.uint8], NDArray[np.bool_], NDArray[np.bool_]]:
    out = np.zeros((n, FRAME), np.uint8)
    present = np.zeros((n, FRAME), np.bool_)
    lost = jb.pull(n, out, present)
    return out, present, lost


def _start(jb: JitterBuffer, slot: int = 0) -> None:
    jb.clear(slot)


def _delay(jb: JitterBuffer) -> None:
    """Pull the frames of the start delay (before the first packet's audio)."""
    for _ in range(START_DELAY // FRAME):
        _pull(jb)


def test_in_order_packets_come_out_after_the_target_delay_in_order() -> None:
    jb = JitterBuffer(1)
    _start(jb)
    frames = []
    for k in range(6):
        assert jb.put(0, (TS0 + k * FRAME) % 2**32, _payload(k), now=k * 0.02) == PutResult.STORED
        out, present, lost = _pull(jb)
        frames.append((out[0].tobytes(), bool(present[0].all()), bool(lost[0])))
    # The play point starts START_DELAY (two frames) behind the first packet: two frames of nothing first.
    assert frames[:2] == [(bytes(FRAME), False, False)] * 2
    assert [f[0] for f in frames[2:]] == [_payload(k) for k in range(4)]
    assert all(f[1] and not f[2] for f in frames[2:])
    assert jb.stats(0).packets == 6 and jb.stats(0).late == 0


def test_reordered_packets_are_played_in_timestamp_order() -> None:
    jb = JitterBuffer(1)
    _start(jb)
    order = [0, 2, 1, 3, 5, 4]
    for i, k in enumerate(order):
        jb.put(0, (TS0 + k * FRAME) % 2**32, _payload(k), now=i * 0.02)
    _delay(jb)
    got = [_pull(jb)[0][0].tobytes() for _ in range(6)]
    assert got == [_payload(k) for k in range(6)]


def test_duplicates_and_late_packets_are_dropped_and_counted() -> None:
    jb = JitterBuffer(1)
    _start(jb)
    jb.put(0, TS0, _payload(0), 0.0)
    assert jb.put(0, TS0, _payload(9), 0.001) == PutResult.DUPLICATE
    jb.put(0, (TS0 + FRAME) % 2**32, _payload(1), 0.02)
    for _ in range(3):
        _pull(jb)
    assert jb.put(0, TS0, _payload(0), 0.08) == PutResult.LATE
    stats = jb.stats(0)
    assert (stats.duplicate, stats.late, stats.packets) == (1, 1, 2)


def test_packets_of_30_ms_are_cut_into_20_ms_frames() -> None:
    jb = JitterBuffer(1)
    _start(jb)
    stream = bytes(range(256)) * 8  # 2048 bytes
    for k in range(6):
        jb.put(0, (TS0 + 240 * k) % 2**32, stream[240 * k : 240 * (k + 1)], now=k * 0.03)
    _delay(jb)
    got = b"".join(_pull(jb)[0][0].tobytes() for _ in range(9))
    assert got == stream[: 9 * FRAME]


def test_a_missing_packet_is_reported_lost_once_later_audio_is_buffered() -> None:
    jb = JitterBuffer(1)
    _start(jb)
    for k in (0, 1, 3, 4):
        jb.put(0, (TS0 + k * FRAME) % 2**32, _payload(k), now=k * 0.02)
    _delay(jb)
    lost = [bool(_pull(jb)[2][0]) for _ in range(5)]
    assert lost == [False, False, True, False, False]
    assert jb.stats(0).concealed_frames == 1


def test_a_timestamp_jump_resynchronises() -> None:
    jb = JitterBuffer(1)
    _start(jb)
    jb.put(0, 1000, _payload(0), 0.0)
    assert jb.put(0, 1000 + 80000, _payload(1), 0.02) == PutResult.RESYNC
    _delay(jb)
    assert _pull(jb)[0][0].tobytes() == _payload(1)
    assert jb.stats(0).resyncs == 1


def test_target_delay_grows_with_jitter_and_stays_minimal_without() -> None:
    rng = np.random.default_rng(3)
    jb = JitterBuffer(2)
    _start(jb, 0)
    _start(jb, 1)
    for k in range(200):
        ts = (TS0 + k * FRAME) % 2**32
        jb.put(0, ts, _payload(k), now=k * 0.02)
        jb.put(1, ts, _payload(k), now=k * 0.02 + abs(rng.normal(0, 0.03)))
        _pull(jb, 2)
    steady, jittery = jb.stats(0), jb.stats(1)
    assert steady.target_ms == MIN_DELAY / 8
    assert jittery.jitter_ms > 10 and jittery.target_ms >= 60
    assert jittery.target_ms <= 200


def test_an_underrun_holds_the_play_point_so_late_audio_still_plays() -> None:
    jb = JitterBuffer(1)
    _start(jb)
    jb.put(0, TS0, _payload(0), 0.0)
    _delay(jb)
    _pull(jb)  # packet 0 played; nothing buffered now
    _pull(jb)  # underrun: held
    jb.put(0, (TS0 + FRAME) % 2**32, _payload(1), 0.07)  # 50 ms late but not dropped
    assert _pull(jb)[0][0].tobytes() == _payload(1)
    assert jb.stats(0).late == 0


def test_slots_move_with_their_state() -> None:
    jb = JitterBuffer(2)
    _start(jb, 0)
    _start(jb, 1)
    jb.put(1, 5000, _payload(4), 0.0)
    jb.move(1, 0)
    _delay(jb)
    assert _pull(jb, 1)[0][0].tobytes() == _payload(4)


def test_ticks_before_the_first_packet_take_nothing_and_keep_the_start_delay() -> None:
    jb = JitterBuffer(4)
    for _ in range(5):
        out, present, lost = _pull(jb, 4)
        assert not lost.any() and not present.any() and not jb.complete.any()
    jb.put(2, TS0, _payload(0), 0.0)
    assert int(jb.target[2]) == START_DELAY
    assert int(jb.play[2]) == (TS0 - START_DELAY) & 0xFFFFFFFF
    _pull(jb, 4)
    _pull(jb, 4)  # the 40 ms of start delay
    out, present, lost = _pull(jb, 4)
    assert out[2].tobytes() == _payload(0) and present[2].all() and jb.complete.tolist() == [0, 0, 1, 0]


def test_put_frames_does_what_put_does_packet_by_packet() -> None:
    """The shared port's batched put against the per-packet one on the same packets: in order, reordered,
    duplicated, late, round the ring's end and across the 32-bit timestamp wrap."""
    from switch.media.jitter import FRAME as F
    from switch.media.jitter import JitterBuffer as JB

    rng = np.random.default_rng(7)
    slots = 6
    one, many = JB(slots), JB(slots)
    starts = [0, 2**32 - 5 * F, 12345 * 80, 7 * 80, 2**31, 40 * 80]
    sent = [0] * slots
    out_a, out_b = np.zeros((slots, F), np.uint8), np.zeros((slots, F), np.uint8)
    present = np.zeros((slots, F), np.bool_)
    for tick in range(120):
        now = tick * 0.02 + float(rng.uniform(0, 0.01))
        batch: list[tuple[int, int, bytes]] = []
        for slot in range(slots):
            k = sent[slot] + int(rng.choice([0, 1, 1, 1, -3, 2]))  # repeats, losses, late packets
            sent[slot] = max(sent[slot], k)
            ts = (starts[slot] + F * k) & 0xFFFFFFFF
            batch.append((slot, ts, rng.integers(0, 256, F, dtype=np.uint8).tobytes()))
        for slot, ts, payload in batch:
            one.put(slot, ts, payload, now)
        rows = [b for b in batch if many.started[b[0]]]
        for slot, ts, payload in batch:
            if not many.started[slot]:  # a stream's first packet is the per-packet path's
                many.put(slot, ts, payload, now)
        order = np.array([b[0] for b in rows], np.intp)
        if order.size:
            taken = many.put_frames(
                order,
                np.array([b[1] for b in rows], np.int64),
                np.frombuffer(b"".join(b[2] for b in rows), np.uint8).reshape(-1, F),
                now,
            )
            for (slot, ts, payload), ok in zip(rows, taken.tolist(), strict=True):
                if not ok:
                    many.put(slot, ts, payload, now)
        lost_a = one.pull(slots, out_a, present)
        lost_b = many.pull(slots, out_b, present)
        assert np.array_equal(lost_a, lost_b) and np.array_equal(out_a, out_b), tick
    for name in ("packets", "late", "duplicate", "concealed", "resyncs", "newest", "play", "target"):
        assert np.array_equal(getattr(one, name), getattr(many, name)), name
    assert np.allclose(one.jitter, many.jitter)
    assert many.late.sum() > 0 and many.duplicate.sum() > 0


def _frames_of_whole_packets(jb: JitterBuffer, first: int, ticks: int, burst: int) -> list[bytes]:
    """Feed 20 ms packets from ``first`` (``burst`` of them at once, then one a tick) and return what the
    ticks took, skipping the frames that were not complete."""
    for k in range(burst):
        jb.put(0, (TS0 + (first + k) * FRAME) % 2**32, _payload(first + k), now=0.0)
    frames = []
    for tick in range(ticks):
        k = first + burst + tick
        jb.put(0, (TS0 + k * FRAME) % 2**32, _payload(k), now=(burst + tick) * 0.02)
        out, present, _ = _pull(jb)
        if present[0].all():
            frames.append(out[0].tobytes())
    return frames


def test_shrinking_an_excess_keeps_each_20_ms_packet_one_frame() -> None:
    """A burst leaves 200 ms more than the target buffered; the buffer shrinks it, but only by whole
    frames, so every frame a tick takes is one packet's payload untouched (what a pass-through bridge
    forwards), never the second half of one packet and the first half of the next."""
    jb = JitterBuffer(1)
    _start(jb)
    frames = _frames_of_whole_packets(jb, 0, 250, burst=10)
    packets = {_payload(k) for k in range(270)}
    assert len(frames) >= 200
    assert [f for f in frames if f not in packets] == []
    assert jb.delay(0) <= int(jb.target[0]) + 2 * FRAME  # the excess is gone
    assert jb.stats(0).late == 0 and jb.stats(0).concealed_frames == 0


def test_a_new_stream_starts_on_a_frame_boundary_whatever_the_target() -> None:
    """A new SSRC restarts the stream behind its first packet by the target rounded up to whole frames:
    with a target of 50 ms the play point starts 60 ms behind, so each 20 ms packet stays one frame."""
    jb = JitterBuffer(1)
    _start(jb)
    jb.put(0, 1000, _payload(0), 0.0)
    jb.target[0] = 400  # what jitter left (a whole number of 10 ms slots, not of frames)
    jb.reset_stream(0)
    frames = _frames_of_whole_packets(jb, 5, 20, burst=1)
    assert int(jb.origin[0]) == (TS0 + 5 * FRAME) % 2**32
    assert ((int(jb.play[0]) - int(jb.origin[0])) & 0xFFFFFFFF) % FRAME == 0
    assert frames[:3] == [_payload(5), _payload(6), _payload(7)]
    assert len(frames) >= 16


def test_packets_of_10_ms_shrink_an_excess_10_ms_at_a_time() -> None:
    jb = JitterBuffer(1)
    _start(jb)
    half = FRAME // 2
    stream = bytes(range(256)) * 80  # 256 packets
    for k in range(20):  # 200 ms at once
        jb.put(0, (TS0 + half * k) % 2**32, stream[half * k : half * (k + 1)], now=0.0)
    got = []
    levels = []
    for tick in range(100):
        for j in (0, 1):
            k = 20 + 2 * tick + j
            jb.put(0, (TS0 + half * k) % 2**32, stream[half * k : half * (k + 1)], now=0.4 + tick * 0.02)
        levels.append(jb.delay(0))
        out, present, _ = _pull(jb)
        if present[0].all():
            got.append(out[0].tobytes())
    steps = {a - b for a, b in zip(levels, levels[1:], strict=False)}
    assert steps == {0, half}  # the level only ever drops by 10 ms
    assert levels[-1] < levels[0]
    assert len(got) >= 95 and all(frame in stream for frame in got)  # the start delay aside
