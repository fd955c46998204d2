"""SIP over UDP and TCP on one port: the only module that owns SIP sockets and arms the core's timers.

The sans-IO core (`switch.sip.core.SipCore`) is fed bytes with ``loop.time()`` as ``now``; whatever it wants
to send comes back from ``datagrams_to_send()`` and is written here once the destination passes the egress
check.
TCP connections are kept per peer address and reused for requests to contacts reached over them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from switch.sip.core import Outgoing, SipCore
from switch.sip.errors import SipParseError
from switch.sip.events import Event
from switch.sip.message import StreamParser

log = logging.getLogger("switch.transport")

Address = tuple[str, int]
MAX_TCP_BUFFER = 256 * 1024


class TcpConnection(asyncio.Protocol):
    """One TCP connection: frames messages with a StreamParser and hands them to the transport."""

    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner
        self.parser = StreamParser()
        self.transport: asyncio.Transport | None = None
        self.peer: Address = ("", 0)
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport is no asyncio.Transport
        host, port = transport.get_extra_info("peername")[:2]
        self.peer = (host, port)
        self.owner.connections[self.peer] = self

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.parser.feed(data)
        except SipParseError as exc:
            log.info("closing TCP connection from %s:%d: framing error: %s", *self.peer, exc)
            self.close()
            return
        now = self.owner.loop.time()
        for message in messages:
            self.owner.core.receive_message(message, self.peer, now, "TCP", self)
        self.owner.pump()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.owner.connections.get(self.peer) is self:
            del self.owner.connections[self.peer]
        if not self.closed.done():
            self.closed.set_result(None)


class UdpEndpoint(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        owner = self.owner
        owner.core.receive(data, (addr[0], addr[1]), owner.loop.time(), "UDP")
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
    ) -> None:
        self.core = core
        self.on_event = on_event
        self.egress_allowed = egress_allowed
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

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.tcp_server is not None:
            self.tcp_server.close()
        for connection in list(self.connections.values()):
            connection.close()
        for task in list(self._connecting):
            task.cancel()
        if self.udp is not None:
            self.udp.close()

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
