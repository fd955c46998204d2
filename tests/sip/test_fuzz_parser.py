"""Property tests: the parsers return a message or raise SipParseError, never anything else."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from switch.sip.errors import SipParseError
from switch.sip.headers import parse_name_addr, parse_via
from switch.sip.message import StreamParser, error_response_for, parse_message, serialize
from switch.sip.uri import parse_uri
from tests.sip.conftest import ALL_VECTORS, parser_verdict

VALID = [v.data for v in ALL_VECTORS if parser_verdict(v) == "accept"]
ALL = [v.data for v in ALL_VECTORS]
INTERESTING = [
    b"\r\n",
    b"\n",
    b" ",
    b"\t",
    b":",
    b";",
    b",",
    b"<",
    b">",
    b'"',
    b"\\",
    b"%",
    b"%0",
    b"[",
    b"]",
    b"=",
    b"@",
]
INTERESTING += [
    b"\x00",
    b"\xff",
    b"\xc3",
    b"SIP/2.0",
    b"Content-Length: 9\r\n",
    b"l: -1\r\n",
    b"\r\n\r\n",
    b"?",
]
# SIP_FUZZ_EXAMPLES raises the budget for a long local run (the suite default stays a few seconds).
FUZZ = settings(max_examples=int(os.environ.get("SIP_FUZZ_EXAMPLES", "300")), deadline=None)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(INTERESTING) | st.binary(min_size=1, max_size=8))
        elif data:
            del data[pos : pos + draw(st.integers(1, 16))]
    return bytes(data)


def check_datagram(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipParseError as exc:
        response = error_response_for(data, exc)
        assert response is None or response.status == exc.status_hint
        if response is not None:
            serialize(response)
        return
    again = parse_message(serialize(msg))
    assert again == msg


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    check_datagram(data)


@FUZZ
@given(st.sampled_from(ALL).map(lambda d: d[:40]), st.binary(max_size=512))
def test_valid_start_random_rest(prefix: bytes, rest: bytes) -> None:
    check_datagram(prefix + rest)


@FUZZ
@given(mutated())
def test_mutated_messages(data: bytes) -> None:
    check_datagram(data)


@FUZZ
@given(mutated(), st.lists(st.integers(1, 200), min_size=1, max_size=20))
def test_stream_mutated_in_chunks(data: bytes, cuts: list[int]) -> None:
    parser = StreamParser()
    pos = 0
    for size in [*cuts, len(data)]:
        chunk, pos = data[pos : pos + size], pos + size
        try:
            for msg in parser.feed(chunk):
                assert parse_message(serialize(msg)) == msg
        except SipParseError:
            return


@FUZZ
@given(st.text(max_size=200))
def test_header_value_parsers(text: str) -> None:
    for parse in (parse_uri, parse_via, parse_name_addr):
        try:
            result = parse(text)
        except SipParseError:
            continue
        assert str(result)
