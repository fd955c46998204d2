"""Per-source protection for the SIP transport: token-bucket rate limits, blocking (also after failed
authentication), TCP connection bounds, and the SIP core's transaction and dialog bounds.

Everything here is sans-IO: callers pass ``now`` (the loop's clock), so the rules are tested without
sockets or sleeping.  The per-packet cost is a dict lookup and a few float operations.
"""

from switch.security.guard import GuardSettings, SourceGuard, TcpSlot, guard_settings_from
from switch.security.limits import CoreLimits, ResourceBounds
from switch.security.ratelimit import SourceRateLimiter, TrustedNetworks

__all__ = [
    "CoreLimits",
    "GuardSettings",
    "ResourceBounds",
    "SourceGuard",
    "SourceRateLimiter",
    "TcpSlot",
    "TrustedNetworks",
    "guard_settings_from",
]
