"""What an inbound INVITE gives the webhooks: its X- headers (bounded) and its Diversion (ForwardedFrom)."""

from __future__ import annotations

from switch.calls.call import MAX_X_HEADER_BYTES, MAX_X_HEADERS, forwarded_from_of, x_headers_of
from switch.sip.message import Request, parse_message


def invite(*extra: str) -> Request:
    lines = [
        "INVITE sip:demo@127.0.0.1 SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1",
        "From: <sip:alice@127.0.0.1>;tag=1",
        "To: <sip:demo@127.0.0.1>",
        "Call-ID: params@127.0.0.1",
        "CSeq: 1 INVITE",
        "Max-Forwards: 70",
        *extra,
        "Content-Length: 0",
        "",
        "",
    ]
    message = parse_message("\r\n".join(lines).encode())
    assert isinstance(message, Request)
    return message


def test_x_headers_keep_their_spelling_and_first_value() -> None:
    request = invite(
        "X-Customer-Id: 4711",
        "x-lower: yes",
        "X-Customer-Id: 9999",
        "Subject: not an X header",
        "X-: odd but an X header",
    )
    assert x_headers_of(request) == {"X-Customer-Id": "4711", "x-lower": "yes", "X-": "odd but an X header"}


def test_x_headers_are_bounded_in_count_and_size() -> None:
    big = "v" * MAX_X_HEADER_BYTES
    many = [f"X-H{n}: {n}" for n in range(MAX_X_HEADERS + 5)]
    got = x_headers_of(invite(f"X-Big: {big}", *many))
    assert "X-Big" not in got  # over the size of one header: left out, not truncated
    assert len(got) == MAX_X_HEADERS
    assert list(got)[:2] == ["X-H0", "X-H1"] and got["X-H31"] == "31"
    # The total is bounded too: 10 headers of ~1000 bytes stop at 8 KiB.
    fat = [f"X-F{n}: {'w' * 1000}" for n in range(10)]
    assert len(x_headers_of(invite(*fat))) == 8


def test_forwarded_from_is_the_topmost_diversion() -> None:
    request = invite(
        'Diversion: "Desk" <sip:+15550001111@pbx.example>;reason=unconditional, '
        "<sip:+15550002222@pbx.example>",
        "Diversion: <sip:+15550003333@pbx.example>;reason=user-busy",
    )
    assert forwarded_from_of(request) == "sip:+15550001111@pbx.example"
    assert forwarded_from_of(invite()) == ""
    assert forwarded_from_of(invite("Diversion: <sip:broken")) == ""
