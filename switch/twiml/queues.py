"""``<Enqueue>`` and ``<Leave>``: wait in a named queue, hearing the waitUrl document, until an agent's
``<Dial><Queue>`` takes the caller (or the caller leaves).

The waitUrl document (default: the shipped hold music) runs in a loop and is requested each time with
QueuePosition, QueueSid, QueueTime, AvgQueueTime, CurrentQueueSize and MaxQueueSize; it may Play, Say, Pause,
Gather, Redirect, Leave or Hangup. The action gets QueueResult (bridged, hangup, leave, queue-full, error),
QueueSid and QueueTime.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol, Self, runtime_checkable
from xml.etree.ElementTree import Element

from switch.twiml.errors import INVALID_URL, TwimlError
from switch.twiml.session import HANGUP, NEXT, Action, Outcome, RunContext
from switch.twiml.urls import is_local, resolve_url
from switch.twiml.verbs import Verb, attributes_of, choice_attr, int_attr, warn

__all__ = ["DEFAULT_WAIT_URL", "Enqueue", "Leave", "QueueTicket", "Queuer"]

log = logging.getLogger("switch.twiml")

DEFAULT_WAIT_URL = "resource://switch/dialplans/music/wait.xml"


class QueueTicket(Protocol):
    """A caller's place in a queue (the call layer's ``QueueEntry``)."""

    dequeued: asyncio.Future[str]
    bridge_ended: asyncio.Future[str]

    @property
    def queue_sid(self) -> str: ...
    def queue_time(self, now: float | None = None) -> int: ...
    def wait_params(self, now: float | None = None) -> dict[str, str]: ...
    def leave(self) -> None: ...


@runtime_checkable
class Queuer(Protocol):
    def enqueue(self, name: str, max_size: int) -> QueueTicket | None: ...


@dataclass(frozen=True, slots=True)
class Leave(Verb):
    """In a waitUrl document: leave the queue; the caller goes on after ``<Enqueue>`` (QueueResult=leave)."""

    TAG: ClassVar[str] = "Leave"

    @classmethod
    def from_element(cls, element: Element, base_url: str) -> Self:
        attributes_of(element, cls.ATTRIBUTES)
        return cls()

    async def run(self, ctx: RunContext) -> Outcome:
        warn("<Leave> outside a queue's waitUrl does nothing", call_sid=ctx.call.sid)
        return NEXT


@dataclass(frozen=True, slots=True)
class Enqueue(Verb):
    TAG: ClassVar[str] = "Enqueue"
    ATTRIBUTES: ClassVar[frozenset[str]] = frozenset(
        {"action", "method", "waitUrl", "waitUrlMethod", "maxQueueSize", "workflowSid"}
    )
    name: str
    action: str = ""
    method: str = "POST"
    wait_url: str = DEFAULT_WAIT_URL
    wait_method: str = "POST"
    max_size: int = 100

    @classmethod
    def from_element(cls, element: Element, base_url: str) -> Self:
        attrs = attributes_of(element, cls.ATTRIBUTES)
        name = (element.text or "").strip()
        if not name:
            warn("<Enqueue> has no queue name; using 'default'")
        action = attrs.get("action", "").strip()
        wait = attrs.get("waitUrl", "").strip()
        return cls(
            name=name or "default",
            action=resolve_url(base_url, action) if action else "",
            method=choice_attr(element, attrs, "method", ("POST", "GET")),
            wait_url=resolve_url(base_url, wait) if wait else DEFAULT_WAIT_URL,
            wait_method=choice_attr(element, attrs, "waitUrlMethod", ("POST", "GET")),
            max_size=int_attr(element, attrs, "maxQueueSize", 100, minimum=1),
        )

    async def run(self, ctx: RunContext) -> Outcome:
        call = ctx.call
        if not isinstance(call, Queuer):
            warn("<Enqueue> is not available on this call; skipped", call_sid=call.sid)
            return NEXT
        await call.answer()
        ticket = call.enqueue(self.name, self.max_size)
        if ticket is None:
            return self._after(ctx, "queue-full", "", 0)
        waiting = asyncio.ensure_future(self._wait_loop(ctx, ticket))
        try:
            racers: set[asyncio.Future[str]] = {waiting, ticket.dequeued}
            await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
            if ticket.dequeued.done():
                waiting.cancel()
                await asyncio.gather(waiting, return_exceptions=True)
                result = await ticket.bridge_ended
            else:
                result = waiting.result()
        finally:
            waiting.cancel()
            ticket.leave()
        log.info("Enqueue ended CallSid=%s QueueResult=%s", call.sid, result)
        if result == "hangup":
            await call.hangup()
            return HANGUP
        return self._after(ctx, result, ticket.queue_sid, ticket.queue_time())

    def _after(self, ctx: RunContext, result: str, queue_sid: str, queue_time: int) -> Outcome:
        if self.action:
            params = {"QueueResult": result, "QueueSid": queue_sid, "QueueTime": str(queue_time)}
            return Outcome(Action.REDIRECT, self.action, self.method, params)
        if ctx.call.ended.is_set():
            return HANGUP
        return NEXT

    async def _wait_loop(self, ctx: RunContext, ticket: QueueTicket) -> str:
        """Run the waitUrl document over and over; "leave", "hangup" or "error" when it ends the wait."""
        from switch.twiml.parser import parse_twiml  # the parser registers this module's verbs

        call = ctx.call
        url, method = self.wait_url, self.wait_method
        extra: Mapping[str, str] = {}
        while not call.ended.is_set():
            base = {
                "CallSid": call.sid,
                "AccountSid": call.account_sid or ctx.settings.account_sid,
                "From": call.from_,
                "To": call.to,
                "CallStatus": "in-progress",
                "ApiVersion": "2010-04-01",
                "Direction": call.direction,
            }
            try:
                if is_local(url) and not (ctx.local or url == DEFAULT_WAIT_URL):
                    raise TwimlError(INVALID_URL, f"a remote document cannot lead to {url!r}")
                fetched = await ctx.client.fetch(url, method, {**base, **ticket.wait_params(), **extra})
                document = parse_twiml(fetched.body, base_url=url if is_local(url) else fetched.url)
            except TwimlError as exc:
                log.warning("waitUrl %s failed for CallSid=%s: %s; hold music instead", url, call.sid, exc)
                if url == DEFAULT_WAIT_URL:
                    return "error"
                url, method, extra = DEFAULT_WAIT_URL, "GET", {}
                continue
            sub = RunContext(call, ctx.settings, ctx.client, document.url, document.local)
            redirected = False
            extra = {}
            for verb in document.verbs:
                if isinstance(verb, Leave):
                    return "leave"
                outcome = await verb.run(sub)
                if outcome.action is Action.HANGUP:
                    return "hangup"
                if outcome.action is Action.REDIRECT:
                    url, method, extra = outcome.url, outcome.method, outcome.params
                    redirected = True
                    break
            if not redirected and not document.verbs:
                await asyncio.Event().wait()  # nothing to play: wait silently for an agent
        return "hangup"
