"""No user enumeration through INVITE: the switch's answer never depends on whether the From names a
configured user. A private route challenges every caller alike (a stranger's name can never authenticate);
a public destination challenges nobody who brings no credentials; wrong credentials are challenged again,
for a user's name as for a stranger's. Raw INVITEs on a real UDP socket, compared response by response."""

from __future__ import annotations

import re
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.conftest import start_switch
from tests.helpers.switch_process import SwitchProcess
from tests.helpers.twiml_server import TwimlServer

pytestmark = pytest.mark.e2e

PLAN = """
realm = "enum"

[users.alice]
password = "alice-secret-9"

[[routes]]
match = "^private$"
twiml = "{private}"

[[routes]]
match = "^public$"
twiml = "{public}"
public = true
"""


@pytest.fixture(scope="module")
def enum_switch(
    twiml_server: TwimlServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SwitchProcess]:
    twiml_server.route("/enum-private", "<Response><Reject/></Response>")
    twiml_server.route("/enum-public", "<Response><Reject/></Response>")
    plan = tmp_path_factory.mktemp("enum") / "plan.toml"
    plan.write_text(
        PLAN.format(private=twiml_server.url("/enum-private"), public=twiml_server.url("/enum-public"))
    )
    process = start_switch(twiml_server.url("/voice"), ["--dialplan", str(plan)])
    try:
        yield process
    finally:
        process.stop()


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    challenges: tuple[tuple[tuple[str, str], ...], ...]
    """Each Proxy-Authenticate's parameters but the nonce (which is new every time)."""
    header_names: tuple[str, ...]


def invite(switch: SwitchProcess, called: str, caller: str, authorization: str | None = None) -> Answer:
    """An INVITE with SDP from ``caller`` to ``called``; its final response (ACKed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        host, port = sock.getsockname()
        target = (switch.host, switch.sip_port)
        call_id, tag = secrets.token_hex(8), secrets.token_hex(4)
        sdp = f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
        head = [
            f"INVITE sip:{called}@{target[0]}:{target[1]} SIP/2.0",
            f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{secrets.token_hex(6)};rport",
            "Max-Forwards: 70",
            f"From: <sip:{caller}@{target[0]}>;tag={tag}",
            f"To: <sip:{called}@{target[0]}>",
            f"Call-ID: {call_id}",
        ]
        extra = [f"Proxy-Authorization: {authorization}"] if authorization else []
        message = [*head, "CSeq: 1 INVITE", f"Contact: <sip:{caller}@{host}:{port}>", *extra]
        message += ["Content-Type: application/sdp", f"Content-Length: {len(sdp)}", "", sdp]
        sock.sendto("\r\n".join(message).encode(), target)
        while True:
            text = sock.recv(65535).decode()
            status = int(text.split(" ", 2)[1])
            if status >= 200:
                break
        lines = text.split("\r\n\r\n")[0].split("\r\n")[1:]
        to = next(line for line in lines if line.lower().startswith("to:"))
        ack = [head[0].replace("INVITE", "ACK", 1), *head[1:4], to, head[5], "CSeq: 1 ACK"]
        sock.sendto("\r\n".join([*ack, "Content-Length: 0", "", ""]).encode(), target)
    challenges = tuple(
        tuple(
            sorted(
                (k, v) for k, v in re.findall(r'(\w+)="?([^",]*)"?', line.split(":", 1)[1]) if k != "nonce"
            )
        )
        for line in lines
        if line.lower().startswith("proxy-authenticate:")
    )
    names = tuple(sorted({line.split(":", 1)[0].lower() for line in lines} - {"content-length"}))
    return Answer(status, challenges, names)


def wrong_credentials(user: str) -> str:
    return (
        f'Digest username="{user}", realm="enum", nonce="x", uri="sip:private@127.0.0.1", '
        f'response="{"0" * 64}", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="c"'
    )


def test_a_private_route_challenges_users_and_strangers_alike(enum_switch: SwitchProcess) -> None:
    user = invite(enum_switch, "private", "alice")
    stranger = invite(enum_switch, "private", "mallory")
    assert user.status == stranger.status == 407
    assert user.challenges == stranger.challenges
    assert {dict(c)["algorithm"] for c in user.challenges} == {"SHA-256", "MD5"}
    assert all(dict(c)["realm"] == "enum" and dict(c)["qop"] == "auth" for c in user.challenges)
    assert user.header_names == stranger.header_names
    # Wrong credentials: challenged again, the same way for both.
    user_again = invite(enum_switch, "private", "alice", wrong_credentials("alice"))
    stranger_again = invite(enum_switch, "private", "mallory", wrong_credentials("mallory"))
    assert user_again == stranger_again and user_again.status == 407


@pytest.mark.parametrize("called", ["public", "unrouted-number"])
def test_a_public_destination_answers_users_and_strangers_alike(
    enum_switch: SwitchProcess, twiml_server: TwimlServer, called: str
) -> None:
    twiml_server.on_user(called, "<Response><Reject/></Response>")
    user = invite(enum_switch, called, "alice")
    stranger = invite(enum_switch, called, "mallory")
    assert user.status == stranger.status == 603  # the application's <Reject/>, no challenge
    assert user == stranger
