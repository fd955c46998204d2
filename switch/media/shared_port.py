"""One RTP port (and the RTCP port above it) for every channel of a media engine (``--rtp-shared-port``).

Every channel advertises the same port. Each tick drains the RTP socket with ``recvmmsg`` (full batches,
:class:`~switch.media.fastio.BatchReader` without ``add_reader``), finds each packet's channel in numpy
(:class:`~switch.media.fastio.Demux`: by remote address and SSRC), and hands it to that channel's
:class:`~switch.media.receiver.RtpReceiver`, which does what it does for a socket of its own (latching,
RTCP on the RTP port with rtcp-mux, RFC 4733, jitter buffer). The tick's packets leave in one ``sendmmsg``
from the same socket, so a phone sees media come from the port its SDP answer named (symmetric RTP).

Latching without RTP Bleed on a shared port: a packet whose (address, SSRC) no channel claims goes to the one
channel it can belong to, or nowhere: the channel whose remote is that address (a new SSRC of the same peer,
once that channel's stream has been silent :data:`SSRC_CHANGE_TICKS` ticks: while it runs, the new SSRC is
another call of a peer that carries several); else the only channel that may still latch; else the only one
that may latch and has received nothing yet. When several could take it the packet is dropped and counted in
``unclaimed``: NATed phones behind a busy shared port need per-channel sockets, the default. RTCP on the port
above is matched the same way, by the remote RTP port (its port - 1) and the sender's SSRC.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from switch.media.fastio import SOCKADDR_DTYPE, BatchReader, BatchReceiver, BatchSender, Demux

if TYPE_CHECKING:
    from switch.media.jitter import JitterBuffer
    from switch.media.receiver import RtpReceiver

__all__ = ["SharedEndpoint", "SharedPort"]

FRAME = 160
SSRC_CHANGE_TICKS = 3
"""A new SSRC of audio from a channel's own remote address is that channel's new stream only once its
stream has been silent this many ticks: while it runs, the new stream is another call from the same peer (a
gateway whose next call's channel is not configured yet), which must never be mixed into this one.
Telephone events (RFC 4733) are taken whatever their SSRC, as before: some phones send them with one of
their own."""
_FAST = {"codec_pt": -1, "stream_ssrc": -1, "extended_max": 0, "pending": 0}
"""The fast path's per-slot arrays and what a free slot holds."""
_SO_RCVBUFFORCE = 33
_BUFFER = 1 << 22
_RECEIVE_BUFFER = 1 << 25
"""The shared port's receive buffer: the kernel charges ~1 KB per queued small datagram, so 4 MB held
about 34 ms at 2000 legs, less than one late tick plus a sender's catch-up burst (the 1000-call soak lost
0.4 % there); 32 MB holds ~250 ms. Only queued packets use it. Without CAP_NET_ADMIN the kernel caps it at
``net.core.rmem_max``."""


def _size_buffers(sock: socket.socket) -> None:
    for opt in (_SO_RCVBUFFORCE, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, _RECEIVE_BUFFER)
            break
        except OSError:
            continue
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _BUFFER)


class SharedEndpoint:
    """What a channel on the shared port has instead of a transport: ``sendto`` through the shared
    socket, and a ``close`` that leaves it open for the others."""

    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def sendto(self, data: bytes | memoryview, addr: tuple[str, int]) -> None:
        try:
            self.sock.sendto(data, addr)
        except OSError:  # a full buffer or ICMP from an earlier datagram: UDP loses it, as a network may
            pass

    def close(self) -> None:
        pass


class SharedPort:
    """The shared RTP socket ``rtp`` (even port) and RTCP socket ``rtcp`` (the port above) of an engine.

    ``protocols`` is the engine's slot -> receiver list (kept current by the engine); ``on_rtcp`` gets
    ``(channel, datagram)`` for RTCP from a channel's peer.
    """

    def __init__(
        self,
        rtp: socket.socket,
        rtcp: socket.socket,
        protocols: list[RtpReceiver],
        on_rtcp: Callable[[int, bytes], None],
        loop: asyncio.AbstractEventLoop,
        jitter: JitterBuffer,
        tick: Callable[[], int],
        *,
        capacity: int = 1024,
    ) -> None:
        for sock in (rtp, rtcp):
            sock.setblocking(False)
        _size_buffers(rtp)
        self.rtp, self.rtcp = rtp, rtcp
        self.port = int(rtp.getsockname()[1])
        self.rtp_endpoint = SharedEndpoint(rtp)
        self.rtcp_endpoint = SharedEndpoint(rtcp)
        self._protocols = protocols
        self._on_rtcp = on_rtcp
        self._jitter = jitter
        self._tick = tick
        self._clock = loop.time
        self.demux = Demux()
        self.rtcp_demux = Demux()
        self._reader = BatchReader(rtp, self._batch, capacity=capacity, limit=1 << 20, watch=False)
        self._rtcp_reader = BatchReader(rtcp, self._rtcp_batch, capacity=16, limit=64, loop=loop)
        self._sender = BatchSender(1024)
        self.member = np.zeros(64, np.bool_)
        """Slot -> the channel is on this port (others have sockets of their own)."""
        self.addresses = np.zeros(64, SOCKADDR_DTYPE)
        """Slot -> where its packets go (the SDP address, or the source it latched to)."""
        # The fast path (see _batch): what a packet must show to skip its receiver, per slot.
        self.codec_pt = np.full(64, -1, np.int64)
        self.stream_ssrc = np.full(64, -1, np.int64)
        """The SSRC the receiver has seen last (-1: none yet, or not on the fast path)."""
        self.extended_max = np.zeros(64, np.int64)
        self.pending = np.zeros(64, np.int64)
        """Packets taken by the fast path not yet counted in the receiver's :class:`Peer` (see fold)."""
        self.fast_packets = 0
        self.last_tick = 0
        self._lengths = np.zeros(0, np.int64)
        self.unclaimed = 0
        """Packets no channel could be told to own (dropped)."""
        self.received = 0

    # -- slots --------------------------------------------------------------------------------------------
    def ensure(self, slot: int) -> None:
        """Make room for slot numbers up to ``slot``."""
        if slot >= len(self.member):
            size = max(slot + 1, 2 * len(self.member))
            member = np.zeros(size, np.bool_)
            member[: len(self.member)] = self.member
            addresses = np.zeros(size, SOCKADDR_DTYPE)
            addresses[: len(self.addresses)] = self.addresses
            self.member, self.addresses = member, addresses
            for name, fill in _FAST.items():
                old = getattr(self, name)
                new = np.full(size, fill, np.int64)
                new[: len(old)] = old
                setattr(self, name, new)

    def add(self, slot: int) -> None:
        self.ensure(slot)
        self.member[slot] = True
        self.addresses[slot] = np.zeros(1, SOCKADDR_DTYPE)[0]
        for name, fill in _FAST.items():
            getattr(self, name)[slot] = fill

    def fold(self, slot: int) -> None:
        """Count the fast path's packets of ``slot`` in its receiver's :class:`Peer` (before reading it)."""
        if slot >= len(self.pending):
            return
        count = int(self.pending[slot])
        if count:
            self.pending[slot] = 0
            peer = self._protocols[slot].peer
            peer.extended_max = int(self.extended_max[slot])
            peer.received += count
            peer.packets += count
            peer.octets += count * FRAME
            peer.last_tick = int(self.last_tick)

    def fold_all(self) -> None:
        for slot in np.flatnonzero(self.pending).tolist():
            self.fold(slot)

    def _sync(self, slot: int) -> None:
        """After the receiver took a packet itself: what the fast path may assume of ``slot`` now."""
        peer = self._protocols[slot].peer
        self.stream_ssrc[slot] = peer.ssrc if peer.candidate_run == 0 else -1
        self.extended_max[slot] = peer.extended_max
        self.codec_pt[slot] = peer.codec_pt

    def set_remote(self, slot: int, remote: tuple[str, int] | None, ssrc: int = -1) -> None:
        """Send to and expect from ``remote`` (None: on hold, expect nothing); a known ``ssrc`` too."""
        self.stream_ssrc[slot] = -1  # the receiver's next packet settles what the fast path may assume
        if remote is None:
            self.demux.unregister(slot)
            self.rtcp_demux.unregister(slot)
            return
        ip = int.from_bytes(socket.inet_aton(remote[0]), "big")
        record = self.addresses[slot : slot + 1]
        record["family"] = socket.AF_INET
        record["ip"] = ip
        record["port"] = remote[1]
        self.demux.register(slot, remote)
        self.rtcp_demux.register(slot, remote)
        if ssrc >= 0:
            self.demux.learn(slot, ssrc)
            self.rtcp_demux.learn(slot, ssrc)

    def latched(self, slot: int, ssrc: int) -> None:
        """The receiver of ``slot`` moved to a new source: send there and expect its stream ``ssrc``."""
        self.set_remote(slot, self._protocols[slot].peer.remote, ssrc)

    def remove(self, slot: int) -> None:
        self.member[slot] = False
        for name, fill in _FAST.items():
            getattr(self, name)[slot] = fill
        self.demux.unregister(slot)
        self.rtcp_demux.unregister(slot)

    def move(self, source: int, dest: int) -> None:
        """Slot ``source`` is now ``dest`` (the engine's swap-remove, which folds ``source`` before its
        receiver moves); ``source`` becomes free."""
        self.ensure(max(source, dest))
        self.member[dest] = self.member[source]
        self.member[source] = False
        self.addresses[dest] = self.addresses[source]
        for name, fill in _FAST.items():
            arr = getattr(self, name)
            arr[dest] = arr[source]
            arr[source] = fill
        for demux in (self.demux, self.rtcp_demux):
            demux.move(source, dest)

    # -- per tick -----------------------------------------------------------------------------------------
    def drain(self) -> int:
        """Read every waiting datagram and hand each to its channel; return how many were read."""
        self._candidates: list[int] | None = None
        self._remotes: dict[tuple[str, int], list[int]] | None = None
        self.last_tick = self._tick()
        count = self._reader.drain()
        self.received += count
        return count

    def send(self, packets: NDArray[np.uint8], rows: NDArray[np.intp]) -> int:
        """Send ``packets[row]`` (whole rows) to each row's address with ``sendmmsg``."""
        if rows.size == 0:
            return 0
        if self._lengths.size < rows.size:
            self._lengths = np.full(max(rows.size, 2 * self._lengths.size), packets.shape[1], np.int64)
        return self._sender.send(self.rtp, packets, self._lengths[: rows.size], self.addresses, rows=rows)

    def close(self) -> None:
        self._reader.close()
        self._rtcp_reader.close()
        self.rtp.close()
        self.rtcp.close()

    # -- receiving ----------------------------------------------------------------------------------------
    def _batch(self, rx: BatchReceiver, count: int) -> None:
        head = rx.buffer[:count]
        ssrcs = rx.ssrcs(count)
        rtcp = (head[:, 1] >= 192) & (head[:, 1] <= 223)  # rtcp-mux (RFC 5761): the sender's SSRC
        if rtcp.any():
            ssrcs[rtcp] = head[rtcp, 4:8].copy().view(">u4")[:, 0]
        found = self.demux.lookup(rx.ips[:count], rx.ports[:count], ssrcs)
        slow = self._fast(rx, count, head, found, ssrcs)
        protocols = self._protocols
        for index in slow.tolist():
            slot = int(found[index])
            if slot < 0:
                slot = self._claim(rx, index, int(ssrcs[index]))
                if slot < 0:
                    continue
            self.fold(slot)
            protocols[slot].datagram_received(rx.datagram(index), rx.address(index))
            self._sync(slot)

    def _fast(
        self,
        rx: BatchReceiver,
        count: int,
        head: NDArray[np.uint8],
        found: NDArray[np.int64],
        ssrcs: NDArray[np.uint32],
    ) -> NDArray[np.intp]:
        """Take the plain packets in numpy; return the rows the receivers must see one by one.

        Plain: a known stream (address and the SSRC its receiver has seen, no latch candidate running), a
        12-byte header, 160 bytes of the channel's codec, one packet of its channel in this batch. What
        the receiver would do for it is done here for all of them at once: jitter buffer, sequence
        extension; its counters wait in ``pending`` until :meth:`fold`.
        """
        slot = np.maximum(found, 0)
        second = head[:, 1]
        plain = (
            (found >= 0)
            & (head[:, 0] == 0x80)
            & (rx.lengths[:count] == 12 + FRAME)
            & ((second < 192) | (second > 223))
            & ((second & 0x7F) == self.codec_pt[slot])
            & (ssrcs == self.stream_ssrc[slot])
        )
        rows = np.flatnonzero(plain)
        if rows.size == 0:
            return np.arange(count)
        slots = slot[rows]
        if rows.size > 1:
            order = np.argsort(slots, kind="stable")
            ranked = slots[order]
            repeated = np.zeros(rows.size, np.bool_)
            same = ranked[1:] == ranked[:-1]
            repeated[order[1:]] = same
            repeated[order[:-1]] |= same
            if repeated.any():
                rows, slots = rows[~repeated], slots[~repeated]
        packets = head[rows]
        fields = packets[:, :8].copy().view(">u2")
        timestamps = (fields[:, 2].astype(np.int64) << 16) | fields[:, 3]
        taken = self._jitter.put_frames(slots, timestamps, packets[:, 12 : 12 + FRAME], self._clock())
        rows, slots = rows[taken], slots[taken]
        seqs = fields[taken, 1].astype(np.int64)
        ext = self.extended_max[slots]
        delta = (seqs - ext) & 0xFFFF
        self.extended_max[slots] = np.where(delta < 0x8000, ext + delta, ext)
        self.pending[slots] += 1
        self.fast_packets += rows.size
        slow = np.ones(count, np.bool_)
        slow[rows] = False
        return np.flatnonzero(slow)

    def _claim(self, rx: BatchReceiver, index: int, ssrc: int) -> int:
        """The one slot an unclaimed packet may go to, or -1 (see the module)."""
        address = rx.address(index)
        if self._remotes is None:
            self.fold_all()
            self._remotes = {}
            self._candidates = []
            fresh: list[int] = []
            for slot, protocol in enumerate(self._protocols):
                if not self.member[slot]:
                    continue
                peer = protocol.peer
                self._remotes.setdefault(peer.remote, []).append(slot)
                if peer.may_latch:
                    self._candidates.append(slot)
                    if peer.packets == 0:
                        fresh.append(slot)
            if len(self._candidates) > 1:
                self._candidates = fresh
        owners = self._remotes.get(address)
        if owners is None:
            owners = self._candidates
        if owners is None or len(owners) != 1:
            self.unclaimed += 1
            return -1
        slot = owners[0]
        peer = self._protocols[slot].peer
        if address == peer.remote:
            running = peer.packets and self.last_tick - peer.last_tick < SSRC_CHANGE_TICKS
            events = (int(rx.buffer[index, 1]) & 0x7F) == peer.te_pt  # RFC 4733: any SSRC
            if running and ssrc != peer.ssrc and not events:
                self.unclaimed += 1  # its stream is running: another call from the same peer
                return -1
            self.demux.learn(slot, ssrc)  # a new stream of the known peer
            self.rtcp_demux.learn(slot, ssrc)
        return slot

    def _rtcp_batch(self, rx: BatchReceiver, count: int) -> None:
        head = rx.buffer[:count]
        ssrcs = head[:, 4:8].copy().view(">u4")[:, 0]
        ports = (rx.ports[:count].astype(np.int64) - 1).astype(np.uint16)
        slots = self.rtcp_demux.lookup(rx.ips[:count], ports, ssrcs).tolist()
        for index, slot in enumerate(slots):
            if slot >= 0 and rx.lengths[index] >= 8:
                self._on_rtcp(self._protocols[slot].channel, rx.datagram(index))
