"""Free loopback ports, picked at run time and never handed out twice by this process."""

from __future__ import annotations

import random
import socket

__all__ = ["free_port", "free_range"]

_given: set[int] = set()


def _bindable(port: int, tcp: bool = True) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM) if tcp else (socket.SOCK_DGRAM,):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


SINGLE_PORTS = (15000, 30000)
"""Where single ports come from; ranges (RTP) from 30000 up, so scattered singles never split them."""


def free_range(
    count: int = 1,
    *,
    align: int = 1,
    tcp: bool = True,
    remember: bool = True,
    low: int = 30000,
    high: int = 60000,
) -> int:
    """First port of `count` consecutive ports free for UDP (and TCP unless `tcp` is false) on 127.0.0.1.
    With `remember` false the range may be handed out again later (an RTP range, free once its switch stops).
    """
    rng = random.Random()
    for _ in range(500):
        base = rng.randrange(low, high - count) // align * align
        span = range(base, base + count)
        if any(p in _given for p in span):
            continue
        if all(_bindable(p, tcp) for p in span):
            if remember:
                _given.update(span)
            return base
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1")


def free_port() -> int:
    return free_range(1, low=SINGLE_PORTS[0], high=SINGLE_PORTS[1])
