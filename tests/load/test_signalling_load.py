"""A small load run in the suite: 300 signalling-only calls at 100/s through a real switch process.

The application is `<Response><Hangup/></Response>` from a file; SIPp (the load scenario) counts every call.
All 300 must succeed with no SIPp retransmission, and the switch's RSS may not grow by more than a bound
between the end of a 100-call warm-up and the end of the 300 calls (a leak of ~30 KB per call would show).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.load.run import memory_run

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed"),
]

RSS_GROWTH_BOUND_MB = 10.0


def test_300_calls_at_100_per_second_all_succeed_and_memory_stays_flat(tmp_path: Path) -> None:
    warmup, run = memory_run(rate=100.0, checkpoints=(100, 400), base=tmp_path)
    for segment in (warmup, run):
        details = f"{segment.as_dict()}"
        assert segment.attempted == segment.calls, details
        assert segment.succeeded == segment.calls, details
        assert segment.failed == 0, details
        assert segment.retransmissions == 0, details
        assert not segment.sipp_killed, details
    assert run.calls == 300
    assert run.cpu_s > 0.0  # the CPU of the switch's process tree was read
    growth = run.rss_end_mb - warmup.rss_end_mb
    assert growth < RSS_GROWTH_BOUND_MB, f"RSS grew {growth:.1f} MB over 300 calls"
    assert run.setup_p50_ms is not None
