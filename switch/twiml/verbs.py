"""TwiML verbs: one class per verb, built from an XML element, each with ``async run(ctx) -> Outcome``.

Implemented: Say, Play, Pause, Hangup, Reject, Redirect. The other Twilio verbs parse into ``Unsupported``,
which logs and is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Self
from xml.etree.ElementTree import Element

import numpy as np
from numpy.typing import NDArray

from switch.twiml.errors import BAD_CONTENT_TYPE, SCHEMA_WARNING, TwimlError, report
from switch.twiml.session import HANGUP, NEXT, Action, Outcome, RunContext
from switch.twiml.tones import VALID_DIGITS, dtmf, silence
from switch.twiml.urls import is_local, resolve_url

__all__ = [
    "Hangup",
    "Pause",
    "Play",
    "Redirect",
    "Reject",
    "Say",
    "UNSUPPORTED_VERBS",
    "Unsupported",
    "VERB_CLASSES",
    "Verb",
    "attributes_of",
    "bool_attr",
    "choice_attr",
    "int_attr",
    "no_children",
    "warn",
]

log = logging.getLogger("switch.twiml")

UNSUPPORTED_VERBS = frozenset("Dial Enqueue Leave Refer Connect Start Stop Pay Sms".split())
"""Twilio verbs that parse but are skipped (with a warning) for now."""

METHODS = ("GET", "POST")


def warn(message: str, *, call_sid: str = "") -> None:
    """Log a Twilio 12200 (schema validation) warning: the document goes on."""
    report(SCHEMA_WARNING, message, call_sid=call_sid, level=logging.WARNING)


def attributes_of(element: Element, allowed: frozenset[str]) -> dict[str, str]:
    for name in element.attrib:
        if name not in allowed:
            warn(f"<{element.tag}> has unknown attribute {name!r}")
    return {k: v for k, v in element.attrib.items() if k in allowed}


def int_attr(element: Element, attrs: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = attrs.get(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = minimum - 1
    if value < minimum:
        warn(f"<{element.tag} {name}={raw!r}> is not an integer >= {minimum}; using {default}")
        return default
    return value


def choice_attr(element: Element, attrs: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = attrs.get(name)
    if raw is None:
        return choices[0]
    for choice in choices:
        if raw.strip().lower() == choice.lower():
            return choice
    warn(f"<{element.tag} {name}={raw!r}> is not one of {', '.join(choices)}; using {choices[0]}")
    return choices[0]


def bool_attr(element: Element, attrs: Mapping[str, str], name: str, default: bool) -> bool:
    raw = attrs.get(name)
    if raw is None:
        return default
    text = raw.strip().lower()
    if text in ("true", "false"):
        return text == "true"
    warn(f"<{element.tag} {name}={raw!r}> is not true or false; using {str(default).lower()}")
    return default


def no_children(element: Element) -> None:
    if len(element):
        warn(f"<{element.tag}> cannot nest <{element[0].tag}>; ignored")


def _text(element: Element) -> str:
    """All text inside an element (SSML children flattened), whitespace collapsed."""
    parts: list[str] = [element.text or ""]
    for child in element:
        parts.append(" ")
        parts.append(_text(child))
        parts.append(" ")
        parts.append(child.tail or "")
    return " ".join("".join(parts).split())


class Verb:
    """Base of all verbs."""

    __slots__ = ()
    TAG: ClassVar[str] = ""
    ATTRIBUTES: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_element(cls, element: Element, base_url: str) -> Self:
        raise NotImplementedError

    async def run(self, ctx: RunContext) -> Outcome:
        raise NotImplementedError

    @property
    def answers_later(self) -> bool:
        """True when this verb, run first in a document, answers the call itself (``<Dial answerOnBridge>``):
        the interpreter then leaves the call unanswered."""
        return False


@dataclass(frozen=True, slots=True)
class Say(Verb):
    """Text to speech. ``loop=0`` repeats until the call ends."""

    TAG: ClassVar[str] = "Say"
    ATTRIBUTES: ClassVar[frozenset[str]] = frozenset({"voice", "language", "loop"})
    text: str
    voice: str | None = None
    language: str | None = None
    loop: int = 1

    @classmethod
    def from_element(cls, element: Element, base_url: str) -> Self:
        attrs = attributes_of(element, cls.ATTRIBUTES)
        return cls(
            text=_text(element),
            voice=attrs.get("voice") or None,
            language=attrs.get("language") or None,
            loop=int_attr(element, attrs, "loop", 1),
        )

    async def run(self, ctx: RunContext) -> Outcome:
        if not self.text:
            return NEXT
        pcm = await ctx.call.say(self.text, self.voice, self.language)
        await ctx.call.play(pcm, self.loop)
        return NEXT


@dataclass(frozen=True, slots=True)
class Play(Verb):
    """Play a WAV/MP3 file from a URL (cached per URL), or DTMF ``digits``. ``loop=0`` repeats."""

    TAG: ClassVar[str] = "Play"
    ATTRIBUTES: ClassVar[frozenset[str]] = frozenset({"loop", "digits"})
    url: str = ""
    loop: int = 1
    digits: str = ""

    @classmethod
    def from_element(cls, element: Element, base_url: str) -> Self:
        attrs = attributes_of(element, cls.ATTRIBUTES)
        no_children(element)
        raw = (element.text or "").strip()
        digits = attrs.get("digits", "").strip()
        if any(d not in VALID_DIGITS for d in digits.upper().replace("W", "w")):
            warn(f"<Play digits={digits!r}> has characters other than 0-9 * # A-D w; they are skipped")
        if not raw and not digits:
            warn("<Play> has neither a URL nor digits; it does nothing")
        return cls(
            url=resolve_url(base_url, raw) if raw else "",
            loop=int_attr(element, attrs, "loop", 1),
            digits=digits,
        )

    async def run(self, ctx: RunContext) -> Outcome:
        if self.digits:
            tones = dtmf(self.digits)
            if tones.size:
                await ctx.call.play(tones, 1)
        if not self.url:
            return NEXT
        if is_local(self.url) and not ctx.local:
            warn(f"<Play> of a local file {self.url!r} from a remote document refused", call_sid=ctx.call.sid)
            return NEXT
        try:
            pcm = await ctx.client.audio_cache.get(self.url, lambda: self._load(ctx))
        except TwimlError as exc:
            message = f"Play {self.url} skipped: {exc.message}"
            report(exc.code, message, call_sid=ctx.call.sid, url=self.url, level=logging.WARNING)
            return NEXT
        await ctx.call.play(pcm, self.loop)
        return NEXT

    async def _load(self, ctx: RunContext) -> NDArray[np.int16]:
        data = await ctx.client.fetch_audio(self.url)
        try:
            return await ctx.call.decode(data)
        except Exception as exc:  # the decoder's own error type belongs to the media layer
            raise TwimlError(BAD_CONTENT_TYPE, f"cannot decode audio: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Pause(Verb):
    """Silence for ``length`` seconds."""

    TAG: ClassVar[str] = "Pause"
    ATTRIBUTES: ClassVar[frozenset[str]] = frozenset({"length"})
    length: int = 1

    @classmethod
    def from_element(cls, element: Element, base_url: str) -> Self:
        attrs = attributes_of(element, cls.ATTRIBUTES)
        no_children(element)
        return cls(length=int_attr(element, attrs, "length", 1))

    async def run(self, ctx: RunContext) -> Outcome:
        if self.length > 0:
            await ctx.call.play(silence(1000), self.length)
        return NEXT


@dataclass(frozen=True, slots=True)
class Hangup(Verb):
    """End the call."""

    TAG: ClassVar[str] = "Hangup"

    @classmethod
    def from_element(cls, element: Element, base_url: str) -> Self:
        attributes_of(element, cls.ATTRIBUTES)
        no_children(element)
        return cls()

    async def run(self, ctx: RunContext) -> Outcome:
        await ctx.call.hangup()
        return HANGUP


REJECT_STATUS = {"rejected": 603, "busy": 486}


@dataclass(frozen=True, slots=True)
class Reject(Verb):
    """Refuse the call without answering: ``rejected`` -> 603, ``busy`` -> 486."""

    TAG: ClassVar[str] = "Reject"
    ATTRIBUTES: ClassVar[frozenset[str]] = frozenset({"reason"})
    reason: str = "rejected"

    @property
    def status(self) -> int:
        return REJECT_STATUS[self.reason]

    @classmethod
    def from_element(cls, element: Element, base_url: str) -> Self:
        attrs = attributes_of(element, cls.ATTRIBUTES)
        no_children(element)
        return cls(reason=choice_attr(element, attrs, "reason", ("rejected", "busy")))

    async def run(self, ctx: RunContext) -> Outcome:
        if ctx.call.answered:  # only a first verb can refuse; later it ends the call
            await ctx.call.hangup()
        else:
            await ctx.call.reject(self.status)
        return HANGUP


@dataclass(frozen=True, slots=True)
class Redirect(Verb):
    """Fetch a new document from ``url`` and run it instead of this one."""

    TAG: ClassVar[str] = "Redirect"
    ATTRIBUTES: ClassVar[frozenset[str]] = frozenset({"method"})
    url: str
    method: str = "POST"

    @classmethod
    def from_element(cls, element: Element, base_url: str) -> Self:
        attrs = attributes_of(element, cls.ATTRIBUTES)
        no_children(element)
        return cls(
            url=resolve_url(base_url, element.text or ""),
            method=choice_attr(element, attrs, "method", ("POST", "GET")),
        )

    async def run(self, ctx: RunContext) -> Outcome:
        return Outcome(Action.REDIRECT, self.url, self.method)


@dataclass(frozen=True, slots=True)
class Unsupported(Verb):
    """A Twilio verb this switch does not run yet: logged and skipped."""

    tag: str
    attributes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_element(cls, element: Element, base_url: str) -> Self:
        return cls(tag=element.tag, attributes=dict(element.attrib))

    async def run(self, ctx: RunContext) -> Outcome:
        warn(f"<{self.tag}> is not supported yet; skipped", call_sid=ctx.call.sid)
        return NEXT


@dataclass(frozen=True, slots=True)
class Echo(Verb):
    """The caller hears themselves until they hang up (Twilio's test verb for audio paths)."""

    TAG: ClassVar[str] = "Echo"

    @classmethod
    def from_element(cls, element: Element, base_url: str) -> Self:
        attributes_of(element, cls.ATTRIBUTES)
        no_children(element)
        return cls()

    async def run(self, ctx: RunContext) -> Outcome:
        await ctx.call.echo()
        return HANGUP


VERB_CLASSES: Mapping[str, type[Verb]] = {
    cls.TAG: cls for cls in (Say, Play, Pause, Hangup, Reject, Redirect, Echo)
}
