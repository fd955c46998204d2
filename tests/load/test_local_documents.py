"""Local TwiML documents are cached per file and checked with one stat per fetch (no read when unchanged).

The tests use real files: a cached document is proved by changing the bytes on disk while keeping the
file's size, inode and mtime (the cache then still answers the old bytes); any of those changing, or a
file modified within the last seconds, makes the next fetch read the file again.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from switch.twiml.errors import HTTP_RETRIEVAL_FAILURE, FetchError
from switch.twiml.fetch import RACY_SECONDS, WebhookClient
from switch.twiml.session import InterpreterSettings

ONE = b"<Response><Say>one</Say></Response>"
TWO = b"<Response><Say>two</Say></Response>"  # same length as ONE


def _age(path: Path, seconds: float) -> int:
    """Set the file's mtime `seconds` in the past; returns it (ns)."""
    then = time.time_ns() - int(seconds * 1e9)
    os.utime(path, ns=(then, then))
    return then


def _rewrite_in_place(path: Path, data: bytes, mtime_ns: int) -> None:
    """New bytes, same inode and size, the old mtime put back."""
    with path.open("r+b") as f:
        f.write(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))


@pytest.fixture
async def client() -> WebhookClient:
    return WebhookClient(InterpreterSettings(account_sid="AC" + "0" * 32))


async def test_an_unchanged_file_is_answered_from_the_cache(client: WebhookClient, tmp_path: Path) -> None:
    path = tmp_path / "app.xml"
    path.write_bytes(ONE)
    mtime = _age(path, RACY_SECONDS + 10)
    assert (await client.fetch(str(path), "POST", {})).body == ONE
    _rewrite_in_place(path, TWO, mtime)
    fetched = await client.fetch(str(path), "POST", {"CallSid": "CA1"})
    assert fetched.body == ONE  # not read again: size, inode and mtime are those cached
    assert fetched.url == str(path)
    _age(path, RACY_SECONDS + 5)  # the mtime moves: read again
    assert (await client.fetch(str(path), "POST", {})).body == TWO
    assert (await client.fetch("file://" + str(path), "POST", {})).body == TWO


async def test_a_replaced_or_resized_file_is_read_again(client: WebhookClient, tmp_path: Path) -> None:
    path = tmp_path / "app.xml"
    path.write_bytes(ONE)
    mtime = _age(path, RACY_SECONDS + 10)
    assert (await client.fetch(str(path), "POST", {})).body == ONE
    replacement = tmp_path / "new.xml"
    replacement.write_bytes(TWO)
    os.utime(replacement, ns=(mtime, mtime))
    replacement.replace(path)  # another inode, same size and mtime
    assert (await client.fetch(str(path), "POST", {})).body == TWO
    longer = b"<Response><Hangup/></Response>\n\n"
    path.write_bytes(longer)
    os.utime(path, ns=(mtime, mtime))  # same mtime, another size
    assert (await client.fetch(str(path), "POST", {})).body == longer


async def test_a_file_written_just_now_is_not_trusted_to_the_cache(
    client: WebhookClient, tmp_path: Path
) -> None:
    path = tmp_path / "app.xml"
    path.write_bytes(ONE)
    mtime = _age(path, 0.0)
    assert (await client.fetch(str(path), "POST", {})).body == ONE
    _rewrite_in_place(path, TWO, mtime)  # a second quick write within the same mtime tick
    assert (await client.fetch(str(path), "POST", {})).body == TWO


async def test_a_deleted_file_is_a_retrieval_failure(client: WebhookClient, tmp_path: Path) -> None:
    path = tmp_path / "app.xml"
    path.write_bytes(ONE)
    _age(path, RACY_SECONDS + 10)
    assert (await client.fetch(str(path), "POST", {})).body == ONE
    path.unlink()
    with pytest.raises(FetchError) as caught:
        await client.fetch(str(path), "POST", {})
    assert caught.value.code == HTTP_RETRIEVAL_FAILURE


async def test_package_documents_are_read_once(client: WebhookClient) -> None:
    url = "resource://switch/dialplans/demo.xml"
    first = await client.fetch(url, "POST", {})
    assert first.body.startswith(b"<?xml") or b"<Response" in first.body
    again = await client.fetch(url, "POST", {})
    assert again.body is first.body  # the same bytes object: served from memory


async def test_a_local_document_is_a_template_filled_per_request(
    client: WebhookClient, tmp_path: Path
) -> None:
    """{{Name}} takes the request's parameter, XML-escaped; an unknown name is empty; the raw text stays
    cached (a second request with other values is filled with those)."""
    path = tmp_path / "bin.xml"
    path.write_bytes(
        b'<Response><Say voice="{{Voice}}">Caller {{ From }} pressed {{Digits}}.</Say></Response>'
    )
    _age(path, RACY_SECONDS + 10)
    first = await client.fetch(str(path), "POST", {"From": '<a&"b">', "Digits": "1"})
    assert first.body == (
        b'<Response><Say voice="">Caller &lt;a&amp;&quot;b&quot;&gt; pressed 1.</Say></Response>'
    )
    second = await client.fetch(str(path), "POST", {"From": "+15551230000", "Digits": "42"})
    assert second.body == b'<Response><Say voice="">Caller +15551230000 pressed 42.</Say></Response>'


async def test_the_demo_menu_dispatches_on_digits(client: WebhookClient) -> None:
    url = "resource://switch/dialplans/demo-menu.xml"
    fetched = await client.fetch(url, "POST", {"Digits": "*"})
    assert b"<Redirect>demo-option-*.xml</Redirect>" in fetched.body
    for key in "0123456789*":
        option = await client.fetch(f"resource://switch/dialplans/demo-option-{key}.xml", "POST", {})
        assert b"<Redirect>" in option.body


async def test_http_documents_are_not_templates() -> None:
    from tests.helpers.twiml_server import TwimlServer

    with TwimlServer() as server:
        server.route("/bin", "<Response><Say>{{Digits}}</Say></Response>")
        async with WebhookClient(InterpreterSettings(account_sid="AC" + "0" * 32)) as http:
            fetched = await http.fetch(server.url("/bin"), "POST", {"Digits": "5"})
    assert fetched.body == b"<Response><Say>{{Digits}}</Say></Response>"
