"""The two webhook timeouts (Twilio: 10 s to connect, 15 s for the whole response), each configurable and each
ending in 11205: a server whose accept queue is full never completes the TCP handshake (connect timeout); a
server that accepts and never answers runs into the response timeout."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from switch.twiml.errors import CONNECT_FAILURE, FetchError
from switch.twiml.fetch import WebhookClient
from switch.twiml.session import InterpreterSettings

ACCOUNT = "AC" + "0" * 32


@pytest.fixture
def unreachable() -> Iterator[int]:
    """A port whose listen queue is full: Linux drops further SYNs, so a connect hangs until its timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port: int = server.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        server.close()


@pytest.fixture
async def silent() -> AsyncIterator[int]:
    """A server that accepts, reads the request and never answers."""
    closing = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await closing.wait()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    closing.set()
    server.close()
    await server.wait_closed()


async def fetch_error(port: int, *, connect: float, response: float) -> FetchError:
    settings = InterpreterSettings(account_sid=ACCOUNT, connect_timeout=connect, response_timeout=response)
    async with WebhookClient(settings) as client:
        with pytest.raises(FetchError) as info:
            await client.fetch(f"http://127.0.0.1:{port}/voice", "POST", {"CallSid": "CA" + "1" * 32})
    return info.value


async def test_a_handshake_that_never_completes_is_the_connect_timeout(unreachable: int) -> None:
    error = await fetch_error(unreachable, connect=0.3, response=30.0)
    assert error.code == CONNECT_FAILURE
    assert "ConnectionTimeoutError" in error.message, error.message


async def test_a_server_that_never_answers_is_the_response_timeout(silent: int) -> None:
    error = await fetch_error(silent, connect=30.0, response=0.5)
    assert error.code == CONNECT_FAILURE
    assert "ConnectionTimeoutError" not in error.message, error.message
    assert "Timeout" in error.message, error.message
