"""The registrar: digest challenges (SHA-256 + MD5, stale nonces, replays), bindings, expiry, un-register."""

from __future__ import annotations

from switch.calls.registrar import Authenticator, Registrar
from switch.dialplan import parse_dialplan
from switch.sip.auth import NonceManager, build_authorization, compute_ha1, parse_digest_challenge
from switch.sip.message import Request, Response, parse_message

SECRET = b"0123456789abcdef0123456789abcdef"
PLAN = parse_dialplan(
    {
        "users": {
            "alice": {"password": "wonderland"},
            "carol": {"ha1_md5": compute_ha1("carol", "switch", "pw", "MD5")},
        }
    }
)
SOURCE = ("127.0.0.1", 40000)


def make_registrar(lifetime: float = 30.0) -> Registrar:
    return Registrar(Authenticator(PLAN.users, PLAN.realm, NonceManager(SECRET, lifetime)))


def register(
    user: str,
    contacts: list[str],
    *,
    cseq: int = 1,
    call_id: str = "reg-1",
    expires: int | None = None,
    authorization: str | None = None,
) -> Request:
    lines = [
        "REGISTER sip:127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK{cseq}x{call_id}",
        f"From: <sip:{user}@127.0.0.1>;tag=abc",
        f"To: <sip:{user}@127.0.0.1>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        "Max-Forwards: 70",
    ]
    lines += [f"Contact: {c}" for c in contacts]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    lines.append("Content-Length: 0")
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def algorithms(response: Response) -> list[str]:
    return [parse_digest_challenge(v).algorithm for v in response.headers.get_all("WWW-Authenticate")]


def answer(response: Response, user: str, password: str, algorithm: str = "SHA-256", nc: int = 1) -> str:
    for value in response.headers.get_all("WWW-Authenticate"):
        challenge = parse_digest_challenge(value)
        if challenge.algorithm == algorithm:
            return build_authorization(challenge, user, password, "REGISTER", "sip:127.0.0.1", "cn0nce", nc)
    raise AssertionError(f"no {algorithm} challenge in {response.headers.get_all('WWW-Authenticate')}")


def authed_register(
    registrar: Registrar, user: str, password: str, contacts: list[str], now: float, **kw: object
) -> Response:
    cseq = int(kw.pop("cseq", 1))  # type: ignore[call-overload]
    first = registrar.handle_register(register(user, contacts, cseq=cseq, **kw), SOURCE, "UDP", None, now)  # type: ignore[arg-type]
    assert first.status == 401
    auth = answer(first, user, password)
    request = register(user, contacts, cseq=cseq + 1, authorization=auth, **kw)  # type: ignore[arg-type]
    return registrar.handle_register(request, SOURCE, "UDP", None, now)


def test_an_address_of_record_that_is_not_sip_gets_400_without_a_challenge() -> None:
    """RFC 4475 §3.3.4 (unksm2): To isbn:..., the registrar answers 400 rather than asking who you are."""
    request = register("alice", [])
    request.headers.set("To", "isbn:2983792873")
    response = make_registrar().handle_register(request, SOURCE, "UDP", None, 1.0)
    assert response.status == 400
    assert "WWW-Authenticate" not in response.headers


def test_challenge_offers_sha256_then_md5_with_qop_auth() -> None:
    response = make_registrar().handle_register(
        register("alice", ["<sip:alice@127.0.0.1:40000>"]), SOURCE, "UDP", None, 100.0
    )
    assert response.status == 401
    challenges = [parse_digest_challenge(v) for v in response.headers.get_all("WWW-Authenticate")]
    assert [c.algorithm for c in challenges] == ["SHA-256", "MD5"]
    assert {c.realm for c in challenges} == {"switch"}
    assert all(c.qop == "auth" and not c.stale for c in challenges)


def test_unknown_user_gets_the_same_challenge_as_a_known_one() -> None:
    registrar = make_registrar()
    known = registrar.handle_register(register("alice", []), SOURCE, "UDP", None, 1.0)
    unknown = registrar.handle_register(register("mallory", []), SOURCE, "UDP", None, 1.0)
    assert known.status == unknown.status == 401
    assert algorithms(known) == algorithms(unknown) == ["SHA-256", "MD5"]
    auth = answer(unknown, "mallory", "guess")
    again = registrar.handle_register(
        register("mallory", [], cseq=2, authorization=auth), SOURCE, "UDP", None, 1.0
    )
    assert again.status == 401


def test_dialplan_algorithms_limit_the_challenges() -> None:
    plan = parse_dialplan({"algorithms": ["MD5"], "users": {"alice": {"password": "wonderland"}}})
    registrar = Registrar(
        Authenticator(plan.users, plan.realm, NonceManager(SECRET, 30), algorithms=plan.algorithms)
    )
    for user in ("alice", "nobody"):
        response = registrar.handle_register(register(user, []), SOURCE, "UDP", None, 1.0)
        assert algorithms(response) == ["MD5"]


def test_ha1_only_user_is_challenged_with_md5_only() -> None:
    response = make_registrar().handle_register(register("carol", []), SOURCE, "UDP", None, 1.0)
    assert [parse_digest_challenge(v).algorithm for v in response.headers.get_all("WWW-Authenticate")] == [
        "MD5"
    ]
    auth = answer(response, "carol", "pw", "MD5")
    ok = make_registrar().handle_register(
        register("carol", ["<sip:carol@127.0.0.1:5>"], cseq=2, authorization=auth), SOURCE, "UDP", None, 1.0
    )
    assert ok.status == 200


def test_md5_and_sha256_answers_both_register() -> None:
    for algorithm in ("SHA-256", "MD5"):
        registrar = make_registrar()
        first = registrar.handle_register(
            register("alice", ["<sip:alice@127.0.0.1:40000>"]), SOURCE, "UDP", None, 5.0
        )
        auth = answer(first, "alice", "wonderland", algorithm)
        ok = registrar.handle_register(
            register("alice", ["<sip:alice@127.0.0.1:40000>"], cseq=2, authorization=auth),
            SOURCE,
            "TCP",
            "conn",
            5.0,
        )
        assert ok.status == 200, algorithm
        assert ok.headers.get_all("Contact") == ["<sip:alice@127.0.0.1:40000>;expires=3600"]
        [binding] = registrar.contacts("alice", 6.0)
        assert (binding.source, binding.transport, binding.connection) == (SOURCE, "TCP", "conn")


def test_wrong_password_is_rejected_without_stale() -> None:
    registrar = make_registrar()
    first = registrar.handle_register(register("alice", ["<sip:a@127.0.0.1>"]), SOURCE, "UDP", None, 5.0)
    auth = answer(first, "alice", "wrong")
    again = registrar.handle_register(
        register("alice", ["<sip:a@127.0.0.1>"], cseq=2, authorization=auth), SOURCE, "UDP", None, 5.0
    )
    assert again.status == 401
    assert not any(parse_digest_challenge(v).stale for v in again.headers.get_all("WWW-Authenticate"))
    assert registrar.contacts("alice", 5.0) == []


def test_expired_nonce_gets_stale_true_and_a_fresh_nonce_works() -> None:
    registrar = make_registrar(lifetime=30.0)
    first = registrar.handle_register(register("alice", ["<sip:a@127.0.0.1>"]), SOURCE, "UDP", None, 0.0)
    auth = answer(first, "alice", "wonderland")
    late = registrar.handle_register(
        register("alice", ["<sip:a@127.0.0.1>"], cseq=2, authorization=auth), SOURCE, "UDP", None, 31.0
    )
    assert late.status == 401
    stale = [parse_digest_challenge(v) for v in late.headers.get_all("WWW-Authenticate")]
    assert all(c.stale for c in stale)
    auth2 = answer(late, "alice", "wonderland")
    ok = registrar.handle_register(
        register("alice", ["<sip:a@127.0.0.1>"], cseq=3, authorization=auth2), SOURCE, "UDP", None, 32.0
    )
    assert ok.status == 200


def test_replayed_nonce_count_is_refused() -> None:
    registrar = make_registrar()
    first = registrar.handle_register(register("alice", ["<sip:a@127.0.0.1>"]), SOURCE, "UDP", None, 0.0)
    auth = answer(first, "alice", "wonderland")
    request = register("alice", ["<sip:a@127.0.0.1>"], cseq=2, authorization=auth)
    assert registrar.handle_register(request, SOURCE, "UDP", None, 1.0).status == 200
    replay = register("alice", ["<sip:a@127.0.0.1>"], cseq=3, authorization=auth)
    assert registrar.handle_register(replay, SOURCE, "UDP", None, 1.0).status == 401
    auth_nc2 = answer(first, "alice", "wonderland", nc=2)
    assert (
        registrar.handle_register(
            register("alice", [], cseq=4, authorization=auth_nc2), SOURCE, "UDP", None, 1.0
        ).status
        == 200
    )


def test_several_contacts_expiry_and_unregister() -> None:
    registrar = make_registrar(lifetime=1000)
    ok = authed_register(registrar, "alice", "wonderland", ["<sip:alice@127.0.0.1:1000>;expires=60"], 0.0)
    assert ok.status == 200
    ok = authed_register(
        registrar,
        "alice",
        "wonderland",
        ["<sip:alice@127.0.0.1:2000>", "<sip:alice@127.0.0.1:3000>"],
        10.0,
        call_id="reg-2",
        expires=120,
    )
    assert ok.status == 200
    assert len(ok.headers.get_all("Contact")) == 3
    assert {b.contact for b in registrar.contacts("alice", 20.0)} == {
        "sip:alice@127.0.0.1:1000",
        "sip:alice@127.0.0.1:2000",
        "sip:alice@127.0.0.1:3000",
    }
    # The first contact expires at 60 s.
    assert {b.contact for b in registrar.contacts("alice", 61.0)} == {
        "sip:alice@127.0.0.1:2000",
        "sip:alice@127.0.0.1:3000",
    }
    ok = authed_register(
        registrar,
        "alice",
        "wonderland",
        ["<sip:alice@127.0.0.1:2000>"],
        62.0,
        call_id="reg-2",
        cseq=5,
        expires=0,
    )
    assert ok.status == 200
    assert [b.contact for b in registrar.contacts("alice", 62.0)] == ["sip:alice@127.0.0.1:3000"]
    ok = authed_register(registrar, "alice", "wonderland", ["*"], 63.0, call_id="reg-3", expires=0)
    assert ok.status == 200 and ok.headers.get_all("Contact") == []
    assert registrar.contacts("alice", 63.0) == []


def test_too_brief_interval_gets_423_with_min_expires() -> None:
    registrar = make_registrar()
    response = authed_register(registrar, "alice", "wonderland", ["<sip:alice@127.0.0.1:1>"], 0.0, expires=10)
    assert response.status == 423 and response.headers.get("Min-Expires") == "60"


def test_registering_someone_else_is_forbidden() -> None:
    registrar = make_registrar()
    first = registrar.handle_register(register("carol", ["<sip:c@127.0.0.1>"]), SOURCE, "UDP", None, 0.0)
    assert first.status == 401
    # alice's valid credentials on a REGISTER for carol's address of record
    auth = answer(
        registrar.handle_register(register("alice", []), SOURCE, "UDP", None, 0.0), "alice", "wonderland"
    )
    response = registrar.handle_register(
        register("carol", ["<sip:c@127.0.0.1>"], cseq=2, authorization=auth), SOURCE, "UDP", None, 0.0
    )
    assert response.status == 403
