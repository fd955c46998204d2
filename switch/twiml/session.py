"""The contract between the TwiML interpreter and the call layer, and what verbs run with."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from switch.twiml.fetch import WebhookClient

__all__ = [
    "Action",
    "CallControl",
    "InterpreterSettings",
    "Outcome",
    "RunContext",
    "SAMPLE_RATE",
]

SAMPLE_RATE = 8000
"""Every array crossing CallControl is 8 kHz mono int16."""

log = logging.getLogger("switch.twiml")


class CallControl(Protocol):
    """What the interpreter needs from a call; the call layer implements it."""

    sid: str
    account_sid: str
    from_: str
    to: str
    caller_name: str
    sip_call_id: str
    direction: str
    answered: bool
    ended: asyncio.Event

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
