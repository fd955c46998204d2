"""The RTP side of a media load run: a generator process that sends every leg's stream and times every
packet the switch sends back with the kernel's receive timestamp (``SO_TIMESTAMPNS``).

Sending is :class:`bench.rtpgen.RtpGenerator` (one numpy array per tick, ``sendmmsg`` per source socket).
Each generated packet carries a marker and its stream's sequence number in its first payload bytes, so the
receiver counts exactly the generator's packets that came through the switch (a bridge in pass-through
copies payloads byte for byte) apart from anything the switch made itself.

Receiving is ``recvmmsg`` with a control buffer per message: the kernel stamps each datagram when it reaches
the socket, which on loopback is the moment the switch's send system call ran, so the send intervals are
read without the generator's own scheduling in them. Per leg (identified by the switch port it came from)
the receiver keeps packet counts and a histogram of |interval - 20 ms|.

The process is forked before the harness starts any thread or event loop; the parent talks to it over a pipe.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import socket
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bench.rtpgen import TICK, RtpGenerator
from switch.media.fastio import _LIBC, BatchReceiver, _MMsgHdr, _view, sockaddrs

__all__ = ["BIN_MS", "BINS", "MARKER", "GeneratorReport", "StampedReceiver", "generator_main"]

SO_TIMESTAMPNS = 35
"""Linux: ``SO_TIMESTAMPNS`` (also the ``SCM_TIMESTAMPNS`` control message type)."""
MARKER = 0x5A
BIN_MS = 0.05
BINS = 1000
"""|interval - 20 ms| histogram: 0.05 ms bins up to 50 ms (the last bin holds everything above)."""
_CONTROL = 64
_CTRL_DTYPE = _view(_MMsgHdr, {"hdr.control": "<u8", "hdr.controllen": "<u8"})
WARMUP = 0.5
"""Seconds of each run before intervals count (the first packets of a bridge fill its jitter buffer)."""


class StampedReceiver(BatchReceiver):
    """A :class:`BatchReceiver` that also returns each datagram's kernel receive time (CLOCK_REALTIME)."""

    def __init__(self, capacity: int = 256) -> None:
        super().__init__(capacity, 64)
        self._control = np.zeros((capacity, _CONTROL), np.uint8)
        self._ctrl = np.frombuffer(memoryview(self._m.c_msgs).cast("B"), _CTRL_DTYPE)
        self._ctrl["hdr_control"] = self._control.ctypes.data + _CONTROL * np.arange(
            capacity, dtype=np.uint64
        )
        self._stamp_sec = self._control[:, 16:24].view("<i8")[:, 0]
        self._stamp_ns = self._control[:, 24:32].view("<i8")[:, 0]
        self._cmsg_type = self._control[:, 12:16].view("<i4")[:, 0]

    def recv(self, sock: socket.socket | int) -> int:
        self._ctrl["hdr_controllen"] = _CONTROL
        fd = sock if isinstance(sock, int) else sock.fileno()
        count = int(_LIBC.recvmmsg(fd, self._m.address, self.capacity, 0x40, None))
        if count >= 0:
            return count
        code = ctypes.get_errno()
        if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR, errno.ECONNREFUSED):
            return 0
        raise OSError(code, os.strerror(code))

    def stamps(self, count: int) -> NDArray[np.float64]:
        """Receive times in seconds of the first ``count`` datagrams (NaN where the kernel gave none)."""
        seconds = self._stamp_sec[:count] + self._stamp_ns[:count] * 1e-9
        return np.where(self._cmsg_type[:count] == SO_TIMESTAMPNS, seconds, np.nan)


@dataclass
class GeneratorReport:
    sent: NDArray[np.int64]  # per stream
    received: NDArray[np.int64]  # per leg: every packet from the switch
    marked: NDArray[np.int64]  # per leg: the generator's packets that came back through the switch
    histogram: NDArray[np.int64]  # (legs, BINS) of |interval - 20 ms|
    cpu_s: float
    wall_s: float
    ticks: int
    late_ticks: int  # ticks the generator sent more than 2 ms after their deadline


class _Legs:
    """Per-leg receive accounting for packets from known switch ports."""

    def __init__(self, ports: list[int]) -> None:
        legs = len(ports)
        self.lut = np.full(65536, -1, np.int64)
        for index, port in enumerate(ports):
            if port:
                self.lut[port] = index
        self.received = np.zeros(legs, np.int64)
        self.marked = np.zeros(legs, np.int64)
        self.last = np.zeros(legs, np.float64)
        self.histogram = np.zeros((legs, BINS), np.int64)
        self.counting_from = float("inf")
        """Intervals count from this time (set when the run starts)."""

    def add(self, rx: StampedReceiver, count: int, leg: int = -1) -> None:
        """Account a batch: by the switch port it came from, or all to ``leg`` (the stream of the socket
        it came to, when every stream has its own socket: a switch on one shared RTP port)."""
        legs = self.lut[rx.ports[:count]] if leg < 0 else np.full(count, leg, np.int64)
        known = legs >= 0
        if not known.all():
            legs = legs[known]
        stamps = rx.stamps(count)[known]
        self.received += np.bincount(legs, minlength=len(self.received))
        marked = rx.buffer[:count, 12][known] == MARKER
        self.marked += np.bincount(legs[marked], minlength=len(self.marked))
        if len(np.unique(legs)) == len(legs):
            previous = self.last[legs]
            self.last[legs] = stamps
        else:  # a leg more than once in one batch (a late tick and its catch-up, a backlog): in order
            order = np.argsort(legs, kind="stable")
            legs, stamps = legs[order], stamps[order]
            first = np.ones(len(legs), np.bool_)
            first[1:] = legs[1:] != legs[:-1]
            last = np.ones(len(legs), np.bool_)
            last[:-1] = first[1:]
            previous = np.empty_like(stamps)
            previous[1:] = stamps[:-1]
            previous[first] = self.last[legs[first]]
            self.last[legs[last]] = stamps[last]
        self._intervals(legs, stamps, previous)

    def _intervals(
        self, legs: NDArray[np.int64], stamps: NDArray[np.float64], previous: NDArray[np.float64]
    ) -> None:
        use = (previous >= self.counting_from) & (previous > 0) & np.isfinite(stamps)
        if not use.any():
            return
        deviation = np.abs((stamps[use] - previous[use]) - TICK) * 1000.0
        bins = np.minimum((deviation / BIN_MS).astype(np.int64), BINS - 1)
        np.add.at(self.histogram, (legs[use], bins), 1)


def generator_main(conn: Connection, streams: int, sources: int) -> None:
    """The generator process: bind, say where each stream sends from, then run on the parent's word.

    Protocol: -> list of (host, port) source per stream; <- ("run", targets, switch_ports, seconds) with the
    target of each stream ("", 0 for streams not used) and the switch port of each leg (stream i's leg is
    the channel that sends back to stream i's source); -> GeneratorReport; <- "quit".
    """
    gen = RtpGenerator([("127.0.0.1", 9)] * streams, sources=sources)
    for sock in gen.socks:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 23)
    conn.send(gen.source_addresses())
    message: Any = conn.recv()
    if message == "quit":
        return
    _, targets, ports, seconds = message
    order = gen.stream_of_row
    used = np.array([bool(targets[int(i)][1]) for i in order])
    gen.addresses = sockaddrs([targets[int(i)] if targets[int(i)][1] else ("127.0.0.1", 9) for i in order])
    gen.packets[:, 12] = MARKER
    row_stream = order.astype(np.int64)
    legs = _Legs(ports)
    rx = StampedReceiver(256)
    # With a socket per stream the socket a packet came to names its leg, whatever port it came from.
    leg_of = {s.fileno(): int(i) if gen.sources == streams else -1 for i, s in enumerate(gen.socks)}
    for fd, leg in leg_of.items():  # what the switch sent while the calls were set up (counted, no intervals)
        while count := rx.recv(fd):
            legs.add(rx, count, leg)
    conn.send("started")
    report = _run(gen, legs, rx, used, float(seconds), leg_of)
    sent = np.zeros(streams, np.int64)
    sent[row_stream] = report.sent
    report.sent = sent
    conn.send(report)
    conn.recv()
    gen.close()


def _run(
    gen: RtpGenerator,
    legs: _Legs,
    rx: StampedReceiver,
    used: NDArray[np.bool_],
    seconds: float,
    leg_of: dict[int, int],
) -> GeneratorReport:
    cpu0 = os.times()
    start = time.monotonic()
    legs.counting_from = time.time() + WARMUP
    sent_rows = np.zeros(gen.streams, np.int64)
    late = 0
    k = 0
    poller = select.epoll()
    for sock in gen.socks:
        poller.register(sock.fileno(), select.EPOLLIN)
    fds = [s.fileno() for s in gen.socks]
    while True:
        now = time.monotonic()
        if now - start >= seconds:
            break
        deadline = start + k * TICK
        if now >= deadline:
            if now - deadline > 0.002:
                late += 1
            gen.tick()
            sent_rows += used
            k += 1
            continue
        for fd, _ in poller.poll(max(0.0, deadline - now)):
            while count := rx.recv(fd):
                legs.add(rx, count, leg_of[fd])
    end = time.monotonic() + 0.3  # what is still in the switch's jitter buffers comes out
    while time.monotonic() < end:
        for fd in fds:
            while count := rx.recv(fd):
                legs.add(rx, count, leg_of[fd])
        time.sleep(0.005)
    cpu1 = os.times()
    poller.close()
    return GeneratorReport(
        sent=sent_rows,
        received=legs.received,
        marked=legs.marked,
        histogram=legs.histogram,
        cpu_s=(cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
        wall_s=time.monotonic() - start,
        ticks=k,
        late_ticks=late,
    )


def percentiles_ms(histogram: NDArray[np.int64], q: float) -> NDArray[np.float64]:
    """Per row of a (legs, BINS) histogram: the q-th percentile of |interval - 20 ms| in ms (upper bin
    edge; NaN for rows without intervals)."""
    totals = histogram.sum(axis=1)
    cumulative = np.cumsum(histogram, axis=1)
    need = np.ceil(totals * q / 100.0)
    index = (cumulative < need[:, None]).sum(axis=1)
    out = (index + 1) * BIN_MS
    return np.where(totals > 0, out, np.nan)
