"""One RTP port (and the RTCP port above it) for every channel of a media engine (``--rtp-shared-port``).

Every channel advertises the same port. Each tick drains the RTP socket with ``recvmmsg`` (full batches,
:class:`~switch.media.fastio.BatchReader` without ``add_reader``), finds each packet's channel in numpy
(:class:`~switch.media.fastio.Demux`: by remote address and SSRC), and hands it to that channel's
:class:`~switch.media.receiver.RtpReceiver`, which does what it does for a socket of its own (latching,
RTCP on the RTP port with rtcp-mux, RFC 4733, jitter buffer). The tick's packets leave in one ``sendmmsg``
from the same socket, so a phone sees media come from the port its SDP answer named (symmetric RTP).

Latching without RTP Bleed on a shared port: a packet whose (address, SSRC) no channel claims goes to the
one channel it can belong to, or nowhere: the channel whose remote is that address (a new SSRC of the same
peer); else the only channel that may still latch; else the only one that may latch and has received
nothing yet. When several could take it the packet is dropped and counted in ``unclaimed``: NATed phones
behind a busy shared port need per-channel sockets, the default. RTCP on the port above is matched the
same way, by the remote RTP port (its port - 1) and the sender's SSRC.
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
    from switch.media.receiver import RtpReceiver

__all__ = ["SharedEndpoint", "SharedPort"]

_SO_RCVBUFFORCE = 33
_BUFFER = 1 << 22


def _size_buffers(sock: socket.socket) -> None:
    for opt in (_SO_RCVBUFFORCE, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, _BUFFER)
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
        *,
        capacity: int = 256,
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
        self.demux = Demux()
        self.rtcp_demux = Demux()
        self._reader = BatchReader(rtp, self._batch, capacity=capacity, limit=1 << 20, watch=False)
        self._rtcp_reader = BatchReader(rtcp, self._rtcp_batch, capacity=16, limit=64, loop=loop)
        self._sender = BatchSender(1024)
        self.member = np.zeros(64, np.bool_)
        """Slot -> the channel is on this port (others have sockets of their own)."""
        self.addresses = np.zeros(64, SOCKADDR_DTYPE)
        """Slot -> where its packets go (the SDP address, or the source it latched to)."""
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

    def add(self, slot: int) -> None:
        self.ensure(slot)
        self.member[slot] = True
        self.addresses[slot] = np.zeros(1, SOCKADDR_DTYPE)[0]

    def set_remote(self, slot: int, remote: tuple[str, int] | None, ssrc: int = -1) -> None:
        """Send to and expect from ``remote`` (None: on hold, expect nothing); a known ``ssrc`` too."""
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
        self.demux.unregister(slot)
        self.rtcp_demux.unregister(slot)

    def move(self, source: int, dest: int) -> None:
        """Slot ``source`` is now ``dest`` (the engine's swap-remove); ``source`` becomes free."""
        self.ensure(max(source, dest))
        self.member[dest] = self.member[source]
        self.member[source] = False
        self.addresses[dest] = self.addresses[source]
        for demux in (self.demux, self.rtcp_demux):
            demux.move(source, dest)

    # -- per tick -----------------------------------------------------------------------------------------
    def drain(self) -> int:
        """Read every waiting datagram and hand each to its channel; return how many were read."""
        self._candidates: list[int] | None = None
        self._remotes: dict[tuple[str, int], list[int]] | None = None
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
        slots = self.demux.lookup(rx.ips[:count], rx.ports[:count], ssrcs).tolist()
        protocols = self._protocols
        for index, slot in enumerate(slots):
            if slot < 0:
                slot = self._claim(rx, index, int(ssrcs[index]))
                if slot < 0:
                    continue
            protocols[slot].datagram_received(rx.datagram(index), rx.address(index))

    def _claim(self, rx: BatchReceiver, index: int, ssrc: int) -> int:
        """The one slot an unclaimed packet may go to, or -1 (see the module)."""
        address = rx.address(index)
        if self._remotes is None:
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
        if address == self._protocols[slot].peer.remote:
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
