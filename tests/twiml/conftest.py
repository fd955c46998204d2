"""Fixtures for the TwiML tests: a fake call (the interpreter's only fake) and a real HTTP app server."""

from __future__ import annotations

import asyncio
import io
import uuid
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web
from numpy.typing import NDArray
from twilio.request_validator import RequestValidator

from switch.twiml.fetch import WebhookClient
from switch.twiml.session import InterpreterSettings

ACCOUNT = "AC" + "0" * 32


def wav_bytes(pcm: NDArray[np.int16], rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    return buf.getvalue()


class FakeCall:
    """Records what the interpreter asks of the call. ``play(loop=0)`` blocks until cancelled."""

    def __init__(self) -> None:
        self.sid = "CA" + uuid.uuid4().hex
        self.account_sid = ACCOUNT
        self.parent_call_sid: str | None = None
        self.from_ = "sip:alice@127.0.0.1"
        self.to = "sip:demo@127.0.0.1"
        self.caller_name = "Alice"
        self.sip_call_id = "abc123@127.0.0.1"
        self.sip_source_ip = ""
        self.sip_headers: dict[str, str] = {}
        self.forwarded_from = ""
        self.direction = "inbound"
        self.answered = False
        self.ended = asyncio.Event()
        self.events: list[tuple[object, ...]] = []
        self.played: list[NDArray[np.int16]] = []
        self.playing_forever = asyncio.Event()
        self.cancelled_play = False
        self.digits: asyncio.Queue[str] = asyncio.Queue()
        self.recordings: list[RecordingResult] = []
        """What ``record`` returns, in order (the test sets them); the recorder writes ``path``."""
        self.record_gate: asyncio.Event | None = None
        """When set to an event, ``record`` waits for it (or for the call to end: ended_by "closed")."""
        self.sent_digits: list[str] = []
        self.recording_started = asyncio.Event()
        self.answered_event = asyncio.Event()
        self.duration = 7
        self.sip_response_code: int | None = 200
        self.on_play: list[str] = []
        """Digits pushed into ``digits`` when the next prompts start, one string per play (barge-in)."""

    async def ringing(self) -> None:
        self.events.append(("ringing",))

    async def answer(self) -> None:
        if not self.answered:
            self.answered = True
            self.answered_event.set()
            self.events.append(("answer",))

    async def reject(self, status: int) -> None:
        self.events.append(("reject", status))

    async def hangup(self) -> None:
        self.events.append(("hangup",))

    async def play(self, pcm: NDArray[np.int16], loop: int = 1) -> None:
        self.events.append(("play", len(pcm), loop))
        self.played.append(pcm)
        if self.on_play:
            for digit in self.on_play.pop(0):
                self.digits.put_nowait(digit)
            await asyncio.Event().wait()  # a long prompt: only barge-in (cancellation) ends it
        if loop == 0:
            self.playing_forever.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled_play = True
                raise

    async def say(self, text: str, voice: str | None, language: str | None) -> NDArray[np.int16]:
        self.events.append(("say", text, voice, language))
        return np.ones(len(text) * 10, dtype=np.int16)

    async def decode(self, data: bytes) -> NDArray[np.int16]:
        try:
            with wave.open(io.BytesIO(data), "rb") as w:
                frames = w.readframes(w.getnframes())
        except (wave.Error, EOFError) as exc:
            raise ValueError(f"not a WAV: {exc}") from exc
        return np.frombuffer(frames, dtype="<i2").astype(np.int16)

    async def record(
        self,
        path: Path,
        *,
        max_length: float,
        silence_timeout: float | None,
        finish_on_digits: str,
        trim_silence: bool,
        beep: bool,
    ) -> RecordingResult:
        self.events.append(
            ("record", path.name, max_length, silence_timeout, finish_on_digits, trim_silence, beep)
        )
        result = self.recordings.pop(0)
        self.recording_started.set()
        audio = wav_bytes(np.zeros(int(result.duration * 8000), dtype=np.int16))
        await asyncio.to_thread(path.write_bytes, audio)
        if self.record_gate is not None:
            gate = asyncio.ensure_future(self.record_gate.wait())
            ended = asyncio.ensure_future(self.ended.wait())
            try:
                await asyncio.wait((gate, ended), return_when=asyncio.FIRST_COMPLETED)
            finally:
                gate.cancel()
                ended.cancel()
            if self.ended.is_set():
                return RecordingResult(path, result.duration, "closed", None)
        return RecordingResult(path, result.duration, result.ended_by, result.digit)

    async def send_digits(self, digits: str) -> None:
        self.sent_digits.append(digits)

    async def echo(self) -> None:
        self.events.append(("echo",))
        await self.ended.wait()

    def kinds(self) -> list[object]:
        return [e[0] for e in self.events]


@dataclass(frozen=True)
class RecordingResult:
    """The shape of switch.media.recorder.RecordingResult."""

    path: Path
    duration: float
    ended_by: str
    digit: str | None = None


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]
    content_type: str
    signed: bool | None = None
    """With ``AppServer.token``: did RequestValidator accept the signature?"""


@dataclass
class AppServer:
    """A real aiohttp server on 127.0.0.1 (free port) serving fixed responses and recording requests."""

    port: int = 0
    routes: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)
    requests: list[Recorded] = field(default_factory=list)
    token: str | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def twiml(self, path: str, body: str, *, status: int = 200, ctype: str = "application/xml") -> str:
        self.routes[path] = (status, ctype, body.encode())
        return self.url(path)

    def file(self, path: str, body: bytes, ctype: str) -> str:
        self.routes[path] = (200, ctype, body)
        return self.url(path)

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        signed = None
        if self.token is not None:
            signature = request.headers.get("X-Twilio-Signature", "")
            signed = RequestValidator(self.token).validate(str(request.url), form, signature)
        self.requests.append(
            Recorded(
                request.method,
                request.path,
                dict(request.query),
                form,
                dict(request.headers),
                request.content_type,
                signed,
            )
        )
        if request.path in self.hang:
            await asyncio.Event().wait()
        status, ctype, body = self.routes.get(request.path, (404, "text/plain", b"not found"))
        return web.Response(status=status, body=body, content_type=ctype)


@pytest.fixture
async def server() -> AsyncIterator[AppServer]:
    app_server = AppServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", app_server.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert runner.addresses
    app_server.port = runner.addresses[0][1]
    yield app_server
    await runner.cleanup()


@pytest.fixture
def settings() -> InterpreterSettings:
    return InterpreterSettings(account_sid=ACCOUNT, connect_timeout=2.0, response_timeout=5.0)


@pytest.fixture
async def client(settings: InterpreterSettings) -> AsyncIterator[WebhookClient]:
    async with WebhookClient(settings) as c:
        yield c


@pytest.fixture
def call() -> FakeCall:
    return FakeCall()
