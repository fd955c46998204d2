"""Crashers found by fuzzing and the hostile runs, kept as exact vectors."""

from __future__ import annotations

import secrets
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from switch.twiml.errors import TwimlError
from switch.twiml.parser import parse_twiml
from tests.helpers.switch_process import SwitchProcess
from tests.hostile.run_corpus import reject_app
from tests.hostile.sipwire import ack_for, recv_udp

UNKNOWN_ENCODING = b'<?xml version="1.0" encoding="UTF-1"?><Response><Say>x</Say></Response>'
MULTIBYTE_ENCODING = b'<?xml version="1.0" encoding="UTF-7"?><Response><Say>x</Say></Response>'


@pytest.mark.parametrize("document", [UNKNOWN_ENCODING, MULTIBYTE_ENCODING], ids=["UTF-1", "UTF-7"])
def test_twiml_unreadable_xml_encoding_is_a_twiml_error(document: bytes) -> None:
    with pytest.raises(TwimlError) as caught:
        parse_twiml(document, base_url="http://127.0.0.1/app.xml")
    assert caught.value.code == 12100


def _invite(sock: socket.socket, target: tuple[str, int], from_header: bytes) -> tuple[str, int | None]:
    call_id = "reg-" + secrets.token_hex(6)
    local = sock.getsockname()
    sdp = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
    head = (
        f"INVITE sip:svc@{target[0]}:{target[1]} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK{secrets.token_hex(6)};rport\r\n"
        "Max-Forwards: 70\r\n"
    ).encode()
    rest = (
        f"To: <sip:svc@{target[0]}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
        f"Contact: <sip:x@{local[0]}:{local[1]}>\r\nContent-Type: application/sdp\r\n"
        f"Content-Length: {len(sdp)}\r\n\r\n"
    ).encode()
    sock.sendto(head + from_header + b"\r\n" + rest + sdp, target)
    while (reply := recv_udp(sock, 3.0)) is not None:
        if reply.call_id == call_id and reply.status >= 200:
            ack = ack_for(reply, f"sip:svc@{target[0]}:{target[1]}")
            if ack is not None:
                sock.sendto(ack, target)
            return call_id, reply.status
    return call_id, None


def test_non_utf8_from_is_refused_and_later_calls_are_still_recorded(tmp_path: Path) -> None:
    """PROTOS found it: an INVITE with a non-UTF-8 octet in From reached the call records, whose single
    SQLite writer thread died on the unencodable string; every later call record was lost (and piled up
    in memory).  Now the core answers such a request 400 and the next call is recorded."""
    data = tmp_path / "data"
    with SwitchProcess(reject_app(tmp_path), data_dir=data, rtp_ports=20) as switch:
        target = (switch.host, switch.sip_port)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            _, bad_status = _invite(sock, target, b'From: "Al\xffice" <sip:a@127.0.0.1>;tag=1')
            good_id, good_status = _invite(sock, target, b"From: <sip:b@127.0.0.1>;tag=2")
        assert (bad_status, good_status) == (400, 603)
        deadline = time.monotonic() + 5.0
        status = None
        while time.monotonic() < deadline and status is None:
            with sqlite3.connect(data / "switch.db") as db:
                row = db.execute(
                    "SELECT status FROM calls WHERE sip_call_id = ? AND end_time IS NOT NULL", (good_id,)
                ).fetchone()
            status = row[0] if row else None
            time.sleep(0.1)
    assert status in ("busy", "failed", "completed", "canceled", "no-answer")
