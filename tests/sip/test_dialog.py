"""Dialog state and in-dialog request construction (RFC 3261 §12)."""

from __future__ import annotations

import pytest

from switch.sip.dialog import Dialog, DialogState, dialog_id, uri_destination
from switch.sip.message import Request, Response, make_response, parse_message
from switch.sip.uri import SipURI, parse_uri

INVITE = (
    b"INVITE sip:bob@192.0.2.4 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc\r\n"
    b"Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice" <sip:alice@example.com>;tag=a1\r\n'
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: call-1@example.com\r\n"
    b"CSeq: 314 INVITE\r\n"
    b"Contact: <sip:alice@192.0.2.1:5070>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def _invite() -> Request:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    return msg


def _ok(request: Request, contact: str = "<sip:bob@192.0.2.4:5090>") -> Response:
    response = make_response(request, 200, to_tag="b2")
    response.headers.add("Contact", contact)
    return response


def test_uas_dialog_takes_ids_route_set_and_target_from_the_request() -> None:
    inv = _invite()
    d = Dialog.from_uas(inv, _ok(inv))
    assert d.id == dialog_id("call-1@example.com", "b2", "a1") == "call-1@example.com;b2;a1"
    assert (d.local_tag, d.remote_tag, d.remote_seq, d.local_seq) == ("b2", "a1", 314, 0)
    assert [str(r.uri) for r in d.route_set] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert str(d.remote_target) == "sip:alice@192.0.2.1:5070"
    assert d.is_uas and d.state is DialogState.CONFIRMED


def test_uas_bye_uses_loose_routes_and_next_cseq() -> None:
    inv = _invite()
    d = Dialog.from_uas(inv, _ok(inv))
    bye = d.create_request("BYE")
    assert bye.method == "BYE"
    assert str(bye.uri) == "sip:alice@192.0.2.1:5070"
    assert bye.headers.get_all("Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert (bye.cseq.seq, bye.cseq.method) == (1, "BYE")
    assert bye.from_.tag == "b2" and str(bye.from_.uri) == "sip:bob@example.com"
    assert bye.to.tag == "a1" and bye.to.display_name == "Alice"
    assert bye.call_id == "call-1@example.com"
    assert d.create_request("INFO", body=b"x", headers=[("Content-Type", "text/plain")]).cseq.seq == 2


def test_uac_dialog_reverses_record_route_and_acks_with_invite_cseq() -> None:
    inv = _invite()
    ok = _ok(inv)
    ok.headers.add("Record-Route", "<sip:p2.example.com;lr>, <sip:p1.example.com;lr>")
    d = Dialog.from_uac(inv, ok)
    assert (d.local_tag, d.remote_tag, d.local_seq, d.remote_seq) == ("a1", "b2", 314, None)
    assert [str(r.uri) for r in d.route_set] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert str(d.remote_target) == "sip:bob@192.0.2.4:5090"
    ack = d.create_request("ACK")
    assert (ack.cseq.seq, ack.cseq.method) == (314, "ACK")
    reinvite = d.create_request("INVITE")
    assert reinvite.cseq.seq == 315
    assert d.create_request("ACK").cseq.seq == 315
    assert d.create_request("BYE").cseq.seq == 316


def test_strict_route_puts_target_last() -> None:
    inv = _invite()
    ok = _ok(inv)
    ok.headers.add("Record-Route", "<sip:strict.example.com>")
    d = Dialog.from_uac(inv, ok)
    bye = d.create_request("BYE")
    assert str(bye.uri) == "sip:strict.example.com"
    assert bye.headers.get_all("Route") == ["<sip:bob@192.0.2.4:5090>"]
    assert d.next_hop() == parse_uri("sip:strict.example.com")


def test_lower_remote_cseq_is_500_and_target_refresh_updates_contact() -> None:
    inv = _invite()
    d = Dialog.from_uas(inv, _ok(inv))
    lower = d.create_request("BYE")  # any request; we rewrite it as if the peer sent it
    lower.headers.set("CSeq", "313 BYE")
    assert d.check_remote_cseq(lower) == 500
    equal = _invite()
    equal.headers.set("Contact", "<sip:alice@198.51.100.9>")
    assert d.check_remote_cseq(equal) is None  # equal is not lower
    assert str(d.remote_target) == "sip:alice@198.51.100.9"
    higher = _invite()
    higher.headers.set("CSeq", "400 INFO")
    assert d.check_remote_cseq(higher) is None
    assert d.remote_seq == 400
    ack = _invite()
    ack.headers.set("CSeq", "1 ACK")
    ack.method = "ACK"
    assert d.check_remote_cseq(ack) is None and d.remote_seq == 400


def test_dialog_needs_a_to_tag() -> None:
    inv = _invite()
    with pytest.raises(ValueError):
        Dialog.from_uas(inv, make_response(inv, 200))


def test_uri_destination() -> None:
    sip = parse_uri("sip:a@[2001:db8::1]:5070")
    assert isinstance(sip, SipURI)
    assert uri_destination(sip) == ("2001:db8::1", 5070)
    assert uri_destination(parse_uri("sips:a@example.com")) == ("example.com", 5061)
    assert uri_destination(parse_uri("sip:a@example.com;maddr=127.0.0.2")) == ("127.0.0.2", 5060)
    assert uri_destination(parse_uri("tel:+15551234")) is None
