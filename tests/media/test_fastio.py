"""Batched datagram I/O over real loopback sockets, native (recvmmsg/sendmmsg) and the Python fallback,
and the shared-port demultiplexer."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import numpy as np
import pytest

from switch.media.fastio import (
    NATIVE,
    SOCKADDR_DTYPE,
    BatchReader,
    BatchReceiver,
    BatchSender,
    Demux,
    send_batch,
    sockaddrs,
)

MODES = [pytest.param(True, id="native"), pytest.param(False, id="python")]
LOCALHOST = 0x7F000001


@pytest.fixture
def socks() -> Iterator[list[socket.socket]]:
    made: list[socket.socket] = []
    yield made
    for s in made:
        s.close()


def _udp(socks: list[socket.socket]) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    socks.append(s)
    return s


def _payloads(count: int) -> list[bytes]:
    rng = np.random.default_rng(count)
    return [rng.integers(0, 256, 12 + 7 * i, dtype=np.uint8).tobytes() for i in range(count)]


def test_native_io_is_available_on_linux() -> None:
    assert NATIVE


@pytest.mark.parametrize("native", MODES)
def test_receiver_reads_many_datagrams_with_sources(socks: list[socket.socket], native: bool) -> None:
    rx, a, b = _udp(socks), _udp(socks), _udp(socks)
    data = _payloads(10)
    for i, d in enumerate(data):
        (a if i % 2 else b).sendto(d, rx.getsockname())
    receiver = BatchReceiver(capacity=4, size=256, native=native)
    got: list[tuple[bytes, tuple[str, int]]] = []
    while count := receiver.recv(rx):
        got += [(receiver.datagram(i), receiver.address(i)) for i in range(count)]
        assert count <= 4
    assert got == [(d, (a if i % 2 else b).getsockname()) for i, d in enumerate(data)]
    assert receiver.recv(rx) == 0
    assert receiver.ips[0] == LOCALHOST


def test_receiver_reads_ssrc_column(socks: list[socket.socket]) -> None:
    rx, tx = _udp(socks), _udp(socks)
    for ssrc in (1, 0xDEADBEEF, 0x01020304):
        tx.sendto(bytes(8) + ssrc.to_bytes(4, "big") + b"x", rx.getsockname())
    receiver = BatchReceiver()
    assert receiver.recv(rx) == 3
    assert receiver.ssrcs(3).tolist() == [1, 0xDEADBEEF, 0x01020304]
    assert receiver.lengths[:3].tolist() == [13, 13, 13]


@pytest.mark.parametrize("native", MODES)
def test_sender_sends_rows_to_their_addresses(socks: list[socket.socket], native: bool) -> None:
    tx, r1, r2 = _udp(socks), _udp(socks), _udp(socks)
    data = _payloads(6)
    buffer = np.zeros((6, 64), np.uint8)
    for i, d in enumerate(data):
        buffer[i, : len(d)] = np.frombuffer(d, np.uint8)
    lengths = np.array([len(d) for d in data], np.int64)
    targets = [(r1 if i % 3 else r2).getsockname() for i in range(6)]
    sender = BatchSender(capacity=2, native=native)  # grows as needed
    assert sender.send(tx, buffer, lengths, sockaddrs(targets)) == 6
    assert sender.calls == (1 if native else 6)
    for r, want in ((r1, [d for i, d in enumerate(data) if i % 3]), (r2, data[::3])):
        got = []
        while True:
            try:
                got.append(r.recvfrom(100))
            except BlockingIOError:
                break
        assert [d for d, _ in got] == want
        assert {addr for _, addr in got} == {tx.getsockname()}


def test_send_batch_takes_a_file_descriptor(socks: list[socket.socket]) -> None:
    tx, rx = _udp(socks), _udp(socks)
    buffer = np.arange(40, dtype=np.uint8).reshape(2, 20)
    sent = send_batch(tx.fileno(), buffer, np.array([20, 5]), sockaddrs([rx.getsockname()] * 2))
    assert sent == 2
    assert rx.recv(100) == bytes(range(20))
    assert rx.recv(100) == bytes(range(20, 25))


def test_sender_rejects_a_bad_buffer(socks: list[socket.socket]) -> None:
    tx = _udp(socks)
    with pytest.raises(ValueError, match="contiguous rows"):
        send_batch(tx, np.zeros(10, np.uint8), np.array([5]), np.zeros(1, SOCKADDR_DTYPE))


def test_sockaddrs_in_network_order() -> None:
    arr = sockaddrs([("127.0.0.2", 0x1234)])
    assert arr.tobytes()[:8] == socket.AF_INET.to_bytes(2, "little") + bytes([0x12, 0x34, 127, 0, 0, 2])


@pytest.mark.parametrize("native", MODES)
async def test_reader_drains_every_datagram_in_batches(socks: list[socket.socket], native: bool) -> None:
    rx, tx = _udp(socks), _udp(socks)
    got: list[bytes] = []
    sizes: list[int] = []
    done = asyncio.Event()

    def on_batch(receiver: BatchReceiver, count: int) -> None:
        sizes.append(count)
        got.extend(receiver.datagram(i) for i in range(count))
        if len(got) >= 100:
            done.set()

    reader = BatchReader(rx, on_batch, capacity=8, limit=32, native=native)
    data = [i.to_bytes(2, "big") * 10 for i in range(100)]
    for d in data:
        tx.sendto(d, rx.getsockname())
    await asyncio.wait_for(done.wait(), 5)
    reader.close()
    assert got == data
    assert max(sizes) == 8 and reader.datagrams == 100
    assert reader.wakeups < 100


def _cols(addrs: list[tuple[str, int]], ssrcs: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    packed = sockaddrs(addrs)
    return packed["ip"].astype(np.uint32), packed["port"].astype(np.uint16), np.array(ssrcs, np.uint32)


def test_demux_learns_ssrc_then_matches_address_and_ssrc() -> None:
    demux = Demux(capacity=2)
    demux.register(0, ("127.0.0.1", 4000))
    demux.register(5, ("127.0.0.2", 4000))  # grows the arrays
    demux.register(3, ("127.0.0.1", 4002))
    ips, ports, ssrcs = _cols(
        [("127.0.0.1", 4000), ("127.0.0.2", 4000), ("127.0.0.9", 4000), ("127.0.0.1", 4000)],
        [11, 22, 33, 99],
    )
    assert demux.lookup(ips, ports, ssrcs).tolist() == [0, 5, -1, -1]  # 99: another stream, same address
    assert demux.learned == 2
    assert demux.lookup(ips, ports, ssrcs).tolist() == [0, 5, -1, -1]
    demux.unregister(5)
    assert demux.lookup(ips, ports, ssrcs).tolist() == [0, -1, -1, -1]
    ips, ports, ssrcs = _cols([("127.0.0.1", 4002)], [7])
    assert demux.lookup(ips, ports, ssrcs).tolist() == [3]


def test_demux_shared_remote_address_needs_ssrcs() -> None:
    demux = Demux()
    demux.register(0, ("127.0.0.1", 5060))
    demux.register(1, ("127.0.0.1", 5060))
    ips, ports, ssrcs = _cols([("127.0.0.1", 5060)] * 2, [1, 2])
    assert demux.lookup(ips, ports, ssrcs).tolist() == [-1, -1]  # ambiguous: nobody learns
    demux.learn(0, 1)
    demux.learn(1, 2)
    assert demux.lookup(ips, ports, ssrcs).tolist() == [0, 1]
    assert demux.lookup(ips[::-1].copy(), ports, ssrcs[::-1].copy()).tolist() == [1, 0]


async def test_unwatched_reader_drains_when_told(socks: list[socket.socket]) -> None:
    rx, tx = _udp(socks), _udp(socks)
    sizes: list[int] = []
    reader = BatchReader(rx, lambda _, count: sizes.append(count), capacity=16, watch=False)
    assert reader.drain() == 0
    for i in range(40):
        tx.sendto(bytes([i]) * 20, rx.getsockname())
    assert reader.drain() == 40
    assert sizes == [16, 16, 8] and reader.wakeups == 0
    reader.close()
