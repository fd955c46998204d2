"""Resource bounds and floods against a live switch on loopback (attacker bound to 127.0.0.66).

One switch with a tight profile: 20 requests/s per source (burst 20), 127.0.0.77 trusted, TCP framing
timeout 0.5 s, 3 TCP connections per source, 4096-octet messages.
"""

from __future__ import annotations

import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.switch_process import SwitchProcess
from tests.hostile.run_corpus import reject_app
from tests.hostile.sipwire import StreamReader, options, recv_udp

ATTACKER, TRUSTED, GOOD = "127.0.0.66", "127.0.0.77", "127.0.0.1"


@pytest.fixture(scope="module")
def switch() -> Iterator[SwitchProcess]:
    with tempfile.TemporaryDirectory() as tmp:
        extra = [
            "--sip-rate", "20", "--sip-burst", "20", "--trusted-sources", f"{TRUSTED}/32",
            "--tcp-frame-timeout", "0.5", "--tcp-max-per-source", "3", "--max-message-size", "4096",
        ]  # fmt: skip
        with SwitchProcess(reject_app(Path(tmp)), rtp_ports=20, extra_args=extra) as process:
            yield process


def _udp(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    return sock


def _flood(switch: SwitchProcess, host: str, count: int) -> int:
    """Send ``count`` OPTIONS at once from ``host``; how many were answered."""
    target = (switch.host, switch.sip_port)
    with _udp(host) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        for _ in range(count):
            sock.sendto(options(target, sock.getsockname())[0], target)
        answered = 0
        while recv_udp(sock, 1.0) is not None:
            answered += 1
    return answered


def _ask(switch: SwitchProcess, host: str) -> int | None:
    target = (switch.host, switch.sip_port)
    with _udp(host) as sock:
        message, call_id = options(target, sock.getsockname())
        sock.sendto(message, target)
        reply = recv_udp(sock, 2.0)
        return reply.status if reply is not None and reply.call_id == call_id else None


def test_flood_from_one_source_is_limited_and_others_still_served(switch: SwitchProcess) -> None:
    answered = _flood(switch, ATTACKER, 300)
    assert 20 <= answered <= 60  # the burst, plus what 20/s refills while the flood is read
    assert [_ask(switch, GOOD) for _ in range(5)] == [200] * 5


def test_trusted_source_is_exempt(switch: SwitchProcess) -> None:
    assert _flood(switch, TRUSTED, 60) == 60  # three times the burst, all answered


def test_oversized_datagram_gets_413(switch: SwitchProcess) -> None:
    target = (switch.host, switch.sip_port)
    with _udp(GOOD) as sock:
        message, call_id = options(target, sock.getsockname())
        big = message.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nX-Pad: " + b"a" * 5000 + b"\r\n")
        sock.sendto(big, target)
        reply = recv_udp(sock, 2.0)
    assert reply is not None and (reply.status, reply.call_id) == (413, call_id)


def _connect(switch: SwitchProcess, host: str = GOOD) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.connect((switch.host, switch.sip_port))
    return sock


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def _tcp_options_answered(sock: socket.socket) -> bool:
    message, call_id = options((GOOD, 0), sock.getsockname(), "TCP")
    sock.sendall(message)
    reply = StreamReader(sock).next(2.0)
    return reply is not None and reply.status == 200 and reply.call_id == call_id


def test_stalled_and_garbage_tcp_closed_without_hurting_others(switch: SwitchProcess) -> None:
    with _connect(switch) as stalled, _connect(switch) as garbage, _connect(switch) as good:
        stalled.sendall(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9")  # never ends
        garbage.sendall(b"\x00\xff garbage \x16\x03\x01\r\n\r\n")
        assert _closed_within(garbage, 2.0)
        assert _tcp_options_answered(good)
        began = time.monotonic()
        assert _closed_within(stalled, 3.0)
        assert time.monotonic() - began >= 0.2  # closed by the framing timeout, not at once
        assert _tcp_options_answered(good)  # the well-behaved connection lives on


def test_oversized_tcp_message_closes_connection(switch: SwitchProcess) -> None:
    with _connect(switch) as sock:
        sock.sendall(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
        assert _closed_within(sock, 2.0)


def test_tcp_connections_capped_per_source(switch: SwitchProcess) -> None:
    admitted = [_connect(switch, ATTACKER) for _ in range(3)]
    try:
        extra = _connect(switch, ATTACKER)
        with extra:
            assert _closed_within(extra, 2.0)
        with _connect(switch, GOOD) as other:
            assert _tcp_options_answered(other)
    finally:
        for sock in admitted:
            sock.close()


def test_server_header_names_no_version(switch: SwitchProcess) -> None:
    target = (switch.host, switch.sip_port)
    with _udp(GOOD) as sock:
        sock.sendto(options(target, sock.getsockname())[0], target)
        reply = recv_udp(sock, 2.0)
    assert reply is not None
    assert reply.header("Server") == "switch"
    assert reply.header("User-Agent") in (None, "switch")
