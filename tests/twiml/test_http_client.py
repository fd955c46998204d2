"""The webhook HTTP/1.1 client: the sans-IO response parser (vectors fed whole, a byte at a time, with
trailing bytes) and the pooled connections against real servers on loopback (scripted asyncio servers,
aiohttp, and TLS with a certificate made for the test)."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator

from switch.twiml.errors import CONNECT_FAILURE, HTTP_RETRIEVAL_FAILURE, PROTOCOL_VIOLATION, FetchError
from switch.twiml.fetch import WebhookClient
from switch.twiml.http_client import (
    HttpClient,
    ProtocolViolation,
    Response,
    ResponseParser,
    parse_target,
)
from switch.twiml.parser import MAX_DOCUMENT_BYTES
from switch.twiml.session import InterpreterSettings
from tests.helpers.ports import free_tcp_port
from tests.twiml.conftest import ACCOUNT, AppServer

DOC = b"<Response><Hangup/></Response>"
TOKEN = "http-client-token"


def feed_all(data: bytes, limit: int = 1000, *, chunk: int = 0) -> tuple[Response | None, ResponseParser]:
    parser = ResponseParser(limit)
    if not chunk:
        return parser.feed(data), parser
    response = None
    for i in range(0, len(data), chunk):
        got = parser.feed(data[i : i + chunk])
        response = response or got
    return response, parser


VECTORS = [
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 30\r\n\r\n" + DOC, 200, DOC, True),
    (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"a;ext=1\r\n<Response>\r\n14\r\n<Hangup/></Response>\r\n0\r\nX-Trailer: y\r\n\r\n",
        200,
        DOC,
        True,
    ),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nServer: x\r\n\r\n", 204, b"", True),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 200, b"", False),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, b"ok", False),
    (b"HTTP/1.1 404\r\nContent-Length: 2, 2\r\n\r\nno", 404, b"no", True),
]


@pytest.mark.parametrize("chunk", [0, 1, 7])
@pytest.mark.parametrize(("data", "status", "body", "keep_alive"), VECTORS)
def test_responses_parse_whole_or_in_pieces(
    data: bytes, status: int, body: bytes, keep_alive: bool, chunk: int
) -> None:
    response, parser = feed_all(data, chunk=chunk)
    assert response is not None
    assert (response.status, response.body, parser.keep_alive) == (status, body, keep_alive)
    assert not response.truncated


def test_header_fields_and_content_type() -> None:
    data = (
        b"HTTP/1.1 200 Fine\r\nContent-Type: Text/XML; charset=utf-8\r\n"
        b"X-A: 1\r\nx-a: 2\r\nContent-Length: 0\r\n\r\n"
    )
    response, _ = feed_all(data)
    assert response is not None
    assert response.reason == "Fine" and response.headers["x-a"] == "1, 2"
    assert response.content_type == "text/xml"
    bare, _ = feed_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert bare is not None and bare.content_type == "application/octet-stream"


def test_trailing_bytes_make_the_connection_unusable() -> None:
    response, parser = feed_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")
    assert response is not None and response.body == b"ok"
    assert not parser.keep_alive


def test_a_body_without_length_ends_with_the_connection() -> None:
    response, parser = feed_all(b"HTTP/1.1 200 OK\r\n\r\n<Response/>", chunk=3)
    assert response is None
    final = parser.closed()
    assert final.body == b"<Response/>" and not parser.keep_alive


def test_a_body_past_the_limit_is_cut_and_the_connection_dropped() -> None:
    body = b"x" * 100
    response, parser = feed_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + body, limit=10, chunk=9)
    assert response is not None and response.truncated
    assert response.body == b"x" * 11 and not parser.keep_alive


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"SPAM SPAM SPAM\r\n\r\n", "not an HTTP response"),
        (b"HTTP/2 200\r\n\r\n", "bad status line"),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", "bad status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bad header field"),
        (b"HTTP/1.1 200 OK\r\nName : v\r\n\r\n", "bad header field"),
        (b"HTTP/1.1 200 OK\r\nA: 1\r\n folded\r\n\r\n", "bad header field"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x10\r\n", "invalid chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n", "invalid chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX", "not followed by CRLF"),
        (b"HTTP/1.1 200 OK\r\n" + b"A: b\r\n" * 20000, "head too long"),
    ],
)
def test_violations(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolViolation, match=message):
        feed_all(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "before any response"), (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", "middle")],
)
def test_closing_early_is_a_violation(data: bytes, message: str) -> None:
    parser = ResponseParser(100)
    assert parser.feed(data) is None
    with pytest.raises(ProtocolViolation, match=message):
        parser.closed()


def test_targets() -> None:
    target = parse_target("http://user:p%40ss@[::1]:8080/a b?x=1")
    assert (target.host, target.port, target.host_header) == ("::1", 8080, "[::1]:8080")
    assert target.request_target == "/a%20b?x=1"
    assert target.authorization == "Basic dXNlcjpwQHNz"  # user:p@ss
    assert parse_target("https://example.com").host_header == "example.com"
    assert parse_target("https://example.com").request_target == "/"
    for bad in ("ftp://x/", "http:///nohost", "http://h:99999/"):
        with pytest.raises(ValueError):
            parse_target(bad)


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Scripted:
    """A raw HTTP server on loopback whose connections run ``handler``; counts connections."""

    def __init__(self) -> None:
        self.handler: Handler | None = None
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        assert self.handler is not None
        try:
            await self.handler(reader, writer)
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request

    def url(self, path: str = "/voice") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


async def started(handler: Callable[[Scripted], Handler]) -> tuple[Scripted, asyncio.Server]:
    scripted = Scripted()
    scripted.handler = handler(scripted)
    server = await asyncio.start_server(scripted.serve, "127.0.0.1", 0)
    scripted.port = server.sockets[0].getsockname()[1]
    return scripted, server


def answer(body: bytes = DOC, extra: bytes = b"") -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {len(body)}\r\n".encode()
    return head + extra + b"\r\n" + body


@pytest.fixture
def settings() -> InterpreterSettings:
    return InterpreterSettings(ACCOUNT, connect_timeout=2.0, response_timeout=3.0, auth_token=TOKEN)


async def test_one_connection_serves_many_requests(server: AppServer, settings: InterpreterSettings) -> None:
    server.token = TOKEN
    url = server.twiml("/voice", DOC.decode())
    async with WebhookClient(settings) as client:
        for n in range(5):
            fetched = await client.fetch(url, "POST", {"CallSid": f"CA{n}", "From": "sip:a@b;x=1 +"})
            assert fetched.body == DOC and fetched.url == url
        status = await client.send(url, "POST", {"CallSid": "CA9", "CallStatus": "completed"})
        http = client._http()
        assert status == 200 and http.connections_made == 1
    assert [r.form["CallSid"] for r in server.requests] == ["CA0", "CA1", "CA2", "CA3", "CA4", "CA9"]
    assert server.requests[0].form["From"] == "sip:a@b;x=1 +"
    assert all(r.signed for r in server.requests)


async def test_connection_close_and_stale_connections(settings: InterpreterSettings) -> None:
    """The first connection says Connection: close; the second is closed by the server when the next request
    arrives, unanswered (its keep-alive timer raced us): the request goes again on a third."""

    def script(s: Scripted) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await s.read_request(reader)
            if s.connections == 1:
                writer.write(answer(extra=b"Connection: close\r\n"))
                return
            writer.write(answer())
            await writer.drain()
            if s.connections == 2:
                await s.read_request(reader)  # and close without a word
                return
            while True:
                await s.read_request(reader)
                writer.write(answer())

        return handle

    scripted, server = await started(script)
    async with server, WebhookClient(settings) as client:
        for n in range(4):
            assert (await client.fetch(scripted.url(), "POST", {"CallSid": f"CA{n}"})).body == DOC
    assert scripted.connections == 3
    sids = [r.rsplit(b"CallSid=", 1)[1] for r in scripted.requests]
    assert sids == [b"CA0", b"CA1", b"CA2", b"CA2", b"CA3"]


async def test_a_new_connection_closed_unanswered_is_11206(settings: InterpreterSettings) -> None:
    def script(s: Scripted) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await s.read_request(reader)

        return handle

    scripted, server = await started(script)
    async with server, WebhookClient(settings) as client:
        with pytest.raises(FetchError, match="closed before any response") as info:
            await client.fetch(scripted.url(), "POST", {})
    assert info.value.code == PROTOCOL_VIOLATION and scripted.connections == 1


async def test_chunked_and_oversized_documents(settings: InterpreterSettings) -> None:
    big = b"<Response>" + b"x" * MAX_DOCUMENT_BYTES + b"</Response>"

    def script(s: Scripted) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                request = await s.read_request(reader)
                if b"/big" in request.split(b"\r\n", 1)[0]:
                    writer.write(answer(big))
                    await writer.drain()
                    continue
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                for piece in (DOC[:7], DOC[7:]):
                    writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    await writer.drain()
                writer.write(b"0\r\n\r\n")

        return handle

    scripted, server = await started(script)
    async with server, WebhookClient(settings) as client:
        assert (await client.fetch(scripted.url(), "GET", {"CallSid": "CA1"})).body == DOC
        fetched = await client.fetch(scripted.url("/big"), "POST", {})
        assert len(fetched.body) == MAX_DOCUMENT_BYTES + 1  # the parser turns it into 11750
        assert (await client.fetch(scripted.url(), "POST", {})).body == DOC
    assert scripted.connections == 2  # the oversized answer was not read to its end: that one closed
    assert scripted.requests[0].startswith(b"GET /voice?CallSid=CA1 HTTP/1.1\r\n")


async def test_a_cancelled_request_closes_its_connection(settings: InterpreterSettings) -> None:
    asked = asyncio.Event()

    def script(s: Scripted) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                request = await s.read_request(reader)
                if b"/hang" in request.split(b"\r\n", 1)[0]:
                    asked.set()
                    await reader.read()  # never answers; returns when the client closes
                    return
                writer.write(answer())

        return handle

    scripted, server = await started(script)
    async with server, WebhookClient(settings) as client:
        assert (await client.fetch(scripted.url(), "POST", {})).body == DOC
        hung = asyncio.ensure_future(client.fetch(scripted.url("/hang"), "POST", {}))
        await asyncio.wait_for(asked.wait(), 5)
        hung.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hung
        assert (await client.fetch(scripted.url(), "POST", {})).body == DOC
    assert scripted.connections == 2


async def test_redirects_followed_and_signed_anew_without_egress_rules(settings: InterpreterSettings) -> None:
    seen: list[tuple[str, str, dict[str, str], bool]] = []
    validator = RequestValidator(TOKEN)

    async def handle(request: web.Request) -> web.StreamResponse:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        signature = request.headers.get("X-Twilio-Signature", "")
        seen.append(
            (request.method, request.path_qs, form, validator.validate(str(request.url), form, signature))
        )
        if request.path == "/a":
            raise web.HTTPFound("/b?step=2")
        if request.path == "/b":
            raise web.HTTPTemporaryRedirect("/c")
        return web.Response(body=DOC, content_type="text/xml")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with WebhookClient(settings) as client:
            fetched = await client.fetch(f"http://127.0.0.1:{port}/a", "POST", {"CallSid": "CA1"})
    finally:
        await runner.cleanup()
    assert fetched.body == DOC and fetched.url == f"http://127.0.0.1:{port}/c"
    assert [(m, p) for m, p, _, _ in seen] == [("POST", "/a"), ("GET", "/b?step=2"), ("GET", "/c")]
    assert seen[0][2] == {"CallSid": "CA1"} and all(ok for _, _, _, ok in seen)


async def test_credentials_in_the_url_are_sent_as_basic_auth(
    server: AppServer, settings: InterpreterSettings
) -> None:
    url = server.twiml("/voice", DOC.decode()).replace("http://", "http://app:s%3Acret@")
    async with WebhookClient(settings) as client:
        assert (await client.fetch(url, "POST", {})).body == DOC
    assert server.requests[0].headers["Authorization"] == "Basic YXBwOnM6Y3JldA=="  # app:s:cret


async def test_refused_is_11205(settings: InterpreterSettings) -> None:
    port = free_tcp_port()
    async with WebhookClient(settings) as client:
        with pytest.raises(FetchError, match="cannot reach") as info:
            await client.fetch(f"http://127.0.0.1:{port}/voice", "POST", {})
    assert info.value.code == CONNECT_FAILURE


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def tls_server(certificate: tuple[Path, Path]) -> AsyncIterator[tuple[int, ssl.SSLContext]]:
    """An HTTPS server with that certificate, and a client context trusting it."""
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(answer())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
    async with server:
        yield server.sockets[0].getsockname()[1], ssl.create_default_context(cafile=str(cert))


async def test_https(tls_server: tuple[int, ssl.SSLContext]) -> None:
    port, context = tls_server
    client = HttpClient(connect_timeout=2.0, response_timeout=3.0, ssl_context=context)
    target = parse_target(f"https://127.0.0.1:{port}/voice")
    try:
        for _ in range(2):
            response = await client.request("GET", target, "", limit=1000)
            assert (response.status, response.body) == (200, DOC)
        assert client.connections_made == 1
    finally:
        await client.close()
    untrusting = HttpClient(connect_timeout=2.0, response_timeout=3.0)
    try:
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusting.request("GET", target, "", limit=1000)
    finally:
        await untrusting.close()


async def test_errors_name_the_url_as_given_without_the_query(
    server: AppServer, settings: InterpreterSettings
) -> None:
    url = server.twiml("/voice", "oops", status=500)
    async with WebhookClient(settings) as client:
        with pytest.raises(FetchError) as info:
            await client.fetch(url, "GET", {"CallSid": "CA1", "From": "+15550100"})
    assert info.value.code == HTTP_RETRIEVAL_FAILURE and info.value.url == url
    assert info.value.message == f"HTTP 500 from {url}"
    assert server.requests[0].query == {"CallSid": "CA1", "From": "+15550100"}
