"""The contract between the TwiML interpreter and the call layer, and what verbs run with."""

from __future__ import annotations

import asyncio
import email.utils
import enum
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from switch.twiml.fetch import WebhookClient

__all__ = [
    "Action",
    "CallControl",
    "CallEnd",
    "InterpreterSettings",
    "ErrorCallback",
    "Outcome",
    "RecordingInfo",
    "RunContext",
    "SAMPLE_RATE",
    "rfc2822",
]

SAMPLE_RATE = 8000
"""Every array crossing CallControl is 8 kHz mono int16."""

log = logging.getLogger("switch.twiml")


class CallEnd(asyncio.Event):
    """A call's ``ended`` event that also runs callbacks when set: the interpreter stops a call's session
    with one (no waiter task per call). Callbacks run once, in the order added, inside ``set()``."""

    def __init__(self) -> None:
        super().__init__()
        self._callbacks: list[Callable[[], object]] = []

    def add_callback(self, callback: Callable[[], object]) -> None:
        self._callbacks.append(callback)

    def remove_callback(self, callback: Callable[[], object]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def set(self) -> None:
        if self.is_set():
            return
        super().set()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()


class RecordingInfo(Protocol):
    """What a finished recording tells (``switch.media.recorder.RecordingResult`` has this shape)."""

    @property
    def path(self) -> Path: ...
    @property
    def duration(self) -> float: ...
    @property
    def ended_by(self) -> str:
        """ "silence" | "max-length" | "digit" | "stopped" | "closed"."""
        ...

    @property
    def digit(self) -> str | None: ...


class CallControl(Protocol):
    """What the interpreter needs from a call; the call layer implements it."""

    sid: str
    account_sid: str
    parent_call_sid: str | None
    from_: str
    to: str
    caller_name: str
    sip_call_id: str
    sip_source_ip: str
    """Where the INVITE came from (blank for calls the switch placed): ``SipSourceIp``."""
    forwarded_from: str
    """The Diversion of the INVITE, blank without one: ``ForwardedFrom``."""
    direction: str
    answered: bool
    ended: asyncio.Event
    digits: asyncio.Queue[str]
    """Every DTMF digit the caller presses (RFC 4733, SIP INFO or in-band), in order."""

    @property
    def sip_headers(self) -> Mapping[str, str]:
        """The INVITE's ``X-`` headers by name (empty for calls the switch placed): ``SipHeader_<name>``."""
        ...

    async def ringing(self) -> None:
        """Send 180 Ringing (idempotent)."""

    async def answer(self) -> None:
        """Send 200 OK with SDP (idempotent)."""

    async def reject(self, status: int) -> None:
        """Refuse the unanswered call with 486 (busy) or 603 (rejected)."""

    async def hangup(self) -> None:
        """BYE, or a final error response if unanswered; idempotent."""

    async def play(self, pcm: NDArray[np.int16], loop: int = 1) -> None:
        """Play 8 kHz mono audio; return when done. ``loop=0`` repeats until cancelled."""

    async def say(self, text: str, voice: str | None, language: str | None) -> NDArray[np.int16]:
        """Render text to 8 kHz mono audio."""
        ...

    async def decode(self, data: bytes) -> NDArray[np.int16]:
        """Decode WAV/MP3 bytes to 8 kHz mono audio, off the event loop."""
        ...

    async def record(
        self,
        path: Path,
        *,
        max_length: float,
        silence_timeout: float | None,
        finish_on_digits: str,
        trim_silence: bool,
        beep: bool,
    ) -> RecordingInfo:
        """Record the caller into a WAV file at ``path``; return when the recording ends."""
        ...

    async def send_digits(self, digits: str) -> None:
        """Send DTMF to the caller (RFC 4733)."""

    async def echo(self) -> None:
        """Send the caller's own audio back to them until the call ends."""


class ErrorCallback(Protocol):
    """``on_error(call_sid, code, message, url, method)``: ``method`` is that of the request for ``url``
    that failed (GET or POST), blank when the error did not come from a document request."""

    def __call__(self, call_sid: str, code: int, message: str, url: str, method: str = "") -> None: ...


RecordingCallback = Callable[[str, str, Path, float, float], None]
"""``on_recording(call_sid, recording_sid, path, duration_seconds, started_at)`` for a finished recording."""


@dataclass
class InterpreterSettings:
    """Knobs of the TwiML session; timeouts in seconds."""

    account_sid: str
    connect_timeout: float = 10.0
    response_timeout: float = 15.0
    max_redirects: int = 20
    cache_dir: Path | None = None
    auth_token: str | None = None
    """When set, webhook requests carry ``X-Twilio-Signature``."""
    max_audio_bytes: int = 32 * 1024 * 1024
    """Largest Play file fetched."""
    fallback_url: str | None = None
    """Requested (with ErrorCode and ErrorUrl) when a document cannot be fetched or parsed."""
    fallback_method: str = "POST"
    on_error: ErrorCallback | None = None
    """Told of every Twilio error and warning of a call (besides the log)."""
    public_base_url: str = "http://127.0.0.1:8080"
    """Where the switch's HTTP server is reached: RecordingUrl starts with it."""
    recordings_dir: Path | None = None
    """Where ``<Record>`` writes ``{RecordingSid}.wav``; without it, Record is skipped with a warning."""
    egress_allowed: Callable[[str], bool] | None = None
    """When set (``--egress-allow``), webhooks and Play fetches go only to IP addresses it allows (and
    ``localhost``): host names are not resolved and HTTP redirects are not followed."""
    on_recording: RecordingCallback | None = None
    """Told of every recording that holds audio, before its action is requested (the call records)."""
    on_webhook: Callable[[float], None] | None = None
    """Told how many seconds each webhook took (document requests over HTTP and status callbacks, failed
    ones included): the metrics' latency histogram."""


class Action(enum.Enum):
    """What the interpreter does after a verb."""

    NEXT = "next"
    HANGUP = "hangup"
    REDIRECT = "redirect"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of running one verb."""

    action: Action
    url: str = ""
    method: str = "POST"
    params: Mapping[str, str] = field(default_factory=dict)
    """Sent with the request for ``url``, besides the standard ones (Digits, RecordingUrl...)."""
    caller_input: bool = False
    """The caller did something (pressed digits, recorded): the redirect-loop count starts again."""


NEXT = Outcome(Action.NEXT)
HANGUP = Outcome(Action.HANGUP)


@dataclass(slots=True)
class RunContext:
    """Everything a verb may touch while it runs."""

    call: CallControl
    settings: InterpreterSettings
    client: WebhookClient
    document_url: str
    local: bool
    """True when the running document came from a file or package data: Play may read files."""
    base_params: Callable[[], dict[str, str]] = dict
    """The standard request parameters of the call, as of now (for requests a verb makes itself)."""


def rfc2822(timestamp: float) -> str:
    """A Unix time as Twilio writes dates: ``Tue, 10 Aug 2010 22:33:42 +0000``."""
    return email.utils.format_datetime(datetime.fromtimestamp(timestamp, UTC))
