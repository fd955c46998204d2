"""A small media load run in the suite: 20 bridged calls (`<Dial><Sip>`) with RTP on all 40 legs for 3 s.

The harness's own caller and callee set the calls up through a real switch process; the generator process
sends one PCMU packet per leg every 20 ms and counts, per leg, the packets that come back out of the
partner leg (its own packets carry a marker byte the bridge passes through). Every call must be set up,
every leg must carry the partner's audio, and every call must be hung up both ways. No timing is asserted.
"""

from __future__ import annotations

import multiprocessing
import socket
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from bench.load.media import media_run
from bench.load.mediagen import BIN_MS, MARKER, _Legs, burst_stats, generator_main

CALLS = 20
SECONDS = 3.0
LOSS_BOUND = 0.005
"""Share of packets the switch may lose: a tick skipped because the 2 shared cores descheduled the switch
drops that tick's frames (a real loss the harness reports; the suite must not fail on a busy machine)."""


@pytest.mark.e2e
def test_20_bridged_calls_carry_every_stream_both_ways(tmp_path: Path) -> None:
    result = media_run(calls=CALLS, seconds=SECONDS, base=tmp_path)
    details = f"{result.as_dict()}"
    assert result.established == CALLS, details
    assert result.setup_failed == 0, details
    ticks = result.generator_ticks
    assert ticks >= SECONDS / 0.020 - 2, details
    assert result.packets_sent == 2 * CALLS * ticks, details
    assert result.legs_silent == 0, details
    # The generator's packets came out of the partner leg, byte for byte marked.
    assert result.generator_packets_through >= (1 - LOSS_BOUND) * result.packets_sent, details
    assert result.loss <= LOSS_BOUND * result.packets_sent, details
    assert result.generator_packets_through + result.loss == result.packets_sent, details
    assert result.lost_per_pair_max < ticks // 10, details
    assert result.jitter_p99_ms_median is not None, details  # intervals were measured on the streams
    assert result.hangups_ok == CALLS, details  # every caller BYE got 200
    assert result.callee_byes == CALLS, details  # the switch hung every Dial leg up
    assert result.switch_cpu_s > 0.0, details


@pytest.mark.e2e
def test_bridged_calls_on_a_shared_switch_port_from_shared_generator_sockets(tmp_path: Path) -> None:
    """``--rtp-shared-port``: every leg's media comes from one switch port, and 4 generator sockets carry
    the 16 legs (4 legs per source address, each with its own SSRC). The switch learns each stream's SSRC
    while its address has no other new stream (calls naming the same sockets are set up one after the
    other) and routes every packet by (address, SSRC); the generator tells the legs apart by what the
    payload says. Every stream must come out of its partner leg, byte for byte marked, none elsewhere."""
    calls = 8
    result = media_run(calls=calls, seconds=2.0, base=tmp_path, shared_port=True, sources=4)
    details = f"{result.as_dict()}"
    assert result.generator_sources == 4, details
    assert result.established == calls, details
    assert result.streams_unconfirmed == 0, details
    ticks = result.generator_ticks
    assert result.packets_sent == 2 * calls * ticks, details
    assert result.legs_silent == 0, details
    assert result.loss <= LOSS_BOUND * result.packets_sent, details
    assert result.generator_packets_through + result.loss == result.packets_sent, details
    assert result.generator_unattributed == 0, details
    assert result.hangups_ok == calls and result.callee_byes == calls, details


def test_the_generator_sends_only_started_streams_and_stamps_stream_and_tick(tmp_path: Path) -> None:
    """The generator process: nothing is sent before "start"; a started stream sends one packet per tick
    carrying the marker, its stream number and the tick number; the report counts the measured ticks."""
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe()
    process = context.Process(target=generator_main, args=(child, 4, 2), daemon=True)
    process.start()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sources = parent.recv()
        assert len(sources) == 4 and sources[0] == sources[2] != sources[1]  # stream i on socket i % 2
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(5)
        port = sink.getsockname()[1]
        parent.send(("start", [(2, "127.0.0.1", port)]))
        packets = [sink.recv(2048) for _ in range(3)]
        for packet in packets:
            assert len(packet) == 172 and packet[0] == 0x80 and packet[1] == 0
            assert packet[12] == MARKER and int.from_bytes(packet[13:15], "big") == 2
        ticks = [int.from_bytes(packet[15:19], "big") for packet in packets]
        assert ticks[1:] == [ticks[0] + 1, ticks[0] + 2]
        parent.send(("measure", 0.2))
        assert parent.recv() == ("started",)
        kind, report = parent.recv()
        assert kind == "report"
        assert report.ticks == 10
        assert report.sent.tolist() == [0, 0, 10, 0]
    finally:
        parent.send("quit")
        process.join(10)
        sink.close()


class _Batch:
    """What :meth:`_Legs.add` reads of a receive batch: kernel stamps and datagram bytes."""

    def __init__(self, packets: list[tuple[int, int, int, int]], stamps: list[float]) -> None:
        """``packets``: (SSRC, marker byte, stream number in the payload, generator tick) each."""
        self._stamps = np.array(stamps, np.float64)
        self.buffer = np.zeros((len(packets), 64), np.uint8)
        self.buffer[:, 0] = 0x80
        for row, (ssrc, marker, stream, tick) in enumerate(packets):
            self.buffer[row, 8:12] = list(ssrc.to_bytes(4, "big"))
            self.buffer[row, 12] = marker
            self.buffer[row, 13:15] = list(stream.to_bytes(2, "big"))
            self.buffer[row, 15:19] = list(tick.to_bytes(4, "big"))

    def stamps(self, count: int) -> NDArray[np.float64]:
        return self._stamps[:count]


def _bins(legs: _Legs, leg: int) -> list[int]:
    return np.flatnonzero(legs.histogram[leg]).tolist()


def test_a_backlog_batch_counts_every_packet_and_times_each_leg_in_arrival_order() -> None:
    """Several packets of one leg in one batch (the backlog of a stalled generator, a late tick and its
    catch-up) are counted and timed one after another, leg by leg, as if they had come one by one. The
    leg is the partner of the stream the payload names; the switch's own packets (no marker) go to the
    leg whose switch SSRC a marked packet showed; RTCP and unknown SSRCs go nowhere."""
    legs = _Legs(4)
    legs.add(_Batch([(0xA0, MARKER, 1, 3), (0xB1, MARKER, 0, 3)], [1.0, 1.0]), 2)  # type: ignore[arg-type]
    assert legs.histogram.sum() == 0  # before the window starts nothing is timed or counted
    assert legs.received.tolist() == [0, 0, 0, 0]
    assert legs.confirmed.tolist() == [True, True, False, False]  # both streams came through
    legs.counting_from = 0.5
    legs.window = (10, 20)
    batch = _Batch(
        [
            (0xA0, MARKER, 1, 10),  # leg 0 (stream 1's packet)
            (0xB1, 0, 0, 0),  # leg 1 by its SSRC: the switch made this one
            (0xA0, MARKER, 1, 11),
            (0xCC, 0, 0, 0),  # nobody's SSRC
            (0xA0, MARKER, 1, 20),  # after the window: timed, not counted as through
            (0xB1, MARKER, 0, 9),  # before the window
        ],
        [1.02007, 1.02107, 1.04559, 1.05, 1.06226, 1.04110],
    )
    legs.add(batch, 6)  # type: ignore[arg-type]
    assert legs.received.tolist() == [3, 2, 0, 0]
    assert legs.through.tolist() == [0, 2, 0, 0]  # stream 1's packets of ticks 10 and 11
    assert legs.unattributed == 1
    # Leg 0: intervals 20.07, 25.52, 16.67 ms; leg 1: 21.07, 20.03 ms (|interval - 20 ms| in 0.05 ms bins).
    assert _bins(legs, 0) == [int(0.07 / BIN_MS), int(3.33 / BIN_MS), int(5.52 / BIN_MS)]
    assert _bins(legs, 1) == [0, int(1.07 / BIN_MS)]
    assert legs.histogram.sum() == 5
    assert legs.last.tolist() == [1.06226, 1.04110, 0.0, 0.0]
    rtcp = _Batch([(0xA0, MARKER, 1, 12)], [1.08])
    rtcp.buffer[0, 1] = 200  # a sender report
    legs.add(rtcp, 1)  # type: ignore[arg-type]
    assert legs.received.tolist() == [3, 2, 0, 0]
    assert legs.through.tolist() == [0, 2, 0, 0]


def test_burst_stats_split_the_switch_ticks_into_start_jitter_and_duration() -> None:
    """Three ticks' bursts: starting at 0, 21 and 40 ms, 1, 3 and 0.5 ms long."""
    stamps = np.array([0.0, 0.0005, 0.001, 0.021, 0.022, 0.024, 0.040, 0.0405, np.nan])
    stats = burst_stats(np.random.default_rng(1).permutation(stamps))
    assert stats["bursts"] == 3
    assert stats["start_jitter_max_ms"] == pytest.approx(1.0)  # intervals 21 and 19 ms
    assert stats["duration_max_ms"] == pytest.approx(3.0)
    assert stats["duration_p50_ms"] == pytest.approx(1.0)
