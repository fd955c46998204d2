"""SIP timer values (RFC 3261 §17 and Table 4, RFC 6026 §8.11).

A :class:`TimerSettings` is passed to every transaction; there is no global, so a test or a short
profile simply builds its own.  Values for unreliable transports are given; the transactions zero
timers D, I, J and K on reliable transports as the RFC says.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TimerSettings"]


@dataclass(frozen=True, slots=True)
class TimerSettings:
    """T1 (RTT estimate), T2 (maximum non-INVITE retransmit interval), T4 (network lifetime)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    def __post_init__(self) -> None:
        if not (0 < self.t1 <= self.t2) or self.t4 <= 0:
            raise ValueError("timer settings need 0 < T1 <= T2 and T4 > 0")

    @property
    def timer_a(self) -> float:
        """INVITE request retransmit interval, initially T1 (doubles, UDP only)."""
        return self.t1

    @property
    def timer_b(self) -> float:
        """INVITE client transaction timeout."""
        return 64 * self.t1

    @property
    def timer_c(self) -> float:
        """Proxy INVITE transaction timeout (> 3 minutes)."""
        return 180.0

    @property
    def timer_d(self) -> float:
        """Wait time for response retransmits (client INVITE, UDP; RFC: >= 32 s, here 64*T1)."""
        return 64 * self.t1

    @property
    def timer_e(self) -> float:
        """Non-INVITE request retransmit interval, initially T1 (UDP only)."""
        return self.t1

    @property
    def timer_f(self) -> float:
        """Non-INVITE client transaction timeout."""
        return 64 * self.t1

    @property
    def timer_g(self) -> float:
        """INVITE final response retransmit interval, initially T1 (UDP only)."""
        return self.t1

    @property
    def timer_h(self) -> float:
        """Wait time for ACK receipt."""
        return 64 * self.t1

    @property
    def timer_i(self) -> float:
        """Wait time for ACK retransmits (UDP)."""
        return self.t4

    @property
    def timer_j(self) -> float:
        """Wait time for non-INVITE request retransmits (UDP)."""
        return 64 * self.t1

    @property
    def timer_k(self) -> float:
        """Wait time for non-INVITE response retransmits (UDP)."""
        return self.t4

    @property
    def timer_l(self) -> float:
        """RFC 6026: wait time for accepted INVITE request retransmits (server)."""
        return 64 * self.t1

    @property
    def timer_m(self) -> float:
        """RFC 6026: wait time for retransmission of 2xx to INVITE (client)."""
        return 64 * self.t1
