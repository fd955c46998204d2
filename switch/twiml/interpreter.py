"""A call's TwiML session: fetch, parse, run the verbs, follow Redirect, apply Twilio's error rules."""

from __future__ import annotations

import asyncio
import logging

from switch.twiml.errors import APPLICATION_ERROR, HTTP_RETRIEVAL_FAILURE, INVALID_URL, TwimlError
from switch.twiml.fetch import WebhookClient
from switch.twiml.parser import Document, parse_twiml
from switch.twiml.session import Action, CallControl, InterpreterSettings, Outcome, RunContext
from switch.twiml.urls import UrlKind, is_local, url_kind
from switch.twiml.verbs import Reject

__all__ = ["API_VERSION", "Interpreter"]

API_VERSION = "2010-04-01"
INLINE_URL = "twiml:inline"
log = logging.getLogger("switch.twiml")


class Interpreter:
    """One TwiML session for one call. ``run`` returns when the session is over (the call is hung up)."""

    def __init__(self, call: CallControl, settings: InterpreterSettings, client: WebhookClient) -> None:
        self.call = call
        self.settings = settings
        self.client = client
        self.requests = 0
        self.redirects = 0

    def params(self) -> dict[str, str]:
        """The parameters Twilio sends on every request for this call, as of now."""
        call = self.call
        return {
            "CallSid": call.sid,
            "AccountSid": call.account_sid or self.settings.account_sid,
            "From": call.from_,
            "To": call.to,
            "CallStatus": "in-progress" if call.answered else "ringing",
            "ApiVersion": API_VERSION,
            "Direction": call.direction,
            "CallerName": call.caller_name,
            "SipCallId": call.sip_call_id,
        }

    async def run(self, app_url: str, *, method: str = "POST", twiml: bytes | None = None) -> None:
        """Run the application at ``app_url`` (or the ``twiml`` given inline, as the REST API's ``Twiml``
        parameter does) until it ends or ``call.ended`` is set."""
        if self.call.ended.is_set():
            return
        session = asyncio.ensure_future(self._session(app_url, method, twiml))
        ended = asyncio.ensure_future(self.call.ended.wait())
        try:
            await asyncio.wait((session, ended), return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when run() itself is cancelled: then gather re-raises the cancellation
            session.cancel()
            ended.cancel()
            await asyncio.gather(session, ended, return_exceptions=True)
        if not session.cancelled() and session.exception() is not None:
            exc = session.exception()
            log.error("TwiML session of call %s failed", self.call.sid, exc_info=exc)
            await self.call.hangup()

    async def _session(self, app_url: str, method: str, twiml: bytes | None) -> None:
        call = self.call
        await call.ringing()
        if twiml is not None:
            document = await self._inline(twiml)
        else:
            document = await self._load(app_url, method, None)
        first = True
        while document is not None:
            if first and document.verbs and isinstance(document.verbs[0], Reject):
                await document.verbs[0].run(self._context(document))
                return
            first = False
            await call.answer()
            outcome = await self._execute(document)
            if outcome.action is Action.HANGUP:
                return
            if outcome.action is Action.NEXT:  # end of the document
                await call.hangup()
                return
            self.redirects += 1
            if self.redirects > self.settings.max_redirects:
                self._log_error(HTTP_RETRIEVAL_FAILURE, f"more than {self.settings.max_redirects} redirects")
                await call.hangup()
                return
            document = await self._load(outcome.url, outcome.method, document)

    def _context(self, document: Document) -> RunContext:
        return RunContext(self.call, self.settings, self.client, document.url, document.local)

    async def _execute(self, document: Document) -> Outcome:
        """Run the verbs in order; stop at the first that does not say NEXT."""
        ctx = self._context(document)
        for verb in document.verbs:
            outcome = await verb.run(ctx)
            if outcome.action is not Action.NEXT:
                return outcome
        return Outcome(Action.NEXT)

    async def _load(self, url: str, method: str, current: Document | None) -> Document | None:
        """Fetch and parse a document; on failure play the application-error prompt and hang up."""
        try:
            if current is not None and not current.local and url_kind(url) is not UrlKind.HTTP:
                raise TwimlError(INVALID_URL, f"a remote document cannot lead to {url!r}")
            self.requests += 1
            fetched = await self.client.fetch(url, method, self.params())
            # A local document may have been redirected to http(s); files stay files.
            base = fetched.url if not is_local(url) else url
            return parse_twiml(fetched.body, base_url=base)
        except TwimlError as exc:
            self._log_error(exc.code, f"{exc.message} (url {url})")
        await self._application_error()
        return None

    async def _inline(self, twiml: bytes) -> Document | None:
        """A document given inline: never local (it may not Play files); relative URLs lead nowhere."""
        try:
            return parse_twiml(twiml, base_url=INLINE_URL)
        except TwimlError as exc:
            self._log_error(exc.code, f"{exc.message} (inline TwiML)")
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

    def _log_error(self, code: int, message: str) -> None:
        log.error(
            "TwiML error %d (call %s): %s",
            code,
            self.call.sid,
            message,
            extra={"twilio_code": code, "call_sid": self.call.sid},
        )
