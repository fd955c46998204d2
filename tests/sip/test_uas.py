"""UAS request checks (RFC 3261 8.2) on the torture vectors and on hand-built requests."""

from __future__ import annotations

import pytest

from switch.sip.message import Request, parse_message
from switch.sip.uas import check_request, options_response
from tests.sip.conftest import ALL_VECTORS, Vector, parser_verdict

ALLOWED = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"})  # a UAS that is not a registrar
SUPPORTED = frozenset({"100rel", "timer"})
ACCEPTED = frozenset({"application/sdp"})
REJECTIONS = {"505", "501", "405", "400", "416", "420", "415", "406", "drop"}


def check(request: Request) -> str | None:
    response = check_request(
        request, allowed_methods=ALLOWED, supported=SUPPORTED, accepted_content_types=ACCEPTED
    )
    return None if response is None else str(response.status)


def load(name: str) -> Request:
    vector = next(v for v in ALL_VECTORS if v.id == f"rfc4475/{name}")
    msg = parse_message(vector.data)
    assert isinstance(msg, Request)
    return msg


def test_uas_outcome(vector: Vector) -> None:
    """Every accepted request vector gets an acceptable outcome: a listed rejection, or processing."""
    if parser_verdict(vector) != "accept" or vector.data.startswith(b"SIP/"):
        return
    request = parse_message(vector.data)
    assert isinstance(request, Request)
    outcome = check(request)
    if outcome is None:
        assert set(vector.expected) - REJECTIONS, (
            f"{vector.id} must be rejected with one of {vector.expected}"
        )
    else:
        assert outcome in vector.expected


@pytest.mark.parametrize(
    ("name", "status"),
    [("unkscm", 416), ("novelsc", 416), ("intmeth", 501), ("esc02", 501), ("bext01", 420), ("invut", 415)],
)
def test_vector_rejections(name: str, status: int) -> None:
    request = load(name)
    response = check_request(
        request, allowed_methods=ALLOWED, supported=SUPPORTED, accepted_content_types=ACCEPTED
    )
    assert response is not None
    assert response.status == status
    assert response.headers.get("Call-ID") == request.headers.get("Call-ID")
    assert response.headers.get_all("Via") == request.headers.get_all("Via")


def test_501_lists_allow() -> None:
    for name in ("intmeth", "esc02"):
        response = check_request(
            load(name), allowed_methods=ALLOWED, supported=SUPPORTED, accepted_content_types=ACCEPTED
        )
        assert response is not None and response.status == 501
        assert response.reason == "Not Implemented"
        assert sorted(response.headers.get_all("Allow")) == sorted(ALLOWED)


def test_420_lists_require_tokens_not_proxy_require() -> None:
    response = check_request(
        load("bext01"), allowed_methods=ALLOWED, supported=SUPPORTED, accepted_content_types=ACCEPTED
    )
    assert response is not None and response.status == 420
    assert response.headers.get_all("Unsupported") == ["nothingSupportsThis", "nothingSupportsThisEither"]


def test_415_lists_accept() -> None:
    response = check_request(
        load("invut"), allowed_methods=ALLOWED, supported=SUPPORTED, accepted_content_types=ACCEPTED
    )
    assert response is not None and response.status == 415
    assert response.headers.get_all("Accept") == ["application/sdp"]


def test_406_for_sdp01() -> None:
    response = check_request(
        load("sdp01"), allowed_methods=ALLOWED, supported=SUPPORTED, accepted_content_types=ACCEPTED
    )
    assert response is not None and response.status == 406
    warning = response.headers.get("Warning")
    assert warning is not None and warning.startswith("399 ")


def test_register_is_405_for_a_non_registrar_and_passes_for_a_registrar() -> None:
    request = load("cparam01")
    assert check(request) == "405"
    response = check_request(
        request, allowed_methods=ALLOWED | {"REGISTER"}, supported=SUPPORTED, accepted_content_types=ACCEPTED
    )
    assert response is None


def test_cseq_method_mismatch_is_400() -> None:
    request = load("zeromf")  # a valid OPTIONS
    assert check(request) is None
    request.headers.set("CSeq", "8 INVITE")  # mismatch01, which the parser itself rejects
    response = check_request(
        request, allowed_methods=ALLOWED, supported=SUPPORTED, accepted_content_types=ACCEPTED
    )
    assert response is not None and response.status == 400


def test_version_505() -> None:
    request = load("zeromf")
    request.version = "SIP/7.0"
    assert check(request) == "505"


def test_ack_is_never_answered() -> None:
    request = load("bext01")
    request.method = "ACK"
    request.headers.set("CSeq", "8 ACK")
    assert check(request) is None


def test_cancel_ignores_require() -> None:
    request = load("bext01")
    request.method = "CANCEL"
    request.headers.set("CSeq", "8 CANCEL")
    assert check(request) is None


def test_supported_extension_passes() -> None:
    request = load("bext01")
    request.headers.set("Require", "100rel, timer")
    assert check(request) is None


def test_accept_wildcards_satisfy_406_rule() -> None:
    request = load("sdp01")
    request.headers.set("Accept", "text/plain, application/*;q=0.5")
    assert check(request) is None


def test_options_response() -> None:
    request = load("zeromf")
    response = options_response(
        request, allowed_methods=ALLOWED, supported=SUPPORTED, accepted_content_types=ACCEPTED, to_tag="abc"
    )
    assert response.status == 200 and response.reason == "OK"
    assert sorted(response.headers.get_all("Allow")) == sorted(ALLOWED)
    assert response.headers.get_all("Accept") == ["application/sdp"]
    assert response.headers.get_all("Supported") == ["100rel", "timer"]
    assert response.to.tag == "abc"
    assert response.cseq == request.cseq
