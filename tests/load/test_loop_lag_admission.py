"""Capacity protection by event-loop lag (`--max-loop-lag`), through a real switch process.

The switch's event loop is made to lag for real: the process is stopped (SIGSTOP) for 0.6 s and continued,
so its lag probe runs 0.6 s late. For the next two seconds (the tracker's hold) a new INVITE is answered
503 with Retry-After; before the stall and once the hold has passed, calls are admitted (the application
rejects them busy: 486). INVITEs are plain UDP datagrams from this test.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.switch_process import SwitchProcess

STALL = 0.6
THRESHOLD = 0.2

SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
)


@pytest.fixture
def client() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)
    yield sock
    sock.close()


@pytest.fixture
def switch(tmp_path: Path) -> Iterator[SwitchProcess]:
    app = tmp_path / "busy.xml"
    app.write_text('<Response><Reject reason="busy"/></Response>')
    with SwitchProcess(str(app), extra_args=("--max-loop-lag", str(THRESHOLD))) as process:
        yield process


def _invite(sock: socket.socket, switch: SwitchProcess) -> tuple[int, str]:
    """Send one INVITE; return the final status and the final response's text (ACKed when non-2xx)."""
    port = sock.getsockname()[1]
    uri = f"sip:lag@127.0.0.1:{switch.sip_port}"
    call_id = uuid.uuid4().hex
    branch = "z9hG4bK" + uuid.uuid4().hex[:16]

    def request(method: str, to: str, rest: str) -> bytes:
        return (
            f"{method} {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:load@127.0.0.1:{port}>;tag=lagtest\r\n{to}\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 {method}\r\n{rest}"
        ).encode()

    body = f"Content-Type: application/sdp\r\nContent-Length: {len(SDP)}\r\n\r\n{SDP}"
    sock.sendto(request("INVITE", f"To: <{uri}>", body), ("127.0.0.1", switch.sip_port))
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        data = sock.recv(65536).decode()
        status = int(data.split(" ", 2)[1])
        if status < 200 or call_id not in data:
            continue
        to = next(line for line in data.split("\r\n") if line.lower().startswith("to:"))
        ack = request("ACK", to, "Content-Length: 0\r\n\r\n")
        sock.sendto(ack, ("127.0.0.1", switch.sip_port))
        return status, data
    raise AssertionError("no final response to the INVITE")


def _admitted(sock: socket.socket, switch: SwitchProcess, within: float) -> int:
    """The first final status other than 503 within `within` seconds (a busy CI box may lag at start)."""
    deadline = time.monotonic() + within
    while True:
        status, _ = _invite(sock, switch)
        if status != 503 or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def test_a_lagging_loop_answers_503_with_retry_after_then_admits_again(
    switch: SwitchProcess, client: socket.socket
) -> None:
    assert _admitted(client, switch, within=10.0) == 486
    pid = switch._process.pid if switch._process is not None else 0
    assert pid
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(STALL)
    finally:
        os.kill(pid, signal.SIGCONT)
    time.sleep(0.2)  # the late probe has run: the loop measured a lag of about STALL
    status, response = _invite(client, switch)
    assert status == 503, response
    assert "\r\nRetry-After: " in response
    assert _admitted(client, switch, within=10.0) == 486  # after the hold (2 s), calls come in again
