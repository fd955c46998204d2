"""SIP transaction state machines (RFC 3261 §17 with the RFC 6026 Accepted state).

Sans-IO: every method takes ``now`` and nothing reads a clock.  A transaction holds the serialised
messages it may have to retransmit; what it wants sent is appended to :attr:`Transaction.outbox`,
which its owner (:class:`switch.sip.core.SipCore`) drains after every call.  Deadlines are absolute
times; :meth:`Transaction.next_timer` gives the earliest and :meth:`Transaction.handle_timer` fires
every timer that is due, in deadline order.

State transitions (U = unreliable transport only, timers D/I/J/K are zero on reliable ones)::

  server INVITE      PROCEEDING -1xx-> PROCEEDING -2xx-> ACCEPTED (L; 2xx resent from T1 to T2 (U)
                     until the ACK) -3xx..6xx-> COMPLETED (G (U), H) -ACK-> CONFIRMED (I) -> TERMINATED
  client INVITE      CALLING (A (U), B) -1xx-> PROCEEDING -2xx-> ACCEPTED (M)
                     -3xx..6xx-> COMPLETED (ACK sent, D) -> TERMINATED
  server non-INVITE  TRYING -1xx-> PROCEEDING -final-> COMPLETED (J) -> TERMINATED
  client non-INVITE  TRYING (E (U), F) -1xx-> PROCEEDING -final-> COMPLETED (K) -> TERMINATED
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING

from switch.sip.timers import TimerSettings

if TYPE_CHECKING:
    from switch.sip.headers import Via
    from switch.sip.message import Request, Response

__all__ = [
    "MAGIC_COOKIE",
    "ClientInviteTransaction",
    "ClientNonInviteTransaction",
    "ClientTransaction",
    "ServerInviteTransaction",
    "ServerNonInviteTransaction",
    "ServerTransaction",
    "Transaction",
    "TransactionStateError",
    "TxOutcome",
    "TxState",
    "client_key",
    "has_rfc3261_branch",
    "is_reliable",
    "sent_by",
    "server_key",
]

MAGIC_COOKIE = "z9hG4bK"

RELIABLE_TRANSPORTS = frozenset({"TCP", "TLS", "SCTP", "WS", "WSS"})


class TransactionStateError(RuntimeError):
    """The transaction user asked for something its transaction state forbids (a local bug)."""


class TxState(enum.Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class TxOutcome(enum.Enum):
    """What firing a transaction's timers meant for the transaction user."""

    NONE = "none"
    TIMEOUT = "timeout"  # timer B, F or H: no response / no ACK for a non-2xx final
    ACK_TIMEOUT = "ack-timeout"  # timer L ran out with the 2xx never acknowledged


class Transaction:
    """Common timer bookkeeping.  Subclasses implement :meth:`_fire`."""

    __slots__ = ("id", "settings", "reliable", "state", "outbox", "_timers", "last_status")

    def __init__(self, tx_id: str, settings: TimerSettings, reliable: bool) -> None:
        self.id = tx_id
        self.settings = settings
        self.reliable = reliable
        self.state = TxState.TRYING
        self.outbox: list[bytes] = []
        self._timers: dict[str, float] = {}
        self.last_status: int | None = None

    @property
    def terminated(self) -> bool:
        return self.state is TxState.TERMINATED

    def next_timer(self) -> float | None:
        """The earliest deadline of a running timer, or None."""
        return min(self._timers.values()) if self._timers else None

    def timer_deadline(self, name: str) -> float | None:
        """The deadline of the named timer ("A".."M", "2xx"), for tests and diagnostics."""
        return self._timers.get(name)

    def handle_timer(self, now: float) -> TxOutcome:
        """Fire every timer due at ``now`` (earliest first); report a timeout to the TU."""
        outcome = TxOutcome.NONE
        while self._timers:
            name, deadline = min(self._timers.items(), key=lambda item: item[1])
            if deadline > now:
                break
            del self._timers[name]
            fired = self._fire(name, deadline)
            if fired is not TxOutcome.NONE:
                outcome = fired
        return outcome

    def terminate(self) -> None:
        self.state = TxState.TERMINATED
        self._timers.clear()

    def _start(self, name: str, at: float) -> None:
        self._timers[name] = at

    def _stop(self, *names: str) -> None:
        for name in names:
            self._timers.pop(name, None)

    def _wait_then_terminate(self, name: str, duration: float, now: float) -> None:
        """Start a wait timer, or terminate at once when it is zero (reliable transports)."""
        if duration <= 0:
            self.terminate()
        else:
            self._start(name, now + duration)

    def _fire(self, name: str, deadline: float) -> TxOutcome:  # pragma: no cover - abstract
        raise NotImplementedError


class ServerInviteTransaction(Transaction):
    """INVITE server transaction (RFC 3261 §17.2.1, RFC 6026 §7.1).

    While ACCEPTED it also carries the UAS core's 2xx retransmission (RFC 3261 §13.3.1.4): the 2xx
    is resent from T1 doubling up to T2 until :meth:`ack_2xx` is called or timer L ends it.
    """

    __slots__ = ("_provisional", "_final", "_interval", "acked")

    def __init__(self, tx_id: str, settings: TimerSettings, reliable: bool, now: float) -> None:
        super().__init__(tx_id, settings, reliable)
        self.state = TxState.PROCEEDING
        self._provisional: bytes | None = None
        self._final: bytes | None = None
        self._interval = settings.t1
        self.acked = False

    def send_response(self, status: int, data: bytes, now: float) -> None:
        """The TU sends a response (or resends its 2xx while ACCEPTED)."""
        if self.state is TxState.PROCEEDING:
            self.last_status = status
            self.outbox.append(data)
            if status < 200:
                self._provisional = data
            elif status < 300:
                self._final = data
                self.state = TxState.ACCEPTED
                self._start("L", now + self.settings.timer_l)
                if not self.reliable:
                    self._interval = self.settings.t1
                    self._start("2xx", now + self._interval)
            else:
                self._final = data
                self.state = TxState.COMPLETED
                if not self.reliable:
                    self._interval = self.settings.timer_g
                    self._start("G", now + self._interval)
                self._start("H", now + self.settings.timer_h)
        elif self.state is TxState.ACCEPTED and 200 <= status < 300:
            self.outbox.append(data)  # RFC 6026: 2xx retransmissions from the TU pass
        else:
            raise TransactionStateError(f"cannot send {status} in state {self.state.value}")

    def receive_request(self, now: float) -> None:
        """A retransmission of the INVITE: resend the latest response (absorbed when ACCEPTED)."""
        if self.state is TxState.PROCEEDING and self._provisional is not None:
            self.outbox.append(self._provisional)
        elif self.state is TxState.COMPLETED and self._final is not None:
            self.outbox.append(self._final)

    def receive_ack(self, now: float) -> bool:
        """An ACK matched this transaction; True means pass it to the TU (ACCEPTED, RFC 6026)."""
        if self.state is TxState.COMPLETED:
            self.state = TxState.CONFIRMED
            self._stop("G", "H")
            self._wait_then_terminate("I", 0.0 if self.reliable else self.settings.timer_i, now)
            return False
        if self.state is TxState.ACCEPTED:
            first = not self.acked
            self.ack_2xx(now)
            return first
        return False

    def ack_2xx(self, now: float) -> None:
        """The ACK for the 2xx arrived: stop retransmitting it; stay until timer L."""
        self.acked = True
        self._stop("2xx")

    def _fire(self, name: str, deadline: float) -> TxOutcome:
        if name == "G" and self._final is not None:
            self.outbox.append(self._final)
            self._interval = min(2 * self._interval, self.settings.t2)
            self._start("G", deadline + self._interval)
        elif name == "2xx" and self._final is not None:
            self.outbox.append(self._final)
            self._interval = min(2 * self._interval, self.settings.t2)
            self._start("2xx", deadline + self._interval)
        elif name == "H":
            self.terminate()
            return TxOutcome.TIMEOUT
        elif name == "I":
            self.terminate()
        elif name == "L":
            acked = self.acked
            self.terminate()
            if not acked:
                return TxOutcome.ACK_TIMEOUT
        return TxOutcome.NONE


class ServerNonInviteTransaction(Transaction):
    """Non-INVITE server transaction (RFC 3261 §17.2.2)."""

    __slots__ = ("_last",)

    def __init__(self, tx_id: str, settings: TimerSettings, reliable: bool, now: float) -> None:
        super().__init__(tx_id, settings, reliable)
        self.state = TxState.TRYING
        self._last: bytes | None = None

    def send_response(self, status: int, data: bytes, now: float) -> None:
        if self.state not in (TxState.TRYING, TxState.PROCEEDING):
            raise TransactionStateError(f"cannot send {status} in state {self.state.value}")
        self.last_status = status
        self._last = data
        self.outbox.append(data)
        if status < 200:
            self.state = TxState.PROCEEDING
        else:
            self.state = TxState.COMPLETED
            self._wait_then_terminate("J", 0.0 if self.reliable else self.settings.timer_j, now)

    def receive_request(self, now: float) -> None:
        """A retransmitted request: absorbed while TRYING, else the last response is resent."""
        if self._last is not None and self.state in (TxState.PROCEEDING, TxState.COMPLETED):
            self.outbox.append(self._last)

    def _fire(self, name: str, deadline: float) -> TxOutcome:
        if name == "J":
            self.terminate()
        return TxOutcome.NONE


class ClientInviteTransaction(Transaction):
    """INVITE client transaction (RFC 3261 §17.1.1, RFC 6026 §7.2)."""

    __slots__ = ("_request", "_ack", "_interval")

    def __init__(
        self, tx_id: str, settings: TimerSettings, reliable: bool, request: bytes, now: float
    ) -> None:
        super().__init__(tx_id, settings, reliable)
        self.state = TxState.CALLING
        self._request = request
        self._ack: bytes | None = None
        self._interval = settings.timer_a
        self.outbox.append(request)
        if not reliable:
            self._start("A", now + self._interval)
        self._start("B", now + settings.timer_b)

    def receive_response(self, status: int, now: float, make_ack: Callable[[], bytes]) -> bool:
        """A response matched; True means pass it to the TU.  ``make_ack`` builds the non-2xx ACK."""
        if self.state in (TxState.CALLING, TxState.PROCEEDING):
            self.last_status = status
            if status < 200:
                self.state = TxState.PROCEEDING
                self._stop("A", "B")
            elif status < 300:
                self.state = TxState.ACCEPTED
                self._stop("A", "B")
                self._start("M", now + self.settings.timer_m)
            else:
                self.state = TxState.COMPLETED
                self._stop("A", "B")
                self._ack = make_ack()
                self.outbox.append(self._ack)
                self._wait_then_terminate("D", 0.0 if self.reliable else self.settings.timer_d, now)
            return True
        if self.state is TxState.ACCEPTED:
            return 200 <= status < 300  # retransmitted or forked 2xx: the TU acknowledges it
        if self.state is TxState.COMPLETED and status >= 300 and self._ack is not None:
            self.outbox.append(self._ack)
        return False

    def _fire(self, name: str, deadline: float) -> TxOutcome:
        if name == "A":
            self.outbox.append(self._request)
            self._interval *= 2
            self._start("A", deadline + self._interval)
        elif name == "B":
            self.terminate()
            return TxOutcome.TIMEOUT
        elif name in ("D", "M"):
            self.terminate()
        return TxOutcome.NONE


class ClientNonInviteTransaction(Transaction):
    """Non-INVITE client transaction (RFC 3261 §17.1.2)."""

    __slots__ = ("_request", "_interval")

    def __init__(
        self, tx_id: str, settings: TimerSettings, reliable: bool, request: bytes, now: float
    ) -> None:
        super().__init__(tx_id, settings, reliable)
        self.state = TxState.TRYING
        self._request = request
        self._interval = settings.timer_e
        self.outbox.append(request)
        if not reliable:
            self._start("E", now + self._interval)
        self._start("F", now + settings.timer_f)

    def receive_response(self, status: int, now: float) -> bool:
        """A response matched; True means pass it to the TU (retransmissions are absorbed)."""
        if self.state not in (TxState.TRYING, TxState.PROCEEDING):
            return False
        self.last_status = status
        if status < 200:
            self.state = TxState.PROCEEDING
        else:
            self.state = TxState.COMPLETED
            self._stop("E", "F")
            self._wait_then_terminate("K", 0.0 if self.reliable else self.settings.timer_k, now)
        return True

    def _fire(self, name: str, deadline: float) -> TxOutcome:
        if name == "E":
            self.outbox.append(self._request)
            if self.state is TxState.PROCEEDING:
                self._interval = self.settings.t2
            else:
                self._interval = min(2 * self._interval, self.settings.t2)
            self._start("E", deadline + self._interval)
        elif name == "F":
            self.terminate()
            return TxOutcome.TIMEOUT
        elif name == "K":
            self.terminate()
        return TxOutcome.NONE


ServerTransaction = ServerInviteTransaction | ServerNonInviteTransaction
ClientTransaction = ClientInviteTransaction | ClientNonInviteTransaction


def has_rfc3261_branch(via: Via) -> bool:
    """True when the branch starts with the magic cookie and carries an id after it."""
    branch = via.branch
    return branch is not None and branch.startswith(MAGIC_COOKIE) and len(branch) > len(MAGIC_COOKIE)


def sent_by(via: Via) -> str:
    """The sent-by of a Via, normalised for matching."""
    return f"{via.host.lower()}:{via.port if via.port is not None else ''}"


def server_key(request: Request, method: str | None = None) -> tuple[str, ...]:
    """The server transaction a request belongs to (RFC 3261 §17.2.3).

    ACK maps onto its INVITE; pass ``method="INVITE"`` to find the INVITE a CANCEL targets.  Requests
    without an RFC 3261 branch fall back to RFC 2543 matching on Request-URI, From tag, Call-ID,
    CSeq number and the top Via (the To tag is left out: an ACK carries the tag of our response).
    """
    via = request.vias[0]
    m = method or ("INVITE" if request.method == "ACK" else request.method)
    if has_rfc3261_branch(via):
        return ("3261", via.branch or "", sent_by(via), m)
    return (
        "2543",
        str(request.uri),
        request.from_.tag or "",
        request.call_id,
        str(request.cseq.seq),
        str(via),
        m,
    )


def client_key(message: Request | Response) -> tuple[str, str]:
    """The client transaction a response belongs to (RFC 3261 §17.1.3): top branch + CSeq method."""
    return (message.vias[0].branch or "", message.cseq.method)


def is_reliable(transport: str) -> bool:
    return transport.upper() in RELIABLE_TRANSPORTS
