"""Headers, Via, name-addr, message parsing/serialisation, make_response and error_response_for."""

from __future__ import annotations

import pytest

from switch.sip.errors import SipParseError
from switch.sip.headers import CSeq, Headers, NameAddr, Via, parse_cseq, parse_name_addr, parse_via
from switch.sip.message import (
    MAX_HEADERS,
    MAX_MESSAGE_SIZE,
    Request,
    Response,
    error_response_for,
    make_response,
    parse_message,
    serialize,
)
from switch.sip.uri import AbsoluteURI, SipURI
from tests.sip.conftest import ALL_VECTORS

OPTIONS = (
    b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport\r\n"
    b"From: Alice <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n"
    b"Call-ID: c1\r\nCSeq: 7 OPTIONS\r\nMax-Forwards: 70\r\nTimestamp: 54\r\nContent-Length: 0\r\n\r\n"
)


def vector(name: str) -> Request | Response:
    return parse_message(next(v for v in ALL_VECTORS if v.id == name).data)


def request(name: str) -> Request:
    msg = vector(f"rfc4475/{name}")
    assert isinstance(msg, Request)
    return msg


def sip(uri: SipURI | AbsoluteURI) -> SipURI:
    assert isinstance(uri, SipURI)
    return uri


# --- Headers -----------------------------------------------------------------------------------


def test_headers_compact_and_case() -> None:
    h = Headers([("v", "SIP/2.0/UDP a"), ("i", "x"), ("CALL-ID", "y"), ("cseq", "1 INVITE"), ("X-Odd", "1")])
    assert h.items()[:4] == [
        ("Via", "SIP/2.0/UDP a"),
        ("Call-ID", "x"),
        ("Call-ID", "y"),
        ("CSeq", "1 INVITE"),
    ]
    assert h.get("call-id") == "x" and h.get("I") == "x"
    assert h.get_all("Call-ID") == ["x", "y"]
    assert "x-odd" in h and "Missing" not in h
    assert h.items()[4] == ("X-Odd", "1")


def test_headers_list_splitting() -> None:
    h = Headers()
    h.add("Contact", '"Doe, John" <sip:j@x;a=b,c>;q=0.5, <sip:k@y>')
    h.add("m", "sip:l@z")
    h.add("Allow", "INVITE, ACK ,BYE")
    h.add("Subject", "a, b")
    assert h.get_all("Contact") == ['"Doe, John" <sip:j@x;a=b,c>;q=0.5', "<sip:k@y>", "sip:l@z"]
    assert h.get_all("Allow") == ["INVITE", "ACK", "BYE"]
    assert h.get_all("Subject") == ["a, b"]


def test_headers_set_remove_copy_eq() -> None:
    h = Headers([("X-A", "1"), ("X-B", "2"), ("X-A", "3")])
    copy = h.copy()
    h.set("x-a", "4")
    assert h.items() == [("X-A", "4"), ("X-B", "2")]
    h.set("X-C", "5")
    h.remove("X-B")
    assert h.items() == [("X-A", "4"), ("X-C", "5")]
    assert copy.items() == [("X-A", "1"), ("X-B", "2"), ("X-A", "3")]
    assert copy != h and copy == Headers([("X-A", "1"), ("X-B", "2"), ("X-A", "3")])
    assert len(h) == 2 and h.count("x-a") == 1


# --- Via, name-addr, CSeq -----------------------------------------------------------------------


def test_via_with_lws_and_params() -> None:
    via = parse_via(
        "SIP  /  2.0 / tcp  spindle.example.com : 5070  ; branch =  z9hG4bK9ikj8 ; rport ; received=192.0.2.4"
    )
    assert via == Via(
        "SIP/2.0",
        "TCP",
        "spindle.example.com",
        5070,
        {"branch": "z9hG4bK9ikj8", "rport": None, "received": "192.0.2.4"},
    )
    assert via.branch == "z9hG4bK9ikj8" and via.received == "192.0.2.4"
    assert via.rport is None and via.rport_requested
    assert str(via) == "SIP/2.0/TCP spindle.example.com:5070;branch=z9hG4bK9ikj8;rport;received=192.0.2.4"
    assert parse_via(str(via)) == via


def test_via_ipv6_and_rport_value() -> None:
    via = parse_via("SIP/2.0/UDP [2001:db8::9:1]:5060;received=[2001:db8::9:255];rport=5071;branch=z9hG4bKx")
    assert (via.host, via.port, via.received, via.rport) == (
        "[2001:db8::9:1]",
        5060,
        "[2001:db8::9:255]",
        5071,
    )


@pytest.mark.parametrize(
    "text",
    [
        "SIP/2.0/UDP",
        "SIP/2.0 host",
        "SIP/2.0/UDP 192.0.2.15;;",
        "SIP/2.0/UDP host:99999",
        "SIP/2.0/UDP ho st",
        "SIP/2.0/UDP h;branch=",
    ],
)
def test_via_rejected(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_via(text)


def test_via_lenient_mode_skips_empty_params() -> None:
    assert parse_via("SIP/2.0/UDP 192.0.2.15;;", strict=False).host == "192.0.2.15"


def test_name_addr_forms() -> None:
    quoted = parse_name_addr('"J Rosenberg \\\\\\""  <sip:jdrosen@example.com> ; tag = 98asjd8')
    assert quoted.display_name == 'J Rosenberg \\"' and quoted.tag == "98asjd8"
    assert parse_name_addr(str(quoted)) == quoted
    token = parse_name_addr("caller<sip:caller@example.com>;tag=323")
    assert token.display_name == "caller" and token.tag == "323"
    spec = parse_name_addr("sip:+19725552222@gw1.example.net;unknownparam")
    assert spec.params == {"unknownparam": None} and sip(spec.uri).params == {}
    angle = parse_name_addr("<sip:+19725552222@gw1.example.net;unknownparam>")
    assert angle.params == {} and sip(angle.uri).params == {"unknownparam": None}
    assert (
        str(NameAddr(None, sip(angle.uri), {"expires": "60"}))
        == "<sip:+19725552222@gw1.example.net;unknownparam>;expires=60"
    )


@pytest.mark.parametrize(
    "text",
    [
        '"Mr. J. User <sip:j.user@example.com>',
        "Bell, Alexander <sip:a@example.com>",
        '"Joe" <sip:joe@example.org>;;;;',
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
        "<sip:user@example.com",
        "<sip:a@b> junk",
        '"x" sip:a@b',
    ],
)
def test_name_addr_rejected(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_name_addr(text)


def test_cseq() -> None:
    assert parse_cseq("0009 \t INVITE") == CSeq(9, "INVITE")
    assert str(CSeq(9, "INVITE")) == "9 INVITE"
    for bad in ("2147483648 INVITE", "1", "x INVITE", "-1 INVITE", "1 INV ITE"):
        with pytest.raises(SipParseError):
            parse_cseq(bad)


# --- Messages ------------------------------------------------------------------------------------


def test_parse_simple_request() -> None:
    msg = parse_message(OPTIONS)
    assert isinstance(msg, Request)
    assert msg.method == "OPTIONS" and str(msg.uri) == "sip:bob@example.com"
    assert msg.call_id == "c1" and msg.cseq == CSeq(7, "OPTIONS") and msg.max_forwards == 70
    assert msg.from_.display_name == "Alice" and msg.from_.tag == "a1" and msg.to.tag is None
    assert [v.branch for v in msg.vias] == ["z9hG4bK1"]
    assert serialize(msg) == OPTIONS


def test_serialize_fixes_content_length_and_uses_canonical_names() -> None:
    msg = parse_message(OPTIONS.replace(b"Call-ID", b"i"))
    msg.body = b"hello"
    wire = serialize(msg)
    assert b"\r\nCall-ID: c1\r\n" in wire
    assert wire.endswith(b"Content-Length: 5\r\n\r\nhello")
    assert wire.count(b"Content-Length") == 1


def test_wsinv_values() -> None:
    msg = request("wsinv")
    assert msg.to.tag == "1918181833n"
    assert msg.from_.display_name == 'J Rosenberg \\"' and msg.from_.tag == "98asjd8"
    assert msg.max_forwards == 68 and msg.cseq == CSeq(9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in msg.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert msg.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.headers.get("Subject") == ""
    assert msg.contacts[0].params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert msg.content_type == "application/sdp" and len(msg.body) == 150


def test_intmeth_and_escapes() -> None:
    msg = request("intmeth")
    assert msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert sip(msg.uri).password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    esc = request("esc01")
    assert sip(esc.to.uri).user == "user"
    assert sip(esc.contacts[0].uri).params == {"lr": None, "name": "value%41"}
    assert sip(esc.uri).user == "sips:user@example.com"
    null = request("escnull")
    assert [sip(c.uri).user for c in null.contacts] == ["\x00", "\x00\x00"]
    esc02 = request("esc02")
    assert esc02.method == "RE%47IST%45R" and len(esc02.contacts) == 2
    assert esc02.from_.display_name == "%Z%45"


def test_datagram_framing_vectors() -> None:
    dbl = request("dblreq")
    assert dbl.method == "REGISTER" and dbl.body == b""
    inv = request("inv2543")
    assert len(inv.body) == 105 and inv.headers.get("Content-Length") == "105" and inv.from_.tag is None
    mpart = request("mpart01")
    assert len(mpart.body) == 553 and mpart.body.count(b"\x00") == 2


def test_other_vectors() -> None:
    assert len(request("longreq").vias) == 34
    assert [v.transport for v in request("transports").vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert sip(request("semiuri").uri).user == "user;par=u@example.net"
    assert request("semiuri").headers.get_all("Accept")[-1] == "message/sipfrag"
    assert sip(request("regescrt").contacts[0].uri).headers == {"Route": "<sip:sip.example.com>"}
    assert sip(request("escruri").uri).headers == {"Route": "<sip:example.com>"}
    assert request("escruri").headers.get("Route") is None
    assert request("badaspec").to.display_name == "Watson, Thomas"
    assert request("zeromf").max_forwards == 0
    assert isinstance(request("unksm2").to.uri, AbsoluteURI)
    unreason = vector("rfc4475/unreason")
    assert isinstance(unreason, Response) and unreason.status == 200 and len(unreason.body) == 154
    noreason = vector("rfc4475/noreason")
    assert isinstance(noreason, Response) and noreason.status == 100 and noreason.reason == ""


def test_ipv6_vectors() -> None:
    good = vector("rfc5118/crlf/ipv6-good")
    assert isinstance(good, Request)
    assert sip(good.uri).host == "[2001:db8::10]" and good.vias[0].host == "[2001:db8::9:1]"
    ambiguous = vector("rfc5118/crlf/port-ambiguous")
    assert isinstance(ambiguous, Request)
    assert (sip(ambiguous.uri).host, sip(ambiguous.uri).port) == ("[2001:db8::10:5070]", None)
    unambiguous = vector("rfc5118/crlf/port-unambiguous")
    assert isinstance(unambiguous, Request)
    assert (sip(unambiguous.uri).host, sip(unambiguous.uri).port) == ("[2001:db8::10]", 5070)
    lf = vector("rfc5118/ipv6-good")  # bare LF line ends are tolerated
    assert lf == good


def test_response_parsing_and_errors_have_no_hint() -> None:
    msg = parse_message(b"SIP/2.0 180 Ringing\r\n" + OPTIONS.split(b"\r\n", 1)[1])
    assert isinstance(msg, Response) and (msg.status, msg.reason) == (180, "Ringing")
    for start in (b"SIP/2.0 4294967301 Huge", b"SIP/3.0 200 OK", b"SIP/2.0 099 Low"):
        with pytest.raises(SipParseError) as info:
            parse_message(start + b"\r\n" + OPTIONS.split(b"\r\n", 1)[1])
        assert info.value.status_hint is None


def test_leading_crlf_and_size_limits() -> None:
    assert parse_message(b"\r\n\r\n" + OPTIONS) == parse_message(OPTIONS)
    with pytest.raises(SipParseError) as info:
        parse_message(OPTIONS + b"x" * MAX_MESSAGE_SIZE)
    assert info.value.status_hint == 513
    many = OPTIONS.replace(b"Content-Length", b"X: 1\r\n" * MAX_HEADERS + b"Content-Length")
    with pytest.raises(SipParseError) as info:
        parse_message(many)
    assert info.value.status_hint == 513
    with pytest.raises(SipParseError) as info:
        parse_message(b"")
    assert info.value.status_hint is None


def test_missing_and_duplicate_headers() -> None:
    for name in (b"Via", b"From", b"To", b"Call-ID", b"CSeq"):
        lines = [line for line in OPTIONS.split(b"\r\n") if not line.startswith(name + b":")]
        with pytest.raises(SipParseError):
            parse_message(b"\r\n".join(lines))
    with pytest.raises(SipParseError):
        parse_message(OPTIONS.replace(b"Call-ID: c1", b"Call-ID: c1\r\ni: c2"))
    assert len(parse_message(OPTIONS.replace(b"Content-Length: 0", b"Content-Length: 0\r\nl: 0")).body) == 0


def test_make_response() -> None:
    req = request("longreq")
    resp = make_response(req, 180, to_tag="xyz")
    assert resp.reason == "Ringing"
    assert resp.headers.get_all("Via") == req.headers.get_all("Via") and len(resp.vias) == 34
    assert resp.to.tag == "xyz" and resp.from_ == req.from_ and resp.call_id == req.call_id
    assert resp.cseq == req.cseq
    tagged = request("wsinv")
    assert make_response(tagged, 481, to_tag="new").to.tag == "1918181833n"
    trying = make_response(parse_message(OPTIONS), 100, to_tag="t")  # type: ignore[arg-type]
    assert trying.reason == "Trying" and trying.to.tag is None and trying.headers.get("Timestamp") == "54"
    assert (
        make_response(req, 299).reason == "OK" and make_response(req, 487, "Gone Away").reason == "Gone Away"
    )
    again = parse_message(serialize(resp))
    assert again.headers.get("Content-Length") == "0"
    again.headers.remove("Content-Length")
    assert again == resp


def test_error_response_for() -> None:
    bad = OPTIONS.replace(b"CSeq: 7 OPTIONS", b"CSeq: 99999999999 OPTIONS")
    with pytest.raises(SipParseError) as info:
        parse_message(bad)
    resp = error_response_for(bad, info.value)
    assert resp is not None and (resp.status, resp.reason) == (400, "Bad Request")
    assert resp.headers.get("CSeq") == "99999999999 OPTIONS" and resp.headers.get("Call-ID") == "c1"
    assert error_response_for(b"garbage", SipParseError("x")) is None
    assert error_response_for(OPTIONS, SipParseError("x", None)) is None
    assert error_response_for(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\n\r\n", SipParseError("x")) is None
