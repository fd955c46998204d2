"""The /metrics exposition: names, labels and values after feeding known events, and the RTP totals and
media tick histogram of a real switch with media workers after a SIPp call that streams RTP."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from switch.media.engine_types import MediaCounters
from switch.metrics import CONTENT_TYPE, Metrics, RtpTotals
from tests.helpers.sipp import run_sipp
from tests.helpers.switch_process import SwitchProcess
from tests.media.rtp_peer import tone
from voicecodecs.g711 import ulaw_encode


class FakeManager:
    def __init__(self) -> None:
        self.calls: dict[str, object] = {}
        self.listeners: list[Callable[[Any, str], None]] = []

    def add_listener(self, callback: Callable[[Any, str], None]) -> None:
        self.listeners.append(callback)

    def status(self, status: str) -> None:
        for listener in self.listeners:
            listener(object(), status)


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_calls_by_final_status_and_active_calls() -> None:
    metrics = Metrics()
    manager = FakeManager()
    metrics.watch_calls(manager)
    manager.calls.update({"CA1": object(), "CA2": object(), "CA3": object()})
    for status in ("ringing", "in-progress", "completed", "completed", "busy", "queued"):
        manager.status(status)
    got = samples(metrics)
    assert got[("switch_active_calls", ())] == 3.0
    assert got[("switch_calls_total", (("status", "completed"),))] == 2.0
    assert got[("switch_calls_total", (("status", "busy"),))] == 1.0
    assert got[("switch_calls_total", (("status", "failed"),))] == 0.0
    assert ("switch_calls_total", (("status", "ringing"),)) not in got


def test_calls_per_second_over_the_window() -> None:
    metrics = Metrics(window=10.0)
    for second in range(100, 110):
        for _ in range(20):
            metrics.call_ended("completed", now=second + 0.5)
    metrics.call_ended("completed", now=110.2)  # the current second is not complete: not counted
    assert metrics.calls_per_second(110.5) == 20.0
    # At 115.0 the window is seconds 105..114: five full seconds (100 calls) and the one call at 110.2.
    assert metrics.calls_per_second(115.0) == 10.1
    assert metrics.calls_per_second(200.0) == 0.0


def test_sip_responses_histograms_and_rtp() -> None:
    metrics = Metrics()
    for code in (100, 200, 200, 503):
        metrics.observe_sip_response(code)
    metrics.observe_sip_response(200, "received")
    metrics.observe_tick(0.0003)
    metrics.observe_tick(0.004)
    metrics.observe_webhook(0.02)
    metrics.observe_loop_lag(0.003)
    metrics.observe_loop_lag(0.07)
    metrics.set_rtp_source(lambda: RtpTotals(received=1000, sent=998, lost=2, jitter_seconds=0.0015))
    got = samples(metrics)
    assert got[("switch_sip_responses_total", (("code", "200"), ("direction", "sent")))] == 2.0
    assert got[("switch_sip_responses_total", (("code", "503"), ("direction", "sent")))] == 1.0
    assert got[("switch_sip_responses_total", (("code", "200"), ("direction", "received")))] == 1.0
    assert got[("switch_media_tick_seconds_count", ())] == 2.0
    assert got[("switch_media_tick_seconds_bucket", (("le", "0.0005"),))] == 1.0
    assert got[("switch_webhook_seconds_sum", ())] == 0.02
    assert got[("switch_event_loop_lag_seconds_bucket", (("le", "0.005"),))] == 1.0
    assert got[("switch_event_loop_lag_max_seconds", ())] == 0.07
    assert got[("switch_rtp_packets_total", (("direction", "received"),))] == 1000.0
    assert got[("switch_rtp_packets_total", (("direction", "sent"),))] == 998.0
    assert got[("switch_rtp_packets_lost_total", ())] == 2.0
    assert got[("switch_rtp_jitter_seconds", ())] == 0.0015
    # The lag peak is per scrape: read once, then reset.
    assert samples(metrics)[("switch_event_loop_lag_max_seconds", ())] == 0.0


def test_two_switches_do_not_share_a_registry_and_content_type() -> None:
    first, second = Metrics(), Metrics()
    first.observe_sip_response(486)
    assert ("switch_sip_responses_total", (("code", "486"), ("direction", "sent"))) not in samples(second)
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")


def test_source_guard_counters_are_read_at_scrape_time() -> None:
    from switch.security.guard import GuardSettings, SourceGuard

    guard = SourceGuard(GuardSettings(rate=1.0, burst=1.0, auth_fail_limit=2))
    metrics = Metrics()
    metrics.watch_guard(lambda: guard.counts)
    before = samples(metrics)
    assert before[("switch_sip_guard_events_total", (("event", "auth_failed"),))] == 0.0
    invite = b"INVITE sip:x@127.0.0.1 SIP/2.0\r\n"
    assert [guard.allow_datagram(invite, "10.0.0.7", 0.0) for _ in range(3)] == [True, False, False]
    guard.auth_failed("10.0.0.8", 0.0)
    assert guard.auth_failed("10.0.0.8", 0.1) is True
    got = samples(metrics)
    assert got[("switch_sip_guard_events_total", (("event", "rate_limited"),))] == 2.0
    assert got[("switch_sip_guard_events_total", (("event", "auth_failed"),))] == 2.0
    assert got[("switch_sip_guard_events_total", (("event", "auth_blocked"),))] == 1.0
    assert got[("switch_sip_guard_events_total", (("event", "tcp_refused"),))] == 0.0


def test_media_counters_of_engines_sum_and_weigh_jitter() -> None:
    one = MediaCounters(packets_received=10, packets_sent=8, lost=1, jitter_seconds=0.002, receiving=1)
    two = MediaCounters(packets_received=5, concealed=3, jitter_seconds=0.008, receiving=3)
    one.tick_counts[0] = 4
    two.tick_counts[-1] = 1
    both = one.plus(two)
    assert (both.packets_received, both.packets_sent, both.lost, both.concealed) == (15, 8, 1, 3)
    assert both.jitter_seconds == (0.002 + 3 * 0.008) / 4
    assert both.tick_counts[0] == 4 and both.tick_counts[-1] == 1 and sum(both.tick_counts) == 5


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_rtp_totals_and_tick_histogram_of_media_workers_on_metrics(tmp_path: Path) -> None:
    """A real switch with two media workers answers a SIPp call that streams 60 packets of PCMU: /metrics
    counts exactly those packets received (the workers' once-a-second reports), none lost, late or
    duplicated, the silence the switch sent, and the workers' ticks."""
    sent = tone(440.0, 160 * 60)
    (tmp_path / "caller.ul").write_bytes(ulaw_encode(sent).tobytes())
    app = tmp_path / "app.xml"
    app.write_text('<?xml version="1.0"?><Response><Pause length="2"/><Hangup/></Response>')
    with SwitchProcess(str(app), extra_args=("--media-workers", "2")) as switch:
        before = _scrape(switch.http_port)
        assert before[("switch_rtp_packets_total", (("direction", "received"),))] == 0.0
        result = run_sipp(
            "uac-invite-stream-expect-bye.xml",
            switch.target,
            service="metrics",
            timeout=30,
            extra_args=("-d", "200"),
            workdir=tmp_path,
        )
        assert result.ok, result.errors or result.output[-2000:]
        received = ("switch_rtp_packets_total", (("direction", "received"),))
        got = _scrape(switch.http_port)
        for _ in range(50):  # the workers report once a second
            if got[received] >= 60.0:
                break
            time.sleep(0.1)
            got = _scrape(switch.http_port)
    assert got[received] == 60.0
    assert got[("switch_rtp_octets_total", (("direction", "received"),))] == 60.0 * 160
    # The switch sent silence from the answer to its BYE: the 2 s pause, 50 packets a second.
    assert 80.0 <= got[("switch_rtp_packets_total", (("direction", "sent"),))] <= 200.0
    assert got[("switch_rtp_packets_lost_total", ())] == 0.0
    assert got[("switch_rtp_packets_discarded_total", (("reason", "late"),))] == 0.0
    assert got[("switch_rtp_packets_discarded_total", (("reason", "duplicate"),))] == 0.0
    assert got[("switch_media_tick_seconds_count", ())] >= 80.0  # 2 s of a live channel's ticks
    assert (
        got[("switch_media_tick_seconds_bucket", (("le", "+Inf"),))]
        == got[("switch_media_tick_seconds_count", ())]
    )
    assert 0.0 < got[("switch_media_tick_seconds_sum", ())] < got[("switch_media_tick_seconds_count", ())]
