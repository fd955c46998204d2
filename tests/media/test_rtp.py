"""RTP packet parse/serialize (RFC 3550 section 5.1)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from switch.media.rtp import PACKET_HEADER_DTYPE, RTP_HEADER, RtpError, RtpPacket, packet_dtype

# Version 2, PT 0 (PCMU), marker set, seq 0x1234, ts 0x000000a0, SSRC 0xdeadbeef, 4 payload bytes.
PCMU = bytes.fromhex("8080123400 0000a0 deadbeef ffff7f00".replace(" ", ""))
# V=2, P=1, X=1, CC=2; PT 101, seq 7, ts 1000, SSRC 1; CSRC 10, 11; extension profile 0xBEDE, one word;
# payload 04 0a 00 a0 (an RFC 4733 event); 3 bytes of padding ending with the count.
FULL = bytes.fromhex("b2650007000003e8000000010000000a0000000bbede000111223344040a00a0000003")

# The extension header announces two words; only one follows.
SHORT_EXTENSION = b"\x90" + PCMU[1:12] + bytes.fromhex("bede0002") + bytes(4)


def test_parse_pcmu_packet() -> None:
    p = RtpPacket.parse(PCMU)
    assert (p.payload_type, p.marker, p.sequence_number, p.timestamp, p.ssrc) == (
        0,
        True,
        0x1234,
        0xA0,
        0xDEADBEEF,
    )
    assert p.payload == b"\xff\xff\x7f\x00"
    assert p.csrc == [] and p.extension_value is None and p.padding_size == 0
    assert bytes(p) == PCMU


def test_parse_packet_with_csrc_extension_and_padding() -> None:
    p = RtpPacket.parse(FULL)
    assert p.payload_type == 101 and not p.marker
    assert p.sequence_number == 7 and p.timestamp == 1000 and p.ssrc == 1
    assert p.csrc == [10, 11]
    assert p.extension_profile == 0xBEDE and p.extension_value == bytes.fromhex("11223344")
    assert p.padding_size == 3
    assert p.payload == bytes.fromhex("040a00a0")
    assert p.serialize() == FULL


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x00\x00", "RTP packet length is less than 12 bytes"),
        (b"\x40" + PCMU[1:], "RTP packet has invalid version"),
        (b"\xc0" + PCMU[1:], "RTP packet has invalid version"),
        (b"\x82" + PCMU[1:12] + b"\x00\x00\x00\x01", "RTP packet has truncated CSRC"),
        (b"\x90" + PCMU[1:12] + b"\xbe\xde", "RTP packet has truncated extension profile / length"),
        (SHORT_EXTENSION, "RTP packet has truncated extension value"),
        (b"\xa0" + PCMU[1:12] + b"\x00\x00", "RTP packet padding length is invalid"),
        (b"\xa0" + PCMU[1:12] + b"\x00\x09", "RTP packet padding length is invalid"),
    ],
)
def test_malformed_packets_raise_exact_errors(data: bytes, message: str) -> None:
    with pytest.raises(RtpError) as info:
        RtpPacket.parse(data)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (RtpPacket(payload_type=128), "RTP payload type must be in 0..127"),
        (RtpPacket(csrc=list(range(16))), "RTP packet can carry at most 15 CSRC"),
        (RtpPacket(padding_size=256), "RTP padding size must be in 0..255"),
        (RtpPacket(extension_value=b"abc"), "RTP extension value length must be a multiple of 4"),
    ],
)
def test_serialize_rejects_out_of_range_fields(packet: RtpPacket, message: str) -> None:
    with pytest.raises(RtpError) as info:
        packet.serialize()
    assert str(info.value) == message


@given(
    pt=st.integers(0, 127),
    marker=st.booleans(),
    seq=st.integers(0, 0xFFFF),
    ts=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=200),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
    ext=st.one_of(st.none(), st.binary(max_size=12).map(lambda b: b[: len(b) // 4 * 4])),
    profile=st.integers(0, 0xFFFF),
    padding=st.integers(0, 255),
)
def test_round_trip(
    pt: int,
    marker: bool,
    seq: int,
    ts: int,
    ssrc: int,
    payload: bytes,
    csrc: list[int],
    ext: bytes | None,
    profile: int,
    padding: int,
) -> None:
    packet = RtpPacket(
        payload_type=pt,
        marker=marker,
        sequence_number=seq,
        timestamp=ts,
        ssrc=ssrc,
        payload=payload,
        csrc=csrc,
        extension_profile=profile if ext is not None else 0,
        extension_value=ext,
        padding_size=padding,
    )
    data = packet.serialize()
    assert RtpPacket.parse(data) == packet
    assert bytes(RtpPacket.parse(data)) == data


@given(st.binary(max_size=64))
def test_parse_raises_only_rtp_error(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except RtpError:
        return
    # Padding bytes other than the count are not kept, so compare through a second parse.
    assert RtpPacket.parse(bytes(packet)) == packet
    if packet.padding_size == 0:
        assert bytes(packet) == data


def test_header_array_matches_struct_layout() -> None:
    dt = packet_dtype(4)
    assert PACKET_HEADER_DTYPE.itemsize == 12 and dt.itemsize == 16
    buf = np.zeros(2, dtype=dt)
    buf["vpxcc"] = 0x80
    buf["mpt"] = [0x80, 8]
    buf["seq"] = [0x1234, 0xFFFF]
    buf["timestamp"] = [0xA0, 0xFFFFFFFF]
    buf["ssrc"] = [0xDEADBEEF, 1]
    buf["payload"][0] = [0xFF, 0xFF, 0x7F, 0x00]
    assert buf[0].tobytes() == PCMU
    assert RTP_HEADER.unpack_from(buf[1].tobytes()) == (0x80, 8, 0xFFFF, 0xFFFFFFFF, 1)
