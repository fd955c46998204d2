"""SIP/SIPS/tel URIs: escapes, parameters, headers, IPv6 references, errors."""

from __future__ import annotations

import pytest

from switch.sip.errors import SipParseError
from switch.sip.uri import AbsoluteURI, SipURI, escape, parse_uri, unescape


def sip(text: str) -> SipURI:
    uri = parse_uri(text)
    assert isinstance(uri, SipURI)
    return uri


def test_full_uri() -> None:
    uri = sip("sips:alice:secret@Example.com:5061;transport=TCP;lr?Subject=hi&Priority=urgent")
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sips",
        "alice",
        "secret",
        "Example.com",
        5061,
    )
    assert uri.params == {"transport": "TCP", "lr": None}
    assert uri.transport == "tcp"
    assert uri.headers == {"Subject": "hi", "Priority": "urgent"}
    assert str(uri) == "sips:alice:secret@Example.com:5061;transport=TCP;lr?Subject=hi&Priority=urgent"


def test_escapes_are_decoded_but_kept_raw_on_output() -> None:
    text = "sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31"
    uri = sip(text)
    assert uri.user == "caller"
    assert uri.params == {"lr": None, "name": "value%41"}
    assert str(uri) == text


def test_changed_components_are_escaped() -> None:
    uri = sip("sip:%75ser@example.com;x=%41")
    uri.user = "I have spaces@"
    uri.params["x"] = "a b"
    assert str(uri) == "sip:I%20have%20spaces%40@example.com;x=a%20b"
    assert sip(str(uri)) == uri


def test_escaped_nul_and_utf8() -> None:
    assert sip("sip:null-%00-null@example.com").user == "null-\x00-null"
    assert sip("sip:%00%00@host").user == "\x00\x00"
    assert unescape("%C3%A9t%C3%A9") == "été"
    assert escape("été") == "%C3%A9t%C3%A9"
    assert unescape("100%") == "100%"


def test_user_part_may_hold_semicolons() -> None:
    uri = sip("sip:user;par=u%40example.net@example.com")
    assert uri.user == "user;par=u@example.net"
    assert uri.host == "example.com" and uri.params == {}


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:[2001:db8::10]", "[2001:db8::10]", None),
        ("sip:[2001:db8::10]:5070", "[2001:db8::10]", 5070),
        ("sip:[2001:db8::10:5070]", "[2001:db8::10:5070]", None),
        ("sip:ted@[::ffff:192.0.2.2]", "[::ffff:192.0.2.2]", None),
        ("sip:192.0.2.1:0", "192.0.2.1", 0),
    ],
)
def test_hosts_and_ports(text: str, host: str, port: int | None) -> None:
    uri = sip(text)
    assert (uri.host, uri.port) == (host, port)
    assert str(uri) == text


def test_ipv6_host_set_without_brackets_is_bracketed() -> None:
    uri = SipURI("sip", "bob", None, "2001:db8::1", 5060)
    assert str(uri) == "sip:bob@[2001:db8::1]:5060"


@pytest.mark.parametrize(
    "text",
    [
        "sip:2001:db8::10",
        "sip:host:65536",
        "sip:host:12a",
        "sip:@host",
        "sip:[2001:db8::1",
        "sip:host;;lr",
        "sip:host?=x",
        "sip:",
        "<sip:user@example.com>",
        "sip:user@exa mple.com",
        "1sip:host",
        "nocolon",
        "sip:user@example.com>",
        "sip:[::1]x",
    ],
)
def test_rejected(text: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_uri(text)
    assert info.value.status_hint == 400


def test_absolute_uris() -> None:
    assert parse_uri("tel:+1-201-555-0123;phone-context=example.com") == AbsoluteURI(
        "tel", "+1-201-555-0123;phone-context=example.com"
    )
    assert parse_uri("nobodyKnowsThisScheme:totallyopaquecontent") == AbsoluteURI(
        "nobodyknowsthisscheme", "totallyopaquecontent"
    )
    assert str(parse_uri("soap.beep://192.0.2.103:3002")) == "soap.beep://192.0.2.103:3002"


def test_scheme_is_case_insensitive() -> None:
    assert sip("SIP:alice@example.com").scheme == "sip"


def test_equality_ignores_raw_form() -> None:
    assert sip("sip:%61lice@example.com") == sip("sip:alice@example.com")
