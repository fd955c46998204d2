"""Sans-IO tests of switch.security: exact token arithmetic with ``now`` passed in."""

from __future__ import annotations

import ipaddress

from switch.config import load_settings
from switch.security import GuardSettings, SourceGuard, SourceRateLimiter, TcpSlot, TrustedNetworks
from switch.security.guard import guard_settings_from


def test_bucket_allows_burst_then_rate() -> None:
    limiter = SourceRateLimiter(rate=10.0, burst=5.0)
    assert [limiter.allow("10.0.0.1", 0.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert limiter.allow("10.0.0.1", 0.1)  # 0.1 s at 10/s refills one token
    assert not limiter.allow("10.0.0.1", 0.1)
    assert limiter.allow("10.0.0.2", 0.1)  # other sources are untouched
    assert limiter.refused == 3


def test_trusted_networks_exempt_and_cached() -> None:
    trusted = TrustedNetworks([ipaddress.ip_network("127.0.0.0/30")])
    limiter = SourceRateLimiter(rate=1.0, burst=1.0, trusted=trusted)
    assert all(limiter.allow("127.0.0.2", 0.0) for _ in range(100))
    assert [limiter.allow("127.0.0.66", 0.0) for _ in range(2)] == [True, False]
    assert "127.0.0.2" in trusted and "127.0.0.66" not in trusted and "not-an-ip" not in trusted


def test_repeat_offender_blocked_until_time() -> None:
    limiter = SourceRateLimiter(rate=1.0, burst=1.0, block_after=3, block_seconds=10.0)
    results = [limiter.allow("10.0.0.9", 0.0) for _ in range(4)]
    assert results == [True, False, False, False]
    assert limiter.is_blocked("10.0.0.9", 5.0)
    assert not limiter.allow("10.0.0.9", 9.9)  # blocked even though tokens refilled
    assert limiter.allow("10.0.0.9", 10.0)


def test_table_is_bounded() -> None:
    limiter = SourceRateLimiter(rate=1.0, burst=2.0, max_sources=100)
    for i in range(1000):
        limiter.allow(f"10.1.{i // 256}.{i % 256}", float(i))
    assert len(limiter) <= 100


def test_guard_passes_responses_ack_cancel_and_caps_tcp() -> None:
    guard = SourceGuard(GuardSettings(rate=1.0, burst=1.0, tcp_max_per_source=2))
    assert guard.allow_datagram(b"OPTIONS sip:x SIP/2.0\r\n", "10.0.0.1", 0.0)
    assert not guard.allow_datagram(b"INVITE sip:x SIP/2.0\r\n", "10.0.0.1", 0.0)
    for start in (b"SIP/2.0 200 OK\r\n", b"ACK sip:x SIP/2.0\r\n", b"CANCEL sip:x SIP/2.0\r\n"):
        assert guard.allow_datagram(start, "10.0.0.1", 0.0)
    assert guard.counts.rate_limited == 1
    assert [guard.tcp_open("10.0.0.1", 0.0) for _ in range(3)] == [True, True, False]
    guard.tcp_closed("10.0.0.1")
    assert guard.tcp_open("10.0.0.1", 0.0)
    assert guard.counts.tcp_refused == 1


def test_tcp_expiry_reasons() -> None:
    guard = SourceGuard(GuardSettings(tcp_idle_timeout=30.0, tcp_frame_timeout=2.0))
    slot = TcpSlot("10.0.0.1", opened=0.0, last_data=0.0, partial_since=0.0)
    assert guard.tcp_expired(slot, 1.9) is None
    assert guard.tcp_expired(slot, 2.0) == "partial message not completed in 2 s"
    slot.partial_since = None
    assert guard.tcp_expired(slot, 29.0) is None
    assert guard.tcp_expired(slot, 30.0) == "idle for 30 s"


def test_settings_flow_from_switch_serve_flags() -> None:
    settings = load_settings(
        {"trusted_sources": "127.0.0.77/32,10.0.0.0/8", "sip_rate": "5", "tcp_max_per_source": "4"},
        environ={},
    )
    guard = guard_settings_from(settings)
    assert guard.rate == 5.0 and guard.tcp_max_per_source == 4
    assert [str(n) for n in guard.trusted] == ["127.0.0.77/32", "10.0.0.0/8"]


def test_auth_failures_within_window_block_the_source() -> None:
    guard = SourceGuard(
        GuardSettings(rate=0.0, auth_fail_limit=3, auth_fail_window=10.0, auth_block_seconds=60.0)
    )
    assert [guard.auth_failed("10.0.0.1", t) for t in (0.0, 1.0)] == [False, False]
    assert not guard.auth_failed("10.0.0.1", 11.5)  # the window restarted: one failure in this one
    assert [guard.auth_failed("10.0.0.1", t) for t in (12.0, 13.0)] == [False, True]
    # blocked even with rate limiting off: requests dropped, TCP refused, responses still pass
    assert not guard.allow_datagram(b"REGISTER sip:x SIP/2.0\r\n", "10.0.0.1", 20.0)
    assert not guard.tcp_open("10.0.0.1", 20.0)
    assert guard.allow_datagram(b"SIP/2.0 200 OK\r\n", "10.0.0.1", 20.0)
    assert guard.allow_datagram(b"REGISTER sip:x SIP/2.0\r\n", "10.0.0.2", 20.0)
    assert guard.allow_datagram(b"REGISTER sip:x SIP/2.0\r\n", "10.0.0.1", 73.0)  # 13 + 60 s
    assert (guard.counts.auth_failed, guard.counts.auth_blocked) == (5, 1)


def test_auth_failures_trusted_or_disabled_never_block() -> None:
    trusted = (ipaddress.ip_network("10.9.0.0/16"),)
    guard = SourceGuard(GuardSettings(auth_fail_limit=2, trusted=trusted))
    assert not any(guard.auth_failed("10.9.1.1", float(t)) for t in range(10))
    off = SourceGuard(GuardSettings(auth_fail_limit=0))
    assert not any(off.auth_failed("10.0.0.1", float(t)) for t in range(10))
    assert not off.is_blocked("10.0.0.1", 10.0)


def test_auth_failure_table_is_bounded() -> None:
    guard = SourceGuard(GuardSettings(auth_fail_limit=5, auth_fail_window=1000.0))
    guard.max_auth_sources = 100
    for i in range(1000):
        guard.auth_failed(f"10.2.{i // 256}.{i % 256}", float(i))
    assert len(guard.auth_failures) <= 100


def test_auth_settings_flow_from_flags() -> None:
    settings = load_settings(
        {"auth_fail_limit": "3", "auth_fail_window": "9", "auth_block_seconds": "42", "max_dialogs": "7"},
        environ={},
    )
    guard = guard_settings_from(settings)
    assert (guard.auth_fail_limit, guard.auth_fail_window, guard.auth_block_seconds) == (3, 9.0, 42.0)
    assert (guard.max_dialogs, guard.max_transactions) == (7, 50000)
