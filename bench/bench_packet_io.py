"""CPU per RTP packet (received + sent) for the switch's packet I/O, beside a plain uvloop echo of the same
packets in the same run.

A server process (spawned, uvloop) receives ``--streams`` G.711 streams of 50 packets/s from the load
generator (:mod:`bench.rtpgen`, this process) and sends one packet per stream per tick back. Its CPU time
(``time.process_time``) over the measured window, divided by the packets it received, is the cost. Modes:

- ``uvloop-echo``: the baseline, one socket, ``transport.sendto(data, addr)`` in ``datagram_received``;
- ``per-channel``: the engine's present shape, a socket per channel (``create_datagram_endpoint``), each
  packet's header unpacked and copied into its channel's row, a 20 ms tick sending every row with
  ``transport.sendto``;
- ``shared``: one RTP port for all channels (:mod:`switch.media.fastio`): ``recvmmsg`` batches drained
  from ``add_reader``, demultiplexed in numpy by source address and SSRC (:class:`fastio.Demux`), copied
  into the channel table as one fancy-index assignment; the tick sends every row with ``sendmmsg``;
- ``shared-tick``: ``shared`` without ``add_reader``: the tick drains the socket itself (full batches);
- ``shared-python``: ``shared`` with fastio's pure-Python fallback (``recvfrom_into``/``sendto`` loops).

    python bench/bench_packet_io.py [--streams 1000] [--seconds 5] [--modes uvloop-echo,shared,...]

Prints one JSON object per mode and a summary with each mode's ratio to the echo.

``--engine 0,1,2`` measures the real engine instead (in-process, then :class:`WorkerMediaEngine` with 1
and 2 workers): ``--streams`` channels bridged in pairs, each fed by a generator stream (the
generator in its own process, 32 sockets shared by the streams as for the echo, streams started in waves
so that a shared port learns every stream's SSRC), CPU of the switch process and of each worker from
``/proc``: user + system time of the engine's processes over the window, divided by the packets the
generator sent (each is received once and sent once by the engine). On loopback the system time of a
send includes the receiving socket's delivery (the kernel runs the receiver's UDP input in the sender's
system call), which a NIC would not charge to the switch.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import struct
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path[:0] = [str(ROOT), str(ROOT / "codecs")]

from bench.rtpgen import TICK, RtpGenerator  # noqa: E402
from switch.media.fastio import BatchReader, BatchReceiver, BatchSender, Demux, sockaddrs  # noqa: E402

MODES = ("uvloop-echo", "per-channel", "shared", "shared-tick", "shared-python")
SIZE = 172
_HEADER = struct.Struct("!BBHII")
_SO_RCVBUFFORCE = 33
SOURCES = 32
"""Generator sockets, shared by all streams, in every mode (the echo's and the engine's runs alike)."""


def _socket(big: bool = True) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if big:
        for opt in (_SO_RCVBUFFORCE, socket.SO_RCVBUF):
            try:
                s.setsockopt(socket.SOL_SOCKET, opt, 1 << 22)
                break
            except OSError:
                continue
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


class _Counters:
    received = 0
    sent = 0


async def _serve(conn: Connection, mode: str, streams: int, capacity: int) -> None:
    loop = asyncio.get_running_loop()
    counters = _Counters()
    if mode == "per-channel":
        socks = [_socket(big=False) for _ in range(streams)]
    else:
        socks = [_socket()]
    conn.send([s.getsockname()[1] for s in socks])
    sources: list[tuple[str, int]]
    ssrcs: list[int]
    sources, ssrcs = conn.recv()
    tick_task: asyncio.Task[None] | None = None
    closers: list[Any] = []

    table = np.zeros((streams, SIZE), np.uint8)
    lengths = np.full(streams, SIZE, np.int64)
    addresses = sockaddrs(sources)

    if mode == "uvloop-echo":

        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport: Any = transport

            def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
                self.transport.sendto(data, addr)
                counters.received += 1

        transport, _ = await loop.create_datagram_endpoint(Echo, sock=socks[0])
        closers.append(transport)
    elif mode == "per-channel":
        rows = [row.data for row in table]
        sendto: list[Any] = []

        class Channel(asyncio.DatagramProtocol):
            __slots__ = ("row",)

            def __init__(self, row: memoryview) -> None:
                self.row = row

            def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
                _HEADER.unpack_from(data)
                self.row[: len(data)] = data
                counters.received += 1

        for i, s in enumerate(socks):
            transport, _ = await loop.create_datagram_endpoint(lambda i=i: Channel(rows[i]), sock=s)  # type: ignore[misc]
            closers.append(transport)
            sendto.append(transport.sendto)

        def tick() -> None:
            for i in range(streams):
                sendto[i](rows[i], sources[i])
            counters.sent += streams

        tick_task = asyncio.create_task(_clock(tick))
    else:
        native = mode != "shared-python"
        on_tick = mode == "shared-tick"
        demux = Demux(streams)
        for i, (source, ssrc) in enumerate(zip(sources, ssrcs, strict=True)):
            demux.register(i, source)
            demux.learn(i, ssrc)
        sender = BatchSender(streams, native=native)
        sock = socks[0]

        def on_batch(rx: BatchReceiver, count: int) -> None:
            slots = demux.lookup(rx.ips[:count], rx.ports[:count], rx.ssrcs(count))
            ok = slots >= 0
            table[slots[ok]] = rx.buffer[:count, :SIZE][ok]
            counters.received += count

        reader = BatchReader(sock, on_batch, capacity=capacity, limit=4096, native=native, watch=not on_tick)
        closers.append(reader)

        def tick() -> None:
            if on_tick:
                reader.drain()
            counters.sent += sender.send(sock, table, lengths, addresses)

        tick_task = asyncio.create_task(_clock(tick))

    done = loop.create_future()
    marks: list[tuple[float, float, int, int]] = []

    def command() -> None:
        message = conn.recv()
        times = os.times()
        marks.append((times.user, times.system, counters.received, counters.sent))
        if message == "stop" and not done.done():
            done.set_result(None)

    loop.add_reader(conn.fileno(), command)
    await done
    loop.remove_reader(conn.fileno())
    if tick_task is not None:
        tick_task.cancel()
    for c in closers:
        c.close()
    (user0, sys0, rx0, tx0), (user1, sys1, rx1, tx1) = marks[0], marks[-1]
    received, sent = rx1 - rx0, tx1 - tx0
    if mode == "uvloop-echo":
        sent = received
    wakeups = getattr(closers[0], "wakeups", 0)
    conn.send(
        {
            "cpu_s": user1 - user0 + sys1 - sys0,
            "user_s": user1 - user0,
            "system_s": sys1 - sys0,
            "received": received,
            "sent": sent,
            "reader_wakeups_total": wakeups,
        }
    )


async def _clock(tick: Any) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    k = 0
    while True:
        k += 1
        delay = start + k * 0.020 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tick()


def _server(conn: Connection, mode: str, streams: int, capacity: int) -> None:
    import uvloop

    uvloop.run(_serve(conn, mode, streams, capacity))


def run_mode(mode: str, streams: int, seconds: float, capacity: int = 256) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_server, args=(child, mode, streams, capacity), daemon=True)
    proc.start()
    ports: list[int] = parent.recv()
    targets = [("127.0.0.1", ports[i % len(ports)]) for i in range(streams)]
    gen = RtpGenerator(targets, sources=SOURCES)
    parent.send((gen.source_addresses(), gen.stream_ssrcs()))
    gen.run(1.0)  # warm-up
    parent.send("start")
    sent0, received0 = gen.sent, gen.received
    gen.run(seconds)
    parent.send("stop")
    result: dict[str, Any] = parent.recv()
    proc.join(5)
    gen.close()
    received = result["received"]
    result.update(
        mode=mode,
        streams=streams,
        seconds=seconds,
        capacity=capacity,
        generator_sent=gen.sent - sent0,
        generator_received=gen.received - received0,
        server_received_share=round(received / max(1, gen.sent - sent0), 4),
        us_per_packet=round(1e6 * result["cpu_s"] / max(1, received), 3),
        user_us_per_packet=round(1e6 * result["user_s"] / max(1, received), 3),
        system_us_per_packet=round(1e6 * result["system_s"] / max(1, received), 3),
        cpu_share=round(result["cpu_s"] / seconds, 3),
    )
    return result


def _generator(conn: Connection, targets: list[tuple[str, int]], seconds: float, sources: int) -> None:
    """The engine runs' generator: ``sources`` sockets shared by all streams (stream ``i`` on socket
    ``i % sources``, each with its own SSRC), as for the echo. On a shared port the engine learns a
    stream's SSRC from its first packets while no other new stream comes from the same address, so the
    streams start in waves of ``sources`` (one per socket): the parent configures a wave's channels,
    says ("wave", lo, hi), the generator sends 3 ticks with them and answers "ok"."""
    gen = RtpGenerator(targets, sources=sources)
    conn.send(gen.source_addresses())
    active = np.zeros(gen.streams, np.bool_)
    row_of_stream = np.argsort(gen.stream_of_row)
    while (message := conn.recv()) != "go":
        _, lo, hi = message
        active[row_of_stream[lo:hi]] = True
        gen.set_active(active)
        gen.run(3 * TICK)
        conn.send("ok")
    gen.set_active(None)
    gen.run(1.0)
    conn.send("warm")
    conn.recv()
    sent0, received0 = gen.sent, gen.received
    gen.run(seconds)
    conn.send((gen.sent - sent0, gen.received - received0))
    gen.close()


def _cpu(pid: int) -> float:
    return sum(_cpu_split(pid))


def _cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) seconds of ``pid``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


async def _engine_run(
    workers: int, streams: int, seconds: float, low_port: int, shared: bool = False
) -> dict[str, Any]:
    from switch.media.engine import MediaEngine
    from switch.media.workers import WorkerMediaEngine

    ports = (low_port, low_port + 2 * streams + 200)
    engine: Any = (
        MediaEngine("127.0.0.1", ports, shared_port=shared)
        if workers == 0
        else WorkerMediaEngine("127.0.0.1", ports, workers=workers, shared_port=shared)
    )
    await engine.start()
    channels = []
    for i in range(streams):
        channels.append(
            await (engine.create_channel(f"pair-{i // 2}") if workers else engine.create_channel())
        )
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    targets = [("127.0.0.1", engine.local_port(c)) for c in channels]
    proc = ctx.Process(target=_generator, args=(child, targets, seconds, SOURCES), daemon=True)
    proc.start()
    loop = asyncio.get_running_loop()
    sources = await loop.run_in_executor(None, parent.recv)
    for lo in range(0, streams, SOURCES):
        hi = min(streams, lo + SOURCES)
        for channel, source in zip(channels[lo:hi], sources[lo:hi], strict=True):
            engine.configure(channel, remote=source, codec="PCMU", payload_type=0, telephone_event_pt=101)
        await asyncio.sleep(0.005)  # the configuration reaches the workers before the packets
        parent.send(("wave", lo, hi))
        assert await loop.run_in_executor(None, parent.recv) == "ok"
    for i in range(0, streams - 1, 2):
        engine.bridge(channels[i], channels[i + 1])
    parent.send("go")
    await loop.run_in_executor(None, parent.recv)
    pids = [os.getpid()] + ([w.process.pid for w in engine._workers] if workers else [])
    before = [_cpu_split(pid) for pid in pids]
    parent.send("go")
    sent, received = await loop.run_in_executor(None, parent.recv)
    after = [_cpu_split(pid) for pid in pids]
    user = sum(b[0] - a[0] for a, b in zip(before, after, strict=True))
    system = sum(b[1] - a[1] for a, b in zip(before, after, strict=True))
    proc.join(5)
    await engine.stop()
    shares = [round((sum(b) - sum(a)) / seconds, 3) for a, b in zip(before, after, strict=True)]
    return {
        "engine": "in-process" if workers == 0 else f"{workers} workers",
        "shared_port": shared,
        "streams": streams,
        "cpu_share_per_process": shares,
        "us_per_packet_all_processes": round(1e6 * sum(shares) * seconds / max(1, sent), 2),
        "user_us_per_packet": round(1e6 * user / max(1, sent), 2),
        "system_us_per_packet": round(1e6 * system / max(1, sent), 2),
        "generator_sent": sent,
        "echo_share": round(received / max(1, sent), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--capacity", type=int, default=256, help="datagrams per recvmmsg (shared modes)")
    parser.add_argument(
        "--engine",
        default="",
        help="instead: the real engine, bridged pairs; comma list of worker counts (0: in-process)",
    )
    parser.add_argument(
        "--engine-io",
        default="sockets",
        help="with --engine: comma list of 'sockets' (a socket per channel) and 'shared' (--rtp-shared-port)",
    )
    parser.add_argument("--echo", action="store_true", help="with --engine: the uvloop echo first, same run")
    args = parser.parse_args()
    if args.engine:
        import uvloop

        if args.echo:
            echo = run_mode("uvloop-echo", args.streams, args.seconds, args.capacity)
            print(json.dumps(echo), flush=True)
        for io in args.engine_io.split(","):
            for workers in (int(w) for w in args.engine.split(",")):
                result = uvloop.run(_engine_run(workers, args.streams, args.seconds, 41000, io == "shared"))
                if args.echo:
                    result["ratio_to_uvloop_echo"] = round(
                        result["us_per_packet_all_processes"] / echo["us_per_packet"], 3
                    )
                print(json.dumps(result), flush=True)
        return
    results = {}
    for mode in args.modes.split(","):
        results[mode] = run_mode(mode, args.streams, args.seconds, args.capacity)
        print(json.dumps(results[mode]), flush=True)
    base = results.get("uvloop-echo")
    if base:
        summary = {m: round(r["us_per_packet"] / base["us_per_packet"], 3) for m, r in results.items()}
        print(json.dumps({"ratio_to_uvloop_echo": summary}))


if __name__ == "__main__":
    main()
