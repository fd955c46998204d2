"""The media engine on every core: N :class:`MediaEngine` instances in worker processes behind the same
command interface as one engine in this process.

:class:`WorkerMediaEngine` has the public API of :class:`~switch.media.engine.MediaEngine` (same methods,
arguments, futures, callbacks and errors) plus a placement hint: ``create_channel(group=...)`` puts every
channel of one group on one worker. Both legs of a bridge and all members of a room should share a worker
(call control passes the call's or the conference's name as the group). When they do not, a *trunk* joins
them: a pair of hidden channels, one on each worker, sending RTP to each other over loopback, bridged to
the near channel on one side and to the far channel (or into the room) on the other. It costs one more
jitter buffer of delay and, between channels of one codec, no transcoding (payloads pass through). Trunk
pairs are opened in advance (``trunks`` per pair of workers) so ``bridge`` and ``join_room`` stay
synchronous. Listen routes need both channels on one worker. Channels without a group go to the worker
with the fewest channels.

Each worker is a process started with ``spawn`` that runs its own event loop (uvloop when installed), its
own 20 ms clock and its own RTP sockets on its share of the port range. Parent and worker talk over one
``multiprocessing`` pipe each, in small pickled tuples:

parent -> worker::

    ("create", rid[, private])             -> ("ok", rid, (local_channel, port))
    ("spares", rid, count)                 -> ("ok", rid, [(local_channel, port), ...])
    ("configure", local, remote, codec, payload_type, ptime, telephone_event_pt, direction, on_hold,
     rtcp_mux)                                :meth:`MediaEngine.configure` (failures: ("log", text))
    ("drop", local, ...)                      close channels, no reply
    ("call", method, args, kwargs)            a synchronous engine method (failures: ("log", text))
    ("pcm", key, bytes) / ("forget", key)     the prompt cache (below)
    ("play", rid, local, key, loop)        -> ("ok", rid, None) when the playback future resolves
    ("dtmf", rid, local, digits, ms)       -> ("ok", rid, None)
    ("record", rid, local, path, options)  -> ("ok", rid, RecordingResult) or ("err", rid, exception)
    ("close" | "stats" | "jitter" | "rtcp", rid, local) -> ("ok", rid, None | the engine's answer)
    ("ticks", rid, count)                  -> ("ok", rid, None) after ``count`` more ticks
    ("stop", rid)                          -> ("ok", rid, None), then the process exits

worker -> parent events: ``("dtmf", local, digit, source)``, ``("timeout", local)``, ``("log", text)``,
and once a second ``("counters", MediaCounters)``: the RTP totals and tick histogram :meth:`counters` sums.

What a call costs on the pipe: each worker keeps a few *spare* channels open (bound, not configured: its
tick skips them), so ``create_channel`` takes one without a round trip and the spares are refilled in
batches; ``configure`` is written at once (it must precede the SDP answer, see :meth:`Link.send`); every
other command is posted (written with the next write or at the end of the loop iteration), and a close is a
``drop`` with no reply that may wait up to 50 ms for company. The worker posts its replies and events too.

Prompts cross the pipe once per worker: ``play`` names its PCM by a content hash, and the parent sends the
bytes only when that worker does not hold them yet. The parent keeps, per worker, an LRU mirror of what the
worker caches (``cache_bytes`` each) and tells it what to forget, so both sides always agree.

``stats`` and ``jitter_stats`` are synchronous in the engine's API: here they make a blocking round trip to
the worker (well under a millisecond when it is idle, up to one tick when it is busy); ``stats_async`` and
``jitter_stats_async`` do not block.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import logging
import multiprocessing
import os
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from switch.media.channels import CODECS
from switch.media.engine import (
    DIRECTIONS,
    PTIMES,
    ChannelStats,
    EgressDenied,
    MediaCounters,
    MediaError,
    UnknownChannel,
)
from switch.media.jitter import JitterStats
from switch.media.recorder import RecordingResult
from switch.media.rtcp import RtcpStats
from switch.media.wideband import OPUS, WIDEBAND
from switch.media.worker_link import Link
from switch.media.worker_process import worker_main

__all__ = ["WorkerMediaEngine", "allow_any_egress", "default_worker_count", "split_port_range"]

log = logging.getLogger(__name__)

_CACHE_BYTES = 64 * 1024 * 1024
_DROP_WITHIN = 0.05
"""Seconds a close may wait to share a write with other commands."""


def allow_any_egress(ip: str) -> bool:
    """The default egress check (a module-level function, so spawned workers can unpickle it)."""
    return True


def default_worker_count() -> int:
    """Cores minus one (the switch process keeps one), at least 1."""
    return max(1, (os.cpu_count() or 1) - 1)


def split_port_range(port_range: tuple[int, int], parts: int) -> list[tuple[int, int]]:
    """``port_range`` cut into ``parts`` contiguous ranges, each starting on an even port."""
    low, high = port_range
    low += low % 2
    pairs = (high - low + 1) // 2
    if parts < 1 or pairs < parts:
        raise ValueError(f"RTP port range {port_range} is too small for {parts} media workers")
    share, extra = divmod(pairs, parts)
    out = []
    for i in range(parts):
        count = share + (1 if i < extra else 0)
        out.append((low, low + 2 * count - 1))
        low += 2 * count
    return out


# -- the parent side ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Worker:
    index: int
    process: BaseProcess
    link: Link | None = None
    channels: int = 0
    pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    locals: dict[int, int] = field(default_factory=dict)
    """Local channel id -> global channel id."""
    cache: OrderedDict[bytes, int] = field(default_factory=OrderedDict)
    cache_size: int = 0
    alive: bool = True
    stopping: bool = False
    spares: list[tuple[int, int]] = field(default_factory=list)
    """(local channel, port) open in the worker and not yet handed out."""
    refilling: bool = False
    counters: MediaCounters = field(default_factory=MediaCounters)
    """The worker's last report."""


@dataclass(slots=True)
class _Channel:
    id: int
    worker: _Worker
    local: int
    port: int
    group: str | None
    codec: tuple[str, int] = ("PCMU", 0)
    partner: int | None = None
    room: str | None = None
    trunk: tuple[int, int] | None = None
    """(channel on this side, channel on the far worker) carrying a bridge or room across workers."""


class WorkerMediaEngine:
    """The :class:`MediaEngine` API over ``workers`` processes (default: cores - 1, at least 1)."""

    def __init__(
        self,
        host: str,
        port_range: tuple[int, int],
        *,
        workers: int | None = None,
        egress_allowed: Callable[[str], bool] = allow_any_egress,
        rtp_timeout: float = 30.0,
        rtcp_interval: float = 5.0,
        cache_bytes: int = _CACHE_BYTES,
        trunks: int = 2,
        shared_port: bool = False,
        spares: int = 8,
    ) -> None:
        """``shared_port``: each worker's channels share one RTP port (:mod:`switch.media.shared_port`);
        the channels that carry a bridge or room between two workers keep sockets of their own.
        ``spares``: channels each worker keeps open ahead of ``create_channel`` (at most a quarter of its
        share of the port range)."""
        self._shared_port = shared_port
        self.host = host
        self.worker_count = default_worker_count() if workers is None else workers
        self._ranges = split_port_range(port_range, self.worker_count)
        pairs = min((high - low + 1) // 2 for low, high in self._ranges)
        self._spare_target = min(spares, pairs // 4)
        self._egress_allowed = egress_allowed
        self._rtp_timeout = rtp_timeout
        self._rtcp_interval = rtcp_interval
        self._cache_bytes = cache_bytes
        self._workers: list[_Worker] = []
        self._channels: dict[int, _Channel] = {}
        self._groups: dict[str, tuple[_Worker, int]] = {}
        self._rooms: dict[str, tuple[_Worker, int]] = {}
        self._keys: dict[int, tuple[weakref.ref[NDArray[Any]], bytes]] = {}
        self._trunk_target = trunks
        self._pools: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self._hidden: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._rid = itertools.count(1)
        self._next_id = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.on_rtp_timeout: Callable[[int], None] | None = None
        self.on_dtmf: Callable[[int, str, str], None] | None = None
        self.pcm_sent = 0
        """Prompts sent to workers (each prompt once per worker while it stays cached there)."""

    # -- lifecycle ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._workers:
            return
        loop = self._loop = asyncio.get_running_loop()
        ctx = multiprocessing.get_context("spawn")
        ready: list[asyncio.Future[Any]] = []
        for index, ports in enumerate(self._ranges):
            parent, child = ctx.Pipe()
            process = ctx.Process(
                target=worker_main,
                args=(
                    child,
                    self.host,
                    ports,
                    self._egress_allowed,
                    self._rtp_timeout,
                    self._rtcp_interval,
                    self._shared_port,
                ),
                name=f"media-worker-{index}",
                daemon=True,
            )
            process.start()
            child.close()
            worker = _Worker(index, process)
            worker.link = Link(
                parent, loop, functools.partial(self._handle, worker), functools.partial(self._gone, worker)
            )
            future: asyncio.Future[Any] = loop.create_future()
            worker.pending[0] = future
            self._workers.append(worker)
            ready.append(future)
        try:
            await asyncio.gather(*ready)
            await asyncio.gather(*(self._fill(key) for key in self._pool_keys()))
            await asyncio.gather(*(self._refill(w) for w in self._workers))
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close every channel, stop the workers and wait for their processes to end."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        workers, self._workers = self._workers, []
        for w in workers:
            w.stopping = True
        stops = [self._request(w, ("stop",)) for w in workers if w.alive]
        for result in await asyncio.gather(*stops, return_exceptions=True):
            if isinstance(result, BaseException):
                log.warning("media worker did not stop cleanly: %r", result)
        for w in workers:
            await asyncio.to_thread(w.process.join, 5)
            if w.process.is_alive():
                w.process.kill()
            self._drop(w)
        self._channels.clear()
        self._groups.clear()
        self._rooms.clear()
        self._pools.clear()
        self._hidden.clear()

    def _drop(self, worker: _Worker) -> None:
        worker.alive = False
        worker.spares.clear()
        if worker.link is not None:
            worker.link.close()
        for future in worker.pending.values():
            if not future.done():
                future.set_exception(MediaError(f"media worker {worker.index} ended"))
        worker.pending.clear()

    # -- the pipe -----------------------------------------------------------------------------------------
    def _gone(self, worker: _Worker) -> None:
        """The worker's pipe closed: unless we stopped it, its channels are dead; each is reported
        through ``on_rtp_timeout`` so call control hangs those calls up."""
        self._drop(worker)
        if worker.stopping:
            return
        log.error("media worker %d exited", worker.index)
        lost = [ch for ch in worker.locals.values() if ch not in self._hidden]
        callback = self.on_rtp_timeout
        if callback is not None:
            for channel in lost:
                callback(channel)

    def _handle(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind in ("ok", "err"):
            future = worker.pending.pop(message[1], None)
            if future is None or future.done():
                return
            if kind == "ok":
                future.set_result(message[2])
            else:
                future.set_exception(message[2])
        elif kind == "dtmf":
            channel = worker.locals.get(message[1])
            if channel is not None and channel not in self._hidden and self.on_dtmf is not None:
                self.on_dtmf(channel, message[2], message[3])
        elif kind == "timeout":
            channel = worker.locals.get(message[1])
            if channel is not None and channel not in self._hidden and self.on_rtp_timeout is not None:
                self.on_rtp_timeout(channel)
        elif kind == "counters":
            worker.counters = message[1]
        elif kind == "ready":
            future = worker.pending.pop(0, None)
            if future is not None and not future.done():
                future.set_result(message[1])
        elif kind == "log":
            log.warning("media worker %d: %s", worker.index, message[1])

    def _send(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        if not worker.alive or worker.link is None:
            raise MediaError(f"media worker {worker.index} has ended")
        worker.link.send(message)

    def _post(self, worker: _Worker, message: tuple[Any, ...], within: float = 0.0) -> None:
        if not worker.alive or worker.link is None:
            raise MediaError(f"media worker {worker.index} has ended")
        worker.link.post(message, within)

    def _request(self, worker: _Worker, message: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Post ``message`` with a request id after its kind; the future settles with the reply."""
        assert self._loop is not None
        rid = next(self._rid)
        future: asyncio.Future[Any] = self._loop.create_future()
        self._post(worker, (message[0], rid, *message[1:]))
        worker.pending[rid] = future
        return future

    def _request_sync(self, worker: _Worker, message: tuple[Any, ...]) -> Any:
        """Send a request and block on the pipe until its reply; other messages are handled meanwhile."""
        future = self._request(worker, message)
        assert worker.link is not None
        worker.link.wait(future.done)
        return future.result()

    def _call(self, channel: _Channel, name: str, *args: Any, **kwargs: Any) -> None:
        self._post(channel.worker, ("call", name, args, kwargs))

    def _channel(self, channel: int) -> _Channel:
        try:
            return self._channels[channel]
        except KeyError:
            raise UnknownChannel(channel) from None

    # -- channels -----------------------------------------------------------------------------------------
    async def create_channel(self, group: str | None = None, *, near: int | None = None) -> int:
        """Open a channel on a worker: the one ``group`` lives on, else the one channel ``near`` is on,
        else the least busy one (``group`` then starts on it)."""
        if not self._workers:
            raise MediaError("the media engine is not started")
        placed = self._groups.get(group) if group is not None else None
        if placed is not None:
            worker = placed[0]
        elif near is not None:
            worker = self._channel(near).worker
        else:
            worker = min((w for w in self._workers if w.alive), key=lambda w: w.channels)
        if group is not None:
            self._groups[group] = (worker, (placed[1] if placed else 0) + 1)
        worker.channels += 1
        try:
            return (await self._open(worker, group)).id
        except BaseException:
            worker.channels -= 1
            self._release(self._groups, group)
            raise

    async def _open(self, worker: _Worker, group: str | None, *, private: bool = False) -> _Channel:
        if not worker.alive:
            raise MediaError(f"media worker {worker.index} has ended")
        if private:
            local, port = await self._request(worker, ("create", True))
        else:
            if len(worker.spares) <= self._spare_target // 2 and not worker.refilling and worker.alive:
                self._spawn(self._refill(worker))
            if worker.spares:
                local, port = worker.spares.pop()
            else:
                local, port = await self._request(worker, ("create",))
        ch = _Channel(next(self._next_id), worker, local, port, group)
        self._channels[ch.id] = ch
        worker.locals[local] = ch.id
        return ch

    async def _refill(self, worker: _Worker) -> None:
        """Top ``worker``'s spare channels up to the target, in one request."""
        count = self._spare_target - len(worker.spares)
        if count <= 0 or worker.refilling:
            return
        worker.refilling = True
        try:
            worker.spares += await self._request(worker, ("spares", count))
        except MediaError as exc:
            log.warning("media worker %d: no spare channels: %s", worker.index, exc)
        finally:
            worker.refilling = False

    def local_port(self, channel: int) -> int:
        return self._channel(channel).port

    def worker_of(self, channel: int) -> int:
        """The index of the worker that carries ``channel``."""
        return self._channel(channel).worker.index

    def configure(
        self,
        channel: int,
        *,
        remote: tuple[str, int],
        codec: str,
        payload_type: int,
        ptime: int = 20,
        telephone_event_pt: int | None = None,
        direction: str = "sendrecv",
        on_hold: bool = False,
        rtcp_mux: bool = False,
    ) -> None:
        """See :meth:`MediaEngine.configure`; arguments are checked here, so errors raise here."""
        ch = self._channel(channel)
        if codec not in CODECS and codec not in WIDEBAND:
            raise ValueError(f"unsupported codec {codec!r} ({', '.join([*CODECS, *WIDEBAND])})")
        if WIDEBAND.get(codec, 0) == OPUS and ptime != 20:
            raise ValueError("Opus legs use 20 ms packets")
        if ptime not in PTIMES:
            raise ValueError(f"unsupported ptime {ptime} (10 to 60 ms in steps of 10)")
        if direction not in DIRECTIONS:
            raise ValueError(f"invalid direction {direction!r}")
        if not 0 <= payload_type <= 127:
            raise ValueError(f"invalid payload type {payload_type}")
        ip, port = remote
        held = on_hold or ip in ("0.0.0.0", "") or port == 0
        if not held and not self._egress_allowed(ip):
            raise EgressDenied(f"RTP to {ip} is not allowed")
        ch.codec = (codec, payload_type)
        message = (ch.local, remote, codec, payload_type, ptime, telephone_event_pt, direction, on_hold)
        self._send(ch.worker, ("configure", *message, rtcp_mux))

    def set_inband_dtmf(self, channel: int, enabled: bool) -> None:
        ch = self._channel(channel)
        self._call(ch, "set_inband_dtmf", ch.local, enabled)

    async def close_channel(self, channel: int) -> None:
        ch = self._channel(channel)
        del self._channels[channel]
        self._unlink(ch)
        self._release(self._groups, ch.group)
        if channel in self._hidden:
            self._hidden.discard(channel)
        else:
            ch.worker.channels -= 1
        ch.worker.locals.pop(ch.local, None)
        self._post(ch.worker, ("drop", ch.local), _DROP_WITHIN)

    @staticmethod
    def _release(places: dict[str, tuple[_Worker, int]], name: str | None) -> None:
        if name is None or name not in places:
            return
        worker, count = places[name]
        if count <= 1:
            del places[name]
        else:
            places[name] = (worker, count - 1)

    # -- players ------------------------------------------------------------------------------------------
    def play(self, channel: int, pcm: NDArray[np.int16], loop: int = 1) -> asyncio.Future[None]:
        """See :meth:`MediaEngine.play`; the PCM crosses to the worker once, named by its content hash."""
        ch = self._channel(channel)
        if loop < 0:
            raise ValueError("loop must be 0 (forever) or more")
        samples = np.ascontiguousarray(pcm, dtype=np.int16).reshape(-1)
        key = self._key(pcm, samples)
        worker = ch.worker
        if key in worker.cache:
            worker.cache.move_to_end(key)
        else:
            data = samples.tobytes()
            self._send(worker, ("pcm", key, data))
            self.pcm_sent += 1
            worker.cache[key] = len(data)
            worker.cache_size += len(data)
            while worker.cache_size > self._cache_bytes and len(worker.cache) > 1:
                old, size = worker.cache.popitem(last=False)
                worker.cache_size -= size
                self._send(worker, ("forget", old))
        return self._request(worker, ("play", ch.local, key, loop))

    def _key(self, pcm: NDArray[Any], samples: NDArray[np.int16]) -> bytes:
        """The content hash of a prompt, remembered per array object (prompts are not modified, see play)."""
        known = self._keys.get(id(pcm))
        if known is not None and known[0]() is pcm:
            return known[1]
        key = hashlib.blake2b(samples.data, digest_size=16).digest()
        ident = id(pcm)
        try:
            ref = weakref.ref(pcm, lambda _: self._keys.pop(ident, None))
        except TypeError:
            return key
        self._keys[ident] = (ref, key)
        return key

    def stop_playback(self, channel: int) -> None:
        ch = self._channel(channel)
        self._call(ch, "stop_playback", ch.local)

    # -- mixing -------------------------------------------------------------------------------------------
    def bridge(self, a: int, b: int) -> None:
        """See :meth:`MediaEngine.bridge`; channels on two workers are joined through a trunk."""
        ca, cb = self._channel(a), self._channel(b)
        self._unlink(ca)
        self._unlink(cb)
        if ca.worker is cb.worker:
            self._call(ca, "bridge", ca.local, cb.local)
        else:
            x, y = self._take_trunk(ca, cb.worker)
            self._call(ca, "bridge", ca.local, x.local)
            self._call(cb, "bridge", cb.local, y.local)
            ca.trunk = cb.trunk = (x.id, y.id)
        ca.partner, cb.partner = b, a

    def unbridge(self, channel: int) -> None:
        ch = self._channel(channel)
        self._call(ch, "unbridge", ch.local)
        if ch.partner is not None:
            self._unlink(ch)

    def join_room(self, channel: int, room: str, *, muted: bool = False) -> None:
        """See :meth:`MediaEngine.join_room`; a member on another worker than the room's first member
        joins through a trunk (one more jitter buffer of delay, no extra transcoding for PCMU)."""
        ch = self._channel(channel)
        if ch.room == room:
            target = self._channels[ch.trunk[1]] if ch.trunk else ch
            self._call(target, "join_room", target.local, room, muted=muted)
            return
        self._unlink(ch)
        placed = self._rooms.get(room)
        if placed is None or placed[0] is ch.worker:
            self._call(ch, "join_room", ch.local, room, muted=muted)
        else:
            x, y = self._take_trunk(ch, placed[0])
            self._call(ch, "bridge", ch.local, x.local)
            self._call(y, "join_room", y.local, room, muted=muted)
            ch.trunk = (x.id, y.id)
        ch.room = room
        self._rooms[room] = (placed[0] if placed else ch.worker, (placed[1] if placed else 0) + 1)

    def leave_room(self, channel: int) -> None:
        ch = self._channel(channel)
        self._call(ch, "leave_room", ch.local)
        if ch.room is not None:
            self._unlink(ch)

    def set_muted(self, channel: int, muted: bool) -> None:
        ch = self._channel(channel)
        if ch.room is None:
            raise MediaError(f"channel {channel} is in no room")
        target = self._channels[ch.trunk[1]] if ch.trunk else ch
        self._call(target, "set_muted", target.local, muted)

    def add_listen_route(self, source: int, listener: int) -> None:
        cs, cl = self._channel(source), self._channel(listener)
        if cs.trunk or cl.trunk or cs.worker is not cl.worker:
            raise MediaError(
                "listen routes need both channels on one media worker (create them with one group)"
            )
        self._call(cs, "add_listen_route", cs.local, cl.local)

    def remove_listen_route(self, source: int, listener: int) -> None:
        cs, cl = self._channels.get(source), self._channels.get(listener)
        if cs is not None and cl is not None and cs.worker is cl.worker:
            self._call(cs, "remove_listen_route", cs.local, cl.local)

    def _unlink(self, ch: _Channel) -> None:
        """Forget ``ch``'s bridge or room here (the engine detaches it itself) and close its trunk."""
        if ch.partner is not None:
            other = self._channels.get(ch.partner)
            if other is not None and other.partner == ch.id:
                other.partner, other.trunk = None, None
            ch.partner = None
        if ch.room is not None:
            self._release(self._rooms, ch.room)
            ch.room = None
        if ch.trunk is not None:
            for hidden in ch.trunk:
                if hidden in self._channels:
                    self._spawn(self.close_channel(hidden))
            ch.trunk = None

    # -- trunks between workers -----------------------------------------------------------------------------
    def _pool_keys(self) -> list[tuple[int, int]]:
        n = len(self._workers)
        return [(i, j) for i in range(n) for j in range(i + 1, n)]

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fill(self, key: tuple[int, int]) -> None:
        """Open channel pairs between workers ``key`` until the pool holds its target."""
        pool = self._pools.setdefault(key, [])
        a, b = self._workers[key[0]], self._workers[key[1]]
        while len(pool) < self._trunk_target and a.alive and b.alive:
            x, y = await asyncio.gather(self._open(a, None, private=True), self._open(b, None, private=True))
            self._hidden.update((x.id, y.id))
            pool.append((x.id, y.id))

    def _take_trunk(self, near: _Channel, far: _Worker) -> tuple[_Channel, _Channel]:
        """A pair of channels, one on ``near``'s worker and one on ``far``, sending to each other in
        ``near``'s codec with in-band detection off; the pool is refilled in the background."""
        i, j = near.worker.index, far.index
        key = (min(i, j), max(i, j))
        pool = self._pools.get(key)
        if not pool:
            raise MediaError(f"no trunk between media workers {i} and {j} is ready yet")
        first, second = pool.pop()
        self._spawn(self._fill(key))
        x, y = self._channels[first], self._channels[second]
        if x.worker is not near.worker:
            x, y = y, x
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        codec, payload_type = near.codec
        for this, other in ((x, y), (y, x)):
            self._call(this, "set_inband_dtmf", this.local, False)
            self._call(
                this,
                "configure",
                this.local,
                remote=(host, other.port),
                codec=codec,
                payload_type=payload_type,
            )
        return x, y

    # -- DTMF and recording -------------------------------------------------------------------------------
    def send_dtmf(self, channel: int, digits: str, *, duration_ms: int = 100) -> asyncio.Future[None]:
        ch = self._channel(channel)
        return self._request(ch.worker, ("dtmf", ch.local, digits, duration_ms))

    def record(
        self,
        channel: int,
        path: Path,
        *,
        max_length: float = 3600.0,
        silence_timeout: float | None = 5.0,
        finish_on_digits: str = "",
        trim_silence: bool = True,
        dual: bool = False,
        beep: bool = False,
    ) -> asyncio.Future[RecordingResult]:
        """See :meth:`MediaEngine.record`; the worker writes the file."""
        ch = self._channel(channel)
        options = {
            "max_length": max_length,
            "silence_timeout": silence_timeout,
            "finish_on_digits": finish_on_digits,
            "trim_silence": trim_silence,
            "dual": dual,
            "beep": beep,
        }
        return self._request(ch.worker, ("record", ch.local, Path(path), options))

    def stop_recording(self, channel: int) -> None:
        ch = self._channel(channel)
        self._call(ch, "stop_recording", ch.local)

    # -- counters and tools -------------------------------------------------------------------------------
    def stats(self, channel: int) -> ChannelStats:
        """Blocks on a round trip to the worker: prefer :meth:`stats_async` on hot paths."""
        ch = self._channel(channel)
        result: ChannelStats = self._request_sync(ch.worker, ("stats", ch.local))
        return result

    async def stats_async(self, channel: int) -> ChannelStats:
        ch = self._channel(channel)
        result: ChannelStats = await self._request(ch.worker, ("stats", ch.local))
        return result

    def jitter_stats(self, channel: int) -> JitterStats:
        """Blocks on a round trip to the worker: prefer :meth:`jitter_stats_async` on hot paths."""
        ch = self._channel(channel)
        result: JitterStats = self._request_sync(ch.worker, ("jitter", ch.local))
        return result

    def rtcp_stats(self, channel: int) -> RtcpStats:
        """Blocks on a round trip to the worker: prefer :meth:`rtcp_stats_async` on hot paths."""
        ch = self._channel(channel)
        result: RtcpStats = self._request_sync(ch.worker, ("rtcp", ch.local))
        return result

    async def rtcp_stats_async(self, channel: int) -> RtcpStats:
        ch = self._channel(channel)
        result: RtcpStats = await self._request(ch.worker, ("rtcp", ch.local))
        return result

    async def jitter_stats_async(self, channel: int) -> JitterStats:
        ch = self._channel(channel)
        result: JitterStats = await self._request(ch.worker, ("jitter", ch.local))
        return result

    def counters(self) -> MediaCounters:
        """The workers' RTP totals and tick histograms as each last reported them (once a second)."""
        total = MediaCounters()
        for worker in self._workers:
            total = total.plus(worker.counters)
        return total

    async def wait_ticks(self, count: int) -> None:
        """Wait until every worker's clock has run ``count`` more ticks."""
        await asyncio.gather(*(self._request(w, ("ticks", count)) for w in self._workers if w.alive))

    @property
    def channel_count(self) -> int:
        return len(self._channels) - len(self._hidden)
