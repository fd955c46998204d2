"""Fuzz target: switch.sip.sdp.parse_sdp; only SdpError may escape."""

from __future__ import annotations

import atheris  # type: ignore[import-untyped]  # no stubs published

with atheris.instrument_imports():
    from switch.sip.sdp import SdpError, parse_sdp


def test_one_input(data: bytes) -> None:
    try:
        parse_sdp(data)
    except SdpError:
        pass


if __name__ == "__main__":
    from _common import run

    run(test_one_input)
