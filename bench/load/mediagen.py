"""The RTP side of a media load run: a generator process that sends every leg's stream and times every
packet the switch sends back with the kernel's receive timestamp (``SO_TIMESTAMPNS``).

Sending is :class:`bench.rtpgen.RtpGenerator` (one numpy array per tick, ``sendmmsg`` per source socket,
a few dozen sockets shared by all legs, each leg with its own SSRC). Each generated packet carries a marker,
its stream's number and the tick number in its first payload bytes, so the receiver knows the leg of every
packet whatever socket or switch port it came by, and counts exactly the generator's packets of the
measured ticks that came through the switch (a bridge in pass-through copies payloads byte for byte) apart
from anything the switch made itself.

Receiving is ``recvmmsg`` with a control buffer per message, once per tick over every socket (no wake-up
per packet): the kernel stamps each datagram when it reaches the socket, which on loopback is the moment
the switch's send system call ran, so the send intervals are read without the generator's own scheduling
in them. Per leg the receiver keeps packet counts and a histogram of |interval - 20 ms|.

The process is forked before the harness starts any thread or event loop; the parent talks to it over a pipe.
"""

from __future__ import annotations

import ctypes
import errno
import os
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

    def recv(self, sock: socket.socket | int, start: int = 0) -> int:
        """Read what is waiting into rows ``start`` and up (see :meth:`BatchReceiver.recv`)."""
        self._ctrl["hdr_controllen"][start:] = _CONTROL
        fd = sock if isinstance(sock, int) else sock.fileno()
        address = self._m.address + start * self._m.entry
        count = int(_LIBC.recvmmsg(fd, address, self.capacity - start, 0x40, None))
        if count >= 0:
            return count
        code = ctypes.get_errno()
        if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR, errno.ECONNREFUSED):
            return 0
        raise OSError(code, os.strerror(code))

    def stamps(self, count: int) -> NDArray[np.float64]:
        """Receive times in seconds (CLOCK_REALTIME) of the first ``count`` datagrams (NaN where the kernel
        gave none)."""
        seconds = self._stamp_sec[:count] + self._stamp_ns[:count] * 1e-9
        return np.where(self._cmsg_type[:count] == SO_TIMESTAMPNS, seconds, np.nan)


@dataclass
class GeneratorReport:
    sent: NDArray[np.int64]  # per stream, in the measured window
    received: NDArray[np.int64]  # per leg: every RTP packet from the switch in the window
    marked: NDArray[np.int64]  # per leg: the partner stream's packets of the window that came out of it
    histogram: NDArray[np.int64]  # (legs, BINS) of |interval - 20 ms|
    cpu_s: float
    wall_s: float
    ticks: int
    late_ticks: int  # ticks the generator sent more than 2 ms after their deadline
    unattributed: int = 0  # RTP packets from the switch that named no leg (unmarked, unknown SSRC)
    bursts: dict[str, float] | None = None  # see burst_stats


BURST_GAP = 0.005
"""Seconds of silence from the switch that end one tick's burst of packets (ticks are 20 ms apart)."""
STAMP_LOG = 1 << 22
"""Receive stamps kept for :func:`burst_stats` (the first 4 M packets of the window: 32 MB)."""


def burst_stats(stamps: NDArray[np.float64]) -> dict[str, float]:
    """Where send-interval jitter comes from: the switch sends each tick's packets in one burst, so the
    receive stamps of the whole window (every leg) fall into bursts about 20 ms apart. Returns the number
    of bursts, |start interval - 20 ms| (when each tick's sending began: the tick's start plus whatever
    ran before its first send) and each burst's duration (first to last packet: how far one leg's packet
    can move within its tick), p50/p99/max in ms."""
    stamps = np.sort(stamps[np.isfinite(stamps)])
    if stamps.size < 2:
        return {"bursts": float(stamps.size)}
    breaks = np.flatnonzero(np.diff(stamps) > BURST_GAP) + 1
    starts = stamps[np.concatenate([[0], breaks])]
    ends = stamps[np.concatenate([breaks - 1, [stamps.size - 1]])]
    start_jitter = np.abs(np.diff(starts) - TICK) * 1000.0
    duration = (ends - starts) * 1000.0
    out = {"bursts": float(starts.size)}
    for name, values in (("start_jitter", start_jitter), ("duration", duration)):
        if values.size:
            for q in (50, 99):
                out[f"{name}_p{q}_ms"] = round(float(np.percentile(values, q)), 3)
            out[f"{name}_max_ms"] = round(float(values.max()), 3)
    return out


class _Legs:
    """Per-leg receive accounting. Stream ``s`` and stream ``s ^ 1`` are the two legs of one call.

    Every generated packet carries, in its first payload bytes, :data:`MARKER`, its stream's number and
    the generator's tick number; a bridge in pass-through forwards payloads byte for byte, so a packet
    from the switch that shows them came from stream ``s`` and was sent on leg ``s ^ 1``, whatever port
    or socket it came from (with ``--rtp-shared-port`` every leg's packets come from one switch port,
    and many legs share a generator socket). Packets the switch made itself (no marker) are given to the
    leg whose switch SSRC a marked packet showed before.
    """

    def __init__(self, streams: int) -> None:
        self.streams = streams
        self.received = np.zeros(streams, np.int64)
        self.through = np.zeros(streams, np.int64)
        """Per stream: its packets of ticks in ``window`` that came out of the partner leg."""
        self.confirmed = np.zeros(streams, np.bool_)
        """Per stream: some packet of it came out of the partner leg (the switch knows the stream)."""
        self.last = np.zeros(streams, np.float64)
        self.histogram = np.zeros((streams, BINS), np.int64)
        self.counting_from = float("inf")
        """Intervals and received packets count from this time (set when the measured window starts)."""
        self.window = (0, 0)
        """Ticks [first, end) whose packets count as ``through``."""
        self.unattributed = 0
        self._ssrc_keys = np.zeros(0, np.uint32)
        self._ssrc_legs = np.zeros(0, np.int64)
        self.stamp_log = np.zeros(0, np.float64)
        """Receive stamps of the window's packets (every leg), up to :data:`STAMP_LOG` (set by the owner)."""
        self.logged = 0

    def _learn(self, ssrcs: NDArray[np.uint32], legs: NDArray[np.int64]) -> None:
        keys = self._ssrc_keys
        if keys.size:
            at = np.minimum(np.searchsorted(keys, ssrcs), keys.size - 1)
            new = keys[at] != ssrcs
            if not new.any():
                return
            ssrcs, legs = ssrcs[new], legs[new]
        unique, first = np.unique(ssrcs, return_index=True)
        keys = np.concatenate([keys, unique])
        values = np.concatenate([self._ssrc_legs, legs[first]])
        order = np.argsort(keys, kind="stable")
        self._ssrc_keys, self._ssrc_legs = keys[order], values[order]

    def _lookup(self, ssrcs: NDArray[np.uint32]) -> NDArray[np.int64]:
        keys = self._ssrc_keys
        if keys.size == 0:
            return np.full(ssrcs.size, -1, np.int64)
        at = np.minimum(np.searchsorted(keys, ssrcs), keys.size - 1)
        return np.where(keys[at] == ssrcs, self._ssrc_legs[at], -1)

    def add(self, rx: StampedReceiver, count: int) -> None:
        """Account a batch of datagrams from the switch (RTCP and anything else not RTP is skipped)."""
        buf = rx.buffer[:count]
        second = buf[:, 1]
        rtp = ((buf[:, 0] & 0xC0) == 0x80) & ((second < 192) | (second > 223))
        stream = buf[:, 13:15].copy().view(">u2")[:, 0].astype(np.int64)
        marked = rtp & (buf[:, 12] == MARKER) & ((second & 0x7F) == 0) & (stream < self.streams)
        ssrcs = buf[:, 8:12].copy().view(">u4")[:, 0]
        legs = np.full(count, -1, np.int64)
        legs[marked] = stream[marked] ^ 1
        if marked.any():
            self._learn(ssrcs[marked], legs[marked])
            self.confirmed[stream[marked]] = True
            ticks = buf[:, 15:19].copy().view(">u4")[:, 0]
            first, end = self.window
            counted = marked & (ticks >= first) & (ticks < end)
            self.through += np.bincount(stream[counted], minlength=self.streams)
        rest = rtp & ~marked
        if rest.any():
            legs[rest] = self._lookup(ssrcs[rest])
        stamps = rx.stamps(count)
        counting = stamps >= self.counting_from
        self.unattributed += int((rtp & (legs < 0) & counting).sum())
        known = legs >= 0
        if not known.all():
            legs, stamps, counting = legs[known], stamps[known], counting[known]
        if legs.size == 0:
            return
        self.received += np.bincount(legs[counting], minlength=self.streams)
        room = self.stamp_log.size - self.logged
        if room > 0 and counting.any():
            kept = stamps[counting][:room]
            self.stamp_log[self.logged : self.logged + kept.size] = kept
            self.logged += kept.size
        if len(np.unique(legs)) == len(legs):
            previous = self.last[legs]
            self.last[legs] = stamps
        else:  # a leg more than once in one batch (a late tick and its catch-up, a backlog): in order
            order = np.argsort(legs, kind="stable")
            legs, stamps = legs[order], stamps[order]
            first_of = np.ones(len(legs), np.bool_)
            first_of[1:] = legs[1:] != legs[:-1]
            last_of = np.ones(len(legs), np.bool_)
            last_of[:-1] = first_of[1:]
            previous = np.empty_like(stamps)
            previous[1:] = stamps[:-1]
            previous[first_of] = self.last[legs[first_of]]
            self.last[legs[last_of]] = stamps[last_of]
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


class _Generator:
    """The generator's state between the parent's messages (see :func:`generator_main`)."""

    def __init__(self, conn: Connection, streams: int, sources: int) -> None:
        self.conn = conn
        self.gen = RtpGenerator([("127.0.0.1", 9)] * streams, sources=sources)
        for sock in self.gen.socks:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 23)
        self.fds = [s.fileno() for s in self.gen.socks]
        self.row_of_stream = np.argsort(self.gen.stream_of_row)
        packets = self.gen.packets
        packets[:, 12] = MARKER
        packets[:, 13:15].view(">u2")[:, 0] = self.gen.stream_of_row.astype(np.uint16)
        self.tick_column = packets[:, 15:19].view(">u4")
        self.active = np.zeros(streams, np.bool_)  # per row
        self.gen.set_active(self.active)
        self.legs = _Legs(streams)
        self.rx = StampedReceiver(8192)
        self.reported = np.zeros(streams, np.bool_)
        self.k = 0
        self.end_tick: int | None = None
        self.late = 0
        self.cpu0 = os.times()
        self.wall0 = 0.0
        self.sent0 = np.zeros(streams, np.int64)

    def drain(self) -> None:
        rx = self.rx
        filled = 0
        for fd in self.fds:
            while True:
                count = rx.recv(fd, filled)
                filled += count
                if filled == rx.capacity:
                    self.legs.add(rx, filled)
                    filled = 0
                    continue
                break
        if filled:
            self.legs.add(rx, filled)

    def message(self, message: Any) -> bool:
        """Act on one message of the parent; False on "quit"."""
        if message == "quit":
            return False
        kind = message[0]
        if kind == "start":  # [(stream, host, port), ...]: send these streams there from the next tick
            streams = [int(stream) for stream, _, _ in message[1]]
            rows = self.row_of_stream[streams]
            self.gen.addresses[rows] = sockaddrs([(host, int(port)) for _, host, port in message[1]])
            self.active[rows] = True
            self.gen.set_active(self.active)
        elif kind == "measure":
            self.legs.window = (self.k, self.k + max(1, round(float(message[1]) / TICK)))
            self.end_tick = self.legs.window[1]
            self.legs.counting_from = time.time()
            self.legs.stamp_log = np.zeros(STAMP_LOG, np.float64)
            self.cpu0 = os.times()
            self.wall0 = time.monotonic()
            self.sent0 = self.gen.row_sent.copy()
            self.late = 0
            self.conn.send(("started",))
        return True

    def confirmations(self) -> None:
        new = self.legs.confirmed & ~self.reported
        if new.any():
            self.reported |= new
            self.conn.send(("confirmed", np.flatnonzero(new).tolist()))

    def run(self) -> GeneratorReport | None:
        """Tick until the measured window has ended (None: the parent said quit first)."""
        start = time.monotonic()
        while True:
            deadline = start + self.k * TICK
            now = time.monotonic()
            if now < deadline:
                time.sleep(deadline - now)
            elif now - deadline > 0.002 and self.end_tick is not None:
                self.late += 1
            if self.end_tick is not None and self.k >= self.end_tick:
                break
            self.tick_column[:, 0] = self.k
            self.gen.tick()
            self.k += 1
            self.drain()
            if self.end_tick is None:
                self.confirmations()
            while self.conn.poll(0):
                if not self.message(self.conn.recv()):
                    return None
        return self.report()

    def report(self) -> GeneratorReport:
        self.active[:] = False
        self.gen.set_active(self.active)
        first, end = self.legs.window
        end_time = time.monotonic() + 0.3  # what is still in the switch's jitter buffers comes out
        while time.monotonic() < end_time:
            self.drain()
            time.sleep(0.005)
        cpu1 = os.times()
        sent = np.zeros(self.gen.streams, np.int64)
        sent[self.gen.stream_of_row] = self.gen.row_sent - self.sent0
        legs = self.legs
        partner = np.arange(self.gen.streams) ^ 1
        return GeneratorReport(
            sent=sent,
            received=legs.received,
            marked=legs.through[partner],
            histogram=legs.histogram,
            cpu_s=(cpu1.user - self.cpu0.user) + (cpu1.system - self.cpu0.system),
            wall_s=time.monotonic() - self.wall0,
            ticks=end - first,
            late_ticks=self.late,
            unattributed=legs.unattributed,
            bursts=burst_stats(legs.stamp_log[: legs.logged]),
        )


def generator_main(conn: Connection, streams: int, sources: int) -> None:
    """The generator process: bind, say where each stream sends from, then tick on the parent's word.

    Stream ``i`` sends from source socket ``i % sources``; streams ``2k`` and ``2k + 1`` are the two legs
    of call ``k``. Protocol (-> to the parent, <- from it): -> list of (host, port) source per stream;
    then the generator ticks every 20 ms, sending only started streams: <- ("start", [(stream, host,
    port), ...]); -> ("confirmed", [stream, ...]) once a stream's packets come out of the partner leg
    (the switch knows the stream); <- ("measure", seconds): -> ("started",), the window begins with the
    next tick; after it every stream stops, what is in flight is read for 0.3 s, -> ("report",
    GeneratorReport); <- "quit" (at any time).
    """
    state = _Generator(conn, streams, sources)
    try:
        conn.send(state.gen.source_addresses())
        report = state.run()
        if report is None:
            return
        conn.send(("report", report))
        while conn.recv() != "quit":
            pass
    except (EOFError, BrokenPipeError):
        pass
    finally:
        state.gen.close()


def percentiles_ms(histogram: NDArray[np.int64], q: float) -> NDArray[np.float64]:
    """Per row of a (legs, BINS) histogram: the q-th percentile of |interval - 20 ms| in ms (upper bin
    edge; NaN for rows without intervals)."""
    totals = histogram.sum(axis=1)
    cumulative = np.cumsum(histogram, axis=1)
    need = np.ceil(totals * q / 100.0)
    index = (cumulative < need[:, None]).sum(axis=1)
    out = (index + 1) * BIN_MS
    return np.where(totals > 0, out, np.nan)
