"""The HTTP server of the REST API: aiohttp on ``--http-port``, in the switch's own event loop.

Every path under ``/2010-04-01/`` needs HTTP Basic authentication with the AccountSid and auth token
(recording media excepted, see `switch.api.resources`). Errors of any kind leave as Twilio error JSON.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from switch.api import calls, conferences, notifications, queues, resources
from switch.api.auth import credentials_match
from switch.api.context import CONTEXT, ApiContext
from switch.api.errors import ApiError, error_body
from switch.api.openapi import openapi_document
from switch.api.records import CallRecords
from switch.calls.service import CallService
from switch.store.base import Store

log = logging.getLogger("switch.api")

PREFIX = "/2010-04-01/Accounts/{account_sid}"
_PUBLIC_MEDIA = re.compile(r"^/2010-04-01/Accounts/AC[0-9a-f]{32}/Recordings/RE[0-9a-f]{32}(\.wav|\.mp3)?$")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(code: int, message: str, status: int) -> web.Response:
    response = web.json_response(error_body(code, message, status), status=status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="switch"'
    return response


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(exc.code, exc.message, exc.status)
    except web.HTTPMethodNotAllowed:
        return _error(20004, f"Method {request.method} not allowed on {request.path}", 405)
    except web.HTTPNotFound:
        return _error(20404, f"The requested resource {request.path} was not found", 404)
    except web.HTTPException as exc:
        return _error(exc.status * 100 if exc.status >= 400 else 20500, exc.reason, exc.status)
    except Exception:
        log.exception("API request failed: %s %s", request.method, request.path)
        return _error(20500, "Internal server error", 500)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/2010-04-01/") and not (
        request.method in ("GET", "HEAD")
        and request.app[CONTEXT].public_recordings
        and _PUBLIC_MEDIA.match(request.path)
    ):
        context = request.app[CONTEXT]
        if not credentials_match(
            request.headers.get("Authorization"), context.account_sid, context.auth_token
        ):
            raise ApiError(20003, "Authenticate", 401)
    return await handler(request)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


MetricsSource = Callable[[], tuple[bytes, str]]
"""Returns the Prometheus exposition text and its content type."""


def create_app(context: ApiContext, metrics: MetricsSource | None = None) -> web.Application:
    app = web.Application(middlewares=[errors_middleware, auth_middleware], client_max_size=1024 * 1024)
    app[CONTEXT] = context
    app.router.add_get("/openapi.json", openapi)
    if metrics is not None:
        source = metrics

        async def serve_metrics(request: web.Request) -> web.Response:
            body, content_type = source()
            return web.Response(body=body, headers={"Content-Type": content_type})

        app.router.add_get("/metrics", serve_metrics)
    calls.add_routes(app, PREFIX)
    resources.add_routes(app, PREFIX)
    queues.add_routes(app, PREFIX)
    conferences.add_routes(app, PREFIX)
    notifications.add_routes(app, PREFIX)
    return app


class ApiServer:
    """Owns the HTTP listener; ``start()`` also registers the call-record listener with the call service."""

    def __init__(
        self,
        service: CallService,
        store: Store,
        *,
        account_sid: str,
        auth_token: str,
        data_dir: Path,
        host: str,
        port: int,
        metrics: MetricsSource | None = None,
        public_recordings: bool = True,
        public_base_url: str | None = None,
    ) -> None:
        self.metrics = metrics
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        """Where webhooks reach this server (``--public-base-url``): RecordingUrl starts with it."""
        records = CallRecords(store)
        self.context = ApiContext(
            account_sid, auth_token, service, store, records, data_dir, public_recordings=public_recordings
        )
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self.records = records
        service.add_listener(records.on_status)
        service.add_listener(self.context.answers.on_status)
        service.add_listener(self.context.conferences.on_status)
        service.conferences.add_listener(self.context.conferences.on_event)

    @property
    def bound_port(self) -> int:
        """The port actually listened on (useful with ``port=0``)."""
        assert self._runner is not None
        for site in self._runner.sites:
            server = getattr(site, "_server", None)
            if server is not None and server.sockets:
                port: int = server.sockets[0].getsockname()[1]
                return port
        return self.port

    async def start(self) -> None:
        ended = await self.context.store.end_unfinished_calls()
        if ended:
            log.warning("%d calls of an earlier run had no end (a crash?): recorded as ended", ended)
        await queues.load_queues(self.context)
        self._runner = web.AppRunner(
            create_app(self.context, self.metrics), access_log=None, handle_signals=False
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, reuse_address=True).start()
        self.context.answers.base_url = self.public_base_url or f"http://{self.host}:{self.bound_port}"
        log.info("REST API on http://%s:%d/2010-04-01/", self.host, self.bound_port)

    async def stop(self) -> None:
        await self.context.answers.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
