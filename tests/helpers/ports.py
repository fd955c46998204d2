"""Free loopback ports picked at run time.

A port is free when this process can bind it right now; another process may still take it before the
program under test binds it, so callers start that program soon after asking. Ports handed out by this
module are remembered and never handed out twice in one test session, which keeps concurrent fixtures
from picking the same number.
"""

from __future__ import annotations

import random
import socket
import threading

__all__ = ["free_rtp_range", "free_sip_port", "free_tcp_port", "free_udp_port", "is_free"]

HOST = "127.0.0.1"
_LOW, _HIGH = 30000, 60000
"""Ranges (RTP: a switch's 200 and more) come from here..."""
_SMALL_LOW, _SMALL_HIGH = 18000, 30000
"""...and single ports and small spans (SIP, SIPp's four media ports) from here: scattered at random over one
region, hundreds of them fragmented it until no 200 consecutive ports were left late in the session."""
_given: set[int] = set()
_lock = threading.Lock()


def _bindable(kind: int, port: int, host: str) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def is_free(port: int, *, udp: bool = True, tcp: bool = True, host: str = HOST) -> bool:
    """True when `port` can be bound now on `host` for each protocol asked for."""
    if udp and not _bindable(socket.SOCK_DGRAM, port, host):
        return False
    return not (tcp and not _bindable(socket.SOCK_STREAM, port, host))


def _pick(count: int, *, udp: bool, tcp: bool, host: str, align: int = 1) -> int:
    """First port of `count` consecutive free ports (each free for the protocols asked for)."""
    rng = random.Random()
    low, high = (_SMALL_LOW, _SMALL_HIGH) if count <= 4 else (_LOW, _HIGH)
    for _ in range(2000):
        base = rng.randrange(low, high - count) // align * align
        span = range(base, base + count)
        with _lock:
            if any(p in _given for p in span):
                continue
            if all(is_free(p, udp=udp, tcp=tcp, host=host) for p in span):
                _given.update(span)
                return base
    raise RuntimeError(f"no {count} consecutive free ports on {host}")


def free_udp_port(host: str = HOST) -> int:
    """A UDP port free on `host`."""
    return _pick(1, udp=True, tcp=False, host=host)


def free_tcp_port(host: str = HOST) -> int:
    """A TCP port free on `host`."""
    return _pick(1, udp=False, tcp=True, host=host)


def free_sip_port(host: str = HOST, *, span: int = 1) -> int:
    """A port free for both UDP and TCP (SIP listens on both); `span` > 1 also reserves the ports after it
    (baresip binds PORT and PORT+1)."""
    return _pick(span, udp=True, tcp=True, host=host)


def free_media_port(host: str = HOST) -> int:
    """An even UDP port for SIPp's -mp: SIPp binds it and the three after it (audio RTCP, video RTP and
    RTCP), so all four are reserved."""
    return _pick(4, udp=True, tcp=False, host=host, align=2)


def free_rtp_range(count: int = 100, host: str = HOST) -> tuple[int, int]:
    """An even-aligned range [low, high] of `count` UDP ports, all free."""
    count += count % 2
    low = _pick(count, udp=True, tcp=False, host=host, align=2)
    return low, low + count - 1
