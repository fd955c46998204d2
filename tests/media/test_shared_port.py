"""One RTP port for every channel (``MediaEngine(shared_port=True)``): demultiplexing by remote address and
SSRC, latching rules on a shared port, RTCP on the port above, sends with ``sendmmsg`` from that port."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest

from switch.media.engine import MediaEngine
from switch.media.fastio import BatchSender, Demux, sockaddrs
from switch.media.rtp import RtpPacket
from tests.helpers.ports import free_rtp_range
from tests.media.rtp_peer import build_stream, tone


def _cols(addrs: list[tuple[str, int]], ssrcs: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    packed = sockaddrs(addrs)
    return packed["ip"].astype(np.uint32), packed["port"].astype(np.uint16), np.array(ssrcs, np.uint32)


def test_demux_same_remote_port_different_ssrc_and_same_ssrc_different_address() -> None:
    demux = Demux()
    # Two peers behind one gateway address: told apart by SSRC only.
    demux.register(0, ("127.0.0.5", 7000))
    demux.register(1, ("127.0.0.5", 7000))
    demux.learn(0, 0xAAAA)
    demux.learn(1, 0xBBBB)
    # Two peers that picked the same SSRC: told apart by address.
    demux.register(2, ("127.0.0.6", 7000))
    demux.register(3, ("127.0.0.7", 7000))
    demux.learn(2, 0x1234)
    demux.learn(3, 0x1234)
    ips, ports, ssrcs = _cols(
        [("127.0.0.5", 7000), ("127.0.0.5", 7000), ("127.0.0.7", 7000), ("127.0.0.6", 7000)]
        + [("127.0.0.5", 7000), ("127.0.0.6", 7002), ("127.0.0.8", 7000)],
        [0xBBBB, 0xAAAA, 0x1234, 0x1234, 0x1234, 0x1234, 0x1234],
    )
    assert demux.lookup(ips, ports, ssrcs).tolist() == [1, 0, 3, 2, -1, -1, -1]


def test_demux_move_keeps_the_stream_with_its_new_slot() -> None:
    demux = Demux()
    demux.register(0, ("127.0.0.1", 4000))
    demux.register(7, ("127.0.0.2", 4000))
    demux.learn(7, 99)
    demux.move(7, 0)  # slot 0 closed, the last slot moved into it
    ips, ports, ssrcs = _cols([("127.0.0.2", 4000), ("127.0.0.1", 4000)], [99, 5])
    assert demux.lookup(ips, ports, ssrcs).tolist() == [0, -1]


@pytest.fixture
def socks() -> Iterator[list[socket.socket]]:
    made: list[socket.socket] = []
    yield made
    for s in made:
        s.close()


def _udp(socks: list[socket.socket], port: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    socks.append(s)
    s.bind(("127.0.0.1", port))
    s.settimeout(2.0)
    return s


@pytest.mark.parametrize("native", [True, False])
def test_sender_sends_chosen_rows_without_copying_them(socks: list[socket.socket], native: bool) -> None:
    tx = _udp(socks)
    rx = [_udp(socks) for _ in range(4)]
    buffer = np.arange(4 * 16, dtype=np.uint8).reshape(4, 16)
    addresses = sockaddrs([s.getsockname() for s in rx])
    rows = np.array([3, 1], np.intp)
    sent = BatchSender(native=native).send(tx, buffer, np.array([16, 5]), addresses, rows=rows)
    assert sent == 2
    assert rx[3].recv(100) == buffer[3].tobytes()
    assert rx[1].recv(100) == buffer[1, :5].tobytes()
    with pytest.raises(ValueError):
        BatchSender(native=native).send(tx, buffer, np.array([16]), addresses, rows=np.array([9], np.intp))


def _pair(socks: list[socket.socket]) -> tuple[socket.socket, socket.socket]:
    """An RTP socket on an even port and its RTCP socket on the port above."""
    for _ in range(50):
        rtp = _udp(socks)
        port = rtp.getsockname()[1]
        if port % 2 == 0:
            try:
                return rtp, _udp(socks, port + 1)
            except OSError:
                pass
    raise RuntimeError("no free even/odd port pair")


@pytest.fixture
async def engine() -> AsyncIterator[MediaEngine]:
    eng = MediaEngine("127.0.0.1", free_rtp_range(20), shared_port=True, rtcp_interval=0.2)
    await eng.start()
    yield eng
    await eng.stop()


def _recv_rtp(sock: socket.socket, count: int) -> list[RtpPacket]:
    got: list[RtpPacket] = []
    while len(got) < count:
        data = sock.recv(2048)
        if data[1] & 0x7F == 0:  # RTCP reports share nothing with this; they go to the port above
            got.append(RtpPacket.parse(data))
    return got


async def test_channels_share_one_port_and_media_comes_from_it(
    engine: MediaEngine, socks: list[socket.socket]
) -> None:
    (a_rtp, a_rtcp), (b_rtp, b_rtcp) = _pair(socks), _pair(socks)
    a = await engine.create_channel()
    b = await engine.create_channel()
    port = engine.local_port(a)
    assert engine.local_port(b) == port
    for channel, sock in ((a, a_rtp), (b, b_rtp)):
        engine.configure(channel, remote=sock.getsockname(), codec="PCMU", payload_type=0)
    engine.bridge(a, b)
    a_packets = build_stream(tone(400.0, 160 * 30), ssrc=0x1111)
    b_packets = build_stream(tone(900.0, 160 * 30), ssrc=0x2222)
    for pa, pb in zip(a_packets, b_packets, strict=True):
        a_rtp.sendto(pa, ("127.0.0.1", port))
        b_rtp.sendto(pb, ("127.0.0.1", port))
        await asyncio.sleep(0.02)
    await engine.wait_ticks(4)
    # Pass-through bridge: each side gets the other's payloads, bit for bit, from the shared port.
    heard_by_a = {p.payload for p in _recv_rtp(a_rtp, 10)}
    assert heard_by_a <= {RtpPacket.parse(p).payload for p in b_packets} | {bytes([0xFF]) * 160}
    assert heard_by_a & {RtpPacket.parse(p).payload for p in b_packets}
    data, source = b_rtp.recvfrom(2048)
    assert source == ("127.0.0.1", port)
    assert engine.stats(a).packets_received == 30 and engine.stats(b).packets_received == 30
    assert engine.shared is not None and engine.shared.fast_packets > 40  # most took the numpy path
    # RTCP from the peer's RTP port + 1 reaches the right channel (matched by sender SSRC).
    b_rtcp.sendto(struct.pack("!BBHI", 0x80, 201, 1, 0x2222), ("127.0.0.1", port + 1))
    a_rtcp.sendto(struct.pack("!BBHI", 0x80, 203, 1, 0x1111), ("127.0.0.1", port + 1))  # BYE
    await engine.wait_ticks(3)
    assert engine.rtcp_stats(b).reports_received == 1 and not engine.rtcp_stats(b).bye
    assert engine.rtcp_stats(a).bye
    report, source = a_rtcp.recvfrom(2048)
    assert source == ("127.0.0.1", port + 1) and report[1] in (200, 201)


async def test_a_stray_source_is_nobodys_while_two_channels_could_latch(
    engine: MediaEngine, socks: list[socket.socket]
) -> None:
    sdp_a, sdp_b, stray = _udp(socks), _udp(socks), _udp(socks)
    a = await engine.create_channel()
    b = await engine.create_channel()
    engine.configure(a, remote=sdp_a.getsockname(), codec="PCMU", payload_type=0)
    engine.configure(b, remote=sdp_b.getsockname(), codec="PCMU", payload_type=0)
    target = ("127.0.0.1", engine.local_port(a))
    for packet in build_stream(tone(300.0, 160 * 10), ssrc=77):
        stray.sendto(packet, target)
    await engine.wait_ticks(3)
    assert engine.shared is not None and engine.shared.unclaimed == 10
    assert engine.stats(a).packets_received == 0 and engine.stats(b).packets_received == 0
    assert engine.stats(a).remote == sdp_a.getsockname()
    # Once b is the only channel that has heard nothing, a new source goes to it and may latch it.
    sdp_a.sendto(build_stream(tone(300.0, 160), ssrc=5)[0], target)
    for packet in build_stream(tone(300.0, 160 * 10), ssrc=78):
        stray.sendto(packet, target)
    await engine.wait_ticks(3)
    assert engine.stats(a).packets_received == 1
    assert engine.stats(b).remote == stray.getsockname()
    assert engine.stats(b).packets_received >= 5
    # Sending follows the latch, from the shared port.
    await engine.wait_ticks(2)
    data, source = stray.recvfrom(2048)
    assert source == target and RtpPacket.parse(data).payload_type == 0


async def test_rtcp_mux_on_the_shared_port_and_a_closed_slot_moves(
    engine: MediaEngine, socks: list[socket.socket]
) -> None:
    first, a_sock, b_sock = _udp(socks), _udp(socks), _udp(socks)
    gone = await engine.create_channel()
    a = await engine.create_channel()
    b = await engine.create_channel()
    engine.configure(gone, remote=first.getsockname(), codec="PCMU", payload_type=0)
    engine.configure(a, remote=a_sock.getsockname(), codec="PCMU", payload_type=0, rtcp_mux=True)
    engine.configure(b, remote=b_sock.getsockname(), codec="PCMA", payload_type=8)
    await engine.close_channel(gone)  # b moves into gone's slot: its stream must follow it
    port = engine.local_port(a)
    for pa, pb in zip(
        build_stream(tone(400.0, 160 * 5), ssrc=0xA),
        build_stream(tone(400.0, 160 * 5), ssrc=0xB, payload_type=8),
        strict=True,
    ):
        a_sock.sendto(pa, ("127.0.0.1", port))
        b_sock.sendto(pb, ("127.0.0.1", port))
    await engine.wait_ticks(2)
    report = struct.pack("!BBHI", 0x81, 201, 7, 0xA) + bytes(24)  # an RR with one report block
    a_sock.sendto(report, ("127.0.0.1", port))  # rtcp-mux: on the RTP port
    await engine.wait_ticks(2)
    assert engine.stats(a).packets_received == 5 and engine.stats(b).packets_received == 5
    assert engine.rtcp_stats(a).reports_received == 1 and engine.rtcp_stats(b).reports_received == 0
    assert engine.jitter_stats(b).packets == 5
    assert engine.shared is not None and engine.shared.unclaimed == 0
