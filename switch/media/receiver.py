"""The receive side of one RTP socket: one header unpack, latching, then one copy into the jitter buffer.

Latching without RTP Bleed: a channel sends to the address the remote SDP gave and takes media from it.
Packets from any other address are dropped, unless the channel may still latch (once per ``configure``):
then :data:`LATCH_PACKETS` consecutive packets from one address with one SSRC and sequence numbers in order
(nothing from anywhere else in between) move the channel to that address. A packet from the current address
breaks a candidate's run, so a stray source cannot take a live stream over by interleaving with it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from switch.media.dtmf import EventReceiver
    from switch.media.jitter import JitterBuffer

__all__ = ["LATCH_PACKETS", "UNASSIGNED_SLOT", "Peer", "RtcpReceiver", "RtcpSocket", "RtpReceiver"]

log = logging.getLogger(__name__)

UNASSIGNED_SLOT = -1
"""The slot of a receiver whose channel is still being created: its packets are dropped."""

LATCH_PACKETS = 5
_HEADER = struct.Struct("!BBHII")
_RTCP_READS = 16
"""Datagrams read per wake-up of an RTCP socket at most (the loop comes back for the rest)."""
_RTCP_MAX = 2048


@dataclass(slots=True)
class Peer:
    """Where a channel sends, what it accepts, and its receive counters."""

    remote: tuple[str, int] = ("0.0.0.0", 0)
    codec_pt: int = -1
    te_pt: int = -1
    may_latch: bool = True
    candidate: tuple[str, int] | None = None
    candidate_ssrc: int = -1
    candidate_seq: int = -1
    candidate_run: int = 0
    ssrc: int = -1
    packets: int = 0
    octets: int = 0
    invalid: int = 0
    foreign: int = 0
    other_pt: int = 0
    last_tick: int = 0
    base_seq: int = 0
    """First sequence number of the current source (RFC 3550 A.1)."""
    extended_max: int = -1
    """Highest sequence number received, extended by the wrap count (-1: none yet)."""
    received: int = 0
    """Media packets of the current source (RTCP's "received")."""
    rtcp_mux: bool = False
    opus_pt: int = -1
    """Payload type of Opus media (which has its own packet store, not the jitter buffer), or -1."""
    """RTCP shares the RTP port (RFC 5761) instead of going to the RTP port + 1."""


class RtpReceiver(asyncio.DatagramProtocol):
    """One channel's socket protocol; the owner keeps ``slot`` current when channels move."""

    __slots__ = (
        "slot",
        "channel",
        "peer",
        "jitter",
        "events",
        "clock",
        "tick",
        "on_digit",
        "may_egress",
        "on_rtcp",
        "on_opus",
        "on_latch",
    )

    def __init__(
        self,
        slot: int,
        channel: int,
        jitter: JitterBuffer,
        events: EventReceiver,
        clock: Callable[[], float],
        tick: Callable[[], int],
        on_digit: Callable[[int, str], None],
        may_egress: Callable[[str], bool],
    ) -> None:
        self.slot = slot
        self.channel = channel
        self.peer = Peer()
        self.jitter = jitter
        self.events = events
        self.clock = clock
        self.tick = tick
        self.on_digit = on_digit
        self.may_egress = may_egress
        self.on_rtcp: Callable[[int, bytes], None] | None = None
        self.on_opus: Callable[[int, int, bytes], None] | None = None
        """Called with (slot, timestamp, payload) for each Opus packet."""
        self.on_latch: Callable[[int, int], None] | None = None
        """Called with (slot, SSRC) when the channel latches to a new source (a shared port follows)."""
        """Called with (channel, datagram) for RTCP arriving on the RTP port (rtcp-mux, RFC 5761)."""

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if self.slot < 0:  # the channel is still being created: nobody has been told this port yet
            return
        peer = self.peer
        size = len(data)
        if size < 12 or data[0] >> 6 != 2:
            peer.invalid += 1
            return
        first, second, seq, timestamp, ssrc = _HEADER.unpack_from(data)
        if 192 <= second <= 223:  # RTCP packet types 192-223 (RFC 5761 section 4): rtcp-mux
            if self.on_rtcp is not None and addr[0] == peer.remote[0]:
                self.on_rtcp(self.channel, data)
            return
        offset = 12 + 4 * (first & 0x0F)
        if first & 0x10 and size >= offset + 4:
            offset += 4 + 4 * ((data[offset + 2] << 8) | data[offset + 3])
        end = size - data[-1] if first & 0x20 else size
        if end <= offset:
            peer.invalid += 1
            return
        if addr != peer.remote:
            if not self._latch(addr, ssrc, seq):
                peer.foreign += 1
                return
        elif peer.candidate_run:
            peer.candidate_run = 0
        if ssrc != peer.ssrc:
            peer.ssrc = ssrc
            peer.base_seq = seq
            peer.extended_max = seq
            peer.received = 0
            self.jitter.reset_stream(self.slot)
        pt = second & 0x7F
        if pt == peer.codec_pt:
            self.jitter.put(self.slot, timestamp, memoryview(data)[offset:end], self.clock())
        elif pt == peer.te_pt:
            digit = self.events.receive(self.slot, timestamp, data[offset:end])
            if digit is not None:
                self.on_digit(self.channel, digit)
        elif pt == peer.opus_pt and self.on_opus is not None:
            self.on_opus(self.slot, timestamp, data[offset:end])
        else:
            peer.other_pt += 1
            return
        delta = (seq - peer.extended_max) & 0xFFFF
        if delta < 0x8000:
            peer.extended_max += delta
        peer.received += 1
        peer.packets += 1
        peer.octets += end - offset
        peer.last_tick = self.tick()

    def _latch(self, addr: tuple[str | object, int], ssrc: int, seq: int) -> bool:
        """Count a packet from another address; True when it completes a run that moves the channel."""
        peer = self.peer
        if not peer.may_latch:
            return False
        if (
            addr == peer.candidate
            and ssrc == peer.candidate_ssrc
            and seq == (peer.candidate_seq + 1) & 0xFFFF
        ):
            peer.candidate_run += 1
        else:
            peer.candidate = (str(addr[0]), int(addr[1]))
            peer.candidate_ssrc = ssrc
            peer.candidate_run = 1
        peer.candidate_seq = seq
        if peer.candidate_run < LATCH_PACKETS or not self.may_egress(str(addr[0])):
            return False
        log.info("channel %d latched to %s:%d", self.channel, addr[0], addr[1])
        peer.remote = peer.candidate
        peer.may_latch = False
        peer.candidate = None
        peer.candidate_run = 0
        if self.on_latch is not None:
            self.on_latch(self.slot, ssrc)
        return True

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable and the like
        log.debug("RTP socket error on channel %d: %s", self.channel, exc)


class RtcpReceiver(asyncio.DatagramProtocol):
    """A channel's RTCP socket (the RTP port + 1): hands every datagram from the peer's host over."""

    __slots__ = ("channel", "peer", "on_rtcp")

    def __init__(self, channel: int, peer: Peer, on_rtcp: Callable[[int, bytes], None]) -> None:
        self.channel = channel
        self.peer = peer
        self.on_rtcp = on_rtcp

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if addr[0] == self.peer.remote[0]:
            self.on_rtcp(self.channel, data)

    def error_received(self, exc: Exception) -> None:
        log.debug("RTCP socket error on channel %d: %s", self.channel, exc)


class RtcpSocket:
    """A channel's RTCP socket watched with ``add_reader`` rather than a datagram transport: RTCP is a few
    packets every 5 s, and a transport costs more to set up per call than the reader callback does."""

    __slots__ = ("sock", "receiver", "_loop", "_fd")

    def __init__(self, sock: socket.socket, receiver: RtcpReceiver, loop: asyncio.AbstractEventLoop) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.receiver = receiver
        self._loop = loop
        self._fd = sock.fileno()
        loop.add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        for _ in range(_RTCP_READS):
            try:
                data, addr = self.sock.recvfrom(_RTCP_MAX)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ICMP errors surface here on Linux
                self.receiver.error_received(exc)
                return
            self.receiver.datagram_received(data, addr)

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        """Send now or drop (UDP: a full socket buffer loses the report, as the network might)."""
        try:
            self.sock.sendto(data, addr)
        except OSError as exc:
            self.receiver.error_received(exc)

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._fd = -1
            self.sock.close()
