"""The media engine: RTP sockets for every channel and one clock that renders and sends all of them.

One task ticks every 20 ms against absolute deadlines (``start + k * 0.020`` on ``loop.time()``), so the
clock never drifts; when it falls more than :data:`MAX_LATE_TICKS` behind it skips ahead, counts the skip in
``ticks_skipped`` and advances RTP timestamps by the time that passed. Each tick asks the
:class:`~switch.media.channels.ChannelTable` to render every channel's packet at once and then hands each
packet to its socket: the only per-channel Python work is that ``sendto``.

An answered call sends RTP every 20 ms (silence when nothing plays), as real switches do. Receiving costs
one header check and one copy into the channel's slot; a channel that expects media and receives none for
``rtp_timeout`` seconds is reported once through ``on_rtp_timeout(channel)``.

``direction`` in :meth:`MediaEngine.configure` is the direction the remote party's SDP states: we send when
it is ``sendrecv`` or ``recvonly`` and expect media when it is ``sendrecv`` or ``sendonly``; a remote that
puts us on hold (``sendonly``, ``inactive``, address 0.0.0.0, or ``on_hold=True``) gets nothing from us.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from switch.media.channels import CODECS, FRAME, RX_SLOT_SIZE, ChannelTable

__all__ = [
    "DIRECTIONS",
    "MAX_LATE_TICKS",
    "TICK",
    "ChannelStats",
    "EgressDenied",
    "MediaEngine",
    "MediaError",
    "NoPortAvailable",
    "UnknownChannel",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

TICK = 0.020
MAX_LATE_TICKS = 3
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_TIMEOUT_CHECK_TICKS = 25


class MediaError(Exception):
    """Root of the media engine's errors."""


class NoPortAvailable(MediaError):
    """Every even port of the RTP range is taken."""


class EgressDenied(MediaError):
    """The remote media address is not one the switch may send to."""


class UnknownChannel(MediaError, KeyError):
    """No open channel has this id."""


@dataclass(frozen=True, slots=True)
class ChannelStats:
    packets_sent: int
    octets_sent: int
    packets_received: int
    octets_received: int
    invalid_received: int


class _RtpReceiver(asyncio.DatagramProtocol):
    """Counts a channel's packets and copies the latest payload into its slot; parses nothing more."""

    __slots__ = ("engine", "slot")

    def __init__(self, engine: MediaEngine, slot: int) -> None:
        self.engine = engine
        self.slot = slot

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        table = self.engine._table
        slot = self.slot
        size = len(data)
        if size < 12 or data[0] >> 6 != 2:
            table.rx_invalid[slot] += 1
            return
        first = data[0]
        offset = 12 + 4 * (first & 0x0F)
        if first & 0x10 and size >= offset + 4:
            offset += 4 + 4 * ((data[offset + 2] << 8) | data[offset + 3])
        end = size - data[-1] if first & 0x20 else size
        if end <= offset:
            table.rx_invalid[slot] += 1
            return
        n = min(end - offset, RX_SLOT_SIZE)
        table.rx_views[slot][:n] = data[offset : offset + n]
        table.rx_len[slot] = n
        table.rx_pt[slot] = data[1] & 0x7F
        table.rx_packets[slot] += 1
        table.rx_octets[slot] += end - offset
        table.rx_last_tick[slot] = self.engine.tick_index

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable and the like
        log.debug("RTP socket error on slot %d: %s", self.slot, exc)


class MediaEngine:
    """All RTP channels of this process, rendered and sent by one 20 ms clock."""

    def __init__(
        self,
        host: str,
        port_range: tuple[int, int],
        *,
        egress_allowed: Callable[[str], bool] = lambda ip: True,
        rtp_timeout: float = 30.0,
    ) -> None:
        low, high = port_range
        low += low % 2
        if low > high:
            raise ValueError(f"RTP port range {port_range} holds no even port")
        self.host = host
        self._ports = itertools.cycle(range(low, high + 1, 2))
        self._port_count = (high - low) // 2 + 1
        self._egress_allowed = egress_allowed
        self._timeout_ticks = max(1, round(rtp_timeout / TICK))
        self._table = ChannelTable()
        self._ids: list[int] = []
        self._slots: dict[int, int] = {}
        self._ports_by_id: dict[int, int] = {}
        self._transports: list[asyncio.DatagramTransport] = []
        self._protocols: list[_RtpReceiver] = []
        self._sendto: list[Callable[..., None]] = []
        self._remotes: list[tuple[str, int]] = []
        self._playback: dict[int, asyncio.Future[None]] = {}
        self._telephone_event_pts: dict[int, int | None] = {}
        self._next_id = itertools.count(1)
        self._clock: asyncio.Task[None] | None = None
        self._tick_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.on_rtp_timeout: Callable[[int], None] | None = None
        self.tick_index = 0
        """Ticks since start, skipped ones included."""
        self.ticks_run = 0
        self.ticks_skipped = 0

    # -- lifecycle ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._clock is None:
            self._clock = asyncio.create_task(self._run(), name="media-clock")

    async def stop(self) -> None:
        """Stop the clock and close every channel."""
        clock, self._clock = self._clock, None
        if clock is not None:
            clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await clock
        for channel in list(self._slots):
            await self.close_channel(channel)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        k = 0
        while True:
            k += 1
            deadline = start + k * TICK
            delay = deadline - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            ticks = 1
            late = loop.time() - deadline
            if late > MAX_LATE_TICKS * TICK:
                skipped = int(late / TICK)
                k += skipped
                ticks += skipped
                self.ticks_skipped += skipped
            self.tick_index += ticks
            try:
                self._tick(ticks)
            except Exception:  # one bad tick must not stop every call's audio
                log.exception("media tick failed")
            if self._tick_waiters:
                self._wake_tick_waiters()

    async def wait_ticks(self, count: int) -> None:
        """Wait until the clock has run ``count`` more ticks (for tests and tools)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tick_waiters.append((self.tick_index + count, future))
        await future

    def _wake_tick_waiters(self) -> None:
        waiting = []
        for due, future in self._tick_waiters:
            if due > self.tick_index:
                waiting.append((due, future))
            elif not future.done():
                future.set_result(None)
        self._tick_waiters = waiting

    def _tick(self, ticks: int) -> None:
        table = self._table
        n = table.n
        if n == 0:
            return
        self.ticks_run += 1
        ended = table.render(ticks)
        views = table.packet_views
        sendto = self._sendto
        remotes = self._remotes
        for slot in np.flatnonzero(table.sending[:n]).tolist():
            sendto[slot](views[slot], remotes[slot])
        for slot in ended:
            self._finish_playback(self._ids[slot])
        if self.tick_index % _TIMEOUT_CHECK_TICKS == 0:
            self._check_timeouts()

    def _check_timeouts(self) -> None:
        table = self._table
        n = table.n
        silent = self.tick_index - table.rx_last_tick[:n] >= self._timeout_ticks
        expired = np.flatnonzero(silent & table.expect_rx[:n] & ~table.timed_out[:n]).tolist()
        for slot in expired:
            table.timed_out[slot] = True
        callback = self.on_rtp_timeout
        if callback is not None:
            for slot in expired:
                callback(self._ids[slot])

    # -- channels -----------------------------------------------------------------------------------------
    async def create_channel(self) -> int:
        """Open a channel on an even free port of the range; it sends nothing until configured."""
        sock = self._bind()
        loop = asyncio.get_running_loop()
        slot = self._table.add()
        protocol = _RtpReceiver(self, slot)
        try:
            transport, _ = await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
        except BaseException:
            self._table.remove(slot)
            sock.close()
            raise
        channel = next(self._next_id)
        self._ids.append(channel)
        self._slots[channel] = slot
        self._ports_by_id[channel] = sock.getsockname()[1]
        self._transports.append(transport)
        self._protocols.append(protocol)
        self._sendto.append(transport.sendto)
        self._remotes.append(("0.0.0.0", 0))
        return channel

    def _bind(self) -> socket.socket:
        for _ in range(self._port_count):
            port = next(self._ports)
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.setblocking(False)
                sock.bind((self.host, port))
            except OSError:
                sock.close()
                continue
            return sock
        raise NoPortAvailable("no free even RTP port in the range")

    def local_port(self, channel: int) -> int:
        self._slot(channel)
        return self._ports_by_id[channel]

    def _slot(self, channel: int) -> int:
        try:
            return self._slots[channel]
        except KeyError:
            raise UnknownChannel(channel) from None

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
    ) -> None:
        """Set (or, on re-INVITE, change) where and how a channel sends; ``direction``: see the module."""
        slot = self._slot(channel)
        if codec not in CODECS:
            raise ValueError(f"unsupported codec {codec!r} (PCMU or PCMA)")
        if ptime != 20:
            raise ValueError(f"unsupported ptime {ptime} (only 20 ms)")
        if direction not in DIRECTIONS:
            raise ValueError(f"invalid direction {direction!r}")
        if not 0 <= payload_type <= 127:
            raise ValueError(f"invalid payload type {payload_type}")
        ip, port = remote
        held = on_hold or ip in ("0.0.0.0", "") or port == 0
        if not held and not self._egress_allowed(ip):
            raise EgressDenied(f"RTP to {ip} is not allowed")
        table = self._table
        sending = not held and direction in ("sendrecv", "recvonly")
        was_sending = bool(table.sending[slot])
        marker = sending and (not was_sending or self._remotes[slot] != (ip, port))
        self._remotes[slot] = (ip, port)
        table.configure(
            slot,
            codec=codec,
            payload_type=payload_type,
            sending=sending,
            expect_rx=not held and direction in ("sendrecv", "sendonly"),
            marker=marker,
        )
        table.rx_last_tick[slot] = self.tick_index
        self._telephone_event_pts[channel] = telephone_event_pt

    def play(self, channel: int, pcm: NDArray[np.int16], loop: int = 1) -> asyncio.Future[None]:
        """Play 8 kHz mono ``pcm`` ``loop`` times (0: until stopped), replacing what was playing.

        The future resolves when playback ends, is replaced, is stopped or the channel closes. Do not
        modify ``pcm`` while it plays: the engine keeps it (and stores it once for all channels playing it).
        """
        slot = self._slot(channel)
        if loop < 0:
            raise ValueError("loop must be 0 (forever) or more")
        samples = np.ascontiguousarray(pcm, dtype=np.int16).reshape(-1)
        self._finish_playback(channel)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if len(samples) == 0:
            future.set_result(None)
            return future
        self._table.play(slot, samples, loop)
        self._playback[channel] = future
        return future

    def stop_playback(self, channel: int) -> None:
        self._table.stop(self._slot(channel))
        self._finish_playback(channel)

    def _finish_playback(self, channel: int) -> None:
        future = self._playback.pop(channel, None)
        if future is not None and not future.done():
            future.set_result(None)

    async def close_channel(self, channel: int) -> None:
        slot = self._slot(channel)
        self._finish_playback(channel)
        self._transports[slot].close()
        moved = self._table.remove(slot)
        _swap_remove(self._ids, slot)
        _swap_remove(self._transports, slot)
        _swap_remove(self._protocols, slot)
        _swap_remove(self._sendto, slot)
        _swap_remove(self._remotes, slot)
        if moved is not None:
            self._protocols[slot].slot = slot
            self._slots[self._ids[slot]] = slot
        del self._slots[channel]
        del self._ports_by_id[channel]
        self._telephone_event_pts.pop(channel, None)

    # -- counters -----------------------------------------------------------------------------------------
    def stats(self, channel: int) -> ChannelStats:
        slot = self._slot(channel)
        t = self._table
        sent = int(t.tx_packets[slot])
        return ChannelStats(
            packets_sent=sent,
            octets_sent=sent * FRAME,
            packets_received=int(t.rx_packets[slot]),
            octets_received=int(t.rx_octets[slot]),
            invalid_received=int(t.rx_invalid[slot]),
        )

    def last_payload(self, channel: int) -> tuple[int, bytes]:
        """The payload type and payload of the last packet received (for tests and tools)."""
        slot = self._slot(channel)
        t = self._table
        return int(t.rx_pt[slot]), bytes(t.rx_views[slot][: int(t.rx_len[slot])])

    @property
    def channel_count(self) -> int:
        return self._table.n


def _swap_remove(items: list[T], index: int) -> None:
    """Remove ``items[index]`` by moving the last item into its place (the table does the same)."""
    last = items.pop()
    if index < len(items):
        items[index] = last
