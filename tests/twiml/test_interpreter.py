"""The interpreter against a fake call and a real aiohttp application server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import numpy as np
import pytest
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse
from yarl import URL

from switch.twiml.errors import APPLICATION_ERROR
from switch.twiml.fetch import WebhookClient
from switch.twiml.interpreter import Interpreter
from switch.twiml.session import InterpreterSettings
from switch.twiml.urls import DEMO_URL

from .conftest import ACCOUNT, AppServer, FakeCall, wav_bytes

ERROR_EVENTS = [
    ("ringing",),
    ("answer",),
    ("say", APPLICATION_ERROR, None, None),
    ("play", len(APPLICATION_ERROR) * 10, 1),
    ("hangup",),
]


def logged_codes(caplog: pytest.LogCaptureFixture, sid: str) -> list[int]:
    return [
        getattr(r, "twilio_code", 0)
        for r in caplog.records
        if r.name == "switch.twiml" and r.levelno >= logging.ERROR and sid in r.getMessage()
    ]


async def run(call: FakeCall, settings: InterpreterSettings, client: WebhookClient, url: str) -> Interpreter:
    interpreter = Interpreter(call, settings, client)
    await interpreter.run(url)
    return interpreter


async def test_first_request_params_and_end_of_document_hangs_up(
    server: AppServer, call: FakeCall, settings: InterpreterSettings, client: WebhookClient
) -> None:
    r = VoiceResponse()
    r.say("Welcome", voice="woman", language="en-GB")
    r.pause(length=2)
    url = server.twiml("/voice", str(r))
    await run(call, settings, client, url)
    assert call.events == [
        ("ringing",),
        ("answer",),
        ("say", "Welcome", "woman", "en-GB"),
        ("play", 70, 1),
        ("play", 8000, 2),
        ("hangup",),
    ]
    [req] = server.requests
    assert (req.method, req.path, req.content_type) == ("POST", "/voice", "application/x-www-form-urlencoded")
    assert req.form == {
        "CallSid": call.sid,
        "AccountSid": ACCOUNT,
        "From": "sip:alice@127.0.0.1",
        "To": "sip:demo@127.0.0.1",
        "Caller": "sip:alice@127.0.0.1",
        "Called": "sip:demo@127.0.0.1",
        "CallStatus": "ringing",
        "ApiVersion": "2010-04-01",
        "Direction": "inbound",
        "CallerName": "Alice",
        "SipCallId": "abc123@127.0.0.1",
    }
    assert "X-Twilio-Signature" not in req.headers


async def test_sip_params_of_an_inbound_call_are_sent_and_signed(
    server: AppServer, call: FakeCall, settings: InterpreterSettings
) -> None:
    call.sip_source_ip = "127.0.0.9"
    call.forwarded_from = "sip:+15550009999@carrier.example"
    call.sip_headers = {"X-Customer-Id": "4711", "X-Empty": ""}
    server.token = "tok-123"
    url = server.twiml("/voice", "<Response><Hangup/></Response>")
    signed = InterpreterSettings(account_sid=ACCOUNT, auth_token="tok-123")
    async with WebhookClient(signed) as client:
        await run(call, signed, client, url)
    [req] = server.requests
    assert req.form["SipSourceIp"] == "127.0.0.9"
    assert req.form["ForwardedFrom"] == "sip:+15550009999@carrier.example"
    assert req.form["SipHeader_X-Customer-Id"] == "4711"
    assert req.form["SipHeader_X-Empty"] == ""
    assert req.signed is True


async def test_redirect_post_then_get_with_in_progress_status(
    server: AppServer, call: FakeCall, settings: InterpreterSettings, client: WebhookClient
) -> None:
    first = VoiceResponse()
    first.say("one")
    first.redirect("step2")
    first.say("never")
    second = VoiceResponse()
    second.redirect("/app/step3", method="GET")
    third = VoiceResponse()
    third.say("three")
    third.hangup()
    third.say("after hangup")
    server.twiml("/app/step2", str(second))
    server.twiml("/app/step3", str(third))
    url = server.twiml("/app/start", str(first))
    interpreter = await run(call, settings, client, url)
    assert server.paths() == ["/app/start", "/app/step2", "/app/step3"]
    assert [r.method for r in server.requests] == ["POST", "POST", "GET"]
    assert [(r.form or r.query)["CallStatus"] for r in server.requests] == [
        "ringing",
        "in-progress",
        "in-progress",
    ]
    assert server.requests[2].query["CallSid"] == call.sid and server.requests[2].form == {}
    says = [e[1] for e in call.events if e[0] == "say"]
    assert says == ["one", "three"]
    assert call.kinds()[:2] == ["ringing", "answer"] and call.kinds()[-1] == "hangup"
    assert call.kinds().count("hangup") == 1 and interpreter.redirects == 2


@pytest.mark.parametrize(("reason", "status"), [("busy", 486), ("rejected", 603), (None, 603)])
async def test_reject_first_never_answers(
    server: AppServer,
    call: FakeCall,
    settings: InterpreterSettings,
    client: WebhookClient,
    reason: str | None,
    status: int,
) -> None:
    r = VoiceResponse()
    r.reject(reason=reason) if reason else r.reject()
    r.say("not reached")
    await run(call, settings, client, server.twiml("/voice", str(r)))
    assert call.events == [("ringing",), ("reject", status)]
    assert not call.answered


async def test_reject_after_another_verb_hangs_up_answered_call(
    server: AppServer, call: FakeCall, settings: InterpreterSettings, client: WebhookClient
) -> None:
    r = VoiceResponse()
    r.say("hi")
    r.reject(reason="busy")
    await run(call, settings, client, server.twiml("/voice", str(r)))
    assert call.kinds() == ["ringing", "answer", "say", "play", "hangup"]


async def test_hangup_first_still_answers(
    server: AppServer, call: FakeCall, settings: InterpreterSettings, client: WebhookClient
) -> None:
    r = VoiceResponse()
    r.hangup()
    await run(call, settings, client, server.twiml("/voice", str(r)))
    assert call.events == [("ringing",), ("answer",), ("hangup",)]


async def test_http_500_is_11200(
    server: AppServer,
    call: FakeCall,
    settings: InterpreterSettings,
    client: WebhookClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = server.twiml("/voice", "<Response><Say>x</Say></Response>", status=500)
    await run(call, settings, client, url)
    assert call.events == ERROR_EVENTS
    assert logged_codes(caplog, call.sid) == [11200]


async def test_http_404_is_11200(
    server: AppServer,
    call: FakeCall,
    settings: InterpreterSettings,
    client: WebhookClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await run(call, settings, client, server.url("/nowhere"))
    assert call.events == ERROR_EVENTS
    assert logged_codes(caplog, call.sid) == [11200]


async def test_dead_url_is_11205(
    call: FakeCall, settings: InterpreterSettings, client: WebhookClient, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # nothing listens on that port now: connection refused
    await run(call, settings, client, f"http://127.0.0.1:{port}/voice")
    assert call.events == ERROR_EVENTS
    assert logged_codes(caplog, call.sid) == [11205]


async def test_slow_app_times_out_as_11205(
    server: AppServer, call: FakeCall, caplog: pytest.LogCaptureFixture
) -> None:
    server.hang.add("/slow")
    short = InterpreterSettings(account_sid=ACCOUNT, connect_timeout=1.0, response_timeout=0.2)
    async with WebhookClient(short) as client:
        await run(call, short, client, server.url("/slow"))
    assert call.events == ERROR_EVENTS
    assert logged_codes(caplog, call.sid) == [11205]


async def test_html_is_12300(
    server: AppServer,
    call: FakeCall,
    settings: InterpreterSettings,
    client: WebhookClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = server.twiml("/voice", "<html><body>Hello</body></html>", ctype="text/html")
    await run(call, settings, client, url)
    assert call.events == ERROR_EVENTS
    assert logged_codes(caplog, call.sid) == [12300]


@pytest.mark.parametrize(
    "body",
    ["<Response><Say>unclosed</Response>", "<response/>", "<Response><Bogus/></Response>"],
)
async def test_bad_xml_is_12100(
    server: AppServer,
    call: FakeCall,
    settings: InterpreterSettings,
    client: WebhookClient,
    caplog: pytest.LogCaptureFixture,
    body: str,
) -> None:
    await run(call, settings, client, server.twiml("/voice", body, ctype="text/xml"))
    assert call.events == ERROR_EVENTS
    assert logged_codes(caplog, call.sid) == [12100]


async def test_error_after_redirect_keeps_answered_call(
    server: AppServer,
    call: FakeCall,
    settings: InterpreterSettings,
    client: WebhookClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = server.twiml("/voice", "<Response><Say>a</Say><Redirect>/gone</Redirect></Response>")
    await run(call, settings, client, url)
    assert call.kinds() == ["ringing", "answer", "say", "play", "say", "play", "hangup"]
    assert call.events[4] == ("say", APPLICATION_ERROR, None, None)
    assert logged_codes(caplog, call.sid) == [11200]


async def test_redirect_limit(
    server: AppServer, call: FakeCall, client: WebhookClient, caplog: pytest.LogCaptureFixture
) -> None:
    settings = InterpreterSettings(account_sid=ACCOUNT, max_redirects=3)
    url = server.twiml("/loop", "<Response><Redirect>/loop</Redirect></Response>")
    await run(call, settings, client, url)
    assert server.paths() == ["/loop"] * 4
    assert call.events == ERROR_EVENTS
    assert logged_codes(caplog, call.sid) == [11200]


async def test_remote_document_cannot_redirect_to_a_file(
    server: AppServer,
    call: FakeCall,
    settings: InterpreterSettings,
    client: WebhookClient,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    local = tmp_path / "local.xml"
    local.write_text("<Response><Say>secret</Say></Response>")
    url = server.twiml("/voice", f"<Response><Redirect>file://{local}</Redirect></Response>")
    await run(call, settings, client, url)
    assert ("say", "secret", None, None) not in call.events
    assert call.events[-3:] == ERROR_EVENTS[-3:]
    assert logged_codes(caplog, call.sid) == [11100]


async def test_play_wav_over_http_is_decoded_and_cached(
    server: AppServer, call: FakeCall, settings: InterpreterSettings, client: WebhookClient
) -> None:
    pcm = (np.sin(np.arange(1234) / 5) * 9000).astype(np.int16)
    server.file("/audio/tone.wav", wav_bytes(pcm), "audio/wav")
    r = VoiceResponse()
    r.play("audio/tone.wav", loop=2)
    r.play("/audio/tone.wav")
    await run(call, settings, client, server.twiml("/voice", str(r)))
    assert call.events[2:] == [("play", 1234, 2), ("play", 1234, 1), ("hangup",)]
    np.testing.assert_array_equal(call.played[0], pcm)
    assert call.played[1] is call.played[0] and not call.played[0].flags.writeable
    assert server.paths() == ["/voice", "/audio/tone.wav"]
    assert server.requests[1].method == "GET"
    assert client.audio_cache.loads == 1


async def test_play_failures_are_skipped(
    server: AppServer,
    call: FakeCall,
    settings: InterpreterSettings,
    client: WebhookClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "switch.twiml")
    server.file("/page.html", b"<html/>", "text/html")
    server.file("/junk.wav", b"RIFF not really", "audio/wav")
    r = VoiceResponse()
    r.play("/page.html")
    r.play("/missing.wav")
    r.play("/junk.wav")
    r.play("file:///etc/hostname")  # a file path, but the document is remote
    r.say("still here")
    await run(call, settings, client, server.twiml("/voice", str(r)))
    assert call.kinds() == ["ringing", "answer", "say", "play", "hangup"]
    warned = [getattr(x, "twilio_code", 0) for x in caplog.records if x.levelno == logging.WARNING]
    assert warned == [12300, 11200, 12300, 12200]


async def test_play_file_from_local_document(
    call: FakeCall, settings: InterpreterSettings, client: WebhookClient, tmp_path: Path
) -> None:
    pcm = np.arange(800, dtype=np.int16)
    (tmp_path / "sounds").mkdir()
    (tmp_path / "sounds" / "beep.wav").write_bytes(wav_bytes(pcm))
    app = tmp_path / "app.xml"
    app.write_text('<Response><Play loop="3">sounds/beep.wav</Play><Play digits="12"/></Response>')
    await run(call, settings, client, str(app))
    assert call.events == [("ringing",), ("answer",), ("play", 800, 3), ("play", 3200, 1), ("hangup",)]
    np.testing.assert_array_equal(call.played[0], pcm)


async def test_ended_cancels_a_running_verb(
    server: AppServer, call: FakeCall, settings: InterpreterSettings, client: WebhookClient
) -> None:
    r = VoiceResponse()
    r.say("forever", loop=0)
    r.say("not reached")
    task = asyncio.ensure_future(run(call, settings, client, server.twiml("/voice", str(r))))
    await call.playing_forever.wait()
    call.ended.set()
    await task
    assert call.cancelled_play
    assert call.kinds() == ["ringing", "answer", "say", "play"]


async def test_already_ended_call_fetches_nothing(
    server: AppServer, call: FakeCall, settings: InterpreterSettings, client: WebhookClient
) -> None:
    call.ended.set()
    await run(call, settings, client, server.twiml("/voice", "<Response/>"))
    assert call.events == [] and server.requests == []


async def test_signature_validates_with_twilio_library(server: AppServer, call: FakeCall) -> None:
    token = "secret-token"
    settings = InterpreterSettings(account_sid=ACCOUNT, auth_token=token)
    url = server.twiml("/voice", "<Response><Redirect method='GET'>/next?x=1</Redirect></Response>")
    server.twiml("/next", "<Response/>")
    async with WebhookClient(settings) as client:
        await run(call, settings, client, url)
    validator = RequestValidator(token)
    post, get = server.requests
    assert validator.validate(url, post.form, post.headers["X-Twilio-Signature"])
    assert not validator.validate(url, {**post.form, "To": "x"}, post.headers["X-Twilio-Signature"])
    assert get.query["x"] == "1" and get.query["CallStatus"] == "in-progress"
    signed_url = str(URL(server.url("/next")).with_query(get.query))
    assert validator.validate(signed_url, {}, get.headers["X-Twilio-Signature"])


async def test_builtin_demo_runs_without_network(
    call: FakeCall, settings: InterpreterSettings, client: WebhookClient
) -> None:
    await run(call, settings, client, DEMO_URL)
    says = [str(e[1]) for e in call.events if e[0] == "say"]
    # The welcome, then the menu (demo-main.xml, reached by a relative Redirect) twice without a key.
    assert len(says) == 4 and "switch" in says[0] and says[-1] == "Goodbye."
    assert says[1] == says[2] and says[1].startswith("Press 1 for an echo test")
    assert call.kinds()[:2] == ["ringing", "answer"] and call.kinds()[-1] == "hangup"


async def test_run_cancelled_from_outside_cancels_the_verb(
    server: AppServer, call: FakeCall, settings: InterpreterSettings, client: WebhookClient
) -> None:
    r = VoiceResponse()
    r.play(digits="1", loop=1)
    r.say("forever", loop=0)
    task = asyncio.ensure_future(run(call, settings, client, server.twiml("/voice", str(r))))
    await call.playing_forever.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert call.cancelled_play and call.kinds()[-1] == "play"


async def test_play_bytes_kept_in_cache_dir(server: AppServer, tmp_path: Path) -> None:
    pcm = np.full(500, 77, dtype=np.int16)
    audio_url = server.file("/a.wav", wav_bytes(pcm), "audio/x-wav")
    url = server.twiml("/voice", f"<Response><Play>{audio_url}</Play></Response>")
    settings = InterpreterSettings(account_sid=ACCOUNT, cache_dir=tmp_path)
    for _ in range(2):  # two clients, as after a restart: the second reads the disk cache
        async with WebhookClient(settings) as client:
            await run(FakeCall(), settings, client, url)
    assert server.paths() == ["/voice", "/a.wav", "/voice"]
    assert len(list((tmp_path / "play").iterdir())) == 1


async def test_unsupported_verbs_are_skipped_with_a_warning(
    server: AppServer,
    call: FakeCall,
    settings: InterpreterSettings,
    client: WebhookClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "switch.twiml")
    r = VoiceResponse()
    r.pay()
    r.dial("+15550001111")
    r.say("after")
    await run(call, settings, client, server.twiml("/voice", str(r)))
    assert call.events[2:] == [("say", "after", None, None), ("play", 50, 1), ("hangup",)]
    skipped = [x.getMessage() for x in caplog.records if getattr(x, "twilio_code", 0) == 12200]
    assert len(skipped) == 2 and "<Pay>" in skipped[0] and call.sid in skipped[1]


async def test_echo_runs_until_the_caller_hangs_up(
    server: AppServer, call: FakeCall, settings: InterpreterSettings, client: WebhookClient
) -> None:
    r = VoiceResponse()
    r.echo()
    r.say("never reached")
    session = asyncio.ensure_future(run(call, settings, client, server.twiml("/voice", str(r))))
    for _ in range(200):
        if ("echo",) in call.events:
            break
        await asyncio.sleep(0.01)
    assert ("echo",) in call.events and not session.done()
    call.ended.set()
    await asyncio.wait_for(session, 5)
    assert not [e for e in call.events if e[0] == "say"]


async def test_a_failing_call_layer_ends_the_session_with_hangup(
    server: AppServer,
    call: FakeCall,
    settings: InterpreterSettings,
    client: WebhookClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken_say(text: str, voice: str | None, language: str | None) -> np.ndarray:
        raise RuntimeError("tts exploded")

    call.say = broken_say  # type: ignore[method-assign]
    await run(call, settings, client, server.twiml("/voice", "<Response><Say>x</Say><Pause/></Response>"))
    assert call.events == [("ringing",), ("answer",), ("hangup",)]
    [record] = [x for x in caplog.records if x.levelno == logging.ERROR]
    assert call.sid in record.getMessage() and record.exc_info is not None
