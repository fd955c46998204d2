"""Resource bounds on real sockets: transactions and dialogs per source (503 + Retry-After), header count
and header section size (513), with other sources and trusted ones unaffected.

The switch: 5 transactions and 2 dialogs per source, 3 dialogs in all, no rate limit, 127.0.0.77 trusted;
its application answers and waits (<Pause>), so an INVITE makes a dialog that lasts until the caller's BYE.
"""

from __future__ import annotations

import secrets
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.switch_process import SwitchProcess
from tests.hostile.sipwire import Reply, StreamReader, options, recv_udp

ATTACKER, OTHER, TRUSTED = "127.0.0.66", "127.0.0.67", "127.0.0.77"
CALLER = "127.0.0.68"  # the dialog test's own address: the transactions of the burst test live on a while
PAUSE_APP = '<?xml version="1.0" encoding="UTF-8"?><Response><Pause length="20"/></Response>'


@pytest.fixture(scope="module")
def switch() -> Iterator[SwitchProcess]:
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "pause.xml"
        app.write_text(PAUSE_APP)
        extra = [
            "--sip-rate", "0", "--trusted-sources", f"{TRUSTED}/32",
            "--max-transactions-per-source", "5", "--max-dialogs-per-source", "2", "--max-dialogs", "3",
        ]  # fmt: skip
        with SwitchProcess(str(app), rtp_ports=40, extra_args=extra, trusted_sources=None) as process:
            yield process


def _udp(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    return sock


def _options_burst(switch: SwitchProcess, host: str, count: int) -> list[Reply]:
    """``count`` OPTIONS at once from ``host`` (each transaction lives 64*T1 after its answer)."""
    target = (switch.host, switch.sip_port)
    with _udp(host) as sock:
        for _ in range(count):
            sock.sendto(options(target, sock.getsockname())[0], target)
        replies: list[Reply] = []
        while len(replies) < count and (reply := recv_udp(sock, 2.0)) is not None:
            replies.append(reply)
    return replies


def test_transactions_per_source_get_503_with_retry_after(switch: SwitchProcess) -> None:
    replies = _options_burst(switch, ATTACKER, 8)
    assert sorted(r.status for r in replies) == [200] * 5 + [503] * 3
    assert {r.header("Retry-After") for r in replies if r.status == 503} == {"5"}
    assert [r.status for r in _options_burst(switch, OTHER, 3)] == [200] * 3
    assert [r.status for r in _options_burst(switch, TRUSTED, 8)] == [200] * 8


class Caller:
    """INVITE with an SDP offer, ACK the 2xx, BYE: a dialog from one source, by hand."""

    def __init__(self, switch: SwitchProcess, sock: socket.socket) -> None:
        self.target = (switch.host, switch.sip_port)
        self.sock = sock
        self.call_id = "dlg-" + secrets.token_hex(8)
        self.from_tag = secrets.token_hex(4)
        self.to_tag = ""

    def _send(self, method: str, cseq: int, body: str = "") -> None:
        host, port = self.target
        local = self.sock.getsockname()
        to = f"<sip:pause@{host}>" + (f";tag={self.to_tag}" if self.to_tag else "")
        lines = [
            f"{method} sip:pause@{host}:{port} SIP/2.0",
            f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK{secrets.token_hex(8)};rport",
            "Max-Forwards: 70",
            f"From: <sip:caller@{local[0]}>;tag={self.from_tag}",
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:caller@{local[0]}:{local[1]}>",
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines += [f"Content-Length: {len(body)}", "", ""]
        self.sock.sendto(("\r\n".join(lines) + body).encode(), self.target)

    def _final(self, method: str) -> Reply | None:
        while (reply := recv_udp(self.sock, 5.0)) is not None:
            if (
                reply.call_id == self.call_id
                and reply.status >= 200
                and method in (reply.header("CSeq") or "")
            ):
                return reply
        return None

    def invite(self) -> int | None:
        local = self.sock.getsockname()[0]
        sdp = (
            f"v=0\r\no=- 1 1 IN IP4 {local}\r\ns=-\r\nc=IN IP4 {local}\r\nt=0 0\r\n"
            "m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        )
        self._send("INVITE", 1, sdp)
        reply = self._final("INVITE")
        if reply is None:
            return None
        to = reply.header("To") or ""
        self.to_tag = to.split("tag=", 1)[1].split(";")[0] if "tag=" in to else ""
        if reply.status < 300:
            self._send("ACK", 1)
        return reply.status

    def bye(self) -> int | None:
        self._send("BYE", 2)
        reply = self._final("BYE")
        return None if reply is None else reply.status


def test_dialogs_per_source_get_503_until_one_ends(switch: SwitchProcess) -> None:
    with (
        _udp(CALLER) as a1,
        _udp(CALLER) as a2,
        _udp(CALLER) as a3,
        _udp(OTHER) as other,
        _udp(TRUSTED) as trusted,
    ):
        first, second, third = Caller(switch, a1), Caller(switch, a2), Caller(switch, a3)
        assert [first.invite(), second.invite()] == [200, 200]
        assert third.invite() == 503  # a third dialog from the same address
        elsewhere = Caller(switch, other)
        assert elsewhere.invite() == 200  # another address is not affected
        assert Caller(switch, trusted).invite() == 503  # 3 dialogs in all: even a trusted source waits
        assert first.bye() == 200
        fourth = Caller(switch, a3)
        assert fourth.invite() == 200  # room again once a dialog ended
        for caller in (second, fourth, elsewhere):
            assert caller.bye() == 200


def test_too_many_headers_get_513(switch: SwitchProcess) -> None:
    target = (switch.host, switch.sip_port)
    with _udp(OTHER) as sock:
        message, call_id = options(target, sock.getsockname())
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(300))
        sock.sendto(message.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\n" + many), target)
        reply = recv_udp(sock, 2.0)
    assert reply is not None and (reply.status, reply.call_id) == (513, call_id)


def test_tcp_header_section_too_large_gets_513_and_close(switch: SwitchProcess) -> None:
    with socket.create_connection((switch.host, switch.sip_port), timeout=5) as sock:
        message, call_id = options((switch.host, switch.sip_port), sock.getsockname(), "TCP")
        head = message.split(b"Content-Length")[0]
        sock.sendall(head + b"X-Pad: " + b"a" * 70000)  # the header section never ends
        reader = StreamReader(sock)
        reply = reader.next(3.0)
        assert reply is not None and (reply.status, reply.call_id) == (513, call_id)
        assert reader.next(2.0) is None and reader.closed
