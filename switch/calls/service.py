"""What the REST API needs of call control: the `CallService` protocol, implemented by `CallManager`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from switch.calls.call import Call
from switch.calls.conferences import ConferenceManager
from switch.calls.queues import QueueManager
from switch.calls.registrar import Registrar


class CallService(Protocol):
    calls: dict[str, Call]
    """Live calls by CallSid."""
    queues: QueueManager
    """The live queues (``<Enqueue>``), by name."""
    conferences: ConferenceManager
    """The live conference rooms (``<Dial><Conference>``)."""
    registrar: Registrar
    """Where registered users are (``To=client:alice``)."""

    def add_listener(self, callback: Callable[[Call, str], None]) -> None:
        """``callback(call, status)`` on every status change: queued, initiated, ringing, in-progress,
        completed, busy, no-answer, failed, canceled. Called synchronously; it must not block."""

    async def originate(
        self,
        *,
        to: str,
        from_: str,
        url: str | None,
        twiml: str | None,
        method: str = "POST",
        fallback_url: str | None = None,
        status_callback: str | None = None,
        status_callback_event: Iterable[str] = ("completed",),
        status_callback_method: str = "POST",
        timeout: int = 60,
    ) -> Call:
        """Place a call to a SIP URI; ValueError when ``to`` cannot be called."""

    async def redirect(self, call: Call, *, url: str | None, twiml: str | None, method: str = "POST") -> None:
        """Replace the running application of a live call."""

    async def hangup(self, call: Call) -> None:
        """completed when answered; canceled while queued or ringing."""
