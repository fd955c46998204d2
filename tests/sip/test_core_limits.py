"""Sans-IO: the core's transaction and dialog bounds (503, Retry-After) and its failed-authentication hook."""

from __future__ import annotations

from switch.security.limits import CoreLimits
from switch.sip.core import DEFAULT_METHODS, CoreSettings, SipCore
from switch.sip.events import RequestReceived
from switch.sip.message import Response, make_response, parse_message
from switch.sip.timers import TimerSettings


def _core(**limits: int) -> SipCore:
    methods = DEFAULT_METHODS | {"REGISTER"}
    core = SipCore(CoreSettings(TimerSettings(t1=0.05), "127.0.0.1", 5060, True, allowed_methods=methods))
    core.bounds.limits = CoreLimits(**limits)
    return core


def _request(method: str, call_id: str, *, to_tag: str = "", headers: str = "", cseq: int = 1) -> bytes:
    to = f"<sip:bob@127.0.0.1>;tag={to_tag}" if to_tag else "<sip:bob@127.0.0.1>"
    return (
        f"{method} sip:bob@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{call_id}{method}{cseq};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"To: {to}\r\n"
        "From: <sip:alice@127.0.0.1>;tag=a1\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"{headers}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _events(core: SipCore) -> list[RequestReceived]:
    out = []
    while (event := core.next_event()) is not None:
        if isinstance(event, RequestReceived):
            out.append(event)
    return out


def _sent(core: SipCore) -> list[Response]:
    replies = [parse_message(out.data) for out in core.datagrams_to_send()]
    return [r for r in replies if isinstance(r, Response)]


def _finish(core: SipCore, now: float) -> float:
    while (deadline := core.next_timer()) is not None:
        now = deadline
        core.handle_timer(now)
        _events(core)
    return now


def test_transactions_per_source_bounded_with_503_retry_after() -> None:
    core = _core(max_transactions_per_source=2)
    for n in range(3):
        core.receive(_request("INVITE", f"c{n}"), ("10.0.0.1", 5060), 0.0)
    delivered = _events(core)
    assert [e.request.call_id for e in delivered] == ["c0", "c1"]
    refused = [r for r in _sent(core) if r.status == 503]
    assert [(r.call_id, r.headers.get("Retry-After")) for r in refused] == [("c2", "5")]
    core.receive(_request("INVITE", "other"), ("10.0.0.2", 5060), 0.0)  # another source has room
    core.receive(_request("BYE", "c9", to_tag="x"), ("10.0.0.1", 5060), 0.0)  # BYE is never refused
    assert [e.request.call_id for e in _events(core)] == ["other"]
    assert [(r.call_id, r.status) for r in _sent(core) if r.status >= 200] == [("c9", 481)]
    assert core.counters.refused == 1
    for event in delivered:
        core.respond(event, make_response(event.request, 486), 0.0)
    _finish(core, 0.0)
    assert core.transaction_count == 1 and core.bounds.transactions_per_source == {"10.0.0.2": 1}
    core.receive(_request("INVITE", "again"), ("10.0.0.1", 5060), 100.0)
    assert [e.request.call_id for e in _events(core)] == ["again"]


def test_total_transactions_bounded() -> None:
    core = _core(max_transactions=1)
    core.receive(_request("OPTIONS", "o1"), ("10.0.0.1", 5060), 0.0)  # answered by the core, lives Timer J
    core.receive(_request("OPTIONS", "o2"), ("10.0.0.2", 5060), 0.0)
    assert [(r.call_id, r.status) for r in _sent(core)] == [("o1", 200), ("o2", 503)]


def test_dialogs_per_source_bounded_until_bye_and_trusted_exempt() -> None:
    core = _core(max_dialogs_per_source=1)
    core.bounds.is_trusted = lambda ip: ip == "10.0.0.9"
    core.receive(_request("INVITE", "d1"), ("10.0.0.1", 5060), 0.0)
    (event,) = _events(core)
    core.respond(event, make_response(event.request, 200, to_tag="t1"), 0.0)
    core.receive(_request("ACK", "d1", to_tag="t1"), ("10.0.0.1", 5060), 0.0)
    assert core.bounds.dialogs_per_source == {"10.0.0.1": 1}
    core.receive(_request("INVITE", "d2"), ("10.0.0.1", 5060), 0.1)
    assert _events(core) == [] and [r.status for r in _sent(core) if r.status >= 200][-1] == 503
    core.receive(_request("INVITE", "d3"), ("10.0.0.9", 5060), 0.1)  # trusted
    assert [e.request.call_id for e in _events(core)] == ["d3"]
    core.receive(_request("BYE", "d1", to_tag="t1", cseq=2), ("10.0.0.1", 5060), 0.2)
    (bye,) = _events(core)
    core.respond(bye, make_response(bye.request, 200), 0.2)
    assert core.bounds.dialogs_per_source == {}
    core.receive(_request("INVITE", "d4"), ("10.0.0.1", 5060), 0.3)
    assert [e.request.call_id for e in _events(core)] == ["d4"]


def _challenge(core: SipCore, headers: str, challenge: str, status: int = 401) -> None:
    call_id = f"r{len(headers)}-{len(challenge)}-{status}"
    core.receive(_request("REGISTER", call_id, headers=headers), ("10.0.0.5", 9), 0.0)
    (event,) = _events(core)
    response = make_response(event.request, status)
    response.headers.add("WWW-Authenticate" if status == 401 else "Proxy-Authenticate", challenge)
    core.respond(event, response, 0.0)


def test_failed_authentication_reported_with_the_real_source() -> None:
    core = _core()
    failures: list[tuple[str, float]] = []
    core.on_auth_failure = lambda ip, now: failures.append((ip, now))
    fresh = 'Digest realm="r", nonce="n", algorithm=MD5, qop="auth"'
    _challenge(core, "", fresh)  # no credentials: the first challenge of every client
    assert failures == []
    credentials = 'Authorization: Digest username="100", realm="r", nonce="n", uri="sip:x", response="0"\r\n'
    _challenge(core, credentials, fresh + ", stale=TRUE")  # an expired nonce: not a wrong password
    assert failures == []
    _challenge(core, credentials, fresh)  # Via says 192.0.2.1: the source counts, not the Via
    proxy = credentials.replace("Authorization", "Proxy-Authorization")
    _challenge(core, proxy, fresh, status=407)
    assert failures == [("10.0.0.5", 0.0), ("10.0.0.5", 0.0)]
