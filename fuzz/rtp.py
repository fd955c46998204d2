"""Fuzz target: switch.media.rtp.RtpPacket.parse and serialize; only RtpError may escape."""

from __future__ import annotations

import atheris  # type: ignore[import-untyped]  # no stubs published

with atheris.instrument_imports():
    from switch.media.rtp import RtpError, RtpPacket


def test_one_input(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except RtpError:
        return
    packet.serialize()


if __name__ == "__main__":
    from _common import run

    run(test_one_input)
