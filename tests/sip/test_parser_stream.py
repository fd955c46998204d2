"""StreamParser: the torture vectors over a stream transport, whole, byte by byte, and with trailing bytes."""

from __future__ import annotations

import pytest

from switch.sip.errors import SipFramingError, SipParseError
from switch.sip.message import (
    MAX_MESSAGE_SIZE,
    Request,
    Response,
    StreamParser,
    error_response_for,
    parse_message,
)
from tests.sip.conftest import STREAM_FRAMING_ERRORS, STREAM_WAITS, Vector, parser_verdict

NEXT = (
    b"OPTIONS sip:next@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.9;branch=z9hG4bKnext\r\n"
    b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:next@example.com>\r\n"
    b"Call-ID: next-message\r\nCSeq: 1 OPTIONS\r\nContent-Length: 4\r\n\r\nbody"
)
# Header sections without an empty line at all: a stream waits for the rest.
NO_BLANK_LINE = frozenset(
    {"rfc4475/baddn", "rfc5118/ipv6-bug-abnf-3-colons", "rfc5118/ipv6-correct-abnf-2-colons"}
)

Outcome = tuple[list[Request | Response], SipParseError | None]


def run(parser: StreamParser, chunks: list[bytes]) -> Outcome:
    messages: list[Request | Response] = []
    for chunk in chunks:
        try:
            messages.extend(parser.feed(chunk))
        except SipParseError as exc:
            return messages, exc
    return messages, None


def kind(vector: Vector) -> str:
    if vector.id in STREAM_FRAMING_ERRORS:
        return "framing"
    if vector.id in STREAM_WAITS or vector.id in NO_BLANK_LINE:
        return "waits"
    if vector.name == "dblreq":
        return "dblreq"
    return parser_verdict(vector)


def check_outcome(vector: Vector, parser: StreamParser, outcome: Outcome) -> None:
    messages, error = outcome
    expected = kind(vector)
    if expected == "framing":
        assert messages == []
        assert isinstance(error, SipFramingError)
        with pytest.raises(SipFramingError):  # the stream stays dead
            parser.feed(NEXT)
    elif expected == "waits":
        assert messages == [] and error is None
        assert parser.buffered > 0
    elif expected == "dblreq":
        # The trailing INVITE octets frame as the next message; what follows them is garbage.
        assert [m.method for m in messages if isinstance(m, Request)] == ["REGISTER", "INVITE"]
        assert messages[0] == parse_message(vector.data)
        assert isinstance(error, SipFramingError) or error is None
    elif expected == "accept":
        assert error is None
        assert messages == [parse_message(vector.data)]
        assert parser.buffered == 0
    else:
        assert messages == []
        assert error is not None and not isinstance(error, SipFramingError)
        assert error.raw == vector.data.lstrip(b"\r\n")
        with pytest.raises(SipParseError) as info:
            parse_message(vector.data)
        assert error.status_hint == info.value.status_hint


def test_stream_whole(vector: Vector) -> None:
    parser = StreamParser()
    check_outcome(vector, parser, run(parser, [vector.data]))


def test_stream_byte_by_byte(vector: Vector) -> None:
    parser = StreamParser()
    data = vector.data
    check_outcome(vector, parser, run(parser, [data[i : i + 1] for i in range(len(data))]))


def test_stream_with_trailing_message(vector: Vector) -> None:
    parser = StreamParser()
    messages, error = run(parser, [b"\r\n\r\n" + vector.data + NEXT])
    expected = kind(vector)
    nxt = parse_message(NEXT)
    if expected == "accept":
        assert error is None
        assert messages == [parse_message(vector.data), nxt]
    elif expected == "framing":
        assert messages == [] and isinstance(error, SipFramingError)
    elif expected == "waits":
        assert nxt not in messages
        if vector.id in NO_BLANK_LINE:
            # The next message's lines join the unterminated header section: two Content-Lengths.
            assert isinstance(error, SipFramingError)
        else:
            assert error is None  # clerr swallows the next message as its body and waits for more
    elif expected == "dblreq":
        assert len(messages) == 2
    else:
        assert messages == [] and error is not None and not isinstance(error, SipFramingError)
        assert parser.feed(b"") == [nxt]  # the stream survives a malformed but framed message


def test_keepalives_are_skipped() -> None:
    parser = StreamParser()
    assert parser.feed(b"\r\n\r\n") == []
    assert parser.feed(b"\r\n") == []
    assert parser.feed(NEXT + b"\r\n\r\n" + NEXT) == [parse_message(NEXT), parse_message(NEXT)]
    assert parser.buffered == 0


def test_messages_before_an_error_are_returned_first() -> None:
    bad = NEXT.replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")
    parser = StreamParser()
    assert parser.feed(NEXT + bad + NEXT) == [parse_message(NEXT)]
    with pytest.raises(SipParseError) as info:
        parser.feed(b"")
    assert info.value.raw == bad
    response = error_response_for(bad, info.value)
    assert response is not None and response.status == 400
    assert parser.feed(b"") == [parse_message(NEXT)]


def test_framing_errors() -> None:
    for head, hint in [
        (b"Content-Length: -1\r\n", 400),
        (b"Content-Length: 1\r\nl: 2\r\n", 400),
        (b"Content-Length: x\r\n", 400),
        (b"Content-Length: 999999\r\n", 513),
        (b"", 400),
    ]:
        parser = StreamParser()
        with pytest.raises(SipFramingError) as info:
            parser.feed(b"OPTIONS sip:a@b SIP/2.0\r\n" + head + b"\r\n")
        assert info.value.status_hint == hint


def test_unterminated_header_section_is_bounded() -> None:
    parser = StreamParser()
    assert parser.feed(b"OPTIONS sip:a@b SIP/2.0\r\n") == []
    with pytest.raises(SipFramingError) as info:
        parser.feed(b"X-Filler: " + b"a" * MAX_MESSAGE_SIZE + b"\r\n")
    assert info.value.status_hint == 513


def test_response_framing_error_has_no_status_hint() -> None:
    parser = StreamParser()
    with pytest.raises(SipFramingError) as info:
        parser.feed(b"SIP/2.0 200 OK\r\nContent-Length: -5\r\n\r\n")
    assert info.value.status_hint is None
