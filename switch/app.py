"""The running switch: wires the SIP core, its transport, media, TTS, call control and TwiML together.

Shutdown: the first SIGTERM drains (new INVITEs get 503, calls in progress go on for up to
``drain_timeout``, then BYE); SIGINT or a second SIGTERM sends BYE to every call at once and exits.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
import signal
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from switch.api import ApiServer, auth_token_for
from switch.api.notifications import keep_notification
from switch.calls.call import Call
from switch.calls.dtmf import INFO_CONTENT_TYPES
from switch.calls.manager import CallManager
from switch.config import Settings
from switch.dialplan import Dialplan, load_dialplan, with_dial_policy
from switch.media.control import MediaControl
from switch.media.engine import MediaEngine
from switch.media.tts import TextToSpeech
from switch.media.workers import WorkerMediaEngine
from switch.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from switch.metrics import Metrics
from switch.overload import LagMonitor, LagTracker
from switch.security.guard import SourceGuard, guard_settings_from
from switch.sip.core import CoreSettings, SipCore
from switch.sip.events import RequestReceived, ResponseReceived
from switch.sip.message import Request, Response
from switch.sip.timers import TimerSettings
from switch.store import SQLiteStore, Store
from switch.store.records import RecordingRecord
from switch.transport.sip import SipTransport
from switch.twiml.callbacks import StatusCallbacks
from switch.twiml.fetch import WebhookClient
from switch.twiml.interpreter import Interpreter
from switch.twiml.session import InterpreterSettings
from switch.twiml.urls import DEMO_URL

log = logging.getLogger("switch")

ALLOWED_METHODS = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "REGISTER"})
ACCEPTED_CONTENT_TYPES = frozenset({"application/sdp"}) | INFO_CONTENT_TYPES


def account_sid_for(settings: Settings) -> str:
    """The configured AccountSid, or one generated on first start and kept in the data directory."""
    if settings.account_sid:
        return settings.account_sid
    path = settings.data_dir / "account_sid"
    try:
        existing = path.read_text().strip()
        if existing.startswith("AC") and len(existing) == 34:
            return existing
    except OSError:
        pass
    sid = "AC" + uuid.uuid4().hex
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sid + "\n")
    return sid


class CoreActions:
    """Call control's view of the SIP core: act on it with the loop's clock, then let the transport flush."""

    def __init__(self, core: SipCore, transport: SipTransport) -> None:
        self.core = core
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        self.on_response: Callable[[int, str], None] | None = None
        """Told of every response sent (status, "sent"): the metrics."""

    def respond(self, event: RequestReceived, response: Response) -> str | None:
        """Send a response; for a 2xx to an INVITE, return the id of the dialog it established."""
        sent = self.core.respond(event, response, self.loop.time())
        self.transport.flush()
        if sent and self.on_response is not None:
            self.on_response(response.status, "sent")
        if not sent or event.request.method != "INVITE" or not 200 <= response.status < 300:
            return None
        return self.core.dialog_id_of(event.transaction_id)

    def send_request(self, request: Request, destination: tuple[str, int], transport: str) -> str:
        transaction_id = self.core.send_request(request, destination, self.loop.time(), transport)
        self.transport.flush()
        return transaction_id

    def cancel(self, transaction_id: str) -> str | None:
        cancel_id = self.core.cancel(transaction_id, self.loop.time())
        self.transport.flush()
        return cancel_id

    def send_in_dialog(
        self, dialog_id: str, method: str, *, body: bytes = b"", headers: Iterable[tuple[str, str]] = ()
    ) -> str:
        transaction_id = self.core.send_in_dialog(
            dialog_id, method, self.loop.time(), body=body, headers=headers
        )
        self.transport.flush()
        return transaction_id


def dialplan_for(settings: Settings) -> Dialplan:
    """The ``--dialplan`` file; with neither it nor ``--twiml-url``, the demo dialplan of the package."""
    if settings.dialplan is not None:
        return load_dialplan(settings.dialplan)
    if settings.twiml_url:
        return Dialplan()
    with importlib.resources.as_file(importlib.resources.files("switch") / "dialplans" / "demo.toml") as path:
        return load_dialplan(path)


def _keep_recording(
    store: Store, account_sid: str, call_sid: str, sid: str, path: Path, duration: float, started: float
) -> None:
    now = time.time()
    store.add_recording(
        RecordingRecord(sid, account_sid, call_sid, str(path), int(round(duration)), started, now, now)
    )


class StatusCallbackRouter:
    """Posts each call's status changes to its statusCallback (REST or dialplan route), or to
    ``--status-callback`` for inbound calls that have none of their own."""

    def __init__(self, client: WebhookClient, settings: Settings) -> None:
        self.client = client
        self.default = (
            (settings.status_callback, tuple(settings.status_callback_event), "POST")
            if settings.status_callback
            else None
        )
        self._senders: dict[tuple[str, tuple[str, ...], str], StatusCallbacks] = {}

    def listener(self, call: Call, status: str) -> None:
        if call.status_callback:
            key = (call.status_callback, tuple(call.status_callback_events), call.status_callback_method)
        elif self.default is not None and call.direction == "inbound":
            key = self.default
        else:
            return
        sender = self._senders.get(key)
        if sender is None:
            sender = self._senders[key] = StatusCallbacks(self.client, key[0], key[1], key[2])
        sender.listener(call, status)


def media_engine_for(settings: Settings) -> MediaControl:
    """In process with ``--media-workers 0``; otherwise that many worker processes (-1, the default: one
    per core but one, at least one)."""
    if settings.media_workers == 0:
        return MediaEngine(
            settings.host,
            settings.rtp_ports,
            egress_allowed=settings.egress_allowed,
            rtp_timeout=settings.rtp_timeout,
            shared_port=settings.rtp_shared_port,
        )
    return WorkerMediaEngine(
        settings.host,
        settings.rtp_ports,
        workers=settings.media_workers if settings.media_workers > 0 else None,
        egress_allowed=settings.egress_allowed,
        rtp_timeout=settings.rtp_timeout,
        shared_port=settings.rtp_shared_port,
    )


class Switch:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stopping = asyncio.Event()
        self.terminations = 0
        self.manager: CallManager | None = None
        self.store: Store | None = None
        self.ready = asyncio.Event()

    async def run(self) -> None:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        account_sid = account_sid_for(settings)
        auth_token = auth_token_for(settings.auth_token, settings.data_dir)
        media = media_engine_for(settings)
        await media.start()
        tts = TextToSpeech(voice_model=settings.tts_model)
        store = SQLiteStore(settings.data_dir / "switch.db")
        await store.open()
        self.store = store
        interpreter_settings = InterpreterSettings(
            account_sid=account_sid,
            connect_timeout=settings.webhook_connect_timeout,
            response_timeout=settings.webhook_timeout,
            cache_dir=settings.data_dir / "cache",
            auth_token=auth_token,
            fallback_url=settings.fallback_url,
            public_base_url=settings.public_base_url or f"http://{settings.host}:{settings.http_port}",
            recordings_dir=settings.data_dir / "recordings",
            egress_allowed=settings.egress_allowed if settings.egress_allow else None,
            on_error=partial(keep_notification, store, account_sid),
            on_recording=partial(_keep_recording, store, account_sid),
        )
        client = WebhookClient(interpreter_settings)
        core = SipCore(
            CoreSettings(
                timers=TimerSettings(t1=settings.t1, t2=settings.t2, t4=settings.t4),
                local_host=settings.host,
                local_port=settings.sip_port,
                force_rport=settings.force_rport,
                allowed_methods=ALLOWED_METHODS,
                accepted_content_types=ACCEPTED_CONTENT_TYPES,
            )
        )
        app_url = settings.twiml_url or DEMO_URL

        async def run_call(call: Call, url: str, method: str, twiml: bytes | None) -> None:
            interpreter = Interpreter(call, interpreter_settings, client)
            await interpreter.run(url, method=method, twiml=twiml, fallback_url=call.fallback_url)

        manager: CallManager | None = None
        metrics = Metrics()
        metrics.watch_media(media)
        interpreter_settings.on_webhook = metrics.observe_webhook

        def on_event(event: object) -> None:
            assert manager is not None
            if type(event) is ResponseReceived:
                metrics.observe_sip_response(event.response.status, "received")
            manager.handle_event(event)  # type: ignore[arg-type]

        guard = SourceGuard(guard_settings_from(settings))
        metrics.watch_guard(lambda: guard.counts)
        transport = SipTransport(core, on_event, egress_allowed=settings.egress_allowed, guard=guard)
        actions = CoreActions(core, transport)
        actions.on_response = metrics.observe_sip_response
        manager = CallManager(
            actions,
            media,
            tts,
            run_call,
            account_sid=account_sid,
            contact_host=settings.host,
            contact_port=settings.sip_port,
            app_url=app_url,
            egress_allowed=settings.egress_allowed,
            max_calls=settings.max_calls,
            allowed_methods=ALLOWED_METHODS,
            dialplan=with_dial_policy(dialplan_for(settings), settings.dial_allow, settings.dial_deny),
        )
        self.manager = manager
        metrics.watch_calls(manager)
        lag = LagMonitor(
            LagTracker(threshold=settings.max_loop_lag or 0.05), on_sample=metrics.observe_loop_lag
        )
        lag.start()
        if settings.max_loop_lag > 0:
            manager.overloaded = lag.overloaded
        api = ApiServer(
            manager,
            store,
            account_sid=account_sid,
            auth_token=auth_token,
            data_dir=settings.data_dir,
            host=settings.host,
            port=settings.http_port,
            metrics=lambda: (metrics.exposition(), METRICS_CONTENT_TYPE),
            public_recordings=not settings.recordings_auth,
            public_base_url=settings.public_base_url,
        )
        # Status callbacks hear of a call's end once its record is committed (issue 7).
        manager.add_listener(api.records.after_commit(StatusCallbackRouter(client, settings).listener))
        api.context.answers.sender = client.send  # RecordingStatusCallback of Calls.json Record=true
        await api.start()
        await transport.start(settings.host, settings.sip_port)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._on_sigterm)
        loop.add_signal_handler(signal.SIGINT, self._on_sigint)
        log.info(
            "switch ready sip=udp+tcp://%s:%d http=%d rtp=%d-%d application=%s AccountSid=%s",
            settings.host,
            settings.sip_port,
            settings.http_port,
            settings.rtp_ports[0],
            settings.rtp_ports[1],
            app_url,
            account_sid,
        )
        self.ready.set()
        await self.stopping.wait()
        if self.terminations == 1:
            log.info("SIGTERM: draining %d calls (up to %.1f s)", len(manager.calls), settings.drain_timeout)
            drain = asyncio.create_task(manager.drain(settings.drain_timeout))
            self.stopping.clear()
            stop = asyncio.create_task(self.stopping.wait())
            await asyncio.wait({drain, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
        manager.hangup_all()
        # Give the BYEs a moment to leave and be answered.
        try:
            await asyncio.wait_for(manager.all_ended.wait(), 2.0)
        except TimeoutError:
            pass
        await asyncio.sleep(0.05)
        lag.stop()
        # Each step is bounded: a step that stalls (a dead worker's reply that never comes, an HTTP handler
        # that never returns) is logged by name and skipped, so the switch always exits.
        await _bounded("api", api.stop())
        await _bounded("transport", transport.stop())
        await _bounded("media", media.stop())
        await _bounded("webhook client", client.close())
        await _bounded("store", store.close())
        log.info("switch stopped")

    def _on_sigterm(self) -> None:
        self.terminations += 1
        self.stopping.set()

    def _on_sigint(self) -> None:
        self.terminations += 2
        self.stopping.set()


_STEP_TIMEOUT = 10.0


async def _bounded(name: str, step: Coroutine[Any, Any, None], timeout: float = _STEP_TIMEOUT) -> None:
    """Await one shutdown step for at most ``timeout`` seconds; log it at ERROR if it stalls or fails."""
    try:
        await asyncio.wait_for(step, timeout)
    except TimeoutError:
        log.error("shutdown: %s did not stop within %.0f s; going on", name, timeout)
    except Exception:
        log.exception("shutdown: %s failed to stop; going on", name)
