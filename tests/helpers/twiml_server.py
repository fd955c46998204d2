"""A TwiML application server for end-to-end tests.

aiohttp.web on 127.0.0.1 (a socket bound here, so the port is known before the server starts), running in its
own thread with its own event loop so that synchronous pytest tests can use it. Every request is recorded
(method, path, headers, query and form parameters, blank values kept) before it is answered.

Routes map a path to a responder: a TwiML string, a `Reply`, or a function of the `RecordedRequest` returning
either. `dispatch_by_to(path)` makes a path answer by the user part of the `To` parameter, so one switch
pointed at `/voice` serves many tests at once, each with its own user (`sip:say-udp@...`).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType

from aiohttp import web

__all__ = ["RecordedRequest", "Reply", "Responder", "TwimlServer", "user_of"]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the server saw it; `params` merges query and form (form wins), first value per name."""

    method: str
    path: str
    headers: Mapping[str, str]
    query: tuple[tuple[str, str], ...]
    form: tuple[tuple[str, str], ...]
    received_at: float

    @property
    def params(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for name, value in (*self.form, *self.query):
            merged.setdefault(name, value)
        return merged

    @property
    def to_user(self) -> str:
        return user_of(self.params.get("To", ""))


@dataclass(frozen=True, slots=True)
class Reply:
    """What to answer: status, body, content type, and a delay before answering (a slow application)."""

    body: str = ""
    status: int = 200
    content_type: str = "application/xml"
    delay: float = 0.0


Responder = str | Reply | Callable[[RecordedRequest], "str | Reply"]


def user_of(uri: str) -> str:
    """The user part of a SIP URI (`sip:say@127.0.0.1:5060` -> `say`); '' when there is none."""
    rest = uri.strip().strip("<>")
    for scheme in ("sips:", "sip:", "tel:", "client:"):
        if rest.lower().startswith(scheme):
            rest = rest[len(scheme) :]
            break
    if "@" not in rest:
        return rest if uri.lower().startswith("tel:") else ""
    return rest.split("@", 1)[0].split(";", 1)[0]


def _reply_of(responder: Responder, request: RecordedRequest) -> Reply:
    result = responder(request) if callable(responder) else responder
    return Reply(body=result) if isinstance(result, str) else result


@dataclass
class _State:
    routes: dict[str, Responder] = field(default_factory=dict)
    users: dict[str, dict[str, Responder]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)


class TwimlServer:
    """Serve TwiML on 127.0.0.1 from a background thread; use as a context manager or start()/stop()."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self.port: int = self._sock.getsockname()[1]
        self._state = _State()
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- configuration (any thread) ---------------------------------------------------------------------
    def url(self, path: str = "/voice") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def route(self, path: str, responder: Responder) -> None:
        """Answer `path` with `responder`."""
        with self._cond:
            self._state.routes[path] = responder

    def dispatch_by_to(self, path: str = "/voice") -> None:
        """Make `path` answer by the To user; register users with `on_user`. Unknown users get 404."""
        with self._cond:
            self._state.users.setdefault(path, {})

    def on_user(self, user: str, responder: Responder, path: str = "/voice") -> None:
        """When `path` dispatches by To, answer calls to `user` with `responder`."""
        with self._cond:
            self._state.users.setdefault(path, {})[user] = responder

    # -- what was received ------------------------------------------------------------------------------
    def requests(self, path: str | None = None, user: str | None = None) -> list[RecordedRequest]:
        """Requests received so far, oldest first, optionally only those for `path` and/or To `user`."""
        with self._cond:
            found = list(self._state.requests)
        return [r for r in found if (path is None or r.path == path) and (user is None or r.to_user == user)]

    def wait_for_requests(
        self, count: int, *, path: str | None = None, user: str | None = None, timeout: float = 10.0
    ) -> list[RecordedRequest]:
        """Block until at least `count` matching requests arrived (or `timeout`); return what arrived."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self.requests(path, user)
                remaining = deadline - time.monotonic()
                if len(found) >= count or remaining <= 0:
                    return found
                self._cond.wait(remaining)

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> TwimlServer:
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(loop, ready), name="twiml-server", daemon=True
        )
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("TwiML server did not start")
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            self._sock.close()
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._sock.close()
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> TwimlServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- the server thread ------------------------------------------------------------------------------
    def _serve(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.SockSite(runner, self._sock).start())
        self._runner = runner
        ready.set()
        loop.run_forever()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        form: tuple[tuple[str, str], ...] = ()
        if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
            body = await request.post()
            form = tuple((k, v) for k, v in body.items() if isinstance(v, str))
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            headers=dict(request.headers),
            query=tuple(request.query.items()),
            form=form,
            received_at=time.monotonic(),
        )
        with self._cond:
            self._state.requests.append(recorded)
            responder = self._state.routes.get(request.path)
            users = self._state.users.get(request.path)
            if responder is None and users is not None:
                responder = users.get(recorded.to_user)
            self._cond.notify_all()
        if responder is None:
            return web.Response(status=404, text="no route in the test server\n")
        reply = _reply_of(responder, recorded)
        if reply.delay > 0:
            await asyncio.sleep(reply.delay)
        return web.Response(status=reply.status, text=reply.body, content_type=reply.content_type)
