"""SIP dialogs, UAS and UAC side (RFC 3261 §12).

A dialog is identified by Call-ID, local tag and remote tag; it keeps the local and remote CSeq,
the route set (Record-Route) and the remote target (Contact), and builds in-dialog requests
(BYE, re-INVITE, the ACK for a 2xx) following §12.2.1.1, loose and strict routing included.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from switch.sip.headers import Headers, NameAddr, parse_name_addr
from switch.sip.message import Request, Response
from switch.sip.uri import AbsoluteURI, SipURI

__all__ = ["Dialog", "DialogState", "dialog_id", "uri_destination", "with_tag"]

_TARGET_REFRESH = frozenset({"INVITE", "UPDATE"})


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


def dialog_id(call_id: str, local_tag: str, remote_tag: str) -> str:
    """The dialog id string the core hands to the application."""
    return f"{call_id};{local_tag};{remote_tag}"


def with_tag(addr: NameAddr, tag: str) -> NameAddr:
    params = dict(addr.params)
    params["tag"] = tag
    return NameAddr(addr.display_name, addr.uri, params)


def _routes(values: Iterable[str]) -> list[NameAddr]:
    return [parse_name_addr(value) for value in values]


def uri_destination(uri: SipURI | AbsoluteURI) -> tuple[str, int] | None:
    """Where a request to ``uri`` goes without DNS: (host, port), IPv6 brackets removed; None if not SIP."""
    if not isinstance(uri, SipURI):
        return None
    host = uri.params.get("maddr") or uri.host
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = uri.port if uri.port is not None else (5061 if uri.scheme.lower() == "sips" else 5060)
    return (host, port)


@dataclass(slots=True)
class Dialog:
    """The state of one dialog.  Build with :meth:`from_uas` or :meth:`from_uac`."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: NameAddr
    remote_uri: NameAddr
    remote_target: SipURI | AbsoluteURI
    route_set: list[NameAddr]
    local_seq: int
    remote_seq: int | None
    is_uas: bool
    invite_seq: int
    secure: bool = False
    state: DialogState = DialogState.CONFIRMED
    transport: str = "UDP"
    peer: tuple[str, int] | None = None
    connection: object | None = None
    id: str = field(init=False)

    def __post_init__(self) -> None:
        self.id = dialog_id(self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_uas(cls, request: Request, response: Response) -> Dialog:
        """The dialog a UAS creates by answering ``request`` with a 2xx (or 101-199) carrying a To tag."""
        to = response.to
        if to.tag is None:
            raise ValueError("a dialog-creating response needs a To tag")
        contacts = request.contacts
        from_ = request.from_
        return cls(
            call_id=request.call_id,
            local_tag=to.tag,
            remote_tag=from_.tag or "",
            local_uri=to,
            remote_uri=from_,
            remote_target=contacts[0].uri if contacts else from_.uri,
            route_set=_routes(request.headers.get_all("Record-Route")),
            local_seq=0,
            remote_seq=request.cseq.seq,
            is_uas=True,
            invite_seq=request.cseq.seq,
            secure=isinstance(request.uri, SipURI) and request.uri.scheme.lower() == "sips",
            state=DialogState.CONFIRMED if 200 <= response.status < 300 else DialogState.EARLY,
        )

    @classmethod
    def from_uac(cls, request: Request, response: Response) -> Dialog:
        """The dialog a UAC gets from a response with a To tag to its ``request``."""
        to = response.to
        if to.tag is None:
            raise ValueError("a dialog-creating response needs a To tag")
        contacts = response.contacts
        from_ = request.from_
        return cls(
            call_id=request.call_id,
            local_tag=from_.tag or "",
            remote_tag=to.tag,
            local_uri=from_,
            remote_uri=to,
            remote_target=contacts[0].uri if contacts else request.uri,
            route_set=list(reversed(_routes(response.headers.get_all("Record-Route")))),
            local_seq=request.cseq.seq,
            remote_seq=None,
            is_uas=False,
            invite_seq=request.cseq.seq,
            secure=isinstance(request.uri, SipURI) and request.uri.scheme.lower() == "sips",
            state=DialogState.CONFIRMED if 200 <= response.status < 300 else DialogState.EARLY,
        )

    def check_remote_cseq(self, request: Request) -> int | None:
        """RFC 3261 §12.2.2: a request with a CSeq lower than the remote CSeq gets 500 (returned).

        Otherwise the remote CSeq advances and a target-refresh request updates the remote target.
        ACK and CANCEL carry their INVITE's number and are not checked.
        """
        if request.method in ("ACK", "CANCEL"):
            return None
        seq = request.cseq.seq
        if self.remote_seq is not None and seq < self.remote_seq:
            return 500
        self.remote_seq = seq
        if request.method in _TARGET_REFRESH:
            contacts = request.contacts
            if contacts:
                self.remote_target = contacts[0].uri
        return None

    def next_hop(self) -> SipURI | AbsoluteURI:
        """The URI the next in-dialog request is sent towards: the first route, else the remote target."""
        return self.route_set[0].uri if self.route_set else self.remote_target

    def create_request(
        self,
        method: str,
        *,
        body: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """An in-dialog request (RFC 3261 §12.2.1.1); the transaction layer adds the Via.

        ACK reuses the CSeq number of the last INVITE; every other method takes the next local CSeq.
        """
        method = method.upper()
        if method == "ACK":
            seq = self.invite_seq
        else:
            self.local_seq += 1
            seq = self.local_seq
            if method == "INVITE":
                self.invite_seq = seq
        uri: SipURI | AbsoluteURI = self.remote_target
        routes = [str(route) for route in self.route_set]
        if self.route_set:
            first = self.route_set[0].uri
            if not (isinstance(first, SipURI) and "lr" in first.params):  # strict router
                uri = first
                routes = [str(route) for route in self.route_set[1:]] + [f"<{self.remote_target}>"]
        hdrs = Headers()
        for route in routes:
            hdrs.add("Route", route)
        hdrs.add("Max-Forwards", "70")
        hdrs.add("From", str(with_tag(self.local_uri, self.local_tag)))
        hdrs.add(
            "To", str(with_tag(self.remote_uri, self.remote_tag)) if self.remote_tag else str(self.remote_uri)
        )
        hdrs.add("Call-ID", self.call_id)
        hdrs.add("CSeq", f"{seq} {method}")
        for name, value in headers:
            hdrs.add(name, value)
        return Request(method, uri, hdrs, body)
