"""DTMF in SIP INFO bodies: the two formats phones send, and what is not DTMF."""

from __future__ import annotations

import pytest

from switch.calls.dtmf import digits_from_info


@pytest.mark.parametrize(
    ("content_type", "body", "digit"),
    [
        ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", "5"),
        ("application/dtmf-relay", b"Signal= #\r\nDuration= 100", "#"),
        ("application/dtmf-relay", b"signal=*\r\n", "*"),
        ("application/dtmf-relay", b"Signal=10\r\nDuration=100", "*"),
        ("application/dtmf-relay", b"Signal=11\r\nDuration=100", "#"),
        ("application/dtmf-relay", b"Signal=a\r\n", "A"),
        ("application/dtmf", b"7", "7"),
        ("application/dtmf", b"\r\n0\r\n", "0"),
    ],
)
def test_digits(content_type: str, body: bytes, digit: str) -> None:
    assert digits_from_info(content_type, body) == digit


def test_empty_info_is_a_keepalive() -> None:
    assert digits_from_info(None, b"") == ""


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/dtmf-relay", b"Signal=12\r\n"),
        ("application/dtmf-relay", b"Duration=160\r\n"),
        ("application/dtmf", b"55"),
        ("application/dtmf", b"\xff"),
        ("text/plain", b"5"),
        (None, b"Signal=5"),
    ],
)
def test_not_dtmf(content_type: str | None, body: bytes) -> None:
    assert digits_from_info(content_type, body) is None
