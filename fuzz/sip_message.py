"""Fuzz target: switch.sip.message.parse_message (datagrams) and error_response_for on its failures."""

from __future__ import annotations

import atheris  # type: ignore[import-untyped]  # no stubs published

with atheris.instrument_imports():
    from switch.sip.errors import SipParseError
    from switch.sip.message import error_response_for, parse_message, serialize


def test_one_input(data: bytes) -> None:
    try:
        message = parse_message(data)
    except SipParseError as exc:
        error_response_for(data, exc)
        return
    again = serialize(message)
    try:
        parse_message(again)
    except SipParseError:
        pass


if __name__ == "__main__":
    from _common import run

    run(test_one_input)
