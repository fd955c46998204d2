"""A token bucket per source IP, with trusted networks exempt and repeat offenders blocked for a while.

``SourceRateLimiter.allow(ip, now)`` is the per-packet call: one dict lookup for the trust verdict (cached
per address), one for the bucket, and arithmetic.  The table of buckets is bounded: when it is full,
buckets that have refilled completely (idle sources) are forgotten first.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["SourceRateLimiter", "TrustedNetworks"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedNetworks:
    """Membership of an address in a list of networks, cached per address string (bounded cache)."""

    def __init__(self, networks: Iterable[IPNetwork] = (), *, cache_size: int = 65536) -> None:
        self.networks = tuple(networks)
        self._cache: dict[str, bool] = {}
        self._cache_size = cache_size

    def __contains__(self, ip: object) -> bool:
        if not isinstance(ip, str):
            return False
        verdict = self._cache.get(ip)
        if verdict is None:
            verdict = self._lookup(ip)
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[ip] = verdict
        return verdict

    def _lookup(self, ip: str) -> bool:
        if not self.networks:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


class SourceRateLimiter:
    """``rate`` requests per second with bursts of ``burst`` per source; sources never limited when trusted.

    A source that keeps sending while its bucket is empty (``block_after`` refusals in a row) is blocked
    for ``block_seconds``: while blocked every packet is refused without touching its bucket.
    ``rate <= 0`` disables limiting.
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        trusted: TrustedNetworks | None = None,
        block_after: int = 0,
        block_seconds: float = 60.0,
        max_sources: int = 65536,
    ) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.trusted = trusted if trusted is not None else TrustedNetworks()
        self.block_after = block_after
        self.block_seconds = block_seconds
        self.max_sources = max_sources
        # ip -> [tokens, last refill time, refusals in a row, blocked until]
        self._buckets: dict[str, list[float]] = {}
        self.refused = 0
        self.blocked_sources = 0

    def allow(self, ip: str, now: float) -> bool:
        """Take one token for ``ip`` at ``now``; False when the source is over its rate or blocked."""
        if ip in self.trusted:
            return True
        bucket = self._buckets.get(ip)
        if self.rate <= 0:  # no rate limit: only a block (failed authentication) refuses
            if bucket is not None and bucket[3] > now:
                self.refused += 1
                return False
            return True
        if bucket is None:
            if len(self._buckets) >= self.max_sources:
                self._evict(now)
            self._buckets[ip] = [self.burst - 1.0, now, 0.0, 0.0]
            return True
        if bucket[3] > now:
            self.refused += 1
            return False
        tokens = bucket[0] + (now - bucket[1]) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            bucket[2] = 0.0
            return True
        bucket[0] = tokens
        bucket[2] += 1.0
        self.refused += 1
        if self.block_after and bucket[2] >= self.block_after:
            self.block(ip, now)
        return False

    def block(self, ip: str, now: float, seconds: float | None = None) -> None:
        """Refuse everything from ``ip`` until ``now + seconds`` (default ``block_seconds``)."""
        if ip in self.trusted:
            return
        bucket = self._buckets.get(ip)
        if bucket is None:
            if len(self._buckets) >= self.max_sources:
                self._evict(now)
            bucket = self._buckets[ip] = [self.burst, now, 0.0, 0.0]
        bucket[2] = 0.0
        bucket[3] = now + (self.block_seconds if seconds is None else seconds)
        self.blocked_sources += 1

    def is_blocked(self, ip: str, now: float) -> bool:
        bucket = self._buckets.get(ip)
        return bucket is not None and bucket[3] > now

    def __len__(self) -> int:
        return len(self._buckets)

    def _evict(self, now: float) -> None:
        """Forget sources whose bucket is full again and that are not blocked; if none, the oldest half."""
        rate, burst = self.rate, self.burst
        idle = [
            ip
            for ip, (tokens, last, _, until) in self._buckets.items()
            if until <= now and tokens + (now - last) * rate >= burst
        ]
        if not idle:
            by_age = sorted(self._buckets.items(), key=lambda item: item[1][1])
            idle = [ip for ip, _ in by_age[: len(by_age) // 2 or 1]]
        for ip in idle:
            del self._buckets[ip]
