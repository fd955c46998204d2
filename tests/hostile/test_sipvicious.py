"""SIPVicious svwar and svcrack against a live switch, and blocking after failed authentication.

Each tool runs from its own loopback address through ``svlaunch.py`` (SIPVicious 0.3.3 ignores ``-b`` in
svwar and svcrack).  The dialplan offers MD5 only, so that svcrack, which cannot compute SHA-256, gets a
real chance.  The switch blocks a source after 5 failed authentications for 30 s; 127.0.0.77 is trusted.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.ports import free_udp_port
from tests.helpers.switch_process import SwitchProcess
from tests.hostile.run_corpus import reject_app
from tests.hostile.sipwire import Reply, StreamReader, recv_udp

PASSWORD = "letmein7"
PLAN = f"""
algorithms = ["MD5"]

[users.100]
password = "{PASSWORD}"

[users.101]
password = "another-secret-101"
"""
TRUSTED = "127.0.0.77"
LAUNCH = Path(__file__).with_name("svlaunch.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # the interpreter SIPVicious is installed for
_EXTENSION_ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*([^|]*?)\s*\|$", re.M)


@pytest.fixture(scope="module")
def switch() -> Iterator[SwitchProcess]:
    if shutil.which("svwar") is None or shutil.which("svcrack") is None:
        pytest.skip("SIPVicious not installed (apt-get install sipvicious)")
    with tempfile.TemporaryDirectory() as tmp:
        plan = Path(tmp) / "plan.toml"
        plan.write_text(PLAN)
        extra = [
            "--dialplan", str(plan), "--auth-fail-limit", "5", "--auth-fail-window", "60",
            "--auth-block-seconds", "30", "--trusted-sources", f"{TRUSTED}/32",
        ]  # fmt: skip
        with SwitchProcess(reject_app(Path(tmp)), rtp_ports=20, extra_args=extra, trusted_sources=None) as s:
            yield s


def run_tool(switch: SwitchProcess, source: str, tool: str, *args: str) -> str:
    """Run svwar/svcrack from ``source`` against the switch; its stdout and stderr."""
    port = free_udp_port(source)
    command = [SYSTEM_PYTHON, str(LAUNCH), source, tool, "-b", source, "-x", source, "-P", str(port)]
    command += [*args, f"udp://{switch.host}:{switch.sip_port}"]
    with tempfile.TemporaryDirectory() as home:  # sv* keep state in ~/.sipvicious
        done = subprocess.run(
            command, env=dict(os.environ, HOME=home), capture_output=True, text=True, timeout=120
        )
    return done.stdout + done.stderr


# ---------------------------------------------------------------------------------- a digest client


class Registrar:
    """REGISTER from one source address, with or without (right or wrong) digest credentials."""

    def __init__(self, switch: SwitchProcess, source: str) -> None:
        self.target = (switch.host, switch.sip_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((source, 0))
        self.call_id = "reg-" + secrets.token_hex(8)
        self.cseq = 0

    def close(self) -> None:
        self.sock.close()

    def send(self, user: str, authorization: str | None = None, timeout: float = 2.0) -> Reply | None:
        self.cseq += 1
        host, port = self.target
        local = self.sock.getsockname()
        lines = [
            f"REGISTER sip:{host}:{port} SIP/2.0",
            f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK{secrets.token_hex(8)};rport",
            "Max-Forwards: 70",
            f"From: <sip:{user}@{host}>;tag={secrets.token_hex(4)}",
            f"To: <sip:{user}@{host}>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} REGISTER",
            f"Contact: <sip:{user}@{local[0]}:{local[1]}>",
            "Expires: 60",
        ]
        if authorization is not None:
            lines.append(f"Authorization: {authorization}")
        self.sock.sendto(("\r\n".join([*lines, "Content-Length: 0", "", ""])).encode(), self.target)
        while (reply := recv_udp(self.sock, timeout)) is not None:
            if reply.call_id == self.call_id and f"CSeq: {self.cseq} " in reply.raw.decode("latin-1"):
                return reply
        return None

    def register(self, user: str, password: str) -> int | None:
        """A REGISTER, its challenge answered with ``password``: the final status (None: no answer)."""
        challenge = self.send(user)
        if challenge is None or challenge.status != 401:
            return None if challenge is None else challenge.status
        header = challenge.header("WWW-Authenticate") or ""
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', header))
        host, port = self.target
        uri = f"sip:{host}:{port}"
        ha1 = _md5(f"{user}:{params['realm']}:{password}")
        cnonce, nc = secrets.token_hex(4), "00000001"
        response = _md5(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{_md5(f'REGISTER:{uri}')}")
        authorization = (
            f'Digest username="{user}", realm="{params["realm"]}", nonce="{params["nonce"]}", uri="{uri}", '
            f'algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}", response="{response}"'
        )
        answer = self.send(user, authorization)
        return None if answer is None else answer.status


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("method", ["REGISTER", "INVITE", "OPTIONS"])
def test_svwar_enumerates_no_extension(switch: SwitchProcess, method: str) -> None:
    force = ["--force"] if method == "REGISTER" else []  # else svwar stops: "auth for an unknown extension"
    output = run_tool(switch, "127.0.0.66", "svwar", *force, "-e", "95-105", "-m", method)
    rows = [row for row in _EXTENSION_ROW.findall(output) if row[0] != "Extension"]
    assert rows == [], output
    assert "found nothing" in output, output


def test_known_and_unknown_users_get_the_same_challenge(switch: SwitchProcess) -> None:
    client = Registrar(switch, "127.0.0.69")
    try:
        known, unknown = client.send("100"), client.send("999")
    finally:
        client.close()
    assert known is not None and unknown is not None
    assert (known.status, unknown.status) == (401, 401)

    def shape(reply: Reply) -> list[str]:
        return [re.sub(r'nonce="[^"]*"', "nonce", v) for k, v in reply.headers if k == "WWW-Authenticate"]

    assert shape(known) == shape(unknown)


def test_svcrack_finds_no_password_and_the_cracker_is_blocked(switch: SwitchProcess, tmp_path: Path) -> None:
    words = [f"guess{i}" for i in range(10)] + [PASSWORD, "guess-last"]  # the real one is 11th
    wordlist = tmp_path / "words.txt"
    wordlist.write_text("\n".join(words) + "\n")
    output = run_tool(switch, "127.0.0.68", "svcrack", "-u", "100", "-d", str(wordlist), "--maximumtime", "4")
    assert PASSWORD not in output, output
    assert switch.wait_for_log("blocking 127.0.0.68 for 30 s after 5 failed authentications", 5.0), output
    blocked, other = Registrar(switch, "127.0.0.68"), Registrar(switch, "127.0.0.67")
    try:
        assert blocked.register("100", PASSWORD) is None  # even the right password: dropped while blocked
        assert other.register("100", PASSWORD) == 200  # another source registers as usual
    finally:
        blocked.close()
        other.close()


def test_trusted_source_is_never_blocked(switch: SwitchProcess) -> None:
    client = Registrar(switch, TRUSTED)
    try:
        assert [client.register("101", "wrong") for _ in range(8)] == [401] * 8
        assert client.register("101", "another-secret-101") == 200
    finally:
        client.close()
    assert not switch.log_lines(f"blocking {TRUSTED}")


def test_stale_nonce_and_first_challenge_are_no_failures(switch: SwitchProcess) -> None:
    """A source that only ever asks (no credentials) or registers right is never blocked."""
    client = Registrar(switch, "127.0.0.70")
    try:
        assert [client.send("100").status for _ in range(8)] == [401] * 8  # type: ignore[union-attr]
        assert client.register("100", PASSWORD) == 200
    finally:
        client.close()
    assert not switch.log_lines("blocking 127.0.0.70")


def _invite(
    sock: socket.socket, target: tuple[str, int], user: str, authorization: str | None
) -> Reply | None:
    """An INVITE (with SDP) from ``user``; its final response (a non-2xx one is ACKed)."""
    local = sock.getsockname()
    call_id, branch, tag = (
        "inv-" + secrets.token_hex(6),
        "z9hG4bK" + secrets.token_hex(6),
        secrets.token_hex(4),
    )
    sdp = (
        f"v=0\r\no=- 1 1 IN IP4 {local[0]}\r\ns=-\r\nc=IN IP4 {local[0]}\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
    )
    head = [
        f"INVITE sip:svc@{target[0]}:{target[1]} SIP/2.0",
        f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{target[0]}>;tag={tag}",
        f"To: <sip:svc@{target[0]}>",
        f"Call-ID: {call_id}",
        "CSeq: 1 INVITE",
        f"Contact: <sip:{user}@{local[0]}:{local[1]}>",
        "Content-Type: application/sdp",
    ]
    if authorization is not None:
        head.append(f"Proxy-Authorization: {authorization}")
    sock.sendto(("\r\n".join([*head, f"Content-Length: {len(sdp)}", "", ""]) + sdp).encode(), target)
    while (reply := recv_udp(sock, 3.0)) is not None:
        if reply.call_id == call_id and reply.status >= 200:
            ack = [head[0].replace("INVITE", "ACK", 1), *head[1:4], f"To: {reply.header('To')}", head[5]]
            sock.sendto(("\r\n".join([*ack, "CSeq: 1 ACK", "Content-Length: 0", "", ""])).encode(), target)
            return reply
    return None


def test_invite_with_wrong_proxy_credentials_blocks_the_source(switch: SwitchProcess) -> None:
    target = (switch.host, switch.sip_port)
    wrong = (
        'Digest username="100", realm="switch", nonce="x", uri="sip:svc@127.0.0.1", '
        f'response="{"0" * 32}", algorithm=MD5'
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.71", 0))
        # No credentials to a public destination: anonymous, the application's answer (<Reject/>), no failure
        assert _invite(sock, target, "100", None).status == 603  # type: ignore[union-attr]
        statuses = [_invite(sock, target, "100", wrong) for _ in range(5)]
        assert [r.status if r else None for r in statuses] == [407] * 5
        assert switch.wait_for_log("blocking 127.0.0.71 for 30 s after 5 failed authentications", 3.0)
        assert _invite(sock, target, "100", None) is None  # dropped while blocked


def test_tcp_guesser_is_blocked_and_its_connection_closed(switch: SwitchProcess) -> None:
    host, port = switch.host, switch.sip_port
    wrong = (
        'Digest username="100", realm="x", nonce="x", uri="sip:x", response="' + "0" * 32 + '", algorithm=MD5'
    )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.73", 0))
        sock.connect((host, port))
        local = sock.getsockname()
        reader = StreamReader(sock)
        statuses = []
        for n in range(1, 6):
            lines = [
                f"REGISTER sip:{host}:{port} SIP/2.0",
                f"Via: SIP/2.0/TCP {local[0]}:{local[1]};branch=z9hG4bK{secrets.token_hex(8)};rport",
                "Max-Forwards: 70",
                f"From: <sip:100@{host}>;tag=t{n}",
                f"To: <sip:100@{host}>",
                "Call-ID: tcp-guesser",
                f"CSeq: {n} REGISTER",
                f"Authorization: {wrong}",
                "Content-Length: 0",
                "",
                "",
            ]
            sock.sendall("\r\n".join(lines).encode())
            reply = reader.next(3.0)
            statuses.append(reply.status if reply else None)
        assert statuses == [401] * 5
        assert reader.next(3.0) is None and reader.closed  # closed by the switch once blocked
    assert switch.wait_for_log("blocking 127.0.0.73 for 30 s", 3.0)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as again:
        again.bind(("127.0.0.73", 0))
        again.connect((host, port))
        refused = StreamReader(again)
        assert refused.next(2.0) is None and refused.closed  # a new connection is closed at once
