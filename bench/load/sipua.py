"""A light SIP user agent for media load runs: a caller (UAC) placing calls into the switch and a callee
(UAS) answering the switch's `<Dial><Sip>` legs, both over UDP on loopback, with the SDP of each leg naming
the RTP generator's socket for that leg.

Only what a bridged call needs: INVITE (retransmitted on RFC 3261 timer A), 1xx, 2xx with ACK, a final
non-2xx with its ACK (a 503 and its Retry-After are recorded), BYE both ways. One asyncio datagram endpoint
per side; messages are matched by Call-ID.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Callee", "Caller", "Leg", "parse"]

T1 = 0.5
_COMPACT = {"i": "call-id", "v": "via", "f": "from", "t": "to", "m": "contact", "l": "content-length"}
_PORT = re.compile(rb"^m=audio (\d+) ", re.M)
_TAG = re.compile(r";\s*tag=([^;>\s]+)")
_USER = re.compile(r"sip:([^@;>]+)@")


@dataclass
class Message:
    start: str
    headers: dict[str, str]
    body: bytes

    @property
    def status(self) -> int:
        return int(self.start.split()[1]) if self.start.startswith("SIP/2.0") else 0

    @property
    def method(self) -> str:
        return "" if self.start.startswith("SIP/2.0") else self.start.split()[0]

    def header(self, name: str) -> str:
        return self.headers.get(name, "")

    def rtp_port(self) -> int:
        found = _PORT.search(self.body)
        return int(found.group(1)) if found else 0


def parse(data: bytes) -> Message:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        key = _COMPACT.get(key, key)
        if key not in headers:  # the first (top) Via is the one that counts here
            headers[key] = value.strip()
    return Message(lines[0], headers, body)


def _sdp(user: str, port: int) -> bytes:
    return (
        f"v=0\r\no={user} 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    ).encode()


def _message(start: str, headers: list[str], body: bytes = b"") -> bytes:
    lines = [start, *headers]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Leg:
    """One call of the caller, or one leg the callee answered."""

    index: int
    call_id: str
    status: int = 0  # the final status of the INVITE (0: none yet)
    retry_after: str = ""
    switch_rtp_port: int = 0
    to_header: str = ""
    remote: tuple[str, int] = ("127.0.0.1", 0)
    answered: asyncio.Future[int] | None = None
    bye_done: asyncio.Future[int] | None = None
    bye_from_switch: bool = False
    invites_sent: int = 0
    timer: asyncio.TimerHandle | None = None
    extra: dict[str, str] = field(default_factory=dict)


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, handler: Callable[[Message, tuple[str, int]], None]) -> None:
        self.handler = handler
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data.strip():
            self.handler(parse(data), addr)


class Caller:
    """Places calls to `target` with the SDP `rtp_of(index)` gives; `From` user `m<index>` (the switch
    passes it on as the caller ID of its Dial leg, so the callee can pair the legs)."""

    def __init__(self, target: tuple[str, int], rtp_of: Callable[[int], tuple[str, int]]) -> None:
        self.target = target
        self.rtp_of = rtp_of
        self.legs: dict[str, Leg] = {}
        self.endpoint = _Endpoint(self._received)
        self.port = 0
        self.stray = 0

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self.endpoint, local_addr=("127.0.0.1", 0))
        assert self.endpoint.transport is not None
        self.port = int(self.endpoint.transport.get_extra_info("sockname")[1])

    def close(self) -> None:
        if self.endpoint.transport is not None:
            self.endpoint.transport.close()

    def _send(self, data: bytes, to: tuple[str, int] | None = None) -> None:
        assert self.endpoint.transport is not None
        self.endpoint.transport.sendto(data, to or self.target)

    def _invite(self, leg: Leg) -> bytes:
        host, port = self.target
        rtp_host, rtp_port = self.rtp_of(leg.index)
        return _message(
            f"INVITE sip:media@{host}:{port} SIP/2.0",
            [
                f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK-{leg.call_id}-1;rport",
                f"From: <sip:m{leg.index}@127.0.0.1:{self.port}>;tag=a{leg.index}",
                f"To: <sip:media@{host}:{port}>",
                f"Call-ID: {leg.call_id}",
                "CSeq: 1 INVITE",
                f"Contact: <sip:m{leg.index}@127.0.0.1:{self.port}>",
                "Max-Forwards: 70",
            ],
            _sdp(f"m{leg.index}", rtp_port),
        )

    def call(self, index: int, tag: str) -> Leg:
        loop = asyncio.get_running_loop()
        leg = Leg(index, f"{tag}-{index}", answered=loop.create_future(), bye_done=loop.create_future())
        self.legs[leg.call_id] = leg
        self._retransmit(leg, T1)
        return leg

    def _retransmit(self, leg: Leg, interval: float) -> None:
        if leg.status or leg.invites_sent >= 7:
            if not leg.status and leg.answered is not None and not leg.answered.done():
                leg.answered.set_result(408)
            return
        leg.invites_sent += 1
        self._send(self._invite(leg))
        leg.timer = asyncio.get_running_loop().call_later(interval, self._retransmit, leg, interval * 2)

    def _ack(self, leg: Leg, message: Message, branch: str) -> None:
        host, port = self.target
        self._send(
            _message(
                f"ACK sip:media@{host}:{port} SIP/2.0",
                [
                    f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch};rport",
                    f"From: <sip:m{leg.index}@127.0.0.1:{self.port}>;tag=a{leg.index}",
                    f"To: {message.header('to')}",
                    f"Call-ID: {leg.call_id}",
                    "CSeq: 1 ACK",
                    "Max-Forwards: 70",
                ],
            )
        )

    def bye(self, leg: Leg) -> None:
        host, port = self.target
        data = _message(
            f"BYE sip:media@{host}:{port} SIP/2.0",
            [
                f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK-{leg.call_id}-2;rport",
                f"From: <sip:m{leg.index}@127.0.0.1:{self.port}>;tag=a{leg.index}",
                f"To: {leg.to_header}",
                f"Call-ID: {leg.call_id}",
                "CSeq: 2 BYE",
                "Max-Forwards: 70",
            ],
        )
        loop = asyncio.get_running_loop()

        def again(tries: int) -> None:
            if leg.bye_done is None or leg.bye_done.done():
                return
            if tries >= 7:
                leg.bye_done.set_result(408)
                return
            self._send(data)
            loop.call_later(T1 * 2**tries, again, tries + 1)

        again(0)

    def _received(self, message: Message, addr: tuple[str, int]) -> None:
        leg = self.legs.get(message.header("call-id"))
        if leg is None:
            self.stray += 1
            return
        if message.method == "BYE":  # the switch hung up
            leg.bye_from_switch = True
            self._send(_reply(message, 200, "OK"), addr)
            return
        status = message.status
        cseq = message.header("cseq")
        if not status:
            return
        if cseq.endswith("BYE"):
            if status >= 200 and leg.bye_done is not None and not leg.bye_done.done():
                leg.bye_done.set_result(status)
            return
        if status < 200:
            if leg.timer is not None:  # a provisional answer stops INVITE retransmissions (timer A)
                leg.timer.cancel()
            return
        if status < 300:
            self._ack(leg, message, f"z9hG4bK-{leg.call_id}-ack")
            if not leg.status:
                leg.switch_rtp_port = message.rtp_port()
                leg.to_header = message.header("to")
        else:
            self._ack(leg, message, f"z9hG4bK-{leg.call_id}-1")  # a non-2xx ACK is part of the INVITE
            leg.retry_after = message.header("retry-after")
        if not leg.status:
            leg.status = status
            if leg.timer is not None:
                leg.timer.cancel()
            if leg.answered is not None and not leg.answered.done():
                leg.answered.set_result(status)


def _reply(
    request: Message, status: int, reason: str, extra: list[str] | None = None, body: bytes = b""
) -> bytes:
    return _message(
        f"SIP/2.0 {status} {reason}",
        [
            f"Via: {request.header('via')}",
            f"From: {request.header('from')}",
            f"To: {request.header('to')}",
            f"Call-ID: {request.header('call-id')}",
            f"CSeq: {request.header('cseq')}",
            *(extra or []),
        ],
        body,
    )


class Callee:
    """Answers every INVITE with 200 and an SDP naming `rtp_of(index)`, where `index` is the number in the
    caller ID `m<index>`; answers BYE with 200 and counts it."""

    def __init__(self, rtp_of: Callable[[int], tuple[str, int]]) -> None:
        self.rtp_of = rtp_of
        self.legs: dict[str, Leg] = {}
        self.by_index: dict[int, Leg] = {}
        self.endpoint = _Endpoint(self._received)
        self.port = 0
        self.byes = 0
        self.unpaired = 0
        self.on_ack: Callable[[Leg], None] | None = None
        """Called at the switch's first ACK of each leg's 200 (the switch has taken the SDP answer)."""

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self.endpoint, local_addr=("127.0.0.1", 0))
        assert self.endpoint.transport is not None
        self.port = int(self.endpoint.transport.get_extra_info("sockname")[1])

    def close(self) -> None:
        if self.endpoint.transport is not None:
            self.endpoint.transport.close()

    def _received(self, message: Message, addr: tuple[str, int]) -> None:
        transport = self.endpoint.transport
        assert transport is not None
        call_id = message.header("call-id")
        method = message.method
        if method == "INVITE":
            leg = self.legs.get(call_id)
            if leg is None:
                found = _USER.search(message.header("from"))
                user = found.group(1) if found else ""
                if not user.startswith("m") or not user[1:].isdigit():
                    self.unpaired += 1
                    transport.sendto(_reply(message, 480, "Unknown caller"), addr)
                    return
                leg = Leg(int(user[1:]), call_id, status=200, remote=addr)
                leg.switch_rtp_port = message.rtp_port()
                leg.to_header = f"{message.header('to')};tag=b{leg.index}"
                self.legs[call_id] = leg
                self.by_index[leg.index] = leg
            host, port = self.rtp_of(leg.index)
            extra = [f"Contact: <sip:uas@127.0.0.1:{self.port}>"]
            answer = _message(
                "SIP/2.0 200 OK",
                [
                    f"Via: {message.header('via')}",
                    f"From: {message.header('from')}",
                    f"To: {leg.to_header}",
                    f"Call-ID: {call_id}",
                    f"CSeq: {message.header('cseq')}",
                    *extra,
                ],
                _sdp("uas", port),
            )
            transport.sendto(answer, addr)
        elif method == "ACK":
            leg = self.legs.get(call_id)
            if leg is not None and not leg.extra.get("acked"):
                leg.extra["acked"] = "1"
                if self.on_ack is not None:
                    self.on_ack(leg)
        elif method == "BYE":
            leg = self.legs.get(call_id)
            if leg is not None and not leg.bye_from_switch:
                leg.bye_from_switch = True
                self.byes += 1
            transport.sendto(_reply(message, 200, "OK"), addr)
        elif method in ("OPTIONS", "INFO", "UPDATE"):
            transport.sendto(_reply(message, 200, "OK"), addr)
        elif method == "CANCEL":
            transport.sendto(_reply(message, 200, "OK"), addr)
