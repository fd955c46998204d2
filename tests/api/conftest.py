"""An API server in the test's loop over a real SQLite store and a fake call service, driven by the twilio
library (its synchronous client, run in a worker thread so the server keeps serving)."""

from __future__ import annotations

import asyncio
import time
import uuid
import wave
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from twilio.rest import Client

from switch.api.server import ApiServer
from switch.calls.conferences import ConferenceManager
from switch.calls.queues import QueueManager
from switch.media.recorder import RecordingResult
from switch.store import SQLiteStore

AC = "AC" + "ab" * 16
TOKEN = "secret-token-0123456789"


class FakeCall:
    direction = "outbound-api"

    def __init__(self, to: str, from_: str) -> None:
        self.sid = "CA" + uuid.uuid4().hex
        self.account_sid = AC
        self.to = to
        self.from_ = from_
        self.caller_name = ""
        self.sip_call_id = "x@test"
        self.status = "queued"
        self.parent_call_sid: str | None = None
        self.started_at = time.time()
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.ended = asyncio.Event()
        self.digits_sent: list[tuple[str, float]] = []
        self.recording_to: Path | None = None

    async def send_digits(self, digits: str) -> None:
        self.digits_sent.append((digits, time.monotonic()))

    async def record(self, path: Path, **options: Any) -> RecordingResult:
        """Records until the call ends: then writes one second of a 440 Hz tone to ``path``."""
        self.recording_to = path
        await self.ended.wait()
        t = np.arange(8000) / 8000
        pcm = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(pcm.tobytes())
        return RecordingResult(path, 1.0, "closed", None)

    @property
    def duration(self) -> int:
        if self.answered_at is None:
            return 0
        return int(round((self.ended_at or time.time()) - self.answered_at))


@dataclass
class Binding:
    contact: str
    transport: str = "UDP"


@dataclass
class FakeRegistrar:
    users: dict[str, list[Binding]] = field(default_factory=dict)

    def contacts(self, user: str, now: float) -> list[Binding]:
        return self.users.get(user, [])


@dataclass
class FakeService:
    calls: dict[str, Any] = field(default_factory=dict)
    queues: QueueManager = field(default_factory=QueueManager)
    conferences: ConferenceManager = field(default_factory=ConferenceManager)
    registrar: FakeRegistrar = field(default_factory=FakeRegistrar)
    listeners: list[Callable[[Any, str], None]] = field(default_factory=list)
    originated: list[dict[str, Any]] = field(default_factory=list)
    redirects: list[tuple[str, str | None, str | None, str]] = field(default_factory=list)

    def add_listener(self, callback: Callable[[Any, str], None]) -> None:
        self.listeners.append(callback)

    def set_status(self, call: FakeCall, status: str) -> None:
        call.status = status
        if status == "in-progress":
            call.answered_at = time.time()
        if status in ("completed", "canceled", "busy", "failed", "no-answer"):
            call.ended_at = time.time()
            self.calls.pop(call.sid, None)
            call.ended.set()
        for listener in self.listeners:
            listener(call, status)

    async def originate(
        self,
        *,
        to: str,
        from_: str,
        url: str | None,
        twiml: str | None,
        method: str = "POST",
        fallback_url: str | None = None,
        status_callback: str | None = None,
        status_callback_event: Iterable[str] = ("completed",),
        status_callback_method: str = "POST",
        timeout: int = 60,
    ) -> FakeCall:
        if not to.startswith("sip:"):
            raise ValueError("not a SIP URI")
        self.originated.append(
            {
                "to": to,
                "from_": from_,
                "url": url,
                "twiml": twiml,
                "method": method,
                "fallback_url": fallback_url,
                "status_callback": status_callback,
                "events": tuple(status_callback_event),
                "timeout": timeout,
            }
        )
        call = FakeCall(to, from_)
        self.calls[call.sid] = call
        for listener in self.listeners:
            listener(call, "queued")
        return call

    async def redirect(
        self, call: FakeCall, *, url: str | None, twiml: str | None, method: str = "POST"
    ) -> None:
        self.redirects.append((call.sid, url, twiml, method))

    async def hangup(self, call: FakeCall) -> None:
        self.set_status(call, "completed" if call.status == "in-progress" else "canceled")


@dataclass
class Api:
    server: ApiServer
    service: FakeService
    store: SQLiteStore
    base_url: str

    def client(self, account_sid: str = AC, token: str = TOKEN) -> Client:
        client = Client(account_sid, token)
        client.api.base_url = self.base_url
        return client

    async def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(function, *args, **kwargs)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    store = SQLiteStore(tmp_path / "switch.db")
    await store.open()
    service = FakeService()
    server = ApiServer(
        service,  # type: ignore[arg-type]
        store,
        account_sid=AC,
        auth_token=TOKEN,
        data_dir=tmp_path,
        host="127.0.0.1",
        port=0,
    )
    await server.start()
    try:
        yield Api(server, service, store, f"http://127.0.0.1:{server.bound_port}")
    finally:
        await server.stop()
        await store.close()
