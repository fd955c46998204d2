"""RTCP: packets parsed and serialised with exact errors, report state without sockets (``now`` passed in),
and the engine's reports over loopback, decoded by tshark from a pcap written here."""

from __future__ import annotations

import asyncio
import shutil
import socket
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switch.media.engine import MediaEngine
from switch.media.rtcp import (
    ReceiveCounters,
    ReportBlock,
    RtcpBye,
    RtcpError,
    RtcpReceiverReport,
    RtcpSdes,
    RtcpSenderReport,
    RtcpSession,
    RtcpUnknown,
    ntp_time,
    parse,
)
from tests.helpers.ports import free_rtp_range
from tests.media.rtp_peer import build_stream, tone

BLOCK = ReportBlock(0x11223344, 12, -3, 0x1_0005, 77, 0xAABBCCDD, 0x00012000)


def test_report_packets_round_trip() -> None:
    sr = RtcpSenderReport(0xCAFE, ntp_time(1_700_000_000.25), 1234, 50, 8000, [BLOCK])
    rr = RtcpReceiverReport(0xBEEF, [BLOCK])
    sdes = RtcpSdes([(0xCAFE, "abc@127.0.0.1")])
    bye = RtcpBye([0xCAFE], "done")
    app = RtcpUnknown(204, 1, b"\x00\x00\x00\x01name")
    compound = b"".join(p.serialize() for p in (sr, rr, sdes, bye, app))
    packets = parse(compound)
    assert packets == [sr, rr, sdes, bye, app]
    assert b"".join(p.serialize() for p in packets) == compound
    assert packets[0].reports[0].packets_lost == -3  # type: ignore[union-attr]
    assert len(sr.serialize()) == 28 + 24 and len(sdes.serialize()) % 4 == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\xc8\x00", "RTCP packet length is less than 4 bytes"),
        (b"\x40\xc9\x00\x01\x00\x00\x00\x01", "RTCP packet has invalid version"),
        (b"\x80\xc9\x00\x02\x00\x00\x00\x01", "RTCP packet length exceeds the datagram"),
        (b"\x81\xc8\x00\x01\x00\x00\x00\x01", "RTCP sender report length is invalid"),
        (b"\x81\xc9\x00\x01\x00\x00\x00\x01", "RTCP receiver report length is invalid"),
        (b"\x82\xcb\x00\x01\x00\x00\x00\x01", "RTCP bye length is invalid"),
        (b"\xa0\xc9\x00\x01\x00\x00\x00\x09", "RTCP packet has invalid padding"),
        (b"\x81\xca\x00\x01\x00\x00\x00\x01", "RTCP SDES chunk is truncated"),
        (b"\x80\xc9\x00\x01\x00\x00\x00\x01\x80", "RTCP packet length is less than 4 bytes"),
    ],
)
def test_malformed_packets_raise_exact_errors(data: bytes, message: str) -> None:
    with pytest.raises(RtcpError) as info:
        parse(data)
    assert str(info.value) == message


def test_loss_fraction_and_round_trip_time() -> None:
    ours, theirs = RtcpSession(0x1111, "a@x"), RtcpSession(0x2222, "b@x")
    # We sent 50 packets and received seq 100..199 minus 5 from them.
    sr = ours.report(1000.0, ReceiveCounters(0x2222, 100, 199, 95, 40), packets_sent=50, octets_sent=8000,
                     rtp_timestamp=5)  # fmt: skip
    first = parse(sr)[0]
    assert isinstance(first, RtcpSenderReport)
    assert (first.packet_count, first.octet_count) == (50, 8000)
    block = first.reports[0]
    assert (block.ssrc, block.packets_lost, block.fraction_lost, block.highest_sequence, block.jitter) == (
        0x2222, 5, 5 * 256 // 100, 199, 40,
    )  # fmt: skip
    assert ours.stats().fraction_lost == pytest.approx(12 / 256)
    # They get our SR at 1000.1 and report 0.2 s later; the SR's round trip is 0.15 s of network time.
    theirs.receive(sr, 1000.1)
    rr = theirs.report(1000.3, ReceiveCounters(0x1111, 0, 49, 50, 0), packets_sent=0, octets_sent=0,
                       rtp_timestamp=0)  # fmt: skip
    assert isinstance(parse(rr)[0], RtcpReceiverReport)
    ours.receive(rr, 1000.35)
    stats = ours.stats()
    assert stats.round_trip == pytest.approx(0.15, abs=2 / 65536)
    assert (stats.remote_packets_lost, stats.remote_fraction_lost, stats.reports_received) == (0, 0.0, 1)
    # A second interval with no loss reports fraction 0 but keeps the cumulative count.
    again = parse(ours.report(1005.0, ReceiveCounters(0x2222, 100, 299, 195, 40), packets_sent=50,
                              octets_sent=8000, rtp_timestamp=5))[0]  # fmt: skip
    assert isinstance(again, RtcpReceiverReport)  # nothing sent since the last report: RR
    assert (again.reports[0].fraction_lost, again.reports[0].packets_lost) == (0, 5)


def test_bye_is_appended_and_seen() -> None:
    ours, theirs = RtcpSession(1, "a@x"), RtcpSession(2, "b@x")
    data = ours.report(1.0, ReceiveCounters(-1, 0, 0, 0, 0), packets_sent=0, octets_sent=0, rtp_timestamp=0,
                       bye="")  # fmt: skip
    kinds = [type(p) for p in parse(data)]
    assert kinds == [RtcpReceiverReport, RtcpSdes, RtcpBye]
    theirs.receive(data, 1.0)
    assert theirs.stats().bye


# -- the engine over loopback ------------------------------------------------------------------------------


class _Sink(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: list[tuple[bytes, tuple[str, int]]] = []
        self.arrivals: list[float] = []

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.received.append((data, (str(addr[0]), int(addr[1]))))
        self.arrivals.append(time.time())


@pytest.fixture
async def engine() -> AsyncIterator[MediaEngine]:
    eng = MediaEngine("127.0.0.1", free_rtp_range(20), rtcp_interval=0.2)
    await eng.start()
    yield eng
    await eng.stop()


async def _pair() -> tuple[list[asyncio.DatagramTransport], _Sink, _Sink, int]:
    """A peer's RTP socket on an even port and its RTCP socket on the next one."""
    low, _ = free_rtp_range(2)
    loop = asyncio.get_running_loop()
    rtp, rtcp = _Sink(), _Sink()
    t1, _ = await loop.create_datagram_endpoint(lambda: rtp, local_addr=("127.0.0.1", low))
    t2, _ = await loop.create_datagram_endpoint(lambda: rtcp, local_addr=("127.0.0.1", low + 1))
    return [t1, t2], rtp, rtcp, low


async def _stream(transport: asyncio.DatagramTransport, target: tuple[str, int], drop: set[int]) -> None:
    packets = build_stream(tone(440, 8000 * 1), ssrc=0x5EED)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for k, packet in enumerate(packets):
        await asyncio.sleep(max(0.0, start + 0.02 * k - loop.time()))
        if k not in drop:
            transport.sendto(packet, target)


def _pcap(datagrams: list[tuple[bytes, int, int]], path: Path) -> None:
    """Write UDP datagrams (payload, source port, destination port) on 127.0.0.1 as a raw-IPv4 pcap."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 228)]
    for i, (payload, sport, dport) in enumerate(datagrams):
        udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i, 0, 64, 17, 0,
                             socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.1"))  # fmt: skip
        words = struct.unpack("!10H", header)
        total = sum(words)
        total = (total & 0xFFFF) + (total >> 16)
        total = (total & 0xFFFF) + (total >> 16)
        header = header[:10] + struct.pack("!H", ~total & 0xFFFF) + header[12:]
        frame = header + udp
        out.append(struct.pack("<IIII", 1_700_000_000 + i, 0, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))


async def test_engine_reports_loss_on_port_plus_one_and_tshark_decodes_them(
    engine: MediaEngine, tmp_path: Path
) -> None:
    transports, rtp, rtcp, low = await _pair()
    try:
        channel = await engine.create_channel()
        engine.configure(channel, remote=("127.0.0.1", low), codec="PCMU", payload_type=0)
        port = engine.local_port(channel)
        dropped = {7, 8, 20, 33}
        await _stream(transports[0], ("127.0.0.1", port), dropped)
        await engine.wait_ticks(20)
        await engine.close_channel(channel)
        await asyncio.sleep(0.05)
    finally:
        for t in transports:
            t.close()
    assert rtcp.received, "no RTCP arrived on the RTP port + 1"
    assert all(addr == ("127.0.0.1", port + 1) for _, addr in rtcp.received)
    assert not [d for d, _ in rtp.received if 192 <= d[1] <= 223]  # nothing muxed without rtcp-mux
    compounds = [parse(data) for data, _ in rtcp.received]
    last = compounds[-1]
    assert isinstance(last[-1], RtcpBye)
    first = last[0]
    assert isinstance(first, RtcpSenderReport)  # the engine sends (silence) so its reports are SRs
    block = first.reports[0]
    assert (block.ssrc, block.packets_lost) == (0x5EED, len(dropped))
    assert block.highest_sequence == 65500 + 49  # build_stream starts at 65500: 49 wraps into cycle 1
    assert block.jitter < 8 * 20

    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed")
    capture = tmp_path / "rtcp.pcap"
    _pcap([(data, port + 1, low + 1) for data, _ in rtcp.received], capture)
    process = await asyncio.create_subprocess_exec(
        tshark, "-r", str(capture), "-V", "-d", f"udp.port=={low + 1},rtcp",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0
    decoded = out.decode()
    assert "Packet type: Sender Report (200)" in decoded
    assert "Packet type: Source description (202)" in decoded
    assert "Packet type: Goodbye (203)" in decoded
    assert f"Cumulative number of packets lost: {len(dropped)}" in decoded
    assert "Identifier: 0x00005eed" in decoded
    assert "Malformed" not in decoded


async def test_rtcp_mux_reports_on_the_rtp_port_and_round_trip_from_the_peer(engine: MediaEngine) -> None:
    transports, rtp, rtcp, low = await _pair()
    try:
        channel = await engine.create_channel()
        engine.configure(channel, remote=("127.0.0.1", low), codec="PCMU", payload_type=0, rtcp_mux=True)
        port = engine.local_port(channel)
        await _stream(transports[0], ("127.0.0.1", port), set())
        reports = [
            (d, at) for (d, _), at in zip(rtp.received, rtp.arrivals, strict=True) if 192 <= d[1] <= 223
        ]
        assert reports and not rtcp.received
        data, arrival = reports[-1]
        sr = parse(data)[0]
        assert isinstance(sr, RtcpSenderReport)
        # The peer holds the SR 150 ms, then answers with an RR about the engine's stream: LSR from that
        # SR and the 150 ms as DLSR. The round trip is what remains: loopback, well under 50 ms.
        await asyncio.sleep(0.15)
        lsr = (sr.ntp_timestamp >> 16) & 0xFFFFFFFF
        block = ReportBlock(sr.ssrc, 3, 2, 10, 0, lsr, int((time.time() - arrival) * 65536))
        transports[0].sendto(RtcpReceiverReport(0x5EED, [block]).serialize(), ("127.0.0.1", port))
        await engine.wait_ticks(3)
        stats = engine.rtcp_stats(channel)
        assert stats.reports_received == 1
        assert (stats.remote_packets_lost, stats.remote_fraction_lost) == (2, 3 / 256)
        assert stats.round_trip is not None and 0.0 <= stats.round_trip < 0.05
    finally:
        for t in transports:
            t.close()
