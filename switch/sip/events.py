"""What the SIP core tells the application (frozen dataclasses with slots, named for what happened).

The core has already sent every automatic answer (100 Trying, 4xx/5xx from the UAS rules, 481, 482,
the 200 to OPTIONS and CANCEL, 487 to a cancelled INVITE) before an event reaches the application.
"""

from __future__ import annotations

from dataclasses import dataclass

from switch.sip.message import Request, Response

__all__ = [
    "AckReceived",
    "AckTimeout",
    "CancelReceived",
    "Event",
    "RequestReceived",
    "ResponseReceived",
    "TransactionTimeout",
]


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request for the application: answer it with ``SipCore.respond(event, response, now)``.

    ``dialog_id`` is set for in-dialog requests (re-INVITE, BYE, INFO...), None for a new INVITE.
    ``transaction_id`` names the server transaction the answer goes through.
    """

    request: Request
    source: tuple[str, int]
    transport: str
    connection: object | None
    dialog_id: str | None
    transaction_id: str = ""


@dataclass(frozen=True, slots=True)
class AckReceived:
    """The ACK for a 2xx we sent arrived: the dialog is confirmed (the body may carry an SDP answer)."""

    request: Request
    dialog_id: str


@dataclass(frozen=True, slots=True)
class CancelReceived:
    """The caller cancelled an INVITE; the core answered 200 to the CANCEL and, if the INVITE had no
    final response yet, 487 to the INVITE (``answered_487``)."""

    request: Request
    invite_transaction_id: str
    dialog_id: str | None
    answered_487: bool


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response to a request sent with ``send_request``/``send_in_dialog`` (retransmissions absorbed).

    ``dialog_id`` is set when a 2xx to an INVITE created (or belongs to) a dialog; acknowledge it with
    ``send_in_dialog(dialog_id, "ACK", now)``.
    """

    response: Response
    transaction_id: str
    dialog_id: str | None = None


@dataclass(frozen=True, slots=True)
class TransactionTimeout:
    """A client transaction got no final response (timer B or F), or an INVITE server transaction's
    non-2xx final got no ACK (timer H)."""

    transaction_id: str


@dataclass(frozen=True, slots=True)
class AckTimeout:
    """Our 2xx to an INVITE was never acknowledged (timer L, RFC 6026): the application should hang up."""

    dialog_id: str


Event = RequestReceived | AckReceived | CancelReceived | ResponseReceived | TransactionTimeout | AckTimeout
