"""A lean HTTP/1.1 client for webhooks: one request written as one bytes join, the answer parsed in place,
kept-alive connections pooled per origin (RFC 9112 message framing; RFC 9110 semantics stay in ``fetch``).

Layers: ``ResponseParser`` is sans-IO (bytes in, one ``Response`` out, or ``ProtocolViolation``);
``_Connection`` is the asyncio protocol of one TCP (or TLS) connection, running one exchange at a time;
``HttpClient`` keeps the idle connections of each origin and runs one request/response exchange. Policy
(egress rules, redirects, signatures, content types, Twilio error codes) is the caller's.

Errors, all ``HttpFailure``::

    HttpFailure
    ├── ConnectFailure              the connection could not be made (refused, unreachable, DNS, TLS)
    │   └── ConnectionTimeoutError  the handshake did not complete within the connect timeout
    ├── ResponseTimeoutError        the whole exchange took longer than the response timeout
    └── ProtocolViolation           the peer's bytes are not an HTTP/1.x response, or it closed mid-way

A connection that was idle in the pool and is closed by the server before it answers a single byte (the
server's keep-alive timer raced our request) is replaced by a new one once, as browsers do: nothing reached
the application, so nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import quote, unquote, urlsplit

__all__ = [
    "ConnectFailure",
    "ConnectionTimeoutError",
    "HttpClient",
    "HttpFailure",
    "ProtocolViolation",
    "Response",
    "ResponseParser",
    "ResponseTimeoutError",
    "Target",
    "parse_target",
]

MAX_HEAD_BYTES = 65536
"""The status line and header fields together (aiohttp's limit is 8190 per line)."""
KEEPALIVE_SECONDS = 15.0
"""How long an idle connection is kept (aiohttp's default; servers commonly allow 5 to 75 s)."""
MAX_IDLE_PER_ORIGIN = 64

Origin = tuple[str, str, int]


class HttpFailure(Exception):
    """An HTTP exchange failed; the message says how."""


class ConnectFailure(HttpFailure):
    """The connection could not be made."""


class ConnectionTimeoutError(ConnectFailure):
    """The connection was not made within the connect timeout."""


class ResponseTimeoutError(HttpFailure):
    """The response did not arrive within the response timeout."""


class ProtocolViolation(HttpFailure):
    """The peer did not answer with a well-formed HTTP/1.x response."""


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed http(s) URL: where to connect and what to write in the request line."""

    scheme: str
    host: str
    """As connected to: an IPv6 literal without its brackets."""
    port: int
    request_target: str
    """origin-form: the path and query, percent-encoded."""
    host_header: str
    authorization: str | None
    """``Basic ...`` from credentials in the URL (``https://user:pass@host/``), as Twilio sends them."""

    @property
    def origin(self) -> Origin:
        return (self.scheme, self.host, self.port)


_SAFE = "/%:@!$&'()*+,;=-._~?"


@functools.lru_cache(maxsize=512)
def parse_target(url: str) -> Target:
    """The ``Target`` of an http(s) URL; ``ValueError`` when it is not one (cached: webhooks repeat)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in {url!r}")
    port = parts.port or (443 if scheme == "https" else 80)  # .port raises ValueError when invalid
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    if not path.isascii() or not path.isprintable() or " " in path:
        path = quote(path, safe=_SAFE)
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        host = host.encode("idna").decode("ascii")
    shown = f"[{host}]" if ":" in host else host
    default = port == (443 if scheme == "https" else 80)
    host_header = shown if default else f"{shown}:{port}"
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return Target(scheme, host, port, path, host_header, authorization)


@dataclass(slots=True)
class Response:
    """A response: status, header fields (names lower-cased, repeated fields joined with ``, ``), body."""

    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    truncated: bool = False
    """The body went past the caller's limit: ``body`` holds its first ``limit + 1`` bytes."""

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-cased; ``application/octet-stream`` when absent
        (RFC 9110 8.3 lets a recipient assume it)."""
        value = self.headers.get("content-type")
        if not value:
            return "application/octet-stream"
        return value.split(";", 1)[0].strip().lower()


_HEX = b"0123456789abcdefABCDEF"
# Parser states.
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _UNTIL_CLOSE, _DONE = range(8)


class ResponseParser:
    """Sans-IO: ``feed`` bytes until it returns the ``Response``; ``closed`` when the peer closes first.
    Raises ``ProtocolViolation`` for anything that is not an HTTP/1.x response (RFC 9112)."""

    __slots__ = (
        "_body",
        "_buf",
        "_headers",
        "_limit",
        "_no_body",
        "_reason",
        "_remaining",
        "_status",
        "_truncated",
        "keep_alive",
        "received",
        "state",
    )

    def __init__(self, limit: int, *, no_body: bool = False) -> None:
        self._limit = limit
        self._no_body = no_body
        self._buf = bytearray()
        self._body = bytearray()
        self._headers: dict[str, str] = {}
        self._status = 0
        self._reason = ""
        self._remaining = 0
        self._truncated = False
        self.keep_alive = False
        self.received = 0
        """Bytes received so far (0: the peer said nothing)."""
        self.state = _HEAD

    def feed(self, data: bytes) -> Response | None:
        self.received += len(data)
        if self.state == _DONE:
            self.keep_alive = False  # bytes after the response: the connection is not in a known state
            return None
        buf = self._buf
        buf += data
        while True:
            state = self.state
            if state == _HEAD:
                if not self._head():
                    return None
            elif state == _LENGTH:
                take = min(self._remaining, len(buf))
                if take:
                    self._append(buf, take)
                    buf = self._buf
                self._remaining -= take
                if self._remaining == 0 or self._truncated:
                    return self._finish()
                return None
            elif state == _UNTIL_CLOSE:
                self._append(buf, len(buf))
                buf = self._buf
                if self._truncated:
                    return self._finish()
                return None
            elif state == _CHUNK_SIZE:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > 1024:
                        raise ProtocolViolation("chunk size line too long")
                    return None
                text = bytes(buf[:end]).split(b";", 1)[0].strip(b" \t")
                del buf[: end + 2]
                if not text or text.strip(_HEX) or len(text) > 15:
                    raise ProtocolViolation(f"invalid chunk size {text[:20]!r}")
                size = int(text, 16)
                self._remaining = size
                self.state = _CHUNK_DATA if size else _TRAILER
            elif state == _CHUNK_DATA:
                take = min(self._remaining, len(buf))
                self._append(buf, take)
                buf = self._buf
                self._remaining -= take
                if self._truncated:
                    return self._finish()
                if self._remaining:
                    return None
                self.state = _CHUNK_END
            elif state == _CHUNK_END:
                if len(buf) < 2:
                    return None
                if buf[:2] != b"\r\n":
                    raise ProtocolViolation("chunk data not followed by CRLF")
                del buf[:2]
                self.state = _CHUNK_SIZE
            elif state == _TRAILER:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD_BYTES:
                        raise ProtocolViolation("trailer section too long")
                    return None
                del buf[: end + 2]
                if end == 0:
                    return self._finish()
            else:
                return None

    def closed(self) -> Response:
        """The peer closed the connection: the response if it is complete that way, else a violation."""
        if self.state == _UNTIL_CLOSE:
            self.keep_alive = False
            return self._finish()
        if self.state == _HEAD and not self.received:
            raise ProtocolViolation("connection closed before any response")
        raise ProtocolViolation("connection closed in the middle of the response")

    def _append(self, buf: bytearray, take: int) -> None:
        if take == len(buf) and not self._body and take <= self._limit:
            self._body = buf  # the common case: the whole body, and nothing after it
            self._buf = bytearray()
            return
        room = self._limit + 1 - len(self._body)
        if take >= room:
            self._body += buf[:room]
            self._truncated = True
            self.keep_alive = False
        else:
            self._body += buf[:take]
        del buf[:take]

    def _finish(self) -> Response:
        self.state = _DONE
        if self._buf:
            self.keep_alive = False
        return Response(self._status, self._reason, self._headers, bytes(self._body), self._truncated)

    def _head(self) -> bool:
        """Parse the status line and header fields once they are all in; False while incomplete."""
        buf = self._buf
        if not buf.startswith(b"HTTP/") and len(buf) >= 5:
            raise ProtocolViolation(f"not an HTTP response: {bytes(buf[:20])!r}")
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD_BYTES:
                raise ProtocolViolation("response head too long")
            return False
        lines = buf[:end].decode("latin-1").split("\r\n")
        del buf[: end + 4]
        status_line = lines[0]
        version = status_line[:9]
        code = status_line[9:12]
        if (
            version not in ("HTTP/1.1 ", "HTTP/1.0 ")
            or len(code) != 3
            or not code.isdigit()
            or not code.isascii()
            or status_line[12:13] not in ("", " ")
        ):
            raise ProtocolViolation(f"bad status line {status_line[:40]!r}")
        status = int(code)
        if status < 100:
            raise ProtocolViolation(f"bad status code {status}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name[0] in " \t" or name[-1] in " \t":
                raise ProtocolViolation(f"bad header field {line[:40]!r}")
            key = name.lower()
            value = value.strip(" \t")
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if 100 <= status < 200:
            if status == 101:
                raise ProtocolViolation("unexpected 101 Switching Protocols")
            return True  # an interim response (100 Continue, 103 Early Hints): the final one follows
        self._status = status
        self._reason = status_line[13:]
        self._headers = headers
        connection = headers.get("connection")
        self.keep_alive = version == "HTTP/1.1 " and (connection is None or "close" not in connection.lower())
        if self._no_body or status in (204, 304):
            self._remaining = 0
            self.state = _LENGTH
            return True
        coding = headers.get("transfer-encoding")
        length = headers.get("content-length")
        if coding is not None:
            if coding.rsplit(",", 1)[-1].strip().lower() == "chunked":
                self.state = _CHUNK_SIZE
            else:
                self.state = _UNTIL_CLOSE
                self.keep_alive = False
        elif length is not None:
            if not (length.isdigit() and length.isascii()):
                lengths = {v.strip() for v in length.split(",")}
                length = lengths.pop()
                if lengths or not (length.isdigit() and length.isascii()):
                    raise ProtocolViolation(f"bad Content-Length {headers['content-length'][:40]!r}")
            self._remaining = int(length)
            self.state = _LENGTH
        else:
            self.state = _UNTIL_CLOSE
            self.keep_alive = False
        return True


class _Stale(Exception):
    """A reused connection was closed before it answered anything."""


class _Connection(asyncio.Protocol):
    """One connection to an origin; one exchange at a time."""

    def __init__(self, origin: Origin, on_lost: Callable[[_Connection], None]) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.requests = 0
        self.idle_since = 0.0
        self._on_lost = on_lost
        self._parser: ResponseParser | None = None
        self._waiter: asyncio.Future[Response] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        waiter = self._waiter
        if parser is None or waiter is None or waiter.done():
            self.close()  # bytes nobody asked for
            return
        try:
            response = parser.feed(data)
        except ProtocolViolation as exc:
            self.close()
            waiter.set_exception(exc)
            return
        if response is not None:
            waiter.set_result(response)

    def eof_received(self) -> bool:
        self._peer_closed()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._peer_closed()
        self._on_lost(self)

    def _peer_closed(self) -> None:
        self.closed = True
        parser = self._parser
        waiter = self._waiter
        if parser is None or waiter is None or waiter.done():
            return
        if parser.received == 0 and self.requests > 1:
            waiter.set_exception(_Stale())
            return
        try:
            waiter.set_result(parser.closed())
        except ProtocolViolation as exc:
            waiter.set_exception(exc)

    def _timed_out(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ResponseTimeoutError("response timeout"))

    async def exchange(self, data: bytes, limit: int, deadline: float, no_body: bool) -> Response:
        """Write one request, return its response; the connection is closed unless it can be reused."""
        transport = self.transport
        assert transport is not None
        loop = asyncio.get_running_loop()
        self.requests += 1
        parser = self._parser = ResponseParser(limit, no_body=no_body)
        waiter = self._waiter = loop.create_future()
        timer = loop.call_at(deadline, self._timed_out)
        transport.write(data)
        try:
            response: Response = await waiter
        except BaseException:
            self.close()
            raise
        finally:
            timer.cancel()
            self._waiter = None
            self._parser = None
        if not parser.keep_alive:
            self.close()
        return response

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class HttpClient:
    """HTTP/1.1 exchanges over kept-alive connections, pooled per origin (scheme, host, port)."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        response_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        keepalive: float = KEEPALIVE_SECONDS,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.response_timeout = response_timeout
        """For the whole exchange, the connection included (Twilio's 15 s)."""
        self.keepalive = keepalive
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self.connections_made = 0

    async def request(
        self,
        method: str,
        target: Target,
        fields: str,
        body: bytes = b"",
        *,
        limit: int,
        content_type: str = "application/x-www-form-urlencoded",
    ) -> Response:
        """One exchange: ``fields`` are extra header lines, each ending in CRLF; with ``body``, it goes
        with ``content_type`` and its length. The response body is cut after ``limit + 1`` bytes."""
        head = [f"{method} {target.request_target} HTTP/1.1\r\nHost: {target.host_header}\r\n", fields]
        if target.authorization is not None:
            head.append(f"Authorization: {target.authorization}\r\n")
        if body or method == "POST":
            head.append(f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n")
        head.append("\r\n")
        data = "".join(head).encode("latin-1") + body
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.response_timeout
        no_body = method == "HEAD"
        connection = self._take_idle(target.origin, loop.time())
        if connection is not None:
            try:
                return await self._exchange(connection, data, limit, deadline, no_body)
            except _Stale:
                pass  # the server closed it as we wrote: once more on a new connection
        connection = await self._connect(target, loop, deadline)
        try:
            return await self._exchange(connection, data, limit, deadline, no_body)
        except _Stale:
            raise ProtocolViolation("connection closed before any response") from None

    async def _exchange(
        self, connection: _Connection, data: bytes, limit: int, deadline: float, no_body: bool
    ) -> Response:
        response = await connection.exchange(data, limit, deadline, no_body)
        if not connection.closed:
            self._release(connection)
        return response

    def _take_idle(self, origin: Origin, now: float) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            transport = connection.transport
            stale = now - connection.idle_since > self.keepalive
            if connection.closed or stale or transport is None or transport.is_closing():
                connection.close()
                continue
            return connection
        return None

    def _release(self, connection: _Connection) -> None:
        idle = self._idle.setdefault(connection.origin, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            connection.close()
            return
        loop = asyncio.get_running_loop()
        connection.idle_since = loop.time()
        idle.append(connection)
        if self._sweeper is None:
            self._sweeper = loop.call_later(self.keepalive, self._sweep)

    def _sweep(self) -> None:
        """Close the connections idle for longer than ``keepalive``; come back while any is left."""
        self._sweeper = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        left = False
        for origin, idle in list(self._idle.items()):
            keep = [c for c in idle if not c.closed and now - c.idle_since <= self.keepalive]
            for connection in idle:
                if connection not in keep:
                    connection.close()
            if keep:
                self._idle[origin] = keep
                left = True
            else:
                del self._idle[origin]
        if left:
            self._sweeper = loop.call_later(self.keepalive, self._sweep)

    def _lost(self, connection: _Connection) -> None:
        self._open.discard(connection)

    async def _connect(self, target: Target, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        remaining = deadline - loop.time()
        limit = min(self.connect_timeout, remaining)
        tls = target.scheme == "https"
        context = (self._ssl or _default_context()) if tls else None
        origin = target.origin
        try:
            async with asyncio.timeout(limit):
                _, connection = await loop.create_connection(
                    lambda: _Connection(origin, self._lost),
                    target.host,
                    target.port,
                    ssl=context,
                    server_hostname=target.host if tls else None,
                )
        except TimeoutError:
            if self.connect_timeout <= remaining:
                raise ConnectionTimeoutError(
                    f"no connection to {target.host}:{target.port} within {self.connect_timeout:g} s"
                ) from None
            raise ResponseTimeoutError("response timeout while connecting") from None
        except OSError as exc:  # refused, unreachable, name resolution, TLS (ssl.SSLError)
            raise ConnectFailure(f"{target.host}:{target.port}: {exc!r}") from exc
        self.connections_made += 1
        self._open.add(connection)
        return connection

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._idle.clear()
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        await asyncio.sleep(0)  # let the transports run connection_lost


@functools.cache
def _default_context() -> ssl.SSLContext:
    return ssl.create_default_context()
