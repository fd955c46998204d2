"""RFC 4475 and RFC 5118 torture messages: parser verdicts, error responses, round trips."""

from __future__ import annotations

import pytest

from switch.sip.errors import SipParseError
from switch.sip.message import Request, Response, error_response_for, parse_message, serialize
from tests.sip.conftest import ALL_VECTORS, CONFORMANCE, EITHER_CHOICES, Vector, parser_verdict


def test_corpus_is_complete() -> None:
    assert CONFORMANCE.is_dir()
    counts = {
        corpus: sum(1 for v in ALL_VECTORS if v.corpus == corpus)
        for corpus in {v.corpus for v in ALL_VECTORS}
    }
    assert counts == {"rfc4475": 50, "rfc5118/crlf": 12, "rfc5118": 12}
    either = {v.id for v in ALL_VECTORS if v.parser == "either"}
    assert either == set(EITHER_CHOICES)


def test_parser_verdict(vector: Vector) -> None:
    verdict = parser_verdict(vector)
    if verdict == "accept":
        msg = parse_message(vector.data)
        assert isinstance(msg, (Request, Response))
        assert msg.headers.get("Content-Length") == str(len(msg.body))
        return
    with pytest.raises(SipParseError) as info:
        parse_message(vector.data)
    error = info.value
    is_response = vector.data.startswith(b"SIP/")
    if is_response:
        assert error.status_hint is None
    elif vector.expected == ("505",):
        assert error.status_hint == 505
    else:
        assert error.status_hint == 400


def test_error_response(vector: Vector) -> None:
    """A rejected request gets the expected status when its Via can be recovered; responses are dropped."""
    if parser_verdict(vector) == "accept":
        return
    with pytest.raises(SipParseError) as info:
        parse_message(vector.data)
    response = error_response_for(vector.data, info.value)
    if vector.data.startswith(b"SIP/") or vector.name == "test":
        assert response is None  # a response is never answered; test.dat has no Via
        return
    assert response is not None
    if vector.id in ("rfc5118/ipv6-in-sdp", "rfc5118/mult-ip-in-sdp"):
        assert response.status == 400  # the byte-exact file: Content-Length larger than the message
    else:
        assert str(response.status) in vector.expected
    request_vias = [line for line in vector.data.splitlines() if line.lower().startswith(b"via:")]
    assert len(response.headers.get_all("Via")) >= len(request_vias) >= 1
    call_id = response.headers.get("Call-ID")
    if vector.name != "insuf":
        assert call_id is not None and call_id in vector.data.decode("utf-8", "surrogateescape")
    assert response.headers.get("CSeq") is not None


def test_round_trip(valid_vector: Vector) -> None:
    first = parse_message(valid_vector.data)
    wire = serialize(first)
    second = parse_message(wire)
    assert second == first
    assert serialize(second) == wire
