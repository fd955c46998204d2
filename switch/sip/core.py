"""The sans-IO SIP endpoint the transport drives (the h11/aioquic shape).

The transport feeds it datagrams or framed messages with ``receive``/``receive_message``, sends what
``datagrams_to_send`` returns and calls ``handle_timer(now)`` at ``next_timer()``.  The application
reads ``next_event()`` and answers with ``respond``, ``send_request`` and ``send_in_dialog``.

Inside: server and client transactions (:mod:`switch.sip.transaction`), dialogs
(:mod:`switch.sip.dialog`) and the automatic UAS answers: the rules of :func:`switch.sip.uas.check_request`,
OPTIONS, 481 for an unknown dialog, 482 for a merged request, 500 for an out-of-order CSeq, CANCEL (200 and
487), 400 for a malformed but routable request.  Responses are routed per RFC 3261 §18.2.2 and RFC 3581.

Resource bounds (``bounds``, a ``switch.security.limits.ResourceBounds``): a new request beyond the
transaction limits (in total or from its source address), or a new INVITE beyond the dialog limits, gets a
stateless 503 with Retry-After; BYE and CANCEL, which free resources, are never refused.  Every request that
carried credentials and is answered 401/407 without ``stale=true`` is reported to ``on_auth_failure`` with
its source address (the transport blocks repeat offenders).
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from switch.security.limits import ResourceBounds
from switch.sip.auth import credentials_refused
from switch.sip.dialog import Dialog, dialog_id, uri_destination, with_tag
from switch.sip.errors import SipError, SipParseError
from switch.sip.events import (
    AckReceived,
    AckTimeout,
    CancelReceived,
    Event,
    RequestReceived,
    ResponseReceived,
    TransactionTimeout,
)
from switch.sip.headers import Headers, Via, parse_via
from switch.sip.message import (
    Request,
    Response,
    error_response_for,
    make_response,
    parse_message,
    serialize,
)
from switch.sip.timers import TimerSettings
from switch.sip.transaction import (
    MAGIC_COOKIE,
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    TransactionStateError,
    TxOutcome,
    TxState,
    client_key,
    is_reliable,
    server_key,
)
from switch.sip.uas import check_request, options_response

__all__ = ["CoreCounters", "CoreSettings", "Outgoing", "SipCore"]

Address = tuple[str, int]
DEFAULT_METHODS = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class CoreSettings:
    timers: TimerSettings
    local_host: str
    local_port: int
    force_rport: bool = False
    user_agent: str = "switch"
    allowed_methods: frozenset[str] = DEFAULT_METHODS
    supported: frozenset[str] = frozenset()
    accepted_content_types: frozenset[str] = frozenset({"application/sdp"})
    trying_delay: float = 0.0
    """Seconds a new INVITE waits for the application's own provisional or final response before the
    core sends 100 Trying (RFC 3261 §17.2.1: the 100 may be left out when the TU answers within 200 ms);
    0 sends it at once."""


@dataclass(slots=True)
class Outgoing:
    """One message to put on the wire (over TCP/TLS: on ``connection``)."""

    data: bytes
    destination: Address
    transport: str
    connection: object | None


@dataclass(slots=True)
class CoreCounters:
    received: int = 0  # datagrams/messages fed in
    answered: int = 0  # automatic responses the core produced itself
    absorbed: int = 0  # retransmissions and ACKs eaten by transactions or dialogs
    dropped: int = 0  # unroutable garbage, stray responses, stray ACKs
    refused: int = 0  # new requests answered 503 because a transaction or dialog limit was reached


@dataclass(slots=True, eq=False)
class _Entry:
    """A transaction with what the core needs to route its output."""

    tx: (
        ServerInviteTransaction
        | ServerNonInviteTransaction
        | ClientInviteTransaction
        | ClientNonInviteTransaction
    )
    key: tuple[str, ...]
    request: Request
    destination: Address
    transport: str
    connection: object | None
    server: bool
    top_via: str = ""  # server side: our stamped copy of the request's top Via
    to_tag: str = ""
    dialog_id: str | None = None
    scheduled: float | None = None
    merged_key: tuple[str, str, int, str] | None = None
    source_ip: str = ""  # server side: the address the request came from (not what its Via claims)
    trying_due: bool = False  # server INVITE: 100 Trying not sent yet, and not needed once it answers


_RANDOM_POOL_SIZE = 4096


class _RandomHex:
    """Hex strings from the OS's random source, read a pool at a time (one ``getrandom`` per few hundred
    tags and branches instead of one each); as unpredictable as ``secrets.token_hex``."""

    __slots__ = ("_pool", "_pos")

    def __init__(self) -> None:
        self._pool = b""
        self._pos = 0

    def reset(self) -> None:
        """Forget the pool (a forked child must not repeat its parent's tags)."""
        self._pool = b""
        self._pos = 0

    def __call__(self, nbytes: int) -> str:
        pos = self._pos
        end = pos + nbytes
        if end > len(self._pool):
            self._pool = os.urandom(_RANDOM_POOL_SIZE)
            pos, end = 0, nbytes
        self._pos = end
        return self._pool[pos:end].hex()


_random_hex = _RandomHex()
os.register_at_fork(after_in_child=_random_hex.reset)


def _new_tag() -> str:
    return _random_hex(5)


def _bare_host(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


@dataclass(slots=True)
class _Route:
    top_via: str
    destination: Address
    source_ip: str = ""


def _route_response(via: Via, source: Address, transport: str, force_rport: bool) -> _Route:
    """Stamp received/rport on the top Via (§18.2.1, RFC 3581) and pick where responses go (§18.2.2)."""
    host, port = source
    params = dict(via.params)
    if force_rport or via.rport_requested:
        params["rport"] = str(port)
        params["received"] = host
    elif _bare_host(via.host).lower() != host.lower():
        params["received"] = host
    stamped = Via(via.protocol, via.transport, via.host, via.port, params)
    if force_rport or via.rport_requested or is_reliable(transport):
        dest = source
    elif via.params.get("maddr"):
        dest = (_bare_host(via.params["maddr"] or ""), via.port or 5060)
    else:
        dest = (_bare_host(params.get("received") or via.host), via.port or 5060)
    return _Route(str(stamped), dest, host)


def _restamp(headers: Headers, top_via: str) -> Headers:
    """The headers with the top Via replaced by our stamped copy (other Vias kept in order)."""
    vias = headers.get_all("Via")
    if not vias or vias[0] == top_via:
        return headers
    replaced = headers.replace_field("Via", vias[0], top_via)  # the top Via alone on its line
    if replaced is not None:
        return replaced
    out = Headers()
    placed = False
    for name, value in headers.items():
        if name != "Via":
            out.add(name, value)
        elif not placed:
            placed = True
            out.add("Via", top_via)
            for rest in vias[1:]:
                out.add("Via", rest)
    return out


def _restamp_owned(headers: Headers, top_via: str) -> Headers:
    """``_restamp`` for headers the core owns (a response it built or copied): changed in place when
    the top Via is alone on its line, so a response's fields are copied once on its way out."""
    first = headers.get("Via")
    if first is None or first == top_via:
        return headers
    if "," not in first and headers.replace_first("Via", top_via):
        return headers
    return _restamp(headers, top_via)


@dataclass(slots=True)
class _DialogExtras:
    invite: _Entry | None = None  # the INVITE server transaction whose 2xx awaits its ACK
    last_ack: bytes | None = None  # UAC: the ACK we sent, resent on a retransmitted 2xx
    pending_invite: int | None = None  # UAS: CSeq of the INVITE whose 2xx awaits its ACK


class SipCore:
    """A SIP user agent core with its transaction layer; sans-IO, every call takes ``now``."""

    def __init__(self, settings: CoreSettings) -> None:
        self.settings = settings
        self.counters = CoreCounters()
        self._entries: dict[str, _Entry] = {}
        self._server: dict[tuple[str, ...], _Entry] = {}
        self._client: dict[tuple[str, ...], _Entry] = {}
        self._merged: dict[tuple[str, str, int, str], tuple[str, ...]] = {}
        self._dialogs: dict[str, Dialog] = {}
        self._extras: dict[str, _DialogExtras] = {}
        self._events: deque[Event] = deque()
        self._out: list[Outgoing] = []
        self._heap: list[tuple[float, int, str]] = []
        self._trying: deque[tuple[float, _Entry]] = deque()  # deferred 100 Trying, in deadline order
        self._ids = itertools.count(1)
        self.bounds = ResourceBounds()
        self.on_auth_failure: Callable[[str, float], object] | None = None

    # ----------------------------------------------------------------- transport side

    def receive(
        self,
        data: bytes,
        source: Address,
        now: float,
        transport: str = "UDP",
        connection: object | None = None,
    ) -> None:
        """Feed one datagram (its body framed by Content-Length, trailing octets ignored)."""
        try:
            msg = parse_message(data)
        except SipParseError as err:
            self.counters.received += 1
            self._reject_unparsable(data, err, source, transport, connection)
            return
        self.receive_message(msg, source, now, transport, connection)

    def receive_message(
        self,
        msg: Request | Response,
        source: Address,
        now: float,
        transport: str = "UDP",
        connection: object | None = None,
    ) -> None:
        """Feed one message a StreamParser framed (or ``receive`` parsed)."""
        self.counters.received += 1
        if isinstance(msg, Response):
            try:
                self._on_response(msg, now)
            except SipParseError:
                self.counters.dropped += 1  # a response we cannot match is never answered
            return
        try:
            self._on_request(msg, source, now, transport, connection)
        except SipParseError as err:
            self._reject_malformed(msg, err, source, transport, connection)

    def datagrams_to_send(self) -> list[Outgoing]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def next_timer(self) -> float | None:
        """The earliest transaction deadline, or None when no timer runs."""
        trying = self._trying
        while trying and not trying[0][1].trying_due:
            trying.popleft()
        first = trying[0][0] if trying else None
        heap = self._heap
        while heap:
            deadline, _, tx_id = heap[0]
            entry = self._entries.get(tx_id)
            if entry is not None and entry.scheduled == deadline:
                return deadline if first is None or deadline < first else first
            heapq.heappop(heap)
        return first

    def handle_timer(self, now: float) -> None:
        """Fire every transaction timer due at ``now``."""
        trying = self._trying
        while trying and trying[0][0] <= now:
            _, pending = trying.popleft()
            if pending.trying_due:
                pending.trying_due = False
                if pending.tx.state is TxState.PROCEEDING:
                    self._send_response(pending, make_response(pending.request, 100), now)
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, tx_id = heapq.heappop(heap)
            entry = self._entries.get(tx_id)
            if entry is None or entry.scheduled != deadline:
                continue
            entry.scheduled = None
            outcome = entry.tx.handle_timer(now)
            self._flush(entry)
            if outcome is TxOutcome.TIMEOUT:
                self._events.append(TransactionTimeout(tx_id))
            elif outcome is TxOutcome.ACK_TIMEOUT and entry.dialog_id is not None:
                if entry.dialog_id in self._dialogs:
                    self._events.append(AckTimeout(entry.dialog_id))
                else:
                    self._extras.pop(entry.dialog_id, None)
            self._settle(entry)

    # ----------------------------------------------------------------- application side

    def respond(self, event: RequestReceived, response: Response, now: float) -> bool:
        """Send the application's response to a request; False when the transaction no longer takes it
        (already answered, e.g. 487 after a CANCEL, or terminated)."""
        entry = self._entries.get(event.transaction_id)
        if entry is None or not entry.server:
            return False
        request = entry.request
        headers = response.headers.copy()
        to_tag: str | None = None
        if response.status > 100:
            response_to = response.to
            to_tag = response_to.tag
            if to_tag is None and request.to.tag is None:  # §8.2.6.2: the UAS adds its tag
                to_tag = entry.to_tag
                headers.set("To", str(with_tag(response_to, to_tag)))
        if "Server" not in headers:
            headers.add("Server", self.settings.user_agent)
        response = Response(response.status, response.reason, headers, response.body, response.version)
        try:
            self._send_response(entry, response, now)
        except TransactionStateError:
            return False
        entry.trying_due = False  # the application answered in time: no 100 Trying (§17.2.1)
        if response.status in (401, 407) and self.on_auth_failure is not None:
            if credentials_refused(request.headers, headers):
                self.on_auth_failure(entry.source_ip, now)
        if request.method == "INVITE" and 200 <= response.status < 300:
            self._on_invite_accepted(entry, response, to_tag)
        elif request.method == "BYE" and response.status >= 200 and entry.dialog_id is not None:
            self._end_dialog(entry.dialog_id)
        return True

    def send_request(
        self,
        request: Request,
        destination: Address,
        now: float,
        transport: str = "UDP",
        connection: object | None = None,
        *,
        dialog: str | None = None,
    ) -> str:
        """Send a request with a fresh top Via and a client transaction; returns the transaction id.

        An ACK gets no transaction (it is sent once); its id is returned all the same.
        """
        transport = transport.upper()
        branch = MAGIC_COOKIE + _random_hex(8)
        s = self.settings
        headers = Headers(
            [("Via", f"SIP/2.0/{transport} {s.local_host}:{s.local_port};branch={branch};rport")]
        )
        for name, value in request.headers.items():
            headers.add(name, value)
        if "Max-Forwards" not in headers:
            headers.add("Max-Forwards", "70")
        if "User-Agent" not in headers:
            headers.add("User-Agent", s.user_agent)
        req = Request(request.method, request.uri, headers, request.body, request.version)
        data = serialize(req)
        tx_id = f"c{next(self._ids)}"
        reliable = is_reliable(transport)
        if req.method == "ACK":
            self._out.append(Outgoing(data, destination, transport, connection))
            return tx_id
        tx: ClientInviteTransaction | ClientNonInviteTransaction
        if req.method == "INVITE":
            tx = ClientInviteTransaction(tx_id, s.timers, reliable, data, now)
        else:
            tx = ClientNonInviteTransaction(tx_id, s.timers, reliable, data, now)
        entry = _Entry(tx, (branch, req.method), req, destination, transport, connection, False)
        entry.dialog_id = dialog
        self._client[entry.key] = entry
        self._entries[tx_id] = entry
        self._flush(entry)
        self._settle(entry)
        return tx_id

    def cancel(self, transaction_id: str, now: float) -> str | None:
        """CANCEL a pending INVITE client transaction (RFC 3261 §9.1); None if nothing to cancel."""
        entry = self._entries.get(transaction_id)
        if entry is None or entry.server or not isinstance(entry.tx, ClientInviteTransaction):
            return None
        if entry.tx.state is not TxState.PROCEEDING and entry.tx.state is not TxState.CALLING:
            return None
        req = entry.request
        headers = Headers([("Via", req.headers.get_all("Via")[0])])
        for name in ("Route", "Max-Forwards", "From", "To", "Call-ID"):
            for value in req.headers.get_all(name):
                headers.add(name, value)
        headers.add("CSeq", f"{req.cseq.seq} CANCEL")
        cancel = Request("CANCEL", req.uri, headers)
        tx_id = f"c{next(self._ids)}"
        tx = ClientNonInviteTransaction(
            tx_id, self.settings.timers, is_reliable(entry.transport), serialize(cancel), now
        )
        new = _Entry(
            tx, (entry.key[0], "CANCEL"), cancel, entry.destination, entry.transport, entry.connection, False
        )
        self._client[new.key] = new
        self._entries[tx_id] = new
        self._flush(new)
        self._settle(new)
        return tx_id

    def send_in_dialog(
        self,
        dialog_id: str,
        method: str,
        now: float,
        *,
        body: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
    ) -> str:
        """Send BYE, re-INVITE, INFO... or the ACK for a 2xx inside a dialog; returns the transaction id.

        Raises KeyError for an unknown (or ended) dialog.
        """
        dialog = self._dialogs[dialog_id]
        request = dialog.create_request(method, body=body, headers=headers)
        destination = None
        if not (dialog.is_uas and self.settings.force_rport):
            destination = uri_destination(dialog.next_hop())
        destination = destination or dialog.peer or ("127.0.0.1", 5060)
        tx_id = self.send_request(
            request, destination, now, dialog.transport, dialog.connection, dialog=dialog_id
        )
        if request.method == "ACK":
            self._extras.setdefault(dialog_id, _DialogExtras()).last_ack = self._out[-1].data
        elif request.method == "BYE":
            self._end_dialog(dialog_id)
        return tx_id

    def dialog_id_of(self, transaction_id: str) -> str | None:
        """The dialog a live transaction belongs to (e.g. the one a 2xx to an INVITE just created)."""
        entry = self._entries.get(transaction_id)
        return entry.dialog_id if entry is not None else None

    def dialog(self, dialog_id: str) -> Dialog | None:
        return self._dialogs.get(dialog_id)

    @property
    def dialogs(self) -> dict[str, Dialog]:
        return dict(self._dialogs)

    @property
    def transaction_count(self) -> int:
        return len(self._entries)

    # ----------------------------------------------------------------- requests in

    def _on_request(
        self, req: Request, source: Address, now: float, transport: str, connection: object | None
    ) -> None:
        vias = req.vias
        if not vias:
            self.counters.dropped += 1  # nowhere to send a response
            return
        key = server_key(req)
        entry = self._server.get(key)
        if entry is not None:  # retransmission, or the ACK of a non-2xx final
            self.counters.absorbed += 1
            if req.method == "ACK":
                if isinstance(entry.tx, ServerInviteTransaction) and entry.tx.receive_ack(now):
                    self._ack_arrived(entry, req)
                self._settle(entry)
            elif not isinstance(entry.tx, ClientInviteTransaction | ClientNonInviteTransaction):
                entry.tx.receive_request(now)
                self._flush(entry)
            return
        if req.method == "ACK":
            self._on_stray_ack(req, now)
            return
        route = _route_response(vias[0], source, transport, self.settings.force_rport)
        new_dialog = req.method == "INVITE" and req.to.tag is None
        if self.bounds.refuses(req.method, new_dialog, source[0], len(self._entries), len(self._dialogs)):
            self.counters.refused += 1
            response = make_response(req, 503)
            response.headers.add("Retry-After", str(self.bounds.limits.retry_after))
            self._send_stateless(response, source, transport, connection)
            return
        s = self.settings
        rejection = check_request(
            req,
            allowed_methods=s.allowed_methods,
            supported=s.supported,
            accepted_content_types=s.accepted_content_types,
        )
        if rejection is None and not _utf8_text(req):
            rejection = make_response(req, 400, "Bad Request (not UTF-8)")
        if rejection is not None:
            self._auto_answer(req, key, route, transport, connection, now, rejection)
            return
        if req.method == "CANCEL":
            self._on_cancel(req, key, route, transport, connection, now)
            return
        to_tag = req.to.tag
        from_tag = req.from_.tag or ""
        if to_tag is not None:
            did = dialog_id(req.call_id, to_tag, from_tag)
            dialog = self._dialogs.get(did)
            if dialog is None:
                self._auto_status(req, key, route, transport, connection, now, 481)
                return
            status = dialog.check_remote_cseq(req)
            if status is not None:
                self._auto_status(req, key, route, transport, connection, now, status)
                return
            self._deliver(req, key, route, source, transport, connection, now, did)
            return
        cseq = req.cseq
        merged_key = (from_tag, req.call_id, cseq.seq, cseq.method)
        if merged_key[0] and self._merged.get(merged_key, key) != key:  # RFC 3261 §8.2.2.2
            self._auto_status(req, key, route, transport, connection, now, 482)
            return
        if req.method == "OPTIONS":
            answer = options_response(
                req,
                allowed_methods=s.allowed_methods,
                supported=s.supported,
                accepted_content_types=s.accepted_content_types,
            )
            self._auto_answer(req, key, route, transport, connection, now, answer)
            return
        entry = self._deliver(req, key, route, source, transport, connection, now, None)
        if merged_key[0]:
            self._merged[merged_key] = key
            entry.merged_key = merged_key

    def _new_server(
        self,
        req: Request,
        key: tuple[str, ...],
        route: _Route,
        transport: str,
        connection: object | None,
        now: float,
    ) -> _Entry:
        tx_id = f"s{next(self._ids)}"
        reliable = is_reliable(transport)
        tx: ServerInviteTransaction | ServerNonInviteTransaction
        if req.method == "INVITE":
            tx = ServerInviteTransaction(tx_id, self.settings.timers, reliable, now)
        else:
            tx = ServerNonInviteTransaction(tx_id, self.settings.timers, reliable, now)
        entry = _Entry(tx, key, req, route.destination, transport, connection, True, route.top_via)
        entry.to_tag = _new_tag()
        entry.source_ip = ip = route.source_ip
        self.bounds.transaction_opened(ip)
        self._server[key] = entry
        self._entries[tx_id] = entry
        return entry

    def _deliver(
        self,
        req: Request,
        key: tuple[str, ...],
        route: _Route,
        source: Address,
        transport: str,
        connection: object | None,
        now: float,
        did: str | None,
    ) -> _Entry:
        entry = self._new_server(req, key, route, transport, connection, now)
        entry.dialog_id = did
        if req.method == "INVITE":  # §17.2.1: 100 Trying, unless the application answers in time
            delay = self.settings.trying_delay
            if delay > 0:
                entry.trying_due = True
                self._trying.append((now + delay, entry))
            else:
                self._send_response(entry, make_response(req, 100), now)
        self._events.append(RequestReceived(req, source, transport, connection, did, entry.tx.id))
        return entry

    def _auto_status(
        self,
        req: Request,
        key: tuple[str, ...],
        route: _Route,
        transport: str,
        connection: object | None,
        now: float,
        status: int,
    ) -> None:
        self._auto_answer(req, key, route, transport, connection, now, make_response(req, status))

    def _auto_answer(
        self,
        req: Request,
        key: tuple[str, ...],
        route: _Route,
        transport: str,
        connection: object | None,
        now: float,
        response: Response,
    ) -> None:
        entry = self._new_server(req, key, route, transport, connection, now)
        if req.to.tag is None and response.to.tag is None:
            response.headers.set("To", str(with_tag(response.to, entry.to_tag)))
        if "Server" not in response.headers:
            response.headers.add("Server", self.settings.user_agent)
        self.counters.answered += 1
        self._send_response(entry, response, now)

    def _send_response(self, entry: _Entry, response: Response, now: float) -> None:
        """Send a response the core owns (built by it, or copied in ``respond``)."""
        headers = _restamp_owned(response.headers, entry.top_via)
        if headers is not response.headers:
            response = Response(response.status, response.reason, headers, response.body, response.version)
        tx = entry.tx
        if isinstance(tx, ClientInviteTransaction | ClientNonInviteTransaction):
            raise TransactionStateError("responses go through server transactions")
        tx.send_response(response.status, serialize(response), now)
        self._flush(entry)
        self._settle(entry)

    def _on_cancel(
        self,
        req: Request,
        key: tuple[str, ...],
        route: _Route,
        transport: str,
        connection: object | None,
        now: float,
    ) -> None:
        invite = self._server.get(server_key(req, "INVITE"))
        if invite is None or not isinstance(invite.tx, ServerInviteTransaction):
            self._auto_status(req, key, route, transport, connection, now, 481)
            return
        self._auto_answer(
            req, key, route, transport, connection, now, make_response(req, 200, to_tag=invite.to_tag)
        )
        answered_487 = invite.tx.state is TxState.PROCEEDING
        if answered_487:
            self.counters.answered += 1
            self._send_response(invite, make_response(invite.request, 487, to_tag=invite.to_tag), now)
        self._events.append(CancelReceived(req, invite.tx.id, invite.dialog_id, answered_487))

    def _on_stray_ack(self, req: Request, now: float) -> None:
        """An ACK no transaction claims: the ACK for a 2xx (a dialog's) or nothing (absorbed)."""
        to_tag = req.to.tag
        if to_tag is None:
            self.counters.dropped += 1
            return
        did = dialog_id(req.call_id, to_tag, req.from_.tag or "")
        extras = self._extras.get(did)
        if extras is None or extras.invite is None or extras.pending_invite != req.cseq.seq:
            self.counters.absorbed += 1  # ACK retransmission, or for an unknown dialog
            return
        invite = extras.invite
        extras.invite = None
        extras.pending_invite = None
        if isinstance(invite.tx, ServerInviteTransaction):
            invite.tx.ack_2xx(now)
            self._settle(invite)
        if did not in self._dialogs:  # the dialog ended (BYE) before its ACK came
            self._extras.pop(did, None)
            self.counters.absorbed += 1
            return
        self._events.append(AckReceived(req, did))

    def _ack_arrived(self, entry: _Entry, req: Request) -> None:
        """An ACK matched an ACCEPTED INVITE transaction (same branch or RFC 2543 matching)."""
        if entry.dialog_id is None:
            return
        extras = self._extras.get(entry.dialog_id)
        if extras is not None:
            extras.invite = None
            extras.pending_invite = None
        self._events.append(AckReceived(req, entry.dialog_id))

    def _on_invite_accepted(self, entry: _Entry, response: Response, to_tag: str | None) -> None:
        did = entry.dialog_id  # set for a re-INVITE
        if did is None:
            if to_tag is None:
                return
            did = dialog_id(entry.request.call_id, to_tag, entry.request.from_.tag or "")
        if did not in self._dialogs:
            dialog = Dialog.from_uas(entry.request, response)
            dialog.transport = entry.transport
            dialog.peer = entry.destination
            dialog.connection = entry.connection
            self._dialogs[did] = dialog
            self.bounds.dialog_opened(did, entry.source_ip)
        extras = self._extras.setdefault(did, _DialogExtras())
        extras.invite = entry
        extras.pending_invite = entry.request.cseq.seq
        entry.dialog_id = did

    def _end_dialog(self, did: str) -> None:
        self._dialogs.pop(did, None)
        self.bounds.dialog_ended(did)
        extras = self._extras.get(did)
        if extras is not None and extras.invite is not None:
            # A BYE crossed the ACK of our 2xx: keep what matching that ACK needs, so it still stops
            # the 2xx retransmissions; dropped when the ACK arrives or the transaction gives up.
            return
        self._extras.pop(did, None)

    def _reject_unparsable(
        self, data: bytes, err: SipParseError, source: Address, transport: str, connection: object | None
    ) -> None:
        try:
            response = error_response_for(data, err)
        except SipError:
            response = None
        self._send_stateless(response, source, transport, connection)

    def _reject_malformed(
        self, req: Request, err: SipParseError, source: Address, transport: str, connection: object | None
    ) -> None:
        """A request whose parsed accessors failed (missing or malformed required header)."""
        response: Response | None = None
        if req.method != "ACK" and err.status_hint is not None:
            response = make_response(req, err.status_hint)
        self._send_stateless(response, source, transport, connection)

    def _send_stateless(
        self, response: Response | None, source: Address, transport: str, connection: object | None
    ) -> None:
        via: Via | None = None
        if response is not None:
            vias = response.headers.get_all("Via")
            try:
                via = parse_via(vias[0], strict=False) if vias else None
            except SipParseError:
                via = None
        if response is None or via is None:
            self.counters.dropped += 1
            return
        route = _route_response(via, source, transport, self.settings.force_rport)
        headers = _restamp(response.headers, route.top_via)
        if "Server" not in headers:
            headers.add("Server", self.settings.user_agent)
        out = Response(response.status, response.reason, headers, response.body, response.version)
        self.counters.answered += 1
        self._out.append(Outgoing(serialize(out), route.destination, transport, connection))

    # ----------------------------------------------------------------- responses in

    def _on_response(self, resp: Response, now: float) -> None:
        entry = self._client.get(client_key(resp))
        if entry is None:
            self.counters.dropped += 1  # stray response
            return
        tx = entry.tx
        status = resp.status
        if isinstance(tx, ClientInviteTransaction):
            passed = tx.receive_response(status, now, lambda: self._non2xx_ack(entry, resp))
        elif isinstance(tx, ClientNonInviteTransaction):
            passed = tx.receive_response(status, now)
        else:  # pragma: no cover - client table holds client transactions only
            return
        self._flush(entry)
        self._settle(entry)
        if not passed:
            self.counters.absorbed += 1
            return
        did = entry.dialog_id
        if entry.request.method == "INVITE" and 200 <= status < 300 and resp.to.tag is not None:
            did = dialog_id(resp.call_id, entry.request.from_.tag or "", resp.to.tag)
            if did in self._dialogs:
                extras = self._extras.get(did)
                if extras is not None and extras.last_ack is not None:
                    self._out.append(
                        Outgoing(extras.last_ack, entry.destination, entry.transport, entry.connection)
                    )
                self.counters.absorbed += 1  # a retransmitted 2xx: re-ACKed, not reported again
                return
            dialog = Dialog.from_uac(entry.request, resp)
            dialog.transport = entry.transport
            dialog.peer = entry.destination
            dialog.connection = entry.connection
            self._dialogs[did] = dialog
        self._events.append(ResponseReceived(resp, tx.id, did))

    def _non2xx_ack(self, entry: _Entry, resp: Response) -> bytes:
        """The ACK a client INVITE transaction sends for a 3xx-6xx (RFC 3261 §17.1.1.3)."""
        req = entry.request
        headers = Headers([("Via", req.headers.get_all("Via")[0])])
        for value in req.headers.get_all("Route"):
            headers.add("Route", value)
        headers.add("Max-Forwards", "70")
        for name in ("From", "Call-ID"):
            for value in req.headers.get_all(name):
                headers.add(name, value)
        headers.add("To", resp.headers.get("To") or "")
        headers.add("CSeq", f"{req.cseq.seq} ACK")
        return serialize(Request("ACK", req.uri, headers))

    # ----------------------------------------------------------------- bookkeeping

    def _flush(self, entry: _Entry) -> None:
        outbox = entry.tx.outbox
        if outbox:
            for data in outbox:
                self._out.append(Outgoing(data, entry.destination, entry.transport, entry.connection))
            outbox.clear()

    def _settle(self, entry: _Entry) -> None:
        """Reschedule the entry's timer, or forget it once its transaction terminated."""
        tx = entry.tx
        if tx.state is TxState.TERMINATED:
            if self._entries.pop(tx.id, None) is not None and entry.server:
                self.bounds.transaction_closed(entry.source_ip)
            table = self._server if entry.server else self._client
            if table.get(entry.key) is entry:
                del table[entry.key]
            if entry.merged_key is not None and self._merged.get(entry.merged_key) == entry.key:
                del self._merged[entry.merged_key]
            if entry.dialog_id is not None:
                extras = self._extras.get(entry.dialog_id)
                if extras is not None and extras.invite is entry:
                    extras.invite = None
            return
        deadline = tx.next_timer()
        if deadline is not None and deadline != entry.scheduled:
            entry.scheduled = deadline
            heapq.heappush(self._heap, (deadline, next(self._ids), tx.id))
        elif deadline is None:
            entry.scheduled = None


def _utf8_text(req: Request) -> bool:
    """Whether the Request-URI and header values are UTF-8 (RFC 3261 §7.3.1).  The parser keeps other octets
    as lone surrogates, which nothing downstream (the call records, webhooks) can encode."""
    for _, value in req.headers.items():
        if not value.isascii() and not _encodable(value):
            return False
    uri = str(req.uri)
    return uri.isascii() or _encodable(uri)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
