"""--egress-allow reaches the webhook client: only allowed IP addresses, no name resolution, no redirects."""

from __future__ import annotations

import pytest

from switch.twiml.errors import CONNECT_FAILURE, HTTP_RETRIEVAL_FAILURE, FetchError
from switch.twiml.fetch import WebhookClient
from switch.twiml.session import InterpreterSettings
from tests.twiml.conftest import AppServer

DOC = "<Response><Hangup/></Response>"


def loopback_only(ip: str) -> bool:
    return ip.startswith("127.")


async def test_allowed_address_is_fetched(server: AppServer) -> None:
    url = server.twiml("/voice", DOC)
    async with WebhookClient(InterpreterSettings("AC" + "0" * 32, egress_allowed=loopback_only)) as client:
        fetched = await client.fetch(url, "POST", {"CallSid": "CA1"})
    assert fetched.body == DOC.encode()
    assert server.paths() == ["/voice"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example.com/voice", "host names are not resolved"),
        ("http://192.0.2.10/voice", "outside --egress-allow"),
        ("http://[2001:db8::1]/voice", "outside --egress-allow"),
    ],
)
async def test_refused_before_anything_is_sent(url: str, message: str) -> None:
    async with WebhookClient(InterpreterSettings("AC" + "0" * 32, egress_allowed=loopback_only)) as client:
        with pytest.raises(FetchError, match=message) as info:
            await client.fetch(url, "POST", {})
        with pytest.raises(FetchError, match=message):
            await client.fetch_audio(url)
    assert info.value.code == CONNECT_FAILURE


async def test_redirects_are_not_followed(server: AppServer) -> None:
    server.routes["/moved"] = (302, "text/plain", b"")
    async with WebhookClient(InterpreterSettings("AC" + "0" * 32, egress_allowed=loopback_only)) as client:
        with pytest.raises(FetchError, match="redirects are not followed") as info:
            await client.fetch(server.url("/moved"), "GET", {})
    assert info.value.code == HTTP_RETRIEVAL_FAILURE
