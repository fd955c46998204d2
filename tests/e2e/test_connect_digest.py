"""REGISTER against a running switch offering SHA-256 and MD5 together (RFC 8760): a phone answering either
challenge registers; a wrong password gets 401 again. The digest is computed here with hashlib (RFC 7616)."""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import start_switch
from tests.helpers.switch_process import SwitchProcess
from tests.helpers.twiml_server import TwimlServer

pytestmark = pytest.mark.e2e

DIALPLAN = '[users.carol]\npassword = "carol-secret"\n'


@pytest.fixture(scope="module")
def both_switch(
    twiml_server: TwimlServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SwitchProcess]:
    plan = tmp_path_factory.mktemp("digest") / "plan.toml"
    plan.write_text(DIALPLAN)
    process = start_switch(twiml_server.url("/voice"), ["--dialplan", str(plan)])
    try:
        yield process
    finally:
        process.stop()


class Phone:
    def __init__(self, switch: SwitchProcess) -> None:
        self.switch = switch
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.port = self.sock.getsockname()[1]
        self.call_id = secrets.token_hex(8)
        self.cseq = 0

    def register(self, authorization: str | None = None) -> str:
        self.cseq += 1
        uri = f"sip:127.0.0.1:{self.switch.sip_port}"
        lines = [
            f"REGISTER {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{secrets.token_hex(6)};rport",
            "Max-Forwards: 70",
            f"From: <sip:carol@127.0.0.1>;tag={secrets.token_hex(4)}",
            "To: <sip:carol@127.0.0.1>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} REGISTER",
            f"Contact: <sip:carol@127.0.0.1:{self.port}>",
            "Expires: 60",
        ]
        if authorization:
            lines.append(f"Authorization: {authorization}")
        lines += ["Content-Length: 0", "", ""]
        self.sock.sendto("\r\n".join(lines).encode(), ("127.0.0.1", self.switch.sip_port))
        while True:
            data, _ = self.sock.recvfrom(65535)
            text = data.decode()
            if not text.startswith("SIP/2.0 1"):
                return text


def challenges(response: str) -> list[dict[str, str]]:
    found = []
    for line in response.split("\r\n"):
        if line.lower().startswith("www-authenticate:"):
            found.append(dict(re.findall(r'(\w+)="?([^",]*)"?', line.split(":", 1)[1].replace("Digest", ""))))
    return found


def authorization(challenge: dict[str, str], password: str, uri: str) -> str:
    algorithm = challenge["algorithm"]
    h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[algorithm]

    def digest(text: str) -> str:
        return h(text.encode()).hexdigest()

    cnonce, nc = secrets.token_hex(8), "00000001"
    ha1 = digest(f"carol:{challenge['realm']}:{password}")
    ha2 = digest(f"REGISTER:{uri}")
    response = digest(f"{ha1}:{challenge['nonce']}:{nc}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="carol", realm="{challenge["realm"]}", nonce="{challenge["nonce"]}", uri="{uri}", '
        f'response="{response}", algorithm={algorithm}, qop=auth, nc={nc}, cnonce="{cnonce}"'
    )


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_either_challenge_registers_and_a_wrong_password_does_not(
    both_switch: SwitchProcess, algorithm: str
) -> None:
    phone = Phone(both_switch)
    try:
        registered(phone, both_switch, algorithm)
    finally:
        phone.sock.close()


def registered(phone: Phone, both_switch: SwitchProcess, algorithm: str) -> None:
    uri = f"sip:127.0.0.1:{both_switch.sip_port}"
    first = phone.register()
    assert first.startswith("SIP/2.0 401 ")
    offered = challenges(first)
    assert [c["algorithm"] for c in offered] == ["SHA-256", "MD5"]
    assert all(c["qop"] == "auth" and c["realm"] for c in offered)
    [chosen] = [c for c in offered if c["algorithm"] == algorithm]
    wrong = phone.register(authorization(chosen, "not-carols", uri))
    assert wrong.startswith("SIP/2.0 401 ")
    again = next(c for c in challenges(wrong) if c["algorithm"] == algorithm)
    ok = phone.register(authorization(again, "carol-secret", uri))
    assert ok.startswith("SIP/2.0 200 "), ok
    assert re.search(rf"Contact: <sip:carol@127\.0\.0\.1:{phone.port}>;expires=(\d+)", ok), ok
