"""SIP over UDP and TCP on one port: the only module that owns SIP sockets and arms the core's timers.

The sans-IO core (`switch.sip.core.SipCore`) is fed bytes with ``loop.time()`` as ``now``; whatever it wants
to send comes back from ``datagrams_to_send()`` and is written here once the destination passes the egress
check.
TCP connections are kept per peer address and reused for requests to contacts reached over them.
Before any parsing, a ``SourceGuard`` (switch.security) rate-limits requests per source address, caps TCP
connections per source and closes connections that stall mid-message or stay idle; datagrams larger than
``max_message_size`` get 413.
The transport also hands the guard's transaction and dialog limits to the core, and blocks a source the
core reports failing digest authentication too often (``--auth-fail-limit``): its TCP connections are
closed and its requests dropped for ``--auth-block-seconds``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from switch.security.guard import SourceGuard, TcpSlot
from switch.security.limits import CoreLimits
from switch.sip.core import Outgoing, SipCore
from switch.sip.errors import SipFramingError, SipParseError
from switch.sip.events import Event
from switch.sip.message import Request, StreamParser, error_response_for, serialize

log = logging.getLogger("switch.transport")

Address = tuple[str, int]
KEEPALIVE_PING = b"\r\n\r\n"
KEEPALIVE_PONG = b"\r\n"


class TcpConnection(asyncio.Protocol):
    """One TCP connection: frames messages with a StreamParser and hands them to the transport."""

    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner
        self.parser = StreamParser(owner.guard.settings.max_message_size)
        self.transport: asyncio.Transport | None = None
        self.peer: Address = ("", 0)
        self.slot: TcpSlot | None = None  # set when the guard admitted the connection
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport is no asyncio.Transport
        host, port = transport.get_extra_info("peername")[:2]
        self.peer = (host, port)
        now = self.owner.loop.time()
        if not self.owner.guard.tcp_open(host, now):
            log.info("refusing TCP connection from %s:%d (per-source cap or blocked)", host, port)
            transport.abort()  # type: ignore[attr-defined]
            return
        self.slot = TcpSlot(host, now, now)
        self.owner.connections[self.peer] = self

    def data_received(self, data: bytes) -> None:
        slot = self.slot
        if slot is None:
            return
        owner = self.owner
        now = owner.loop.time()
        slot.last_data = now
        parser = self.parser
        if data == KEEPALIVE_PING and not parser.buffered:
            self.write(KEEPALIVE_PONG)  # RFC 5626 §4.4.1: a CRLF CRLF ping gets a CRLF pong
            return
        while True:
            try:
                messages = parser.feed(data)
            except SipFramingError as exc:
                log.info("closing TCP connection from %s:%d: framing error: %s", *self.peer, exc)
                owner.pump()  # answers to the messages framed before the error leave first
                self._reply_error(exc)
                self.close()
                return
            except SipParseError as exc:  # one framed message is malformed: answer it, read on
                self._reply_error(exc)
                data = b""
                continue
            if not messages:
                break
            for message in messages:
                if isinstance(message, Request) and not owner.guard.allow_request(
                    message.method, slot.ip, now
                ):
                    continue
                owner.core.receive_message(message, self.peer, now, "TCP", self)
            data = b""  # a malformed message after these is reported by the next feed
        if parser.buffered:
            if slot.partial_since is None:
                slot.partial_since = now
        else:
            slot.partial_since = None
        owner.pump()

    def _reply_error(self, exc: SipParseError) -> None:
        if exc.raw is None:
            return
        response = error_response_for(exc.raw, exc)
        if response is not None:
            if "Server" not in response.headers:
                response.headers.add("Server", self.owner.core.settings.user_agent)
            self.write(serialize(response))

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self, *, abort: bool = False) -> None:
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.owner.connections.get(self.peer) is self:
            del self.owner.connections[self.peer]
        if self.slot is not None:
            self.owner.guard.tcp_closed(self.slot.ip)
            self.slot = None
        if not self.closed.done():
            self.closed.set_result(None)


class UdpEndpoint(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        owner = self.owner
        now = owner.loop.time()
        if not owner.guard.allow_datagram(data, addr[0], now):
            return
        if len(data) > owner.guard.settings.max_message_size:
            owner.reject_oversized(data, (addr[0], addr[1]))
            return
        if data == KEEPALIVE_PING:  # RFC 5626 §4.4.1 (phones behind NAT keep their binding open)
            if owner.udp is not None and owner.egress_allowed(addr[0]):
                owner.udp.sendto(KEEPALIVE_PONG, (addr[0], addr[1]))
            return
        owner.core.receive(data, (addr[0], addr[1]), now, "UDP")
        owner.pump()

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)


class SipTransport:
    """Owns the SIP sockets; drives a SipCore; delivers its events to ``on_event``."""

    def __init__(
        self,
        core: SipCore,
        on_event: Callable[[Event], None],
        *,
        egress_allowed: Callable[[str], bool] = lambda ip: True,
        guard: SourceGuard | None = None,
    ) -> None:
        self.core = core
        self.on_event = on_event
        self.egress_allowed = egress_allowed
        self.guard = guard = guard if guard is not None else SourceGuard(None)
        limits = guard.settings
        core.bounds.limits = CoreLimits(
            limits.max_transactions,
            limits.max_transactions_per_source,
            limits.max_dialogs,
            limits.max_dialogs_per_source,
        )
        core.bounds.is_trusted = guard.trusted.__contains__
        core.on_auth_failure = self._auth_failed
        self._sweeper: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_running_loop()
        self.connections: dict[Address, TcpConnection] = {}
        self.udp: asyncio.DatagramTransport | None = None
        self.tcp_server: asyncio.Server | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._connecting: set[asyncio.Task[None]] = set()
        self.refused = 0

    async def start(self, host: str, port: int) -> None:
        self.udp, _ = await self.loop.create_datagram_endpoint(
            lambda: UdpEndpoint(self), local_addr=(host, port)
        )
        self.tcp_server = await self.loop.create_server(
            lambda: TcpConnection(self), host, port, reuse_address=True
        )
        self._sweeper = self.loop.call_later(self.guard.settings.sweep_interval, self._sweep)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.tcp_server is not None:
            self.tcp_server.close()
        for connection in list(self.connections.values()):
            connection.close()
        for task in list(self._connecting):
            task.cancel()
        if self.udp is not None:
            self.udp.close()

    def _sweep(self) -> None:
        """Close TCP connections that stall mid-message or stay idle too long."""
        now = self.loop.time()
        guard = self.guard
        for connection in list(self.connections.values()):
            slot = connection.slot
            if slot is None:
                continue
            reason = guard.tcp_expired(slot, now)
            if reason is not None:
                log.info("closing TCP connection from %s:%d: %s", *connection.peer, reason)
                connection.close(abort=True)
        self._sweeper = self.loop.call_later(guard.settings.sweep_interval, self._sweep)

    def _auth_failed(self, ip: str, _: float) -> None:
        """The core saw a failed authentication from ``ip`` (its clock may differ: the loop's is used)."""
        if not self.guard.auth_failed(ip, self.loop.time()):
            return
        log.warning(
            "blocking %s for %g s after %d failed authentications",
            ip,
            self.guard.settings.auth_block_seconds,
            self.guard.settings.auth_fail_limit,
        )
        for connection in list(self.connections.values()):
            if connection.slot is not None and connection.slot.ip == ip:
                self.loop.call_soon(connection.close)  # after the refusal now queued has been written

    def reject_oversized(self, data: bytes, source: Address) -> None:
        """Answer a datagram over ``max_message_size`` with 413 (a request) or drop it (anything else)."""
        limit = self.guard.settings.max_message_size
        error = SipParseError(f"message of {len(data)} octets exceeds {limit}", 413)
        response = error_response_for(data[: limit + 4096], error)
        if response is None or self.udp is None or not self.egress_allowed(source[0]):
            return
        response.headers.add("Server", self.core.settings.user_agent)
        self.udp.sendto(serialize(response), source)

    def pump(self) -> None:
        """Deliver the core's events, then send what it wants sent and re-arm its timer."""
        core = self.core
        while (event := core.next_event()) is not None:
            try:
                self.on_event(event)
            except Exception:  # an application bug must not take the SIP stack down
                log.exception("event handler failed for %s", type(event).__name__)
        self.flush()

    def flush(self) -> None:
        """Send what the core has queued and re-arm its timer; call after acting on the core."""
        for outgoing in self.core.datagrams_to_send():
            self._send(outgoing)
        self._arm_timer()

    def _arm_timer(self) -> None:
        when = self.core.next_timer()
        if when == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = when
        if when is not None:
            self._timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.core.handle_timer(self.loop.time())
        self.pump()

    def _send(self, outgoing: Outgoing) -> None:
        host, port = outgoing.destination
        if not self.egress_allowed(host):
            self.refused += 1
            log.warning("refused to send to %s:%d (not in --egress-allow)", host, port)
            return
        if outgoing.transport.upper() == "UDP":
            if self.udp is not None:
                self.udp.sendto(outgoing.data, (host, port))
            return
        connection = outgoing.connection
        if isinstance(connection, TcpConnection) and connection.transport is not None:
            if not connection.transport.is_closing():
                connection.write(outgoing.data)
                return
        existing = self.connections.get((host, port))
        if existing is not None:
            existing.write(outgoing.data)
            return
        task = self.loop.create_task(self._connect_and_send((host, port), outgoing.data))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _connect_and_send(self, destination: Address, data: bytes) -> None:
        try:
            _, protocol = await asyncio.wait_for(
                self.loop.create_connection(lambda: TcpConnection(self), destination[0], destination[1]), 5.0
            )
        except (OSError, TimeoutError) as exc:
            log.info("TCP connect to %s:%d failed: %s", destination[0], destination[1], exc)
            return
        protocol.write(data)
