"""Prometheus metrics for `/metrics` (PyPI `prometheus-client`), one registry per switch.

What the hot paths pay: a counter increment per call status change, per SIP response and per webhook; one
histogram observation per loop-lag probe. What a scrape can compute (active calls, RTP totals, the media
tick histogram) is read at scrape time from the objects that already count it (`watch_media`: the media
engine's `counters()`, numpy sums over its channel arrays; with media workers, their once-a-second
reports), so it costs nothing per packet or per tick here. The HTTP server mounts `Metrics.exposition()`
with `CONTENT_TYPE`.

Names (all prefixed `switch_`):
    active_calls                    gauge      live calls (CallManager.calls)
    calls_total{status}             counter    calls by final status: completed busy no-answer failed canceled
    calls_per_second                gauge      calls that ended over the last `window` seconds, per second
    sip_responses_total{code,direction}  counter  SIP responses sent / received, by status code
    rtp_packets_total{direction}    counter    RTP packets received / sent (from the media engine)
    rtp_octets_total{direction}     counter    RTP payload octets received / sent
    rtp_packets_lost_total          counter    RTP packets lost (sequence gaps)
    rtp_packets_discarded_total{reason}  counter  received packets the jitter buffers dropped: late duplicate
    rtp_concealed_frames_total      counter    20 ms frames the jitter buffers concealed (lost or late)
    rtp_jitter_seconds              gauge      mean interarrival jitter over live channels (RFC 3550)
    media_tick_seconds              histogram  duration of one media tick (every engine or worker)
    webhook_seconds                 histogram  webhook request latency, connect to last byte
    event_loop_lag_seconds          histogram  lateness of the loop-lag probe (switch.overload)
    event_loop_lag_max_seconds      gauge      the largest lag since the previous scrape
    sip_guard_events_total{event}   counter    what the SIP source guard (switch.security) refused, closed:
                                               rate_limited tcp_refused tcp_idle_closed tcp_stalled_closed
                                               auth_failed auth_blocked
"""

from __future__ import annotations

import bisect
import dataclasses
import time
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from switch.media.engine_types import TICK_BOUNDS, MediaCounters

__all__ = ["CONTENT_TYPE", "FINAL_STATUSES", "Metrics", "RtpTotals"]

# The classic text format, which every Prometheus server parses (our names are all legacy-safe).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FINAL_STATUSES = ("completed", "busy", "no-answer", "failed", "canceled")

TICK_BUCKETS = TICK_BOUNDS
WEBHOOK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0)
LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True, slots=True)
class RtpTotals:
    """What the media engine has counted since it started (its own counters, read at scrape time)."""

    received: int
    sent: int
    lost: int
    jitter_seconds: float  # mean RFC 3550 interarrival jitter over live channels
    received_octets: int = 0
    sent_octets: int = 0
    late: int = 0
    duplicate: int = 0
    concealed: int = 0


class _MediaSource(Protocol):
    """What the metrics need of a media engine (in process or in workers)."""

    def counters(self) -> MediaCounters: ...  # pragma: no cover - a protocol


class _CallSource(Protocol):
    """The part of switch.calls.manager.CallManager the metrics need (no import of the call layer)."""

    @property
    def calls(self) -> Sized: ...  # pragma: no cover - a protocol

    def add_listener(self, callback: Callable[[Any, str], None]) -> None: ...  # pragma: no cover


class _ScrapeTimeCollector:
    """Metrics read from other objects when Prometheus scrapes: no work per call or per packet."""

    def __init__(self, owner: Metrics) -> None:
        self.owner = owner

    def collect(self) -> Iterable[Metric]:
        owner = self.owner
        active = GaugeMetricFamily("switch_active_calls", "Live calls")
        active.add_metric([], float(owner.active_calls()))
        yield active
        rate = GaugeMetricFamily("switch_calls_per_second", "Calls ended per second over the last window")
        rate.add_metric([], owner.calls_per_second(time.monotonic()))
        yield rate
        peak = GaugeMetricFamily("switch_event_loop_lag_max_seconds", "Largest loop lag since last scrape")
        peak.add_metric([], owner.take_lag_peak())
        yield peak
        guard = owner.guard_source
        if guard is not None:
            events = CounterMetricFamily(
                "switch_sip_guard_events", "What the SIP source guard refused or closed", labels=["event"]
            )
            counts = guard()
            for field in dataclasses.fields(counts):
                events.add_metric([field.name], float(getattr(counts, field.name)))
            yield events
        counters = owner.media.counters() if owner.media is not None else None
        yield owner.tick_histogram(counters)
        source = owner.rtp_source
        if counters is not None:
            totals = _totals(counters)
        elif source is not None:
            totals = source()
        else:
            return
        packets = CounterMetricFamily("switch_rtp_packets", "RTP packets", labels=["direction"])
        packets.add_metric(["received"], float(totals.received))
        packets.add_metric(["sent"], float(totals.sent))
        yield packets
        octets = CounterMetricFamily("switch_rtp_octets", "RTP payload octets", labels=["direction"])
        octets.add_metric(["received"], float(totals.received_octets))
        octets.add_metric(["sent"], float(totals.sent_octets))
        yield octets
        lost = CounterMetricFamily("switch_rtp_packets_lost", "RTP packets lost (sequence gaps)")
        lost.add_metric([], float(totals.lost))
        yield lost
        discarded = CounterMetricFamily(
            "switch_rtp_packets_discarded", "RTP packets the jitter buffers dropped", labels=["reason"]
        )
        discarded.add_metric(["late"], float(totals.late))
        discarded.add_metric(["duplicate"], float(totals.duplicate))
        yield discarded
        concealed = CounterMetricFamily("switch_rtp_concealed_frames", "Frames the jitter buffers concealed")
        concealed.add_metric([], float(totals.concealed))
        yield concealed
        jitter = GaugeMetricFamily("switch_rtp_jitter_seconds", "Mean interarrival jitter of live channels")
        jitter.add_metric([], totals.jitter_seconds)
        yield jitter


def _totals(counters: MediaCounters) -> RtpTotals:
    return RtpTotals(
        received=counters.packets_received,
        sent=counters.packets_sent,
        lost=counters.lost,
        jitter_seconds=counters.jitter_seconds,
        received_octets=counters.octets_received,
        sent_octets=counters.octets_sent,
        late=counters.late,
        duplicate=counters.duplicate,
        concealed=counters.concealed,
    )


class Metrics:
    """The switch's metrics. Feed it with `watch_calls`, `set_rtp_source` and the `observe_*` methods."""

    def __init__(self, registry: CollectorRegistry | None = None, *, window: float = 10.0) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.window = window
        self.rtp_source: Callable[[], RtpTotals] | None = None
        self.media: _MediaSource | None = None
        self._tick_counts = [0] * (len(TICK_BOUNDS) + 1)
        self._tick_sum = 0.0
        self.guard_source: Callable[[], Any] | None = None
        self._active: Callable[[], int] = lambda: 0
        self._lag_peak = 0.0
        # Calls ended per whole second, as a ring of `window` + 1 buckets indexed by int(monotonic seconds).
        self._ring_size = max(2, int(window) + 1)
        self._ring = [0] * self._ring_size
        self._ring_second = [-1] * self._ring_size
        self.calls_total = Counter(
            "switch_calls", "Calls by final status", ["status"], registry=self.registry
        )
        self._final = {status: self.calls_total.labels(status) for status in FINAL_STATUSES}
        self.sip_responses = Counter(
            "switch_sip_responses",
            "SIP responses by status code",
            ["code", "direction"],
            registry=self.registry,
        )
        self._responses: dict[tuple[int, str], Counter] = {}
        self.webhook_seconds = Histogram(
            "switch_webhook_seconds", "Webhook latency", buckets=WEBHOOK_BUCKETS, registry=self.registry
        )
        self.loop_lag_seconds = Histogram(
            "switch_event_loop_lag_seconds", "Event-loop lag", buckets=LAG_BUCKETS, registry=self.registry
        )
        self.registry.register(_ScrapeTimeCollector(self))

    # -- feeding ----------------------------------------------------------------------------------------
    def watch_calls(self, manager: _CallSource) -> None:
        """Count final statuses through the manager's listener; read active calls from `manager.calls`."""
        calls = manager.calls
        self._active = lambda: len(calls)
        manager.add_listener(self._on_status)

    def set_rtp_source(self, source: Callable[[], RtpTotals]) -> None:
        self.rtp_source = source

    def watch_media(self, media: _MediaSource) -> None:
        """Export the media engine's RTP totals and tick histogram (``media.counters()``) at scrape time."""
        self.media = media

    def watch_guard(self, counts: Callable[[], Any]) -> None:
        """Export the SIP source guard's counters (``lambda: guard.counts``, a dataclass of ints) at scrape
        time: the guard keeps counting in its own fields, nothing is added to its path."""
        self.guard_source = counts

    def _on_status(self, call: object, status: str) -> None:
        self.call_ended(status)

    def call_ended(self, status: str, now: float | None = None) -> None:
        """A call reached `status`; only final statuses are counted."""
        child = self._final.get(status)
        if child is None:
            return
        child.inc()
        second = int(time.monotonic() if now is None else now)
        index = second % self._ring_size
        if self._ring_second[index] != second:
            self._ring_second[index] = second
            self._ring[index] = 0
        self._ring[index] += 1

    def observe_sip_response(self, code: int, direction: str = "sent") -> None:
        key = (code, direction)
        child = self._responses.get(key)
        if child is None:
            child = self._responses[key] = self.sip_responses.labels(str(code), direction)
        child.inc()

    def observe_tick(self, seconds: float) -> None:
        """One tick's duration, for an engine not behind `watch_media` (which counts its own)."""
        self._tick_counts[bisect.bisect_left(TICK_BOUNDS, seconds)] += 1
        self._tick_sum += seconds

    def tick_histogram(self, counters: MediaCounters | None) -> HistogramMetricFamily:
        """The media tick histogram: what `observe_tick` saw plus the engine's own counts."""
        counts, total = list(self._tick_counts), self._tick_sum
        if counters is not None:
            counts = [a + b for a, b in zip(counts, counters.tick_counts, strict=True)]
            total += counters.tick_seconds
        buckets: list[tuple[str, float]] = []
        cumulative = 0
        for bound, count in zip([*TICK_BOUNDS, float("inf")], counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), float(cumulative)))
        return HistogramMetricFamily(
            "switch_media_tick_seconds", "Media tick duration", buckets=buckets, sum_value=total
        )

    def observe_webhook(self, seconds: float) -> None:
        self.webhook_seconds.observe(seconds)

    def observe_loop_lag(self, seconds: float) -> None:
        """Pass as `LagMonitor(on_sample=metrics.observe_loop_lag)`."""
        self.loop_lag_seconds.observe(seconds)
        if seconds > self._lag_peak:
            self._lag_peak = seconds

    # -- reading ----------------------------------------------------------------------------------------
    def active_calls(self) -> int:
        return self._active()

    def calls_per_second(self, now: float) -> float:
        """Calls ended in the `window` whole seconds before the current one, per second."""
        current = int(now)
        total = 0
        for index in range(self._ring_size):
            second = self._ring_second[index]
            if current - self._ring_size < second < current:
                total += self._ring[index]
        return total / (self._ring_size - 1)

    def take_lag_peak(self) -> float:
        peak, self._lag_peak = self._lag_peak, 0.0
        return peak

    def exposition(self) -> bytes:
        """The Prometheus text format for `/metrics` (serve with `CONTENT_TYPE`)."""
        return generate_latest(self.registry)
