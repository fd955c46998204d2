"""A small media load run in the suite: 20 bridged calls (`<Dial><Sip>`) with RTP on all 40 legs for 3 s.

The harness's own caller and callee set the calls up through a real switch process; the generator process
sends one PCMU packet per leg every 20 ms and counts, per leg, the packets that come back out of the
partner leg (its own packets carry a marker byte the bridge passes through). Every call must be set up,
every leg must carry the partner's audio, and every call must be hung up both ways. No timing is asserted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from bench.load.media import media_run
from bench.load.mediagen import BIN_MS, MARKER, _Legs

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


class _Batch:
    """What :meth:`_Legs.add` reads of a receive batch: source ports, kernel stamps, datagram bytes."""

    def __init__(self, ports: list[int], stamps: list[float], marked: list[bool]) -> None:
        self.ports = np.array(ports, np.uint16)
        self._stamps = np.array(stamps, np.float64)
        self.buffer = np.zeros((len(ports), 64), np.uint8)
        self.buffer[:, 12] = np.where(marked, MARKER, 0)

    def stamps(self, count: int) -> NDArray[np.float64]:
        return self._stamps[:count]


def _bins(legs: _Legs, leg: int) -> list[int]:
    return np.flatnonzero(legs.histogram[leg]).tolist()


def test_a_backlog_batch_counts_every_packet_and_times_each_leg_in_arrival_order() -> None:
    """Several packets of one leg in one batch (the backlog of a stalled generator, a late tick and its
    catch-up) are counted and timed one after another, leg by leg, as if they had come one by one."""
    legs = _Legs([4000, 4002, 0])
    legs.add(_Batch([4000, 4002], [1.0, 1.0], [True, True]), 2)  # type: ignore[arg-type]
    assert legs.histogram.sum() == 0  # before the run starts nothing is timed
    legs.counting_from = 0.5
    batch = _Batch(
        [4000, 4002, 4000, 9999, 4000, 4002],
        [1.02007, 1.02107, 1.04559, 1.05, 1.06226, 1.04110],
        [True, False, True, True, True, True],
    )
    legs.add(batch, 6)  # type: ignore[arg-type]
    assert legs.received.tolist() == [4, 3, 0]  # port 9999 is nobody's
    assert legs.marked.tolist() == [4, 2, 0]
    # Leg 0: intervals 20.07, 25.52, 16.67 ms; leg 1: 21.07, 20.03 ms (|interval - 20 ms| in 0.05 ms bins).
    assert _bins(legs, 0) == [int(0.07 / BIN_MS), int(3.33 / BIN_MS), int(5.52 / BIN_MS)]
    assert _bins(legs, 1) == [0, int(1.07 / BIN_MS)]
    assert legs.histogram.sum() == 5
    assert legs.last.tolist() == [1.06226, 1.04110, 0.0]
