"""What the SIP transport asks before it spends work on a source: rate, blocks, TCP connection bounds.

``SourceGuard`` is sans-IO.  Per UDP datagram the transport calls :meth:`SourceGuard.allow_datagram`
(a prefix test, a dict lookup and arithmetic); per TCP connection :meth:`SourceGuard.tcp_open` and
:meth:`SourceGuard.tcp_closed`; and every ``sweep_interval`` seconds :meth:`SourceGuard.tcp_expired` on
each connection's :class:`TcpSlot`, which says whether it must be closed (idle, or a partial message that
never completes).

Failed digest authentication is counted here too: the SIP core reports every request that carried
credentials and was challenged again (:meth:`SourceGuard.auth_failed`); ``auth_fail_limit`` failures within
``auth_fail_window`` seconds block the source for ``auth_block_seconds`` (password guessing, svcrack).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from switch.config import Settings
from switch.security.ratelimit import SourceRateLimiter, TrustedNetworks

__all__ = ["GuardSettings", "SourceGuard", "TcpSlot", "guard_settings_from"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Requests that never start work of their own: an ACK ends a transaction we already answered, a CANCEL
# ends one we are running.  Dropping them would only make us retransmit more.
_UNLIMITED_PREFIXES = (b"SIP/", b"ACK ", b"CANCEL ")


@dataclass(frozen=True, slots=True)
class GuardSettings:
    rate: float = 50.0  # requests per second per source (0 = no limit)
    burst: float = 100.0
    block_after: int = 200  # refusals in a row before a source is blocked (0 = never block)
    block_seconds: float = 60.0
    trusted: tuple[IPNetwork, ...] = ()
    tcp_max_per_source: int = 32  # 0 = no limit
    tcp_idle_timeout: float = 300.0  # no octet at all for this long: close
    tcp_frame_timeout: float = 10.0  # a partial message not completed within this: close
    max_message_size: int = 65535
    auth_fail_limit: int = 5  # failed authentications within auth_fail_window before a block (0 = never)
    auth_fail_window: float = 60.0
    auth_block_seconds: float = 300.0
    # Enforced by the SIP core (503 with Retry-After); the transport hands them over.  0 = no limit.
    max_transactions: int = 50000
    max_transactions_per_source: int = 0
    max_dialogs: int = 10000
    max_dialogs_per_source: int = 0

    @property
    def sweep_interval(self) -> float:
        return max(0.05, min(self.tcp_idle_timeout, self.tcp_frame_timeout) / 4)


@dataclass(slots=True)
class TcpSlot:
    """Per-connection timestamps the transport keeps up to date (assignments only, no allocation)."""

    ip: str
    opened: float
    last_data: float
    partial_since: float | None = None  # when the buffered octets that are not a whole message began


@dataclass(slots=True)
class _Counts:
    rate_limited: int = 0
    tcp_refused: int = 0
    tcp_idle_closed: int = 0
    tcp_stalled_closed: int = 0
    auth_failed: int = 0
    auth_blocked: int = 0


class SourceGuard:
    def __init__(self, settings: GuardSettings | None = None) -> None:
        self.settings = settings = settings if settings is not None else GuardSettings()
        self.trusted = TrustedNetworks(settings.trusted)
        self.limiter = SourceRateLimiter(
            settings.rate,
            settings.burst,
            trusted=self.trusted,
            block_after=settings.block_after,
            block_seconds=settings.block_seconds,
        )
        self.tcp_per_source: dict[str, int] = {}
        self.auth_failures: dict[str, list[float]] = {}  # ip -> [failures, when the first one came]
        self.max_auth_sources = 65536
        self.counts = _Counts()
        self.limit_log_every = 1000  # the transport logs the first refusal and then every Nth

    def allow_datagram(self, data: bytes, ip: str, now: float) -> bool:
        """May this UDP datagram (or framed TCP message) from ``ip`` be processed?"""
        if data.startswith(_UNLIMITED_PREFIXES):
            return True
        if self.limiter.allow(ip, now):
            return True
        self.counts.rate_limited += 1
        return False

    def allow_request(self, method: str, ip: str, now: float) -> bool:
        """The same for a parsed request (TCP)."""
        if method in ("ACK", "CANCEL"):
            return True
        if self.limiter.allow(ip, now):
            return True
        self.counts.rate_limited += 1
        return False

    def block(self, ip: str, now: float, seconds: float | None = None) -> None:
        """Refuse everything from ``ip`` for a while (for example after repeated failed authentication)."""
        self.limiter.block(ip, now, seconds)

    def is_blocked(self, ip: str, now: float) -> bool:
        return self.limiter.is_blocked(ip, now)

    def auth_failed(self, ip: str, now: float) -> bool:
        """A request from ``ip`` carried credentials and was refused; True when this blocked the source."""
        s = self.settings
        self.counts.auth_failed += 1
        if not s.auth_fail_limit or ip in self.trusted:
            return False
        table = self.auth_failures
        entry = table.get(ip)
        if entry is None or now - entry[1] > s.auth_fail_window:
            if entry is None and len(table) >= self.max_auth_sources:
                self._forget_auth_failures(now)
            entry = table[ip] = [0.0, now]
        entry[0] += 1.0
        if entry[0] < s.auth_fail_limit:
            return False
        del table[ip]
        self.limiter.block(ip, now, s.auth_block_seconds)
        self.counts.auth_blocked += 1
        return True

    def _forget_auth_failures(self, now: float) -> None:
        """Keep the failure table bounded: drop windows that ended; if none ended, the oldest half."""
        window = self.settings.auth_fail_window
        table = self.auth_failures
        stale = [ip for ip, (_, first) in table.items() if now - first > window]
        if not stale:
            by_age = sorted(table.items(), key=lambda item: item[1][1])
            stale = [ip for ip, _ in by_age[: len(by_age) // 2 or 1]]
        for ip in stale:
            del table[ip]

    def tcp_open(self, ip: str, now: float) -> bool:
        """A connection from ``ip`` was accepted; False means close it at once (over the cap, or blocked)."""
        if ip in self.trusted:
            return True
        if self.limiter.is_blocked(ip, now):
            self.counts.tcp_refused += 1
            return False
        cap = self.settings.tcp_max_per_source
        count = self.tcp_per_source.get(ip, 0)
        if cap and count >= cap:
            self.counts.tcp_refused += 1
            return False
        self.tcp_per_source[ip] = count + 1
        return True

    def tcp_closed(self, ip: str) -> None:
        """A connection that ``tcp_open`` admitted has closed."""
        count = self.tcp_per_source.get(ip, 0) - 1
        if count > 0:
            self.tcp_per_source[ip] = count
        else:
            self.tcp_per_source.pop(ip, None)

    def tcp_expired(self, slot: TcpSlot, now: float) -> str | None:
        """Why this connection must be closed now, or None."""
        s = self.settings
        if slot.partial_since is not None and now - slot.partial_since >= s.tcp_frame_timeout:
            self.counts.tcp_stalled_closed += 1
            return f"partial message not completed in {s.tcp_frame_timeout:g} s"
        if now - slot.last_data >= s.tcp_idle_timeout:
            self.counts.tcp_idle_closed += 1
            return f"idle for {s.tcp_idle_timeout:g} s"
        return None


def guard_settings_from(settings: Settings) -> GuardSettings:
    """The guard's settings taken from `switch serve`'s settings."""
    return GuardSettings(
        rate=settings.sip_rate,
        burst=settings.sip_burst,
        block_seconds=settings.block_seconds,
        trusted=settings.trusted_sources,
        tcp_max_per_source=settings.tcp_max_per_source,
        tcp_idle_timeout=settings.tcp_idle_timeout,
        tcp_frame_timeout=settings.tcp_frame_timeout,
        max_message_size=settings.max_message_size,
        auth_fail_limit=settings.auth_fail_limit,
        auth_fail_window=settings.auth_fail_window,
        auth_block_seconds=settings.auth_block_seconds,
        max_transactions=settings.max_transactions,
        max_transactions_per_source=settings.max_transactions_per_source,
        max_dialogs=settings.max_dialogs,
        max_dialogs_per_source=settings.max_dialogs_per_source,
    )
