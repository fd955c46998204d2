"""LagTracker with the clock passed in, and LagMonitor against a loop that is blocked on purpose."""

from __future__ import annotations

import asyncio
import time

import pytest

from switch.overload import LagMonitor, LagTracker


def test_on_time_samples_are_not_overload() -> None:
    tracker = LagTracker(threshold=0.05, hold=2.0)
    for i in range(100):
        due = 10.0 + i * 0.025
        assert tracker.sample(due, due + 0.001) == pytest.approx(0.001)
    assert not tracker.overloaded(12.5)
    assert tracker.over_count == 0
    assert tracker.samples == 100
    assert tracker.average == pytest.approx(0.001, rel=1e-3)  # a moving average from 0


def test_early_callbacks_count_as_no_lag() -> None:
    tracker = LagTracker()
    assert tracker.sample(5.0, 4.999) == 0.0
    assert tracker.last == 0.0


def test_one_late_sample_overloads_until_hold_passes() -> None:
    tracker = LagTracker(threshold=0.05, hold=2.0)
    tracker.sample(1.0, 1.001)
    assert not tracker.overloaded(1.001)
    tracker.sample(1.025, 1.125)  # 100 ms late
    assert tracker.last == pytest.approx(0.1)
    assert tracker.over_count == 1
    assert tracker.overloaded(1.125)
    assert tracker.overloaded(3.124)
    tracker.sample(3.0, 3.001)  # on time again: the hold still runs from the last late sample
    assert tracker.overloaded(3.1)
    assert not tracker.overloaded(3.125)


def test_threshold_is_inclusive_and_peak_resets() -> None:
    tracker = LagTracker(threshold=0.05, hold=0.0)
    tracker.sample(0.0, 0.05)
    assert tracker.over_count == 1
    tracker.sample(1.0, 1.02)
    assert tracker.take_peak() == pytest.approx(0.05)
    assert tracker.take_peak() == 0.0


@pytest.mark.parametrize(
    ("threshold", "hold", "smoothing"), [(0.0, 1.0, 0.1), (0.05, -1.0, 0.1), (0.05, 1.0, 0.0), (0.05, 1, 1.5)]
)
def test_bad_settings_are_refused(threshold: float, hold: float, smoothing: float) -> None:
    with pytest.raises(ValueError, match="threshold must be positive"):
        LagTracker(threshold, hold, smoothing)


def _busy(seconds: float) -> None:
    """Hold the event loop with CPU work, as an overloaded switch does."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def test_monitor_sees_a_blocked_loop() -> None:
    lags: list[float] = []
    monitor = LagMonitor(LagTracker(threshold=0.1, hold=5.0), interval=0.01, on_sample=lags.append)
    assert not monitor.overloaded()  # not started: never overloaded
    monitor.start()
    try:
        await asyncio.sleep(0.03)
        assert lags, "the probe ran"
        _busy(0.25)
        await asyncio.sleep(0.03)
        assert max(lags) >= 0.2
        assert monitor.overloaded()
    finally:
        monitor.stop()
    count = len(lags)
    await asyncio.sleep(0.05)
    assert len(lags) == count  # stopped: no more probes
