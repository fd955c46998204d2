"""Digest authentication primitives: RFC 7616 section 3.9.1 vectors, parsing, nonces."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.sip.auth import (
    AuthError,
    DigestChallenge,
    DigestCredentials,
    NonceManager,
    build_authorization,
    compute_ha1,
    compute_response,
    parse_authorization,
    parse_digest_challenge,
    verify_response,
)

# RFC 7616 section 3.9.1
REALM = "http-auth@example.org"
NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC_RESPONSES = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}
RFC_AUTHORIZATION_MD5 = (
    'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=MD5, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, '
    'cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, '
    'response="8ca523f5e9506fed4657c9700eebdbec", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)
BASE = 'Digest username="a", realm="b", nonce="c", uri="d", response="8ca523f5e9506fed4657c9700eebdbec", '
SECRET = b"0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_worked_example_response(algorithm: str) -> None:
    ha1 = compute_ha1("Mufasa", REALM, "Circle of Life", algorithm)  # type: ignore[arg-type]
    response = compute_response(
        ha1,
        method="GET",
        uri="/dir/index.html",
        nonce=NONCE,
        algorithm=algorithm,  # type: ignore[arg-type]
        qop="auth",
        cnonce=CNONCE,
        nc="00000001",
    )
    assert response == RFC_RESPONSES[algorithm]


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_client_header_matches_rfc_and_server_verifies_it(algorithm: str) -> None:
    challenge = DigestChallenge(REALM, NONCE, OPAQUE, algorithm=algorithm)  # type: ignore[arg-type]
    header = build_authorization(challenge, "Mufasa", "Circle of Life", "GET", "/dir/index.html", CNONCE, 1)
    if algorithm == "MD5":
        assert header == RFC_AUTHORIZATION_MD5
    credentials = parse_authorization(header)
    assert credentials == DigestCredentials(
        username="Mufasa",
        realm=REALM,
        nonce=NONCE,
        uri="/dir/index.html",
        response=RFC_RESPONSES[algorithm],
        algorithm=algorithm,  # type: ignore[arg-type]
        qop="auth",
        cnonce=CNONCE,
        nc="00000001",
        opaque=OPAQUE,
    )
    ha1 = compute_ha1("Mufasa", REALM, "Circle of Life", algorithm)  # type: ignore[arg-type]
    assert verify_response(credentials, "GET", ha1) is True
    assert verify_response(credentials, "POST", ha1) is False
    wrong = compute_ha1("Mufasa", REALM, "Circle of life", algorithm)  # type: ignore[arg-type]
    assert verify_response(credentials, "GET", wrong) is False


def test_rfc7616_challenge_header_parses() -> None:
    header = (
        'Digest\r\n realm="http-auth@example.org",\r\n qop="auth, auth-int",\r\n algorithm=SHA-256,\r\n'
        ' nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",\r\n'
        ' opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    assert parse_digest_challenge(header) == DigestChallenge(
        REALM, NONCE, OPAQUE, algorithm="SHA-256", qop="auth"
    )


def test_challenge_to_header_round_trip_and_exact_text() -> None:
    challenge = DigestChallenge("sip.example", 'n"o\\nce', None, algorithm="SHA-256", stale=True)
    header = challenge.to_header()
    assert (
        header
        == 'Digest realm="sip.example", nonce="n\\"o\\\\nce", algorithm=SHA-256, qop="auth", stale=TRUE'
    )
    assert parse_digest_challenge(header) == challenge
    plain = DigestChallenge("r", "n", "o")
    assert plain.to_header() == 'Digest realm="r", nonce="n", opaque="o", algorithm=MD5, qop="auth"'
    assert parse_digest_challenge(plain.to_header()) == plain


def test_challenge_without_qop_or_algorithm_defaults() -> None:
    challenge = parse_digest_challenge('digest realm="asterisk", nonce="4c1a9f2e"')
    assert (challenge.algorithm, challenge.qop, challenge.opaque, challenge.stale) == (
        "MD5",
        None,
        None,
        False,
    )


def test_rfc2069_client_and_server_without_qop() -> None:
    challenge = DigestChallenge("asterisk", "abc", qop=None)
    header = build_authorization(challenge, "100", "secret", "REGISTER", "sip:127.0.0.1", "ignored", 1)
    assert "qop" not in header and "cnonce" not in header and "nc=" not in header
    credentials = parse_authorization(header)
    assert credentials.qop is None
    # H(HA1:nonce:HA2) with HA1 = md5("100:asterisk:secret"), HA2 = md5("REGISTER:sip:127.0.0.1")
    assert credentials.response == compute_response(
        compute_ha1("100", "asterisk", "secret"),
        method="REGISTER",
        uri="sip:127.0.0.1",
        nonce="abc",
        qop=None,
    )
    assert verify_response(credentials, "REGISTER", compute_ha1("100", "asterisk", "secret"))


def test_nc_is_written_as_eight_hex_digits() -> None:
    header = build_authorization(DigestChallenge("r", "n"), "u", "p", "INVITE", "sip:x@y", "c", 255)
    assert "nc=000000ff," in header
    with pytest.raises(ValueError, match="nc"):
        build_authorization(DigestChallenge("r", "n"), "u", "p", "INVITE", "sip:x@y", "c", 0)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ('Basic realm="x"', "not a Digest"),
        ("Digest", "lack username"),
        ('Digest username="a", realm="b", nonce="c", uri="d"', "lack response"),
        ('Digest username="a" realm="b"', "invalid digest parameter"),
        ('Digest username="a, realm="b"', "invalid digest parameter"),
        ('Digest username="a", username="b"', "given twice"),
        ('Digest username="a", realm="b", nonce="c", uri="d", response="xyz"', "hex digest"),
        (
            BASE + "algorithm=SHA-256",
            "SHA-256 hex digest",
        ),
        (
            BASE + "algorithm=SHA-512-256",
            "unsupported digest algorithm",
        ),
        (
            BASE + "qop=auth",
            "cnonce and nc",
        ),
        (
            BASE + 'qop=auth, nc=1, cnonce="x"',
            "8 hex digits",
        ),
        (
            BASE + 'qop=auth-int, nc=00000001, cnonce="x"',
            "unsupported qop",
        ),
    ],
)
def test_bad_authorization_raises_auth_error(header: str, message: str) -> None:
    with pytest.raises(AuthError, match=message) as info:
        parse_authorization(header)
    assert info.value.error_status_hint == 400


def test_challenge_errors() -> None:
    with pytest.raises(AuthError, match="realm and nonce"):
        parse_digest_challenge('Digest realm="x"')
    with pytest.raises(AuthError, match="unsupported qop"):
        parse_digest_challenge('Digest realm="x", nonce="y", qop="auth-int"')


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_parsers_raise_only_auth_error(text: str) -> None:
    for parser in (parse_authorization, parse_digest_challenge):
        try:
            parser("Digest " + text)
        except AuthError:
            pass


def test_verify_is_case_insensitive_on_hex() -> None:
    credentials = parse_authorization(RFC_AUTHORIZATION_MD5.replace("8ca523f5e9506fed", "8CA523F5E9506FED"))
    assert verify_response(credentials, "GET", compute_ha1("Mufasa", REALM, "Circle of Life").upper())
    tampered = dataclasses.replace(credentials, uri="/dir/other.html")
    assert not verify_response(tampered, "GET", compute_ha1("Mufasa", REALM, "Circle of Life"))


# --- nonces ----------------------------------------------------------------------------------


def test_nonce_valid_then_stale() -> None:
    manager = NonceManager(SECRET, lifetime=30.0)
    nonce = manager.issue(now=1000.0)
    assert manager.check(nonce, now=1000.0) == "valid"
    assert manager.check(nonce, now=1030.0) == "valid"
    assert manager.check(nonce, now=1030.002) == "stale"
    assert manager.check(nonce, now=999.5) == "valid"  # small clock step back tolerated
    assert manager.check(nonce, now=990.0) == "invalid"  # issued in the future


def test_nonces_are_unique_and_header_safe() -> None:
    manager = NonceManager(SECRET, lifetime=30.0)
    nonces = {manager.issue(now=5.0) for _ in range(50)}
    assert len(nonces) == 50
    for nonce in nonces:
        assert all(c.isalnum() or c in "-_" for c in nonce)


def test_forged_or_foreign_nonces_are_invalid() -> None:
    manager = NonceManager(SECRET, lifetime=30.0)
    nonce = manager.issue(now=10.0)
    other = NonceManager(b"another secret of sixteen+ bytes", lifetime=30.0)
    assert other.check(nonce, now=10.0) == "invalid"
    flipped = nonce[:-1] + ("A" if nonce[-1] != "A" else "B")
    assert manager.check(flipped, now=10.0) == "invalid"
    assert manager.check(nonce[:-2], now=10.0) == "invalid"
    assert manager.check("", now=10.0) == "invalid"
    assert manager.check("!" * len(nonce), now=10.0) == "invalid"
    assert manager.check(NONCE, now=10.0) == "invalid"


def test_nonce_manager_arguments() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        NonceManager(b"short", lifetime=1.0)
    with pytest.raises(ValueError, match="lifetime"):
        NonceManager(SECRET, lifetime=0)


def test_full_exchange_with_issued_nonce() -> None:
    manager = NonceManager(SECRET, lifetime=60.0)
    challenge = DigestChallenge("switch", manager.issue(now=100.0), algorithm="SHA-256")
    parsed = parse_digest_challenge(challenge.to_header())
    header = build_authorization(parsed, "alice", "s3cret", "REGISTER", "sip:127.0.0.1", "abc123", 1)
    credentials = parse_authorization(header)
    assert manager.check(credentials.nonce, now=130.0) == "valid"
    ha1 = compute_ha1("alice", "switch", "s3cret", "SHA-256")
    assert verify_response(credentials, "REGISTER", ha1)
