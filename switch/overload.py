"""Event-loop lag: how late the loop runs a callback it was asked to run at a given time.

A loop that is late by tens of milliseconds delays every RTP tick and every SIP retransmission, so past a
threshold the switch should refuse new calls (503 with Retry-After) and keep the calls it has clean.

`LagTracker` is sans-IO: feed it `sample(scheduled, now)` and ask `overloaded(now)`. It is overloaded when a
sample's lag reaches `threshold`, and stays so until `hold` seconds pass without such a sample (hysteresis, so
admission does not flap tick by tick). `LagMonitor` drives a tracker from the running loop with `call_at`
against absolute deadlines (one timer, no task, no allocation beyond the handle per probe).

Hook for call admission (switch/calls/manager.py, `_on_invite`), given ``overloaded: Callable[[], bool]``::

    if self.draining or (self.max_calls and len(self.calls) >= self.max_calls) or self.overloaded():
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["LagMonitor", "LagTracker"]


class LagTracker:
    """Lag statistics and the overload decision, with the clock passed in."""

    def __init__(self, threshold: float = 0.05, hold: float = 2.0, smoothing: float = 0.1) -> None:
        if threshold <= 0 or hold < 0 or not 0 < smoothing <= 1:
            raise ValueError("threshold must be positive, hold non-negative, smoothing in (0, 1]")
        self.threshold = threshold
        self.hold = hold
        self.smoothing = smoothing
        self.last = 0.0  # lag of the latest sample, seconds
        self.average = 0.0  # exponentially weighted moving average of the lag
        self.peak = 0.0  # largest lag since the last `take_peak()`
        self.samples = 0
        self.over_count = 0  # samples at or above the threshold
        self._over_until = float("-inf")

    def sample(self, scheduled: float, now: float) -> float:
        """Record that a callback due at `scheduled` ran at `now`; returns the lag (never negative)."""
        lag = now - scheduled if now > scheduled else 0.0
        self.last = lag
        self.average += self.smoothing * (lag - self.average)
        if lag > self.peak:
            self.peak = lag
        self.samples += 1
        if lag >= self.threshold:
            self.over_count += 1
            self._over_until = now + self.hold
        return lag

    def overloaded(self, now: float) -> bool:
        return now < self._over_until

    def take_peak(self) -> float:
        """The largest lag since the previous call (for a metrics scrape), then reset it."""
        peak, self.peak = self.peak, 0.0
        return peak


class LagMonitor:
    """Probes the running loop every `interval` seconds; `overloaded()` is what call admission asks."""

    def __init__(
        self,
        tracker: LagTracker | None = None,
        *,
        interval: float = 0.025,
        on_sample: Callable[[float], None] | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.tracker = tracker or LagTracker()
        self.interval = interval
        self.on_sample = on_sample  # e.g. a metrics histogram's observe
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        if self._handle is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._due = self._loop.time() + self.interval
        self._handle = self._loop.call_at(self._due, self._probe)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def overloaded(self) -> bool:
        if self._loop is None:
            return False
        return self.tracker.overloaded(self._loop.time())

    def _probe(self) -> None:
        loop = self._loop
        assert loop is not None
        now = loop.time()
        lag = self.tracker.sample(self._due, now)
        if self.on_sample is not None:
            self.on_sample(lag)
        # The next probe is due one interval after this one ran: a late loop is measured, not made up for.
        self._due = now + self.interval
        self._handle = loop.call_at(self._due, self._probe)
