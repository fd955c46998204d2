"""``<Gather>``: collect DTMF digits while (and after) nested Say/Play/Pause prompts play.

Twilio's rules, as this verb keeps them:
- Digits pressed before the Gather starts are discarded; digits pressed during the prompt count, and the
  first one stops the prompt (barge-in) unless ``bargeIn="false"``.
- After the prompt, the caller has ``timeout`` seconds for each digit (the first and every next one).
- ``finishOnKey`` (default ``#``, ``""`` for none) ends the input and is not part of ``Digits``;
  ``numDigits`` ends it once that many digits are in.
- With digits (or ``actionOnEmptyResult="true"``) the ``action`` URL is requested with ``Digits`` and
  ``FinishedOnKey`` (the key that ended the input; blank when none did, as Twilio sends it); without
  ``action``, the current document's URL. With no input the
  call falls through to the next verb.
Speech input is not supported: ``input="speech"`` warns and gathers DTMF.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar, Self
from xml.etree.ElementTree import Element

from switch.twiml.session import NEXT, Action, Outcome, RunContext
from switch.twiml.urls import UrlKind, resolve_url, url_kind
from switch.twiml.verbs import (
    Pause,
    Play,
    Say,
    Verb,
    attributes_of,
    bool_attr,
    choice_attr,
    int_attr,
    warn,
)

__all__ = ["DTMF_KEYS", "Gather", "drain_digits"]

DTMF_KEYS = frozenset("0123456789*#ABCD")
NESTABLE: dict[str, type[Say] | type[Play] | type[Pause]] = {"Say": Say, "Play": Play, "Pause": Pause}
SPEECH_ATTRIBUTES = frozenset(
    {
        "speechTimeout",
        "maxSpeechTime",
        "language",
        "hints",
        "partialResultCallback",
        "partialResultCallbackMethod",
        "profanityFilter",
        "speechModel",
        "enhanced",
        "debug",
    }
)


def drain_digits(queue: asyncio.Queue[str]) -> str:
    """Take every digit waiting in ``queue`` (pressed before now) and return them."""
    taken: list[str] = []
    while True:
        try:
            taken.append(queue.get_nowait())
        except asyncio.QueueEmpty:
            return "".join(taken)


class _Input:
    """The digits of one Gather, and whether input is over."""

    __slots__ = ("digits", "finished_on", "finish_on_key", "num_digits")

    def __init__(self, finish_on_key: str, num_digits: int | None) -> None:
        self.digits: list[str] = []
        self.finished_on = ""
        self.finish_on_key = finish_on_key
        self.num_digits = num_digits

    def add(self, digit: str) -> bool:
        """Take one digit; True when input is complete."""
        if self.finish_on_key and digit == self.finish_on_key:
            self.finished_on = digit
            return True
        self.digits.append(digit)
        return self.num_digits is not None and len(self.digits) >= self.num_digits


@dataclass(frozen=True, slots=True)
class Gather(Verb):
    """Collect DTMF digits; see the module docstring for the rules."""

    TAG: ClassVar[str] = "Gather"
    ATTRIBUTES: ClassVar[frozenset[str]] = (
        frozenset(
            {
                "action",
                "method",
                "timeout",
                "finishOnKey",
                "numDigits",
                "input",
                "actionOnEmptyResult",
                "bargeIn",
            }
        )
        | SPEECH_ATTRIBUTES
    )
    action: str = ""
    method: str = "POST"
    timeout: int = 5
    finish_on_key: str = "#"
    num_digits: int | None = None
    action_on_empty_result: bool = False
    barge_in: bool = True
    prompts: tuple[Say | Play | Pause, ...] = ()

    @classmethod
    def from_element(cls, element: Element, base_url: str) -> Self:
        attrs = attributes_of(element, cls.ATTRIBUTES)
        inputs = set(attrs.get("input", "dtmf").replace(",", " ").lower().split())
        if inputs - {"dtmf", "speech"} or not inputs:
            warn(f"<Gather input={attrs['input']!r}> is not dtmf and/or speech; gathering dtmf")
        elif "speech" in inputs:
            warn("<Gather> speech input is not supported; gathering dtmf only")
        finish = attrs.get("finishOnKey", "#").strip()
        if finish and (len(finish) != 1 or finish not in DTMF_KEYS):
            warn(f"<Gather finishOnKey={finish!r}> is not one key of 0-9 * #; using #")
            finish = "#"
        num_digits = int_attr(element, attrs, "numDigits", 0, minimum=1) if "numDigits" in attrs else 0
        prompts: list[Say | Play | Pause] = []
        for child in element:
            nested = NESTABLE.get(child.tag)
            if nested is None:
                warn(f"<Gather> cannot nest <{child.tag}>; ignored")
                continue
            prompts.append(nested.from_element(child, base_url))
        action = attrs.get("action", "").strip()
        return cls(
            action=resolve_url(base_url, action) if action else "",
            method=choice_attr(element, attrs, "method", ("POST", "GET")),
            timeout=int_attr(element, attrs, "timeout", 5),
            finish_on_key=finish,
            num_digits=num_digits or None,
            action_on_empty_result=bool_attr(element, attrs, "actionOnEmptyResult", False),
            barge_in=bool_attr(element, attrs, "bargeIn", True),
            prompts=tuple(prompts),
        )

    async def run(self, ctx: RunContext) -> Outcome:
        queue = ctx.call.digits
        drain_digits(queue)
        collected = _Input(self.finish_on_key, self.num_digits)
        complete = await self._during_prompt(ctx, collected)
        while not complete:
            try:
                digit = await asyncio.wait_for(queue.get(), self.timeout)
            except TimeoutError:
                break
            complete = collected.add(digit)
        digits = "".join(collected.digits)
        if not digits and not self.action_on_empty_result:
            return NEXT
        url = self.action or ctx.document_url
        if url_kind(url) is not UrlKind.HTTP and not ctx.local:
            warn(f"<Gather> has no action to send Digits={digits!r} to; going on", call_sid=ctx.call.sid)
            return NEXT
        params = {"Digits": digits, "FinishedOnKey": collected.finished_on}
        return Outcome(Action.REDIRECT, url, self.method, params, caller_input=bool(digits))

    async def _during_prompt(self, ctx: RunContext, collected: _Input) -> bool:
        """Play the prompts while taking digits; True when input completed during them."""
        if not self.prompts:
            return False
        queue = ctx.call.digits
        prompt = asyncio.ensure_future(self._play_prompts(ctx))
        getter: asyncio.Future[str] | None = None
        try:
            while not prompt.done():
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait((prompt, getter), return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                if collected.add(getter.result()):
                    return True
                if self.barge_in:
                    return False
            prompt.result()  # a failing prompt (the call layer broke) fails the Gather
            return False
        finally:
            if getter is not None and not getter.done():
                getter.cancel()
            if not prompt.done():
                prompt.cancel()
                await asyncio.gather(prompt, return_exceptions=True)

    async def _play_prompts(self, ctx: RunContext) -> None:
        for verb in self.prompts:
            await verb.run(ctx)
