"""FallbackUrl, the faults of an application server, error reports, and call status callbacks."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import socket
from collections.abc import AsyncIterator

import pytest
from twilio.twiml.voice_response import VoiceResponse

from switch.twiml.callbacks import StatusCallbacks
from switch.twiml.errors import APPLICATION_ERROR
from switch.twiml.fetch import WebhookClient
from switch.twiml.interpreter import Interpreter
from switch.twiml.session import InterpreterSettings

from .conftest import ACCOUNT, AppServer, FakeCall

TOKEN = "fallback-token"
LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    b"<Response><Say>&lol2;</Say></Response>"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def garbage_server() -> tuple[asyncio.Server, str]:
    """Answers every connection with bytes that are not HTTP."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"SPAM SPAM SPAM\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/voice"


@pytest.fixture
async def app(server: AppServer) -> AsyncIterator[AppServer]:
    server.token = TOKEN
    yield server
    assert all(r.signed for r in server.requests)


def settings_for(
    app: AppServer, errors: list[tuple[str, int, str, str, str]], **kw: object
) -> InterpreterSettings:
    return InterpreterSettings(
        account_sid=ACCOUNT,
        auth_token=TOKEN,
        connect_timeout=1.0,
        response_timeout=0.5,
        on_error=lambda *args: errors.append(args),
        **kw,  # type: ignore[arg-type]
    )


async def run(call: FakeCall, settings: InterpreterSettings, url: str) -> Interpreter:
    async with WebhookClient(settings) as client:
        interpreter = Interpreter(call, settings, client)
        await interpreter.run(url)
    return interpreter


def says(call: FakeCall) -> list[object]:
    return [e[1] for e in call.events if e[0] == "say"]


FAULTS = ["down", "slow", "500", "html", "laughs", "garbage"]
FAULT_CODES = {"down": 11205, "slow": 11205, "500": 11200, "html": 12300, "laughs": 12100, "garbage": 11206}


async def fault_url(app: AppServer, fault: str, stack: list[asyncio.Server]) -> str:
    if fault == "down":
        return f"http://127.0.0.1:{free_port()}/voice"
    if fault == "slow":
        app.hang.add("/slow")
        return app.url("/slow")
    if fault == "500":
        return app.twiml("/voice", "<Response/>", status=500)
    if fault == "html":
        return app.twiml("/voice", "<html><body>hi</body></html>", ctype="text/html")
    if fault == "laughs":
        app.routes["/voice"] = (200, "text/xml", LAUGHS)
        return app.url("/voice")
    server, url = await garbage_server()
    stack.append(server)
    return url


@pytest.mark.parametrize("fault", FAULTS)
async def test_fault_goes_to_fallback_with_error_code_and_url(
    app: AppServer, call: FakeCall, fault: str
) -> None:
    errors: list[tuple[str, int, str, str, str]] = []
    stack: list[asyncio.Server] = []
    fallback = app.twiml("/fallback", "<Response><Say>fallback speaking</Say></Response>")
    url = await fault_url(app, fault, stack)
    interpreter = await run(call, settings_for(app, errors, fallback_url=fallback), url)
    for s in stack:
        s.close()
    assert says(call) == ["fallback speaking"]
    assert call.kinds()[-1] == "hangup"
    [fb] = [r for r in app.requests if r.path == "/fallback"]
    assert fb.form["ErrorCode"] == str(FAULT_CODES[fault]) and fb.form["ErrorUrl"] == url
    assert fb.form["CallSid"] == call.sid
    assert [(e[0], e[1], e[3]) for e in errors] == [(call.sid, FAULT_CODES[fault], url)]
    assert [e[4] for e in errors] == ["POST"]  # the method of the failed request (Notifications)
    assert [e[0] for e in interpreter.errors] == [FAULT_CODES[fault]]


@pytest.mark.parametrize("fault", FAULTS)
async def test_fault_without_fallback_plays_the_error_prompt(
    server: AppServer, call: FakeCall, fault: str
) -> None:
    errors: list[tuple[str, int, str, str, str]] = []
    stack: list[asyncio.Server] = []
    url = await fault_url(server, fault, stack)
    await run(call, settings_for(server, errors), url)
    for s in stack:
        s.close()
    assert says(call) == [APPLICATION_ERROR] and call.kinds()[-1] == "hangup"
    assert [e[1] for e in errors] == [FAULT_CODES[fault]]


async def test_failing_fallback_ends_in_the_error_prompt(app: AppServer, call: FakeCall) -> None:
    errors: list[tuple[str, int, str, str, str]] = []
    url = app.twiml("/voice", "<Response/>", status=503)
    settings = settings_for(app, errors, fallback_url=app.url("/missing"))
    await run(call, settings, url)
    assert app.paths() == ["/voice", "/missing"]
    assert says(call) == [APPLICATION_ERROR]
    assert [(e[1], e[3]) for e in errors] == [(11200, url), (11200, app.url("/missing"))]


async def test_redirect_loop_ends_in_the_error_prompt(app: AppServer, call: FakeCall) -> None:
    errors: list[tuple[str, int, str, str, str]] = []
    url = app.twiml("/loop", "<Response><Redirect>/loop</Redirect></Response>")
    await run(call, settings_for(app, errors, max_redirects=5), url)
    assert app.paths() == ["/loop"] * 6
    assert says(call) == [APPLICATION_ERROR] and call.kinds()[-1] == "hangup"
    assert [e[1] for e in errors] == [11200]


async def test_lowercase_document_and_unknown_attribute_are_reported(
    app: AppServer, call: FakeCall, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "switch.twiml")
    errors: list[tuple[str, int, str, str, str]] = []
    fallback = app.twiml("/fallback", '<Response><Say colour="red">fb</Say></Response>')
    url = app.twiml("/voice", "<response><say>hi</say></response>")
    await run(call, settings_for(app, errors, fallback_url=fallback), url)
    assert [e[1] for e in errors] == [12100, 12200]
    assert says(call) == ["fb"]
    # both logged with the CallSid, the parser's warning too (it has no call at hand)
    logged = [(getattr(r, "twilio_code", 0), getattr(r, "call_sid", "")) for r in caplog.records]
    assert logged == [(12100, call.sid), (12200, call.sid)], logged
    assert all(f"(call {call.sid})" in r.getMessage() for r in caplog.records)


async def test_action_failure_uses_the_fallback_with_digits(app: AppServer, call: FakeCall) -> None:
    errors: list[tuple[str, int, str, str, str]] = []
    fallback = app.twiml("/fallback", "<Response><Say>fb</Say></Response>")
    r = VoiceResponse()
    r.gather(num_digits=1, action="/broken").say("menu")
    app.twiml("/broken", "oops", status=500)
    call.on_play = ["3"]
    await run(call, settings_for(app, errors, fallback_url=fallback), app.twiml("/voice", str(r)))
    assert app.paths() == ["/voice", "/broken", "/fallback"]
    fb = app.requests[2].form
    assert (fb["Digits"], fb["ErrorCode"], fb["ErrorUrl"]) == ("3", "11200", app.url("/broken"))


class InfoCall:
    def __init__(self) -> None:
        self.sid = "CA" + "1" * 32
        self.account_sid = ACCOUNT
        self.parent_call_sid: str | None = None
        self.from_ = "sip:alice@127.0.0.1"
        self.to = "sip:bob@127.0.0.1"
        self.caller_name = "Alice"
        self.sip_call_id = "xyz@127.0.0.1"
        self.sip_source_ip = ""
        self.sip_headers: dict[str, str] = {}
        self.forwarded_from = ""
        self.direction = "outbound-api"
        self.sip_response_code: int | None = None
        self.duration = 0


async def test_status_callbacks_in_order_with_twilio_params(app: AppServer) -> None:
    settings = InterpreterSettings(account_sid=ACCOUNT, auth_token=TOKEN)
    url = app.twiml("/status", "")
    call = InfoCall()
    async with WebhookClient(settings) as client:
        callbacks = StatusCallbacks(client, url, ["initiated", "ringing", "answered", "completed"])
        callbacks.listener(call, "queued")  # no event
        callbacks.listener(call, "initiated")
        callbacks.listener(call, "ringing")
        call.sip_response_code = 200
        callbacks.listener(call, "in-progress")
        call.duration = 12
        callbacks.listener(call, "completed")
    forms = [r.form for r in app.requests]
    assert [f["CallStatus"] for f in forms] == ["initiated", "ringing", "in-progress", "completed"]
    assert [f["SequenceNumber"] for f in forms] == ["0", "1", "2", "3"]
    assert ["CallDuration" in f for f in forms] == [False, False, False, True]
    assert forms[3]["CallDuration"] == "12" and forms[3]["SipResponseCode"] == "200"
    assert "SipResponseCode" not in forms[0]
    assert {f["CallbackSource"] for f in forms} == {"call-progress-events"}
    assert all(email.utils.parsedate_to_datetime(f["Timestamp"]).tzinfo is not None for f in forms)
    assert forms[0]["Timestamp"].endswith("+0000")
    assert forms[0]["Direction"] == "outbound-api" and forms[0]["ApiVersion"] == "2010-04-01"


async def test_status_callbacks_only_configured_events_and_get(app: AppServer) -> None:
    settings = InterpreterSettings(account_sid=ACCOUNT, auth_token=TOKEN)
    url = app.twiml("/status", "")
    call = InfoCall()
    async with WebhookClient(settings) as client:
        callbacks = StatusCallbacks(client, url, ["completed"], method="GET")
        for status in ("initiated", "ringing", "in-progress", "busy"):
            callbacks.listener(call, status)
    [get] = app.requests
    assert get.method == "GET" and get.query["CallStatus"] == "busy" and get.query["SequenceNumber"] == "0"


async def test_a_failing_status_callback_is_logged_not_raised(
    server: AppServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = InterpreterSettings(account_sid=ACCOUNT, connect_timeout=1.0, response_timeout=1.0)
    call = InfoCall()
    async with WebhookClient(settings) as client:
        down = StatusCallbacks(client, f"http://127.0.0.1:{free_port()}/s", ["completed"])
        failing = StatusCallbacks(client, server.twiml("/s", "", status=500), ["completed"])
        assert await down.notify(call, "completed") is False
        assert await failing.notify(call, "completed") is False
        assert await failing.notify(call, "ringing") is False  # not configured: nothing sent
    codes = [getattr(r, "twilio_code", 0) for r in caplog.records if call.sid in r.getMessage()]
    assert codes == [11205, 11200] and server.paths() == ["/s"]
