"""RTCP (RFC 3550 section 6): sender and receiver reports, SDES CNAME and BYE, parsed and serialised, and
one channel's report state (sans-IO: wall-clock ``now`` is passed in, nothing is sent from here).

:func:`parse` takes one compound datagram and returns its packets or raises :class:`RtcpError` with an
exact message; every packet it returns serialises back to the same bytes (unknown packet types are kept as
:class:`RtcpUnknown`). :class:`RtcpSession` builds the channel's compound report (SR when we sent RTP since
the last report, else RR; then SDES CNAME; BYE when closing) from the receive counters, and takes the
peer's reports in, computing the round-trip time from their LSR and DLSR (section 6.4.1).

Receive statistics follow appendix A.3: expected packets from the extended highest sequence number and
the first one, cumulative loss may be negative (duplicates), and the fraction lost is over the interval
since the previous report.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

__all__ = [
    "BYE",
    "RR",
    "SDES",
    "SR",
    "ReportBlock",
    "RtcpBye",
    "RtcpError",
    "RtcpReceiverReport",
    "RtcpSdes",
    "RtcpSenderReport",
    "RtcpSession",
    "RtcpStats",
    "RtcpUnknown",
    "ntp_time",
    "parse",
]

SR = 200
RR = 201
SDES = 202
BYE = 203
NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01
_HEADER = struct.Struct("!BBH")
_BLOCK = struct.Struct("!IB3sIIII")
_SR_INFO = struct.Struct("!IIIII")
_CNAME = 1


class RtcpError(ValueError):
    """A malformed RTCP packet; the message says exactly what is wrong."""


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """What one receiver says about one source (RFC 3550 6.4.1)."""

    ssrc: int
    fraction_lost: int
    """Lost fraction since the last report, in 1/256."""
    packets_lost: int
    """Cumulative, signed 24 bits."""
    highest_sequence: int
    jitter: int
    """Interarrival jitter in RTP timestamp units."""
    lsr: int
    dlsr: int
    """Delay since that last SR, in 1/65536 s."""

    def serialize(self) -> bytes:
        lost = (self.packets_lost & 0xFFFFFF).to_bytes(3, "big")
        return _BLOCK.pack(
            self.ssrc, self.fraction_lost, lost, self.highest_sequence, self.jitter, self.lsr, self.dlsr
        )

    @classmethod
    def parse(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, fraction, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        packets_lost = int.from_bytes(lost, "big")
        if packets_lost & 0x800000:
            packets_lost -= 0x1000000
        return cls(ssrc, fraction, packets_lost, highest, jitter, lsr, dlsr)


@dataclass(slots=True)
class RtcpSenderReport:
    ssrc: int
    ntp_timestamp: int
    """64-bit NTP time of the report."""
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list[ReportBlock] = field(default_factory=list)

    def serialize(self) -> bytes:
        body = _SR_INFO.pack(
            self.ssrc,
            self.ntp_timestamp >> 32,
            self.ntp_timestamp & 0xFFFFFFFF,
            self.rtp_timestamp,
            self.packet_count,
        )
        body += struct.pack("!I", self.octet_count) + b"".join(r.serialize() for r in self.reports)
        return _packet(SR, len(self.reports), body)


@dataclass(slots=True)
class RtcpReceiverReport:
    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)

    def serialize(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + b"".join(r.serialize() for r in self.reports)
        return _packet(RR, len(self.reports), body)


@dataclass(slots=True)
class RtcpSdes:
    """Source descriptions: (SSRC, CNAME) chunks (other items are dropped on parse)."""

    chunks: list[tuple[int, str]] = field(default_factory=list)

    def serialize(self) -> bytes:
        body = b""
        for ssrc, cname in self.chunks:
            text = cname.encode()[:255]
            chunk = struct.pack("!IBB", ssrc, _CNAME, len(text)) + text + b"\x00"
            chunk += b"\x00" * (-len(chunk) % 4)
            body += chunk
        return _packet(SDES, len(self.chunks), body)


@dataclass(slots=True)
class RtcpBye:
    sources: list[int] = field(default_factory=list)
    reason: str = ""

    def serialize(self) -> bytes:
        body = b"".join(struct.pack("!I", s) for s in self.sources)
        if self.reason:
            text = self.reason.encode()[:255]
            body += bytes([len(text)]) + text
            body += b"\x00" * (-len(body) % 4)
        return _packet(BYE, len(self.sources), body)


@dataclass(slots=True)
class RtcpUnknown:
    """A packet type this module does not interpret (APP, XR, feedback...), kept as it came."""

    packet_type: int
    count: int
    body: bytes

    def serialize(self) -> bytes:
        return _packet(self.packet_type, self.count, self.body)


RtcpPacket = RtcpSenderReport | RtcpReceiverReport | RtcpSdes | RtcpBye | RtcpUnknown


def _packet(packet_type: int, count: int, body: bytes) -> bytes:
    return _HEADER.pack(0x80 | count, packet_type, len(body) // 4) + body


def parse(data: bytes) -> list[RtcpPacket]:
    """Every packet of one compound RTCP datagram; :class:`RtcpError` if any is malformed."""
    packets: list[RtcpPacket] = []
    pos = 0
    if len(data) < 4:
        raise RtcpError("RTCP packet length is less than 4 bytes")
    while pos < len(data):
        if len(data) - pos < 4:
            raise RtcpError("RTCP packet length is less than 4 bytes")
        first, packet_type, words = _HEADER.unpack_from(data, pos)
        if first >> 6 != 2:
            raise RtcpError("RTCP packet has invalid version")
        end = pos + 4 + 4 * words
        if end > len(data):
            raise RtcpError("RTCP packet length exceeds the datagram")
        count = first & 0x1F
        body_end = end
        if first & 0x20:
            padding = data[end - 1]
            if padding == 0 or padding > 4 * words:
                raise RtcpError("RTCP packet has invalid padding")
            body_end = end - padding
        packets.append(_parse_one(packet_type, count, data, pos + 4, body_end))
        pos = end
    return packets


def _parse_one(packet_type: int, count: int, data: bytes, start: int, end: int) -> RtcpPacket:
    size = end - start
    if packet_type == SR:
        if size < 24 + 24 * count:
            raise RtcpError("RTCP sender report length is invalid")
        ssrc, msw, lsw, rtp_ts, packets = _SR_INFO.unpack_from(data, start)
        (octets,) = struct.unpack_from("!I", data, start + 20)
        blocks = [ReportBlock.parse(data, start + 24 + 24 * i) for i in range(count)]
        return RtcpSenderReport(ssrc, (msw << 32) | lsw, rtp_ts, packets, octets, blocks)
    if packet_type == RR:
        if size < 4 + 24 * count:
            raise RtcpError("RTCP receiver report length is invalid")
        (ssrc,) = struct.unpack_from("!I", data, start)
        blocks = [ReportBlock.parse(data, start + 4 + 24 * i) for i in range(count)]
        return RtcpReceiverReport(ssrc, blocks)
    if packet_type == SDES:
        return _parse_sdes(count, data, start, end)
    if packet_type == BYE:
        if size < 4 * count:
            raise RtcpError("RTCP bye length is invalid")
        sources = [struct.unpack_from("!I", data, start + 4 * i)[0] for i in range(count)]
        reason = ""
        pos = start + 4 * count
        if pos < end:
            length = data[pos]
            if pos + 1 + length > end:
                raise RtcpError("RTCP bye reason length is invalid")
            reason = data[pos + 1 : pos + 1 + length].decode("utf-8", "replace")
        return RtcpBye(sources, reason)
    return RtcpUnknown(packet_type, count, bytes(data[start:end]))


def _parse_sdes(count: int, data: bytes, start: int, end: int) -> RtcpSdes:
    chunks: list[tuple[int, str]] = []
    pos = start
    for _ in range(count):
        if pos + 4 > end:
            raise RtcpError("RTCP SDES chunk is truncated")
        (ssrc,) = struct.unpack_from("!I", data, pos)
        pos += 4
        cname = ""
        while True:
            if pos >= end:
                raise RtcpError("RTCP SDES chunk is truncated")
            item = data[pos]
            if item == 0:
                pos += 1
                break
            if pos + 2 > end or pos + 2 + data[pos + 1] > end:
                raise RtcpError("RTCP SDES item is truncated")
            length = data[pos + 1]
            if item == _CNAME:
                cname = data[pos + 2 : pos + 2 + length].decode("utf-8", "replace")
            pos += 2 + length
        pos += -(pos - start) % 4
        chunks.append((ssrc, cname))
    return RtcpSdes(chunks)


def ntp_time(wall: float) -> int:
    """Unix time in seconds as a 64-bit NTP timestamp."""
    seconds = wall + NTP_EPOCH_OFFSET
    whole = int(seconds)
    return (whole << 32) | int((seconds - whole) * (1 << 32))


def _middle(ntp: int) -> int:
    return (ntp >> 16) & 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class RtcpStats:
    """What RTCP knows about a channel: our receive statistics and what the peer reported about us."""

    reports_sent: int
    reports_received: int
    fraction_lost: float
    """Of the packets we expected in the last interval, the share that did not arrive (0..1)."""
    packets_lost: int
    jitter: int
    """Interarrival jitter of what we receive, RTP timestamp units."""
    round_trip: float | None
    """Seconds, from the peer's last report about our stream (None until it sent one with an LSR)."""
    remote_fraction_lost: float | None
    remote_packets_lost: int | None
    remote_jitter: int | None
    bye: bool
    """The peer sent BYE."""


@dataclass(frozen=True, slots=True)
class ReceiveCounters:
    """The receive side's counters for one report (appendix A.3 inputs)."""

    ssrc: int
    """The remote source (-1: none heard yet)."""
    base_seq: int
    extended_max: int
    received: int
    jitter: int


class RtcpSession:
    """One channel's RTCP state: builds reports, takes the peer's in (all times passed in)."""

    def __init__(self, ssrc: int, cname: str) -> None:
        self.ssrc = ssrc
        self.cname = cname
        self.reports_sent = 0
        self.reports_received = 0
        self._last_sr_sent = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._fraction = 0
        self._lost = 0
        self._jitter = 0
        self._peer_lsr = 0
        self._peer_sr_arrival = 0.0
        self._rtt: float | None = None
        self._remote: ReportBlock | None = None
        self._packets_at_last_report = -1
        self.bye = False

    def _block(self, counters: ReceiveCounters, now: float) -> ReportBlock | None:
        if counters.ssrc < 0:
            return None
        expected = counters.extended_max - counters.base_seq + 1
        lost = expected - counters.received
        interval_expected = expected - self._expected_prior
        interval_received = counters.received - self._received_prior
        self._expected_prior = expected
        self._received_prior = counters.received
        interval_lost = interval_expected - interval_received
        fraction = (
            0 if interval_expected <= 0 or interval_lost <= 0 else (interval_lost << 8) // interval_expected
        )
        lost = max(-0x800000, min(0x7FFFFF, lost))
        self._fraction, self._lost, self._jitter = fraction, lost, counters.jitter
        dlsr = 0
        if self._peer_lsr:
            dlsr = int((now - self._peer_sr_arrival) * 65536) & 0xFFFFFFFF
        return ReportBlock(
            counters.ssrc & 0xFFFFFFFF,
            min(fraction, 255),
            lost,
            counters.extended_max & 0xFFFFFFFF,
            counters.jitter & 0xFFFFFFFF,
            self._peer_lsr,
            dlsr,
        )

    def report(
        self,
        now: float,
        counters: ReceiveCounters,
        *,
        packets_sent: int,
        octets_sent: int,
        rtp_timestamp: int,
        bye: str | None = None,
    ) -> bytes:
        """The compound report for ``now`` (wall-clock seconds): SR or RR, SDES CNAME, and BYE if asked."""
        block = self._block(counters, now)
        blocks = [block] if block is not None else []
        first: RtcpPacket
        if packets_sent != self._packets_at_last_report and packets_sent > 0:
            ntp = ntp_time(now)
            self._last_sr_sent = _middle(ntp)
            first = RtcpSenderReport(
                self.ssrc, ntp, rtp_timestamp & 0xFFFFFFFF, packets_sent & 0xFFFFFFFF,
                octets_sent & 0xFFFFFFFF, blocks,
            )  # fmt: skip
        else:
            first = RtcpReceiverReport(self.ssrc, blocks)
        self._packets_at_last_report = packets_sent
        out = first.serialize() + RtcpSdes([(self.ssrc, self.cname)]).serialize()
        if bye is not None:
            out += RtcpBye([self.ssrc], bye).serialize()
        self.reports_sent += 1
        return out

    def receive(self, data: bytes, now: float) -> list[RtcpPacket]:
        """Take one datagram from the peer (``now`` wall-clock seconds); RtcpError if malformed."""
        packets = parse(data)
        for packet in packets:
            if isinstance(packet, RtcpSenderReport):
                self._peer_lsr = _middle(packet.ntp_timestamp)
                self._peer_sr_arrival = now
            if isinstance(packet, (RtcpSenderReport, RtcpReceiverReport)):
                self.reports_received += 1
                for block in packet.reports:
                    if block.ssrc == self.ssrc:
                        self._remote = block
                        if block.lsr:
                            arrival = _middle(ntp_time(now))
                            rtt = ((arrival - block.lsr - block.dlsr) & 0xFFFFFFFF) / 65536.0
                            self._rtt = rtt if rtt < 60.0 else 0.0
            elif isinstance(packet, RtcpBye):
                self.bye = True
        return packets

    def stats(self) -> RtcpStats:
        remote = self._remote
        return RtcpStats(
            reports_sent=self.reports_sent,
            reports_received=self.reports_received,
            fraction_lost=self._fraction / 256.0,
            packets_lost=self._lost,
            jitter=self._jitter,
            round_trip=self._rtt,
            remote_fraction_lost=None if remote is None else remote.fraction_lost / 256.0,
            remote_packets_lost=None if remote is None else remote.packets_lost,
            remote_jitter=None if remote is None else remote.jitter,
            bye=self.bye,
        )
