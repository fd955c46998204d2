"""The parsed header views of a message (vias, from_, to, cseq, call_id, contacts...) are parsed once and
kept until the header fields change; a change to the fields is always seen by the next access."""

from __future__ import annotations

import pytest

from switch.sip.errors import SipParseError
from switch.sip.headers import Headers, parse_name_addr, parse_via, split_list
from switch.sip.message import Request, parse_message, serialize

INVITE = (
    b"INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-0;rport\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK-2-0\r\n"
    b"From: sipp <sip:sipp@127.0.0.1:5061>;tag=1SIPpTag001\r\n"
    b"To: sut <sip:service@127.0.0.1:5060>\r\n"
    b"Call-ID: 1-12345@127.0.0.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:sipp@127.0.0.1:5061>\r\n"
    b"Max-Forwards: 70\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def _invite() -> Request:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    return msg


def test_views_are_parsed_once_and_shared() -> None:
    msg = _invite()
    assert msg.from_ is msg.from_
    assert str(msg.to.uri) == "sip:service@127.0.0.1:5060"
    assert msg.cseq.seq == 1 and msg.cseq.method == "INVITE"
    assert msg.call_id == "1-12345@127.0.0.1"
    assert [via.branch for via in msg.vias] == ["z9hG4bK-1-0", "z9hG4bK-2-0"]
    assert msg.max_forwards == 70
    assert msg.content_type == "application/sdp"


def test_list_views_are_new_lists() -> None:
    msg = _invite()
    vias = msg.vias
    vias.pop(0)
    contacts = msg.contacts
    contacts.clear()
    assert len(msg.vias) == 2
    assert str(msg.contacts[0].uri) == "sip:sipp@127.0.0.1:5061"


def test_a_change_to_the_fields_is_seen() -> None:
    msg = _invite()
    assert msg.to.tag is None
    msg.headers.set("To", "sut <sip:service@127.0.0.1:5060>;tag=abc")
    assert msg.to.tag == "abc"
    msg.headers.remove("Via")
    assert msg.vias == []
    msg.headers.add("Via", "SIP/2.0/TCP 192.0.2.1:5070;branch=z9hG4bK-3")
    assert [(v.transport, v.host, v.port) for v in msg.vias] == [("TCP", "192.0.2.1", 5070)]
    msg.headers.set("CSeq", "2 INVITE")
    assert msg.cseq.seq == 2
    msg.headers.remove("Max-Forwards")
    assert msg.max_forwards is None
    msg.headers.set("Content-Type", "Text/Plain; charset=utf-8")
    assert msg.content_type == "text/plain"
    assert b"CSeq: 2 INVITE\r\n" in serialize(msg)


def test_a_malformed_value_raises_on_every_access() -> None:
    msg = _invite()
    msg.headers.set("CSeq", "one INVITE")
    for _ in range(2):
        with pytest.raises(SipParseError, match="malformed CSeq"):
            _ = msg.cseq
    msg.headers.set("CSeq", "3 INVITE")
    assert msg.cseq.seq == 3


def test_a_copy_of_the_headers_parses_its_own_views() -> None:
    msg = _invite()
    assert msg.from_.tag == "1SIPpTag001"
    other = Request("INVITE", msg.uri, msg.headers.copy())
    other.headers.set("From", "<sip:x@192.0.2.9>;tag=zz")
    assert other.from_.tag == "zz"
    assert msg.from_.tag == "1SIPpTag001"


def test_header_names_in_any_spelling_after_the_first_message() -> None:
    for _ in range(2):  # the second pass meets the names already validated
        msg = parse_message(INVITE.replace(b"Call-ID:", b"i :").replace(b"CSeq:", b"cseq:"))
        assert msg.call_id == "1-12345@127.0.0.1"
        assert msg.cseq.method == "INVITE"
    with pytest.raises(SipParseError, match="malformed header line"):
        parse_message(INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards"))
    with pytest.raises(SipParseError, match="malformed header line"):
        parse_message(INVITE.replace(b"Max-Forwards: 70", b"Max Forwards: 70"))


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        ("a, b ,c", ["a", "b", "c"]),
        ("<sip:a@h;x=1,2>, <sip:b@h>", ["<sip:a@h;x=1,2>", "<sip:b@h>"]),
        ('"Doe, J" <sip:j@h>, <sip:k@h>', ['"Doe, J" <sip:j@h>', "<sip:k@h>"]),
        (" , a,,", ["a"]),
    ],
)
def test_split_list_with_and_without_quotes_or_brackets(value: str, parts: list[str]) -> None:
    assert split_list(value) == parts


def test_parameters_with_and_without_quoted_strings() -> None:
    via = parse_via("SIP/2.0/UDP h:5060;branch=z9hG4bK1;received=192.0.2.1;rport")
    assert via.params == {"branch": "z9hG4bK1", "received": "192.0.2.1", "rport": None}
    addr = parse_name_addr('<sip:a@h>;tag=x;note="a;b=c"')
    assert addr.params == {"tag": "x", "note": '"a;b=c"'}
    headers = Headers([("f", "<sip:a@h>;tag=1")])
    assert headers.get("From") == "<sip:a@h>;tag=1"


def test_name_addr_and_uri_parses_are_kept_by_text_and_only_short_texts_are_kept() -> None:
    from switch.sip import headers, uri

    contact = "<sip:alice@192.0.2.7:5070;transport=udp>;expires=60"
    first = headers.parse_name_addr(contact)
    assert headers.parse_name_addr(contact) is first
    assert str(first.uri) == "sip:alice@192.0.2.7:5070;transport=udp"
    assert uri.parse_uri("sip:bob@192.0.2.8") is uri.parse_uri("sip:bob@192.0.2.8")
    long_user = "u" * 300  # a peer's oversized values are parsed but never kept (bounded memory)
    big = headers.parse_name_addr(f"<sip:{long_user}@192.0.2.9>;tag=x")
    assert big.tag == "x" and f"<sip:{long_user}@192.0.2.9>;tag=x" not in headers._NAME_ADDRS
    assert f"sip:{long_user}@192.0.2.9" not in uri._URIS
    for _ in range(2):  # a malformed value fails every time (errors are not kept)
        with pytest.raises(SipParseError):
            headers.parse_name_addr("<sip:alice@192.0.2.7")
