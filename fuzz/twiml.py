"""Fuzz target: switch.twiml.parser.parse_twiml; only TwimlError may escape."""

from __future__ import annotations

import atheris  # type: ignore[import-untyped]  # no stubs published

with atheris.instrument_imports():
    from switch.twiml.errors import TwimlError
    from switch.twiml.parser import parse_twiml


def test_one_input(data: bytes) -> None:
    try:
        parse_twiml(data, base_url="http://127.0.0.1:9/app.xml")
    except TwimlError:
        pass


if __name__ == "__main__":
    from _common import run

    run(test_one_input)
