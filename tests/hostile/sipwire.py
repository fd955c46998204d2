"""A tiny SIP client for hostile tests: builds probe requests, frames and reads responses (no switch code).

Kept independent of ``switch.sip`` on purpose: the code under test must not judge itself.
"""

from __future__ import annotations

import re
import secrets
import socket
import time
from dataclasses import dataclass, field

__all__ = ["Reply", "StreamReader", "ack_for", "options", "parse_reply", "recv_udp"]

_CALL_ID = re.compile(rb"^(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$", re.I | re.M)
_CL = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\d+)", re.I | re.M)
_HEADER = re.compile(rb"^([A-Za-z-]+)[ \t]*:[ \t]*([^\r\n]*)\r?$", re.M)


@dataclass(slots=True)
class Reply:
    status: int
    call_id: str
    raw: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def parse_reply(data: bytes) -> Reply | None:
    """A response's status, Call-ID and headers; None when the bytes are not a SIP response."""
    match = re.match(rb"SIP/2\.0 (\d{3}) ", data)
    if match is None:
        return None
    call_id = _CALL_ID.search(data)
    head = data.split(b"\r\n\r\n", 1)[0]
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in _HEADER.findall(head)]
    text = call_id.group(1).decode("latin-1") if call_id else ""
    return Reply(int(match.group(1)), text, data, headers)


def options(target: tuple[str, int], local: tuple[str, int], transport: str = "UDP") -> tuple[bytes, str]:
    """A valid OPTIONS with a fresh Call-ID and branch; returns (bytes, Call-ID)."""
    call_id = "probe-" + secrets.token_hex(8)
    host, port = target
    message = (
        f"OPTIONS sip:probe@{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {local[0]}:{local[1]};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:tester@{local[0]}>;tag={secrets.token_hex(4)}\r\n"
        f"To: <sip:probe@{host}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    return message.encode(), call_id


def ack_for(reply: Reply, request_uri: str) -> bytes | None:
    """The ACK for a non-2xx final response to an INVITE (same branch, To with the response's tag)."""
    via, from_, to, cseq = (reply.header(n) for n in ("Via", "From", "To", "CSeq"))
    if not (via and from_ and to and cseq) or not cseq.upper().endswith("INVITE"):
        return None
    number = cseq.split()[0]
    lines = [
        f"ACK {request_uri} SIP/2.0",
        f"Via: {via}",
        "Max-Forwards: 70",
        f"From: {from_}",
        f"To: {to}",
        f"Call-ID: {reply.call_id}",
        f"CSeq: {number} ACK",
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode("latin-1", "replace")


def recv_udp(sock: socket.socket, timeout: float) -> Reply | None:
    """The next SIP response on ``sock`` within ``timeout`` seconds (non-SIP datagrams skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        sock.settimeout(remaining)
        try:
            data = sock.recv(70000)
        except (TimeoutError, BlockingIOError):
            return None
        except ConnectionRefusedError:
            continue
        reply = parse_reply(data)
        if reply is not None:
            return reply


class StreamReader:
    """Frames responses from a TCP socket by Content-Length."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.closed = False

    def next(self, timeout: float) -> Reply | None:
        deadline = time.monotonic() + timeout
        while True:
            framed = self._frame()
            if framed is not None:
                return framed
            remaining = deadline - time.monotonic()
            if self.closed or remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                self.closed = True
            self.buf += chunk

    def _frame(self) -> Reply | None:
        self.buf = self.buf.lstrip(b"\r\n")
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        length_match = _CL.search(self.buf[:end])
        length = int(length_match.group(1)) if length_match else 0
        total = end + 4 + length
        if len(self.buf) < total:
            return None
        data, self.buf = self.buf[:total], self.buf[total:]
        return parse_reply(data) or Reply(0, "", data)
