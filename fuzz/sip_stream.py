"""Fuzz target: switch.sip.message.StreamParser fed the input in two pieces (cut chosen by the input)."""

from __future__ import annotations

import atheris  # type: ignore[import-untyped]  # no stubs published

with atheris.instrument_imports():
    from switch.sip.errors import SipFramingError, SipParseError
    from switch.sip.message import StreamParser


def test_one_input(data: bytes) -> None:
    if not data:
        return
    cut = data[0] * len(data) // 256
    body = data[1:]
    parser = StreamParser(max_message_size=8192)
    for piece in (body[:cut], body[cut:], b""):
        try:
            parser.feed(piece)
        except SipFramingError:
            return
        except SipParseError:
            continue


if __name__ == "__main__":
    from _common import run

    run(test_one_input)
