"""A call's TwiML session: fetch, parse, run the verbs, follow Redirect, apply Twilio's error rules."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from switch.twiml.errors import (
    APPLICATION_ERROR,
    HTTP_RETRIEVAL_FAILURE,
    INVALID_URL,
    TwimlError,
    error_sink,
    report,
    session_call_sid,
)
from switch.twiml.fetch import WebhookClient
from switch.twiml.parser import Document, parse_twiml
from switch.twiml.session import Action, CallControl, CallEnd, InterpreterSettings, Outcome, RunContext
from switch.twiml.urls import UrlKind, is_local, url_kind
from switch.twiml.verbs import Reject

__all__ = ["API_VERSION", "Interpreter"]

API_VERSION = "2010-04-01"
INLINE_URL = "twiml:inline"
log = logging.getLogger("switch.twiml")


class Interpreter:
    """One TwiML session for one call. ``run`` returns when the session is over (the call is hung up).

    Errors follow Twilio: a document that cannot be fetched or parsed makes the session request the
    FallbackUrl (with ErrorCode and ErrorUrl); when there is none, or it fails too, the caller hears the
    application-error prompt and the call is hung up. Every error is logged with the CallSid, kept in
    ``errors`` and told to ``settings.on_error``.
    """

    def __init__(self, call: CallControl, settings: InterpreterSettings, client: WebhookClient) -> None:
        self.call = call
        self.settings = settings
        self.client = client
        self.requests = 0
        self.redirects = 0
        """Documents requested in a row without the caller doing anything (the loop guard)."""
        self.errors: list[tuple[int, str, str]] = []
        """``(code, message, url)`` of every error and warning of this session, in order."""
        self.fallback_url = settings.fallback_url
        self.fallback_method = settings.fallback_method
        self._requested = ("", "")
        """(url, method) of the last document requested: the method of a failed request's notification."""

    def params(self) -> dict[str, str]:
        """The parameters Twilio sends on every request for this call, as of now."""
        call = self.call
        if call.ended.is_set():
            status = "completed"
        else:
            status = "in-progress" if call.answered else "ringing"
        params = {
            "CallSid": call.sid,
            "AccountSid": call.account_sid or self.settings.account_sid,
            "From": call.from_,
            "To": call.to,
            "Caller": call.from_,  # Twilio sends both spellings of the parties
            "Called": call.to,
            "CallStatus": status,
            "ApiVersion": API_VERSION,
            "Direction": call.direction,
            "CallerName": call.caller_name,
            "SipCallId": call.sip_call_id,
        }
        if call.parent_call_sid:
            params["ParentCallSid"] = call.parent_call_sid
        if call.sip_source_ip:
            params["SipSourceIp"] = call.sip_source_ip
        if call.forwarded_from:
            params["ForwardedFrom"] = call.forwarded_from
        for name, value in call.sip_headers.items():
            params["SipHeader_" + name] = value
        return params

    async def run(
        self,
        app_url: str,
        *,
        method: str = "POST",
        twiml: bytes | None = None,
        fallback_url: str | None = None,
        fallback_method: str | None = None,
    ) -> None:
        """Run the application at ``app_url`` (or the ``twiml`` given inline, as the REST API's ``Twiml``
        parameter does) until it ends or ``call.ended`` is set. ``fallback_url`` (a REST call's
        FallbackUrl, a route's fallback) replaces ``settings.fallback_url`` for this call."""
        if fallback_url:
            self.fallback_url = fallback_url
            self.fallback_method = fallback_method or "POST"
        ended = self.call.ended
        if ended.is_set():
            return
        session = asyncio.ensure_future(self._session(app_url, method, twiml))
        if isinstance(ended, CallEnd):  # the end cancels the session itself: no waiter task
            ended.add_callback(session.cancel)
            try:
                await session
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():  # run() itself was cancelled (and so the session)
                    raise
            finally:
                ended.remove_callback(session.cancel)
        else:
            waiter = asyncio.ensure_future(ended.wait())
            try:
                await asyncio.wait((session, waiter), return_when=asyncio.FIRST_COMPLETED)
            finally:  # also when run() itself is cancelled: then gather re-raises the cancellation
                session.cancel()
                waiter.cancel()
                await asyncio.gather(session, waiter, return_exceptions=True)
        if not session.cancelled() and session.exception() is not None:
            exc = session.exception()
            log.error("TwiML session of call %s failed", self.call.sid, exc_info=exc)
            await self.call.hangup()

    def _on_error(self, code: int, message: str, url: str) -> None:
        self.errors.append((code, message, url))
        if self.settings.on_error is not None:
            method = self._requested[1] if url and url == self._requested[0] else ""
            self.settings.on_error(self.call.sid, code, message, url, method)

    async def _session(self, app_url: str, method: str, twiml: bytes | None) -> None:
        error_sink.set(self._on_error)  # this task's context: every verb, and what verbs start
        session_call_sid.set(self.call.sid)
        call = self.call
        await call.ringing()
        if twiml is not None:
            document = await self._inline(twiml)
        else:
            document = await self._load(app_url, method, None, {})
        first = True
        while document is not None:
            if first and document.verbs and isinstance(document.verbs[0], Reject):
                await document.verbs[0].run(self._context(document))
                return
            first = False
            if not (document.verbs and document.verbs[0].answers_later):
                await call.answer()
            outcome = await self._execute(document)
            if outcome.action is Action.HANGUP:
                return
            if outcome.action is Action.NEXT:  # end of the document
                await call.hangup()
                return
            self.redirects = 0 if outcome.caller_input else self.redirects + 1
            if self.redirects > self.settings.max_redirects:
                limit = self.settings.max_redirects
                self._log_error(HTTP_RETRIEVAL_FAILURE, f"more than {limit} redirects in a row", outcome.url)
                await self._application_error()
                return
            document = await self._load(outcome.url, outcome.method, document, outcome.params)

    def _context(self, document: Document) -> RunContext:
        return RunContext(self.call, self.settings, self.client, document.url, document.local, self.params)

    async def _execute(self, document: Document) -> Outcome:
        """Run the verbs in order; stop at the first that does not say NEXT."""
        ctx = self._context(document)
        for verb in document.verbs:
            outcome = await verb.run(ctx)
            if outcome.action is not Action.NEXT:
                return outcome
        return Outcome(Action.NEXT)

    async def _load(
        self, url: str, method: str, current: Document | None, extra: Mapping[str, str]
    ) -> Document | None:
        """Fetch and parse a document; on failure the FallbackUrl, then the application-error prompt."""
        try:
            if current is not None and not current.local and url_kind(url) is not UrlKind.HTTP:
                raise TwimlError(INVALID_URL, f"a remote document cannot lead to {url!r}")
            return await self._fetch(url, method, extra)
        except TwimlError as exc:
            self._log_error(exc.code, f"{exc.message} (url {url})", url)
            code = exc.code
        fallback = self.fallback_url
        if fallback and fallback != url:
            try:  # the fallback is the operator's (or the API caller's): it may be a local file
                return await self._fetch(
                    fallback, self.fallback_method, {**extra, "ErrorCode": str(code), "ErrorUrl": url}
                )
            except TwimlError as exc:
                self._log_error(exc.code, f"{exc.message} (fallback url {fallback})", fallback)
        await self._application_error()
        return None

    async def _fetch(self, url: str, method: str, extra: Mapping[str, str]) -> Document:
        self.requests += 1
        self._requested = (url, method)
        observe = self.settings.on_webhook if url_kind(url) is UrlKind.HTTP else None
        started = time.perf_counter()
        try:
            fetched = await self.client.fetch(url, method, {**self.params(), **extra})
        finally:
            if observe is not None:
                observe(time.perf_counter() - started)
        # A local document may have been redirected to http(s); files stay files.
        base = fetched.url if not is_local(url) else url
        return parse_twiml(fetched.body, base_url=base)

    async def _inline(self, twiml: bytes) -> Document | None:
        """A document given inline: never local (it may not Play files); relative URLs lead nowhere."""
        try:
            return parse_twiml(twiml, base_url=INLINE_URL)
        except TwimlError as exc:
            self._log_error(exc.code, f"{exc.message} (inline TwiML)", INLINE_URL)
        await self._application_error()
        return None

    async def _application_error(self) -> None:
        call = self.call
        try:
            await call.answer()
            pcm = await call.say(APPLICATION_ERROR, None, None)
            await call.play(pcm, 1)
        finally:
            await call.hangup()

    def _log_error(self, code: int, message: str, url: str = "") -> None:
        report(code, message, call_sid=self.call.sid, url=url)
