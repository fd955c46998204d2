"""The child side of ``--media-workers``: one :class:`~switch.media.engine.MediaEngine` in a spawned process,
driven by the commands of :mod:`switch.media.workers` over a :class:`~switch.media.worker_link.Link` (the
message table is in that module's docstring)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
from numpy.typing import NDArray

from switch.media.engine import MediaEngine, MediaError
from switch.media.worker_link import Link

__all__ = ["COUNTERS_INTERVAL", "worker_main"]

COUNTERS_INTERVAL = 1.0
"""Seconds between a worker's reports of its :class:`~switch.media.engine.MediaCounters`."""


def worker_main(
    conn: Connection,
    host: str,
    port_range: tuple[int, int],
    egress_allowed: Callable[[str], bool],
    rtp_timeout: float,
    rtcp_interval: float,
    shared_port: bool = False,
) -> None:
    logging.basicConfig(level=logging.WARNING)
    # The switch stops its workers through their pipes (a worker whose switch died sees the pipe's EOF): a
    # terminal's Ctrl-C reaches the whole process group and must not end a worker before the switch drains.
    # SIGTERM stays default: multiprocessing ends daemon workers with it when the switch exits on an error.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        asyncio.run(_worker(conn, host, port_range, egress_allowed, rtp_timeout, rtcp_interval, shared_port))
    else:
        uvloop.run(_worker(conn, host, port_range, egress_allowed, rtp_timeout, rtcp_interval, shared_port))


async def _worker(
    conn: Connection,
    host: str,
    port_range: tuple[int, int],
    egress_allowed: Callable[[str], bool],
    rtp_timeout: float,
    rtcp_interval: float,
    shared_port: bool,
) -> None:
    loop = asyncio.get_running_loop()
    engine = MediaEngine(
        host,
        port_range,
        egress_allowed=egress_allowed,
        rtp_timeout=rtp_timeout,
        rtcp_interval=rtcp_interval,
        shared_port=shared_port,
    )
    await engine.start()
    cache: dict[bytes, NDArray[np.int16]] = {}
    stopping: asyncio.Future[int] = loop.create_future()
    tasks: set[asyncio.Task[None]] = set()

    def gone() -> None:
        if not stopping.done():
            stopping.set_result(-1)

    def receive(message: tuple[Any, ...]) -> None:
        try:
            handle(message)
        except Exception as exc:  # a bad command must not stop the worker's other calls
            rid = message[1] if message[0] not in ("call", "configure", "drop", "pcm", "forget") else None
            if isinstance(rid, int):
                known = isinstance(exc, MediaError | ValueError)
                send(("err", rid, exc if known else MediaError(repr(exc))))
            else:
                send(("log", f"{message[0]} {message[1]!r}: {exc!r}"))

    link = Link(conn, loop, receive, gone)
    # Replies and events are posted: what one loop iteration produces crosses in one write.
    send = link.post
    engine.on_dtmf = lambda channel, digit, source: send(("dtmf", channel, digit, source))
    engine.on_rtp_timeout = lambda channel: send(("timeout", channel))

    def report() -> None:
        send(("counters", engine.counters()))
        timer[0] = loop.call_later(COUNTERS_INTERVAL, report)

    timer = [loop.call_later(COUNTERS_INTERVAL, report)]

    def answer(rid: int, future: asyncio.Future[Any]) -> None:
        def done(f: asyncio.Future[Any]) -> None:
            if f.cancelled():
                send(("err", rid, MediaError("cancelled")))
            elif f.exception() is not None:
                send(("err", rid, f.exception()))
            else:
                send(("ok", rid, f.result()))

        future.add_done_callback(done)

    def run(rid: int, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        answer(rid, task)

    async def create(private: bool) -> tuple[int, int]:
        channel = await engine.create_channel(private=private)
        return channel, engine.local_port(channel)

    async def create_many(count: int) -> list[tuple[int, int]]:
        made: list[tuple[int, int]] = []
        for _ in range(count):
            try:
                made.append(await create(False))
            except MediaError:
                if not made:
                    raise
                break
        return made

    async def value(result: Any) -> Any:
        return result

    def handle(message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "configure":
            _, channel, remote, codec, pt, ptime, te_pt, direction, on_hold, rtcp_mux = message
            engine.configure(
                channel,
                remote=remote,
                codec=codec,
                payload_type=pt,
                ptime=ptime,
                telephone_event_pt=te_pt,
                direction=direction,
                on_hold=on_hold,
                rtcp_mux=rtcp_mux,
            )
        elif kind == "drop":
            for channel in message[1:]:
                engine.release(channel)
        elif kind == "call":
            _, name, args, kwargs = message
            getattr(engine, name)(*args, **kwargs)
        elif kind == "pcm":
            cache[message[1]] = np.frombuffer(message[2], np.int16)
        elif kind == "forget":
            cache.pop(message[1], None)
        elif kind == "play":
            _, rid, channel, key, count = message
            answer(rid, engine.play(channel, cache[key], count))
        elif kind == "dtmf":
            _, rid, channel, digits, duration = message
            answer(rid, engine.send_dtmf(channel, digits, duration_ms=duration))
        elif kind == "record":
            _, rid, channel, path, options = message
            answer(rid, engine.record(channel, path, **options))
        elif kind == "create":
            run(message[1], create(len(message) > 2 and bool(message[2])))
        elif kind == "spares":
            run(message[1], create_many(message[2]))
        elif kind == "close":
            run(message[1], engine.close_channel(message[2]))
        elif kind == "stats":
            run(message[1], value(engine.stats(message[2])))
        elif kind == "jitter":
            run(message[1], value(engine.jitter_stats(message[2])))
        elif kind == "rtcp":
            run(message[1], value(engine.rtcp_stats(message[2])))
        elif kind == "ticks":
            run(message[1], engine.wait_ticks(message[2]))
        elif kind == "stop" and not stopping.done():
            stopping.set_result(message[1])

    link.send(("ready", os.getpid()))
    rid = await stopping
    timer[0].cancel()
    await engine.stop()
    if rid >= 0:
        link.send(("ok", rid, None))
        link.wait(lambda: not link.queued)
    link.close()
