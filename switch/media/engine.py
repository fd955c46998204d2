"""The media engine: RTP sockets for every channel and one clock that processes and sends all of them.

One task ticks every 20 ms against absolute deadlines (``start + k * 0.020`` on ``loop.time()``), so the
clock never drifts; when it falls more than :data:`MAX_LATE_TICKS` behind it skips ahead, counts the skip in
``ticks_skipped`` and advances RTP timestamps by the time that passed.

Receiving a packet costs one header unpack and one copy into the channel's jitter buffer
(:mod:`switch.media.receiver`, :mod:`switch.media.jitter`). Each tick then works on every channel at once
(:mod:`switch.media.pipeline`): take every channel's frame from its jitter buffer, decode by table, conceal
losses, detect in-band digits on the channels that want it, mix (bridges, rooms, listen routes, players),
feed recorders, encode by table, write the headers, send. A bridge of two legs with the same codec and
nothing else to hear passes the received payloads through untouched.

A channel that expects media and receives none for ``rtp_timeout`` seconds is reported once through
``on_rtp_timeout(channel)``; every DTMF digit, RFC 4733 or in-band, through ``on_dtmf(channel, digit,
source)``.

``direction`` in :meth:`MediaEngine.configure` is the direction the remote party's SDP states: we send when
it is ``sendrecv`` or ``recvonly`` and take whatever media arrives; a remote that puts us on hold
(``sendonly``, ``inactive``, address 0.0.0.0, or ``on_hold=True``) gets nothing from us, and the RTP
timeout runs only while the remote says ``sendrecv`` (a held phone may send nothing for as long as the
hold lasts; the timer restarts from the re-INVITE that resumes the call).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import logging
import random
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from switch.media.channels import CODECS, FRAME, ChannelTable
from switch.media.counting import count_closed, live_counters
from switch.media.dtmf import EventSender
from switch.media.engine_types import (
    TICK_BOUNDS,
    ChannelStats,
    EgressDenied,
    MediaCounters,
    MediaError,
    NoPortAvailable,
    PtimeSender,
    UnknownChannel,
)
from switch.media.jitter import JitterStats
from switch.media.pipeline import Pipeline
from switch.media.receiver import UNASSIGNED_SLOT, RtcpReceiver, RtcpSocket, RtpReceiver
from switch.media.recorder import Recording, RecordingResult, WavWriter
from switch.media.rtcp import ReceiveCounters, RtcpError, RtcpSession, RtcpStats
from switch.media.senders import OneByOne
from switch.media.shared_port import SharedEndpoint, SharedPort
from switch.media.wideband import OPUS, WIDEBAND
from voicecodecs.dtmf import digits_to_audio
from voicecodecs.tones import dual_tone

__all__ = [
    "DIRECTIONS",
    "MAX_LATE_TICKS",
    "TICK",
    "ChannelStats",
    "EgressDenied",
    "MediaCounters",
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
_RTCP_CHECK_TICKS = 5
PTIMES = (10, 20, 30, 40, 50, 60)


class MediaEngine:
    """All RTP channels of this process, processed and sent by one 20 ms clock."""

    def __init__(
        self,
        host: str,
        port_range: tuple[int, int],
        *,
        egress_allowed: Callable[[str], bool] = lambda ip: True,
        rtp_timeout: float = 30.0,
        rtcp_interval: float = 5.0,
        shared_port: bool = False,
    ) -> None:
        """``shared_port``: every channel (but ``private`` ones) on one RTP port, see :mod:`.shared_port`."""
        low, high = port_range
        low += low % 2
        if low + 1 > high:
            raise ValueError(f"RTP port range {port_range} holds no even port with its RTCP port above it")
        self.host = host
        self._ports = itertools.cycle(range(low, high, 2))  # each even port and the odd one above it
        self._port_count = (high - low + 1) // 2
        self._egress_allowed = egress_allowed
        self._timeout_ticks = max(1, round(rtp_timeout / TICK))
        self._rtcp_ticks = max(_RTCP_CHECK_TICKS, round(rtcp_interval / TICK))
        self._rtcp: dict[int, tuple[RtcpSession, RtcpSocket | SharedEndpoint]] = {}
        self._cname = f"{uuid.uuid4().hex[:16]}@{host}"
        self._random = random.Random()
        self._table = ChannelTable()
        self._writer = WavWriter()
        self._pipeline = Pipeline(self._table, self._slot, self._writer)
        self._ids: list[int] = []
        self._slots: dict[int, int] = {}
        self._ports_by_id: dict[int, int] = {}
        self._transports: list[asyncio.BaseTransport | SharedEndpoint] = []
        self._use_shared = shared_port
        self.shared: SharedPort | None = None
        self._protocols: list[RtpReceiver] = []
        self._sendto: list[Callable[..., None]] = []
        self._playback: dict[int, asyncio.Future[None]] = {}
        self._senders: dict[int, PtimeSender] = {}
        self._dtmf_out: dict[int, tuple[EventSender, asyncio.Future[None]]] = {}
        self._recording_futures: dict[int, asyncio.Future[RecordingResult]] = {}
        self._inband_choice: dict[int, bool] = {}
        self._one_by_one = OneByOne(
            self._table,
            self._pipeline.wideband,
            self._ids,
            self._slots,
            self._protocols,
            self._sendto,
            self._senders,
            self._dtmf_out,
        )
        self._record_keys = itertools.count(1)
        self._next_id = itertools.count(1)
        self._clock: asyncio.Task[None] | None = None
        self._tick_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.on_rtp_timeout: Callable[[int], None] | None = None
        self.on_dtmf: Callable[[int, str, str], None] | None = None
        """Called with (channel, digit, source) for every digit: source is ``rfc4733`` or ``inband``."""
        self.tick_index = 0
        """Ticks since start, skipped ones included."""
        self.ticks_run = 0
        self.ticks_skipped = 0
        self._fresh: set[int] = set()
        """Channels never configured: a tick over these alone does nothing (a media worker's spares)."""
        self._private: set[int] = set()
        self._closed = MediaCounters()
        """The counters of closed channels (:meth:`counters` adds the live ones)."""

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
        if self.shared is not None:
            self.shared.close()
            self.shared = None
        self._writer.shutdown()

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
            run = self.ticks_run
            began = time.perf_counter()
            try:
                self._tick(ticks)
            except Exception:  # one bad tick must not stop every call's audio
                log.exception("media tick failed")
            if self.ticks_run != run:
                spent = time.perf_counter() - began
                self._closed.tick_counts[bisect.bisect_left(TICK_BOUNDS, spent)] += 1
                self._closed.tick_seconds += spent
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
        if n == 0 or (
            len(self._fresh) == n and not (self._playback or self._dtmf_out or self._pipeline.recordings)
        ):
            return
        self.ticks_run += 1
        shared = self.shared
        if shared is not None:
            shared.ensure(n - 1)
            shared.drain()
        if self._dtmf_out:
            self._one_by_one.dtmf_tick()
        out = self._pipeline.run(ticks)
        send = table.sending[:n] & ~table.suppress[:n] & ~self._pipeline.skip[:n]
        views = table.packet_views
        sendto = self._sendto
        protocols = self._protocols
        rows = np.flatnonzero(send)
        if shared is not None:
            mine = shared.member[:n][rows]
            shared.send(table.packet_bytes, rows[mine])
            rows = rows[~mine]
        for slot in rows.tolist():
            sendto[slot](views[slot], protocols[slot].peer.remote)
        if self._senders:
            self._one_by_one.other_ptimes()
        if out.opus:
            self._one_by_one.opus(out.opus)
        for slot in out.ended:
            self._finish_playback(self._ids[slot])
        callback = self.on_dtmf
        for channel, digit in out.digits:
            self._digit(channel, digit, "inband", callback)
        for channel in out.recordings_ended:
            self._close_recording(channel)
        if self.tick_index % _TIMEOUT_CHECK_TICKS == 0:
            self._check_timeouts()
        if self.tick_index % _RTCP_CHECK_TICKS == 0:
            self._send_rtcp_reports()

    def _check_timeouts(self) -> None:
        table = self._table
        n = table.n
        if self.shared is not None:
            self.shared.fold_all()
        last = np.fromiter((p.peer.last_tick for p in self._protocols), np.int64, n)
        silent = self.tick_index - last >= self._timeout_ticks
        expired = np.flatnonzero(silent & table.expect_rx[:n] & ~table.timed_out[:n]).tolist()
        for slot in expired:
            table.timed_out[slot] = True
        callback = self.on_rtp_timeout
        if callback is not None:
            for slot in expired:
                callback(self._ids[slot])

    # -- channels -----------------------------------------------------------------------------------------
    async def create_channel(
        self, group: str | None = None, *, near: int | None = None, private: bool = False
    ) -> int:
        """Open a channel on an even free port of the range (or the shared port unless ``private``); it
        sends nothing until configured. (``group`` and ``near`` place channels on media workers.)"""
        loop = asyncio.get_running_loop()
        shared = None
        if self._use_shared and not private:
            if self.shared is None:
                jitter = self._pipeline.jitter
                self.shared = SharedPort(
                    *self._bind(), self._protocols, self._on_rtcp, loop, jitter, self._tick_index
                )
            shared = self.shared
        else:
            sock, rtcp_sock = self._bind()
        channel = next(self._next_id)
        self._fresh.add(channel)
        if private:
            self._private.add(channel)
        protocol = RtpReceiver(
            UNASSIGNED_SLOT,  # the slot is taken below, once nothing is awaited any more
            channel,
            self._pipeline.jitter,
            self._pipeline.events,
            loop.time,
            self._tick_index,
            self._rfc4733_digit,
            self._egress_allowed,
        )
        protocol.peer.may_latch = False  # until configured: a spare on a shared port claims no stray packet
        channel_rtcp = RtcpReceiver(channel, protocol.peer, self._on_rtcp)
        protocol.on_rtcp = self._on_rtcp
        protocol.on_opus = self._pipeline.wideband.put_opus
        transport: asyncio.BaseTransport | SharedEndpoint
        rtcp_transport: RtcpSocket | SharedEndpoint
        if shared is not None:
            transport, rtcp_transport, port = shared.rtp_endpoint, shared.rtcp_endpoint, shared.port
            protocol.on_latch = shared.latched
        else:
            try:
                transport, _ = await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
            except BaseException:
                sock.close()
                rtcp_sock.close()
                raise
            rtcp_transport = RtcpSocket(rtcp_sock, channel_rtcp, loop)
            port = sock.getsockname()[1]
        # From here to the return nothing is awaited: the table and the per-slot lists grow together,
        # so the media tick never sees one without the other.
        slot = self._table.add(self._random)  # seeded once: no getrandom system calls per channel
        self._pipeline.added(slot)
        if shared is not None:
            shared.add(slot)
        protocol.slot = slot
        ssrc = int(self._table.packets["ssrc"][slot])
        self._rtcp[channel] = (RtcpSession(ssrc, self._cname), rtcp_transport)
        protocol.peer.last_tick = self.tick_index
        self._ids.append(channel)
        self._slots[channel] = slot
        self._ports_by_id[channel] = port
        self._transports.append(transport)
        self._protocols.append(protocol)
        self._sendto.append(transport.sendto)
        return channel

    def _tick_index(self) -> int:
        return self.tick_index

    def _bind(self) -> tuple[socket.socket, socket.socket]:
        """An even RTP port and the odd RTCP port above it, both free."""
        for _ in range(self._port_count):
            port = next(self._ports)
            pair = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
            try:
                for offset, sock in enumerate(pair):
                    sock.setblocking(False)
                    sock.bind((self.host, port + offset))
            except OSError:
                for sock in pair:
                    sock.close()
                continue
            return pair[0], pair[1]
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
        rtcp_mux: bool = False,
    ) -> None:
        """Set (or, on re-INVITE, change) where and how a channel sends; ``direction``: see the module.

        RTCP reports go to the remote RTP port + 1, or to the RTP port itself with ``rtcp_mux`` (when the
        SDP offered ``a=rtcp-mux``), every ~5 s (``rtcp_interval``, randomised by +-50 %) while the remote
        address is known.

        Each call allows the channel to latch once more (see :mod:`switch.media.receiver`). In-band DTMF
        detection is on when no ``telephone_event_pt`` is given, unless :meth:`set_inband_dtmf` chose.
        """
        slot = self._slot(channel)
        self._fresh.discard(channel)
        if codec not in CODECS and codec not in WIDEBAND:
            raise ValueError(f"unsupported codec {codec!r} ({', '.join([*CODECS, *WIDEBAND])})")
        kind = WIDEBAND.get(codec, 0)
        if kind == OPUS and ptime != 20:
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
        table = self._table
        peer = self._protocols[slot].peer
        sending = not held and direction in ("sendrecv", "recvonly")
        was_sending = bool(table.sending[slot])
        marker = sending and (not was_sending or peer.remote != (ip, port))
        peer.remote = (ip, port)
        peer.may_latch = not held
        if self.shared is not None and self.shared.member[slot]:
            self.shared.set_remote(slot, None if held else (ip, port))
        peer.candidate_run = 0
        peer.codec_pt = -1 if kind == OPUS else payload_type
        peer.opus_pt = payload_type if kind == OPUS else -1
        peer.te_pt = -1 if telephone_event_pt is None else telephone_event_pt
        peer.last_tick = self.tick_index
        peer.rtcp_mux = rtcp_mux
        table.rtcp_due[slot] = 0 if held else self.tick_index + self._rtcp_delay()
        table.configure(
            slot,
            codec=codec if kind == 0 else "PCMU",
            payload_type=payload_type,
            sending=sending,
            # A remote that says sendonly or inactive has put us on hold: many phones then send nothing
            # at all, so the RTP timeout is suspended until a re-INVITE says sendrecv again.
            expect_rx=not held and direction == "sendrecv",
            marker=marker,
            kind=kind,
        )
        self._pipeline.wideband.set_codec(slot, kind, int(table.timestamp[slot]) * 6)
        self._pipeline.dirty = True  # a bridge's pass-through depends on both legs' codecs
        if ptime == 20:
            self._senders.pop(channel, None)
            table.suppress[slot] = kind == OPUS
        else:
            sender = self._senders.get(channel)
            if sender is None or sender.size != ptime * 8:
                self._senders[channel] = PtimeSender(ptime * 8, timestamp=int(table.timestamp[slot]))
            table.suppress[slot] = True
        self._apply_inband(channel, self._inband_choice.get(channel, telephone_event_pt is None))

    def set_inband_dtmf(self, channel: int, enabled: bool) -> None:
        """Detect in-band DTMF on ``channel`` or not, whatever ``configure`` is told later."""
        self._slot(channel)
        self._inband_choice[channel] = enabled
        self._apply_inband(channel, enabled)

    def _apply_inband(self, channel: int, enabled: bool) -> None:
        inband = self._pipeline.inband
        if enabled:
            inband.enable(channel)
        else:
            inband.disable(channel)

    # -- RTCP ---------------------------------------------------------------------------------------------
    def _rtcp_delay(self) -> int:
        """Ticks until the next report: the interval times 0.5 to 1.5 (RFC 3550 6.3.1)."""
        return max(1, round(self._rtcp_ticks * (0.5 + self._random.random())))

    def _rtcp_remote(self, slot: int) -> tuple[str, int]:
        ip, port = self._protocols[slot].peer.remote
        return (ip, port) if self._protocols[slot].peer.rtcp_mux else (ip, port + 1)

    def _rtcp_report(self, slot: int, bye: str | None = None) -> bytes:
        channel = self._ids[slot]
        session = self._rtcp[channel][0]
        if self.shared is not None:
            self.shared.fold(slot)
        peer = self._protocols[slot].peer
        table = self._table
        counters = ReceiveCounters(
            ssrc=peer.ssrc,
            base_seq=peer.base_seq,
            extended_max=peer.extended_max,
            received=peer.received,
            jitter=int(self._pipeline.jitter.jitter[slot]),
        )
        sent = int(table.tx_packets[slot])
        return session.report(
            time.time(),
            counters,
            packets_sent=sent,
            octets_sent=sent * FRAME,
            rtp_timestamp=int(table.timestamp[slot]),
            bye=bye,
        )

    def _send_rtcp_reports(self) -> None:
        table = self._table
        n = table.n
        due = table.rtcp_due[:n]
        for slot in np.flatnonzero((due > 0) & (due <= self.tick_index)).tolist():
            table.rtcp_due[slot] = self.tick_index + self._rtcp_delay()
            self._send_rtcp(slot, self._rtcp_report(slot))

    def _send_rtcp(self, slot: int, data: bytes) -> None:
        remote = self._rtcp_remote(slot)
        if self._protocols[slot].peer.rtcp_mux:
            self._sendto[slot](data, remote)
        else:
            self._rtcp[self._ids[slot]][1].sendto(data, remote)

    def _on_rtcp(self, channel: int, data: bytes) -> None:
        entry = self._rtcp.get(channel)
        if entry is None:
            return
        try:
            entry[0].receive(data, time.time())
        except RtcpError as exc:
            log.debug("channel %d: %s", channel, exc)

    def rtcp_stats(self, channel: int) -> RtcpStats:
        """RTCP's view of ``channel``: our loss and jitter, the peer's report of ours, round-trip time."""
        self._slot(channel)
        return self._rtcp[channel][0].stats()

    # -- players ------------------------------------------------------------------------------------------
    def play(self, channel: int, pcm: NDArray[np.int16], loop: int = 1) -> asyncio.Future[None]:
        """Play 8 kHz mono ``pcm`` ``loop`` times (0: until stopped), replacing what was playing.

        What the channel hears is the prompt added to whatever it is bridged to or conferenced with. The
        future resolves when playback ends, is replaced, is stopped or the channel closes. Do not modify
        ``pcm`` while it plays: the engine keeps it (and stores it once for all channels playing it).
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

    # -- mixing -------------------------------------------------------------------------------------------
    def bridge(self, a: int, b: int) -> None:
        """``a`` and ``b`` hear each other (``a == b``: the channel hears itself, an echo)."""
        self._slot(a)
        self._slot(b)
        self._pipeline.mixer.bridge(a, b)
        self._pipeline.dirty = True

    def unbridge(self, channel: int) -> None:
        self._slot(channel)
        self._pipeline.mixer.unbridge(channel)
        self._pipeline.dirty = True

    def join_room(self, channel: int, room: str, *, muted: bool = False) -> None:
        """Hear every other member of ``room`` and, unless muted, be heard by them."""
        self._slot(channel)
        self._pipeline.mixer.join_room(channel, room, muted=muted)
        self._pipeline.dirty = True

    def leave_room(self, channel: int) -> None:
        self._slot(channel)
        self._pipeline.mixer.leave_room(channel)
        self._pipeline.dirty = True

    def set_muted(self, channel: int, muted: bool) -> None:
        self._slot(channel)
        if not self._pipeline.mixer.set_muted(channel, muted):
            raise MediaError(f"channel {channel} is in no room")
        self._pipeline.dirty = True

    def add_listen_route(self, source: int, listener: int) -> None:
        """``listener`` also hears ``source``, both members of one room (coach, whisper)."""
        self._slot(source)
        self._slot(listener)
        self._pipeline.mixer.add_route(source, listener)
        self._pipeline.dirty = True

    def remove_listen_route(self, source: int, listener: int) -> None:
        self._pipeline.mixer.remove_route(source, listener)
        self._pipeline.dirty = True

    # -- DTMF ---------------------------------------------------------------------------------------------
    def _rfc4733_digit(self, channel: int, digit: str) -> None:
        self._digit(channel, digit, "rfc4733", self.on_dtmf)

    def _digit(
        self, channel: int, digit: str, source: str, callback: Callable[[int, str, str], None] | None
    ) -> None:
        recording = self._pipeline.recordings.get(channel)
        if recording is not None and digit in recording.finish_on_digits:
            recording.finish("digit", digit)
            self._close_recording(channel)
        if callback is not None:
            callback(channel, digit, source)

    def send_dtmf(self, channel: int, digits: str, *, duration_ms: int = 100) -> asyncio.Future[None]:
        """Send ``digits`` as RFC 4733 events (in-band tones when the peer offered no telephone-event).

        Audio to the channel pauses while an event is sent. ``w`` (0.5 s) and ``W`` (1 s) are pauses in
        the in-band form only. The future resolves when the last end packet is sent.
        """
        slot = self._slot(channel)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._protocols[slot].peer.te_pt < 0:
            return self.play(channel, digits_to_audio(digits, tone_ms=duration_ms))
        sender = EventSender(digits.replace("w", "").replace("W", ""), duration_ms)
        previous = self._dtmf_out.pop(channel, None)
        if previous is not None and not previous[1].done():
            previous[1].set_result(None)
        if sender.done:
            future.set_result(None)
        else:
            self._dtmf_out[channel] = (sender, future)
        return future

    # -- recording ----------------------------------------------------------------------------------------
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
        """Record what ``channel`` receives (``dual``: left that, right what it hears) to a WAV file.

        With ``beep`` a 1 kHz beep of 0.5 s plays first and the recording starts after it. A recording
        already running on the channel is stopped first.
        """
        self._slot(channel)
        if channel in self._pipeline.recordings:
            self.stop_recording(channel)
        skip = 0
        if beep:
            tone = dual_tone(1000.0, 0.0, 4000, level_dbm0=-10.0)
            self.play(channel, tone)
            skip = len(tone) // FRAME
        recording = Recording(
            path,
            max_length=max_length,
            silence_timeout=silence_timeout,
            finish_on_digits=finish_on_digits,
            trim_silence=trim_silence,
            dual=dual,
            skip_frames=skip,
        )
        future: asyncio.Future[RecordingResult] = asyncio.get_running_loop().create_future()
        self._recording_futures[channel] = future
        self._pipeline.start_recording(channel, next(self._record_keys), recording)
        return future

    def stop_recording(self, channel: int) -> None:
        recording = self._pipeline.recordings.get(channel)
        if recording is not None:
            recording.finish("stopped")
            self._close_recording(channel)

    def _close_recording(self, channel: int) -> None:
        ended = self._pipeline.end_recording(channel)
        future = self._recording_futures.pop(channel, None)
        if ended is None or future is None:
            return
        key, recording = ended
        result = recording.result()
        loop = future.get_loop()

        def settle(error: OSError | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(MediaError(f"recording to {recording.path} failed: {error}"))
            else:
                future.set_result(result)

        self._writer.close(key, lambda error: loop.call_soon_threadsafe(settle, error))

    # -- closing ------------------------------------------------------------------------------------------
    async def close_channel(self, channel: int) -> None:
        self.release(channel)

    def release(self, channel: int) -> None:
        """:meth:`close_channel` without a coroutine (nothing in it waits)."""
        if channel not in self._slots:  # closing twice (a call ending while the engine stops) is no error
            return
        slot = self._slot(channel)
        self._fresh.discard(channel)
        if channel in self._private:
            self._private.discard(channel)
        else:
            if self.shared is not None:
                self.shared.fold(slot)
            sent = int(self._table.tx_packets[slot])
            count_closed(self._closed, self._protocols[slot].peer, sent, self._pipeline.jitter, slot)
        self._finish_playback(channel)
        recording = self._pipeline.recordings.get(channel)
        if recording is not None:
            recording.finish("closed")
            self._close_recording(channel)
        dtmf = self._dtmf_out.pop(channel, None)
        if dtmf is not None and not dtmf[1].done():
            dtmf[1].set_result(None)
        self._senders.pop(channel, None)
        self._inband_choice.pop(channel, None)
        self._pipeline.inband.disable(channel)
        self._pipeline.mixer.detach(channel)
        self._pipeline.dirty = True
        if self._table.rtcp_due[slot] > 0:
            self._send_rtcp(slot, self._rtcp_report(slot, bye=""))
        self._rtcp.pop(channel)[1].close()
        self._pipeline.wideband.remove(slot)
        self._transports[slot].close()
        if self.shared is not None:
            self.shared.fold(self._table.n - 1)  # the slot that moves, while its receiver is where it was
            if slot < len(self.shared.member) and self.shared.member[slot]:
                self.shared.remove(slot)
        moved = self._table.remove(slot)
        _swap_remove(self._ids, slot)
        _swap_remove(self._transports, slot)
        _swap_remove(self._protocols, slot)
        _swap_remove(self._sendto, slot)
        if moved is not None:
            self._pipeline.moved(moved, slot)
            if self.shared is not None:
                self.shared.move(moved, slot)
            self._protocols[slot].slot = slot
            self._slots[self._ids[slot]] = slot
        del self._slots[channel]
        del self._ports_by_id[channel]

    # -- counters -----------------------------------------------------------------------------------------
    def counters(self) -> MediaCounters:
        """Totals since start (see :class:`MediaCounters` and :mod:`.counting`); channels opened
        ``private`` (the trunks between media workers) are left out."""
        n = self._table.n
        if self.shared is not None:
            self.shared.fold_all()
        counted = np.ones(n, np.bool_)
        for channel in self._private:
            counted[self._slots[channel]] = False
        peers = [protocol.peer for protocol in self._protocols]
        return self._closed.plus(live_counters(peers, counted, self._table.tx_packets, self._pipeline.jitter))

    def stats(self, channel: int) -> ChannelStats:
        slot = self._slot(channel)
        t = self._table
        if self.shared is not None:
            self.shared.fold(slot)
        peer = self._protocols[slot].peer
        sent = int(t.tx_packets[slot])
        return ChannelStats(
            packets_sent=sent,
            octets_sent=sent * FRAME,
            packets_received=peer.packets,
            octets_received=peer.octets,
            invalid_received=peer.invalid,
            foreign_received=peer.foreign,
            remote=peer.remote,
        )

    def jitter_stats(self, channel: int) -> JitterStats:
        """The receive jitter buffer of ``channel``: delay, target, jitter estimate and loss counters."""
        return self._pipeline.jitter.stats(self._slot(channel))

    @property
    def channel_count(self) -> int:
        return self._table.n


def _swap_remove(items: list[T], index: int) -> None:
    """Remove ``items[index]`` by moving the last item into its place (the table does the same)."""
    last = items.pop()
    if index < len(items):
        items[index] = last
