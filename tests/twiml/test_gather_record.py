"""Gather and Record against a fake call and a real HTTP server that checks every request's signature."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from twilio.twiml.voice_response import VoiceResponse

from switch.twiml.fetch import WebhookClient
from switch.twiml.interpreter import Interpreter
from switch.twiml.session import InterpreterSettings

from .conftest import ACCOUNT, AppServer, FakeCall, RecordingResult

TOKEN = "gather-token"
BASE = "http://127.0.0.1:8080"


@pytest.fixture
def signed(tmp_path: Path) -> InterpreterSettings:
    return InterpreterSettings(
        account_sid=ACCOUNT,
        auth_token=TOKEN,
        connect_timeout=2.0,
        response_timeout=5.0,
        recordings_dir=tmp_path / "recordings",
        public_base_url=BASE,
    )


@pytest.fixture
async def app(server: AppServer) -> AsyncIterator[AppServer]:
    server.token = TOKEN
    yield server
    assert server.requests and all(r.signed for r in server.requests)


async def run(call: FakeCall, settings: InterpreterSettings, url: str) -> Interpreter:
    async with WebhookClient(settings) as client:
        interpreter = Interpreter(call, settings, client)
        await interpreter.run(url)
    return interpreter  # leaving the client waited for its background requests


def says(call: FakeCall) -> list[object]:
    return [e[1] for e in call.events if e[0] == "say"]


def menu(**gather: object) -> str:
    r = VoiceResponse()
    g = r.gather(**gather)
    g.say("A long menu prompt")
    r.say("no input")
    return str(r)


DONE = "<Response><Say>done</Say></Response>"


async def test_num_digits_with_barge_in(app: AppServer, call: FakeCall, signed: InterpreterSettings) -> None:
    app.twiml("/done", DONE)
    call.on_play = ["1234"]  # pressed while the prompt plays
    await run(call, signed, app.twiml("/menu", menu(num_digits=3, action="/done")))
    assert says(call) == ["A long menu prompt", "done"]
    assert app.paths() == ["/menu", "/done"]
    assert app.requests[1].form["Digits"] == "123" and app.requests[1].form["FinishedOnKey"] == ""
    assert app.requests[1].form["CallStatus"] == "in-progress"


async def test_finish_on_key(app: AppServer, call: FakeCall, signed: InterpreterSettings) -> None:
    app.twiml("/done", DONE)
    call.on_play = ["42#9"]
    await run(call, signed, app.twiml("/menu", menu(action="/done", method="GET")))
    get = app.requests[1]
    assert get.method == "GET" and get.query["Digits"] == "42" and get.query["FinishedOnKey"] == "#"


async def test_custom_finish_on_key_star(app: AppServer, call: FakeCall, signed: InterpreterSettings) -> None:
    app.twiml("/done", DONE)
    call.on_play = ["5#6*"]
    await run(call, signed, app.twiml("/menu", menu(action="/done", finish_on_key="*")))
    assert app.requests[1].form["Digits"] == "5#6"


async def test_no_input_falls_through(app: AppServer, call: FakeCall, signed: InterpreterSettings) -> None:
    await run(call, signed, app.twiml("/menu", menu(action="/done", timeout=1)))
    assert says(call) == ["A long menu prompt", "no input"]
    assert app.paths() == ["/menu"]


async def test_timeout_between_digits_sends_what_was_pressed(
    app: AppServer, call: FakeCall, signed: InterpreterSettings
) -> None:
    app.twiml("/done", DONE)
    call.on_play = ["5"]
    await run(call, signed, app.twiml("/menu", menu(action="/done", num_digits=4, timeout=1)))
    assert app.requests[1].form["Digits"] == "5"


async def test_action_on_empty_result(app: AppServer, call: FakeCall, signed: InterpreterSettings) -> None:
    app.twiml("/done", DONE)
    await run(call, signed, app.twiml("/menu", menu(action="/done", timeout=1, action_on_empty_result=True)))
    assert app.paths() == ["/menu", "/done"] and app.requests[1].form["Digits"] == ""
    assert says(call) == ["A long menu prompt", "done"]


async def test_without_action_posts_to_the_document_url(
    app: AppServer, call: FakeCall, signed: InterpreterSettings
) -> None:
    call.on_play = ["7"]  # the first round only; the second times out and falls through
    await run(call, signed, app.twiml("/menu", menu(num_digits=1, timeout=1)))
    assert app.paths() == ["/menu", "/menu"]
    assert "Digits" not in app.requests[0].form and app.requests[1].form["Digits"] == "7"
    assert says(call) == ["A long menu prompt", "A long menu prompt", "no input"]


async def test_digits_pressed_before_the_gather_are_dropped(
    app: AppServer, call: FakeCall, signed: InterpreterSettings
) -> None:
    app.twiml("/done", DONE)
    call.digits.put_nowait("9")
    call.on_play = ["4"]
    await run(call, signed, app.twiml("/menu", menu(num_digits=1, action="/done")))
    assert app.requests[1].form["Digits"] == "4"


async def test_gather_without_prompt_waits_for_digits(
    app: AppServer, call: FakeCall, signed: InterpreterSettings
) -> None:
    app.twiml("/done", DONE)
    r = VoiceResponse()
    r.gather(num_digits=2, action="/done")
    for d in "81":
        call.digits.put_nowait(d)  # before: dropped
    url = app.twiml("/menu", str(r))
    task = asyncio.ensure_future(run(call, signed, url))
    await call.answered_event.wait()
    await asyncio.sleep(0)  # let the Gather start (and drop what was pressed before it)
    for d in "36":
        call.digits.put_nowait(d)
    await task
    assert app.requests[1].form["Digits"] == "36"


RE_SID = re.compile(r"RE[0-9a-f]{32}")


async def test_record_params_file_and_status_callback(
    app: AppServer, call: FakeCall, signed: InterpreterSettings
) -> None:
    app.twiml("/saved", DONE)
    app.twiml("/rsc", "")
    call.recordings = [RecordingResult(Path(), 2.4, "digit", "#")]
    r = VoiceResponse()
    r.record(
        action="/saved",
        max_length=30,
        timeout=3,
        finish_on_key="#",
        play_beep=False,
        trim="do-not-trim",
        recording_status_callback="/rsc",
    )
    await run(call, signed, app.twiml("/voice", str(r)))
    [record] = [e for e in call.events if e[0] == "record"]
    sid = str(record[1]).removesuffix(".wav")
    assert RE_SID.fullmatch(sid)
    assert record[2:] == (30.0, 3.0, "#", False, False)
    assert (signed.recordings_dir / f"{sid}.wav").stat().st_size == 44 + 2 * int(2.4 * 8000)  # type: ignore[operator]
    assert sorted(app.paths()) == ["/rsc", "/saved", "/voice"]
    [action] = [x for x in app.requests if x.path == "/saved"]
    assert action.form["RecordingUrl"] == f"{BASE}/2010-04-01/Accounts/{ACCOUNT}/Recordings/{sid}"
    assert action.form["RecordingSid"] == sid
    assert action.form["RecordingDuration"] == "2" and action.form["Digits"] == "#"
    [rsc] = [x for x in app.requests if x.path == "/rsc"]
    assert rsc.form["RecordingStatus"] == "completed" and rsc.form["RecordingSid"] == sid
    assert rsc.form["RecordingDuration"] == "2" and rsc.form["RecordingSource"] == "RecordVerb"
    assert says(call) == ["done"]


async def test_record_defaults_and_no_action(
    app: AppServer, call: FakeCall, signed: InterpreterSettings
) -> None:
    call.recordings = [RecordingResult(Path(), 5.0, "silence"), RecordingResult(Path(), 0.0, "silence")]
    r = VoiceResponse()
    r.record()
    r.say("after")
    await run(call, signed, app.twiml("/voice", str(r)))
    first, second = (e for e in call.events if e[0] == "record")
    assert first[2:] == (3600.0, 5.0, "1234567890*#", True, True)
    assert app.paths() == ["/voice", "/voice"]  # posted back to the document; the empty second goes on
    assert app.requests[1].form["RecordingDuration"] == "5" and "Digits" not in app.requests[1].form
    assert says(call) == ["after"]


async def test_record_hangup_still_requests_the_action(
    app: AppServer, call: FakeCall, signed: InterpreterSettings
) -> None:
    app.twiml("/saved", DONE)
    call.recordings = [RecordingResult(Path(), 3.0, "silence")]
    call.record_gate = asyncio.Event()
    r = VoiceResponse()
    r.record(action="/saved")
    async with WebhookClient(signed) as client:
        task = asyncio.ensure_future(Interpreter(call, signed, client).run(app.twiml("/voice", str(r))))
        await call.recording_started.wait()
        call.ended.set()
        await task
    assert app.paths() == ["/voice", "/saved"]
    form = app.requests[1].form
    assert form["Digits"] == "hangup" and form["CallStatus"] == "completed"
    assert says(call) == []  # what the action answered is not run


async def test_record_without_recordings_dir_is_skipped(app: AppServer, call: FakeCall) -> None:
    settings = InterpreterSettings(account_sid=ACCOUNT, auth_token=TOKEN)
    r = VoiceResponse()
    r.record()
    r.say("after")
    interpreter = await run(call, settings, app.twiml("/voice", str(r)))
    assert says(call) == ["after"] and [e[0] for e in interpreter.errors] == [12200]


async def test_a_finished_recording_is_told_to_on_recording(
    app: AppServer, call: FakeCall, signed: InterpreterSettings
) -> None:
    told: list[tuple[str, str, Path, float, float]] = []
    settings = dataclasses.replace(signed, on_recording=lambda *args: told.append(args))
    app.twiml("/saved", DONE)
    call.recordings = [RecordingResult(Path(), 2.4, "silence", None)]
    r = VoiceResponse()
    r.record(action="/saved", play_beep=False)
    await run(call, settings, app.twiml("/voice", str(r)))
    [(call_sid, sid, path, duration, started)] = told
    assert call_sid == call.sid and RE_SID.fullmatch(sid)
    assert path == signed.recordings_dir / f"{sid}.wav"  # type: ignore[operator]
    assert duration == 2.4 and started > 0
