"""SipCore as a UAS: automatic answers, transactions, the 2xx/ACK dance, CANCEL, routing (no sleeping)."""

from __future__ import annotations

from switch.sip.core import CoreSettings, Outgoing, SipCore
from switch.sip.events import AckReceived, AckTimeout, CancelReceived, Event, RequestReceived
from switch.sip.message import Response, make_response, parse_message
from switch.sip.timers import TimerSettings

T = TimerSettings()
SRC = ("127.0.0.1", 40000)


def request(
    method: str = "INVITE",
    *,
    branch: str = "z9hG4bKone",
    cseq: str | None = None,
    to_tag: str | None = None,
    from_tag: str = "ft",
    call_id: str = "call-1",
    via_host: str = "127.0.0.1:40000",
    via_params: str = "",
    extra: str = "",
    uri: str = "sip:bob@127.0.0.1:5060",
) -> bytes:
    to = "<sip:bob@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    return (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {via_host};branch={branch}{via_params}\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:alice@127.0.0.1>;tag={from_tag}\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq or '1 ' + method}\r\n"
        f"Contact: <sip:alice@127.0.0.1:40000>\r\n"
        f"{extra}"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def core(**kw: object) -> SipCore:
    return SipCore(CoreSettings(T, "127.0.0.1", 5060, **kw))  # type: ignore[arg-type]


def sent(c: SipCore) -> list[Response]:
    out = []
    for item in c.datagrams_to_send():
        msg = parse_message(item.data)
        assert isinstance(msg, Response)
        out.append(msg)
    return out


def codes(c: SipCore) -> list[int]:
    return [r.status for r in sent(c)]


def events(c: SipCore) -> list[Event]:
    out = []
    while (e := c.next_event()) is not None:
        out.append(e)
    return out


def fire_until(c: SipCore, end: float) -> list[tuple[float, Outgoing]]:
    log: list[tuple[float, Outgoing]] = []
    while (deadline := c.next_timer()) is not None and deadline <= end:
        c.handle_timer(deadline)
        log.extend((deadline, o) for o in c.datagrams_to_send())
    return log


def invite_answered(c: SipCore, status: int = 200) -> RequestReceived:
    c.receive(request(), SRC, 0.0)
    assert codes(c) == [100]
    (ev,) = events(c)
    assert isinstance(ev, RequestReceived) and ev.dialog_id is None and ev.request.method == "INVITE"
    assert c.respond(ev, make_response(ev.request, status, to_tag="uas"), 1.0)
    assert codes(c) == [status]
    return ev


def test_invite_2xx_is_retransmitted_until_ack_then_ack_event() -> None:
    c = core()
    invite_answered(c)
    (did,) = c.dialogs
    assert did == "call-1;uas;ft"
    assert c.dialog_id_of("s1") == did and c.dialog_id_of("nope") is None
    log = fire_until(c, 4.6)
    assert [t for t, _ in log] == [1.5, 2.5, 4.5]
    assert all(parse_message(o.data).status == 200 for _, o in log)  # type: ignore[union-attr]
    c.receive(request("ACK", branch="z9hG4bKack", to_tag="uas"), SRC, 5.0)
    (ack,) = events(c)
    assert isinstance(ack, AckReceived) and ack.dialog_id == did
    assert fire_until(c, 40.0) == []  # no more 2xx; timer L ends the transaction quietly
    assert events(c) == [] and c.transaction_count == 0
    c.receive(request("ACK", branch="z9hG4bKack", to_tag="uas"), SRC, 41.0)  # ACK retransmission
    assert events(c) == [] and c.datagrams_to_send() == []


def test_unacknowledged_2xx_ends_in_ack_timeout() -> None:
    c = core()
    invite_answered(c)
    log = fire_until(c, 100.0)
    assert len(log) == 10 and log[-1][0] == 32.5  # 1.5 2.5 4.5 8.5 ... every T2
    assert events(c) == [AckTimeout("call-1;uas;ft")]


def test_bye_sent_before_the_ack_still_lets_the_ack_stop_the_2xx() -> None:
    """An application that hangs up at once sends BYE before the caller's ACK arrives: that ACK must still
    end the 2xx retransmissions (it used to be dropped with the dialog, so the 200 went on until timer H)."""
    c = core()
    invite_answered(c)
    (did,) = c.dialogs
    c.send_in_dialog(did, "BYE", 1.1)
    (bye,) = c.datagrams_to_send()
    assert bye.data.startswith(b"BYE ")
    assert c.dialogs == {}
    c.receive(request("ACK", branch="z9hG4bKack", to_tag="uas"), SRC, 1.2)
    assert events(c) == []  # absorbed: no AckReceived for an ended dialog
    resent = [o for _, o in fire_until(c, 40.0) if o.data.startswith(b"SIP/2.0 200")]
    assert resent == [], "the 2xx went on being retransmitted after its ACK"
    assert not [e for e in events(c) if isinstance(e, AckTimeout)]  # the unanswered BYE may time out


def test_unacknowledged_2xx_after_bye_times_out_quietly() -> None:
    c = core()
    invite_answered(c)
    (did,) = c.dialogs
    c.send_in_dialog(did, "BYE", 1.1)
    c.datagrams_to_send()
    fire_until(c, 100.0)
    events(c)  # the BYE's own transaction may time out: that is the application's business
    assert not [e for e in events(c) if isinstance(e, AckTimeout)]
    assert c.transaction_count == 0


def test_invite_retransmission_gets_the_last_response() -> None:
    c = core()
    c.receive(request(), SRC, 0.0)
    assert codes(c) == [100]
    (ev,) = events(c)
    assert isinstance(ev, RequestReceived)
    c.receive(request(), SRC, 0.2)
    assert codes(c) == [100] and events(c) == []
    assert c.respond(ev, make_response(ev.request, 486), 0.3)
    (busy,) = sent(c)
    assert busy.status == 486 and busy.to.tag  # the core added a To tag
    c.receive(request(), SRC, 0.4)
    assert codes(c) == [486]
    assert c.counters.absorbed == 2


def test_non_2xx_final_retransmitted_until_ack_absorbed() -> None:
    c = core()
    invite_answered(c, 480)
    assert [t for t, _ in fire_until(c, 2.6)] == [1.5, 2.5]
    c.receive(request("ACK", to_tag="uas"), SRC, 3.0)  # same branch: matches the transaction
    assert events(c) == [] and fire_until(c, 7.9) == []
    assert c.transaction_count == 1
    fire_until(c, 8.0)  # timer I = T4 after the ACK
    assert c.transaction_count == 0


def test_non_2xx_without_ack_times_out_with_h() -> None:
    c = core()
    ev = invite_answered(c, 603)
    fire_until(c, 33.0)
    assert [type(e).__name__ for e in events(c)] == ["TransactionTimeout"]
    assert c.transaction_count == 0
    assert ev.transaction_id.startswith("s")


def test_cancel_answers_200_and_487_and_app_can_no_longer_answer() -> None:
    c = core()
    c.receive(request(), SRC, 0.0)
    codes(c)
    (inv,) = events(c)
    assert isinstance(inv, RequestReceived)
    c.receive(request("CANCEL"), SRC, 0.5)
    responses = sent(c)
    assert [(r.status, r.cseq.method) for r in responses] == [(200, "CANCEL"), (487, "INVITE")]
    assert responses[0].to.tag == responses[1].to.tag is not None
    (cancel,) = events(c)
    assert isinstance(cancel, CancelReceived)
    assert cancel.invite_transaction_id == inv.transaction_id and cancel.answered_487
    assert not c.respond(inv, make_response(inv.request, 200, to_tag="late"), 0.6)
    assert c.datagrams_to_send() == [] and c.dialogs == {}
    c.receive(request("ACK", to_tag=responses[1].to.tag), SRC, 0.7)
    assert events(c) == [] and c.datagrams_to_send() == []


def test_cancel_after_final_gets_200_only_and_unknown_cancel_481() -> None:
    c = core()
    invite_answered(c, 486)
    c.receive(request("CANCEL"), SRC, 2.0)
    assert codes(c) == [200]
    (cancel,) = events(c)
    assert isinstance(cancel, CancelReceived) and not cancel.answered_487
    c.receive(request("CANCEL", branch="z9hG4bKnothing"), SRC, 2.0)
    assert codes(c) == [481]


def test_in_dialog_request_for_unknown_dialog_is_481_and_stray_ack_absorbed() -> None:
    c = core()
    c.receive(request("BYE", to_tag="nope"), SRC, 0.0)
    assert codes(c) == [481]
    c.receive(request("ACK", branch="z9hG4bKa2", to_tag="nope"), SRC, 0.0)
    assert c.datagrams_to_send() == [] and events(c) == []
    assert c.counters.answered == 1


def test_merged_request_is_482() -> None:
    c = core()
    c.receive(request(), SRC, 0.0)
    assert codes(c) == [100]
    c.receive(request(branch="z9hG4bKforked"), SRC, 0.1)  # same From tag, Call-ID, CSeq; new branch
    assert codes(c) == [482]
    assert len(events(c)) == 1


def test_bye_in_dialog_absorbs_retransmission_and_ends_dialog() -> None:
    c = core()
    invite_answered(c)
    c.receive(request("ACK", branch="z9hG4bKack", to_tag="uas"), SRC, 1.1)
    events(c)
    bye = request("BYE", branch="z9hG4bKbye", to_tag="uas", cseq="2 BYE")
    c.receive(bye, SRC, 2.0)
    (ev,) = events(c)
    assert isinstance(ev, RequestReceived) and ev.dialog_id == "call-1;uas;ft"
    c.receive(bye, SRC, 2.1)
    assert c.datagrams_to_send() == [] and events(c) == []  # Trying: absorbed silently
    assert c.respond(ev, make_response(ev.request, 200), 2.2)
    assert codes(c) == [200]
    c.receive(bye, SRC, 2.3)
    assert codes(c) == [200]  # Completed: the 200 is resent
    assert c.dialogs == {}


def test_lower_cseq_in_dialog_is_500() -> None:
    c = core(allowed_methods=frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO"}))
    invite_answered(c)
    c.receive(request("INFO", branch="z9hG4bKi1", to_tag="uas", cseq="5 INFO"), SRC, 2.0)
    events(c)
    c.receive(request("INFO", branch="z9hG4bKi2", to_tag="uas", cseq="4 INFO"), SRC, 2.1)
    assert codes(c) == [500]


def test_options_register_and_malformed() -> None:
    c = core()
    c.receive(request("OPTIONS"), SRC, 0.0)
    (ok,) = sent(c)
    assert ok.status == 200 and "INVITE" in (ok.headers.get("Allow") or "")
    c.receive(request("REGISTER", branch="z9hG4bKr"), SRC, 0.0)
    (reg,) = sent(c)
    assert reg.status == 405 and "REGISTER" not in (reg.headers.get("Allow") or "x")
    c.receive(request("BYE", branch="z9hG4bKm", cseq="x BYE"), SRC, 0.0)
    (bad,) = c.datagrams_to_send()
    assert bad.data.startswith(b"SIP/2.0 400 ") and b"CSeq: x BYE\r\n" in bad.data
    c.receive(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKzz\r\n\r\n", SRC, 0.0)
    c.receive(b"\x00garbage", SRC, 0.0)
    assert c.datagrams_to_send() == []
    assert c.counters.dropped == 2 and c.counters.answered == 3 and c.counters.received == 5


def test_response_routing_received_rport_and_tcp() -> None:
    c = core()
    c.receive(request("OPTIONS", via_host="192.0.2.1:5070"), ("127.0.0.5", 6000), 0.0)
    (out,) = c.datagrams_to_send()
    assert out.destination == ("127.0.0.5", 5070)  # §18.2.2: received address, sent-by port
    assert b"Via: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKone;received=127.0.0.5\r\n" in out.data
    c.receive(request("OPTIONS", branch="z9hG4bK2", via_params=";rport"), ("127.0.0.5", 6000), 0.0)
    (out,) = c.datagrams_to_send()
    assert out.destination == ("127.0.0.5", 6000)
    assert b";rport=6000;received=127.0.0.5" in out.data
    conn = object()
    c.receive(request("OPTIONS", branch="z9hG4bK3"), ("127.0.0.5", 6001), 0.0, "TCP", conn)
    (out,) = c.datagrams_to_send()
    assert (out.destination, out.transport, out.connection) == (("127.0.0.5", 6001), "TCP", conn)
    forced = core(force_rport=True)
    forced.receive(request("OPTIONS", via_host="192.0.2.1:5070"), ("127.0.0.5", 6000), 0.0)
    (out,) = forced.datagrams_to_send()
    assert out.destination == ("127.0.0.5", 6000)


def test_rfc2543_request_without_branch_matches_its_retransmission_and_ack() -> None:
    c = core()
    old = request(branch="", from_tag="")
    old = old.replace(b";branch=", b"").replace(b";tag=\r\n", b"\r\n")
    c.receive(old, SRC, 0.0)
    assert codes(c) == [100]
    (ev,) = events(c)
    assert isinstance(ev, RequestReceived)
    c.receive(old, SRC, 0.1)
    assert codes(c) == [100]
    c.respond(ev, make_response(ev.request, 486, to_tag="t"), 0.2)
    assert codes(c) == [486]
    ack = old.replace(b"INVITE sip", b"ACK sip").replace(b"1 INVITE", b"1 ACK")
    ack = ack.replace(b"To: <sip:bob@127.0.0.1>", b"To: <sip:bob@127.0.0.1>;tag=t")
    c.receive(ack, SRC, 0.3)
    assert fire_until(c, 10.0) == []  # the ACK stopped timer G


def test_reinvite_in_dialog_is_acknowledged_through_the_dialog() -> None:
    c = core()
    invite_answered(c)
    c.receive(request("ACK", branch="z9hG4bKack", to_tag="uas"), SRC, 1.1)
    events(c)
    c.receive(request(branch="z9hG4bKre", to_tag="uas", cseq="2 INVITE"), SRC, 2.0)
    assert codes(c) == [100]
    (re,) = events(c)
    assert isinstance(re, RequestReceived) and re.dialog_id == "call-1;uas;ft"
    assert c.respond(re, make_response(re.request, 200), 2.1)
    (ok,) = sent(c)
    assert ok.status == 200 and ok.to.tag == "uas" and ok.cseq.seq == 2
    c.receive(request("ACK", branch="z9hG4bKack1", to_tag="uas", cseq="1 ACK"), SRC, 2.2)
    assert events(c) == []  # an ACK for the old INVITE does not acknowledge the re-INVITE
    assert [t for t, _ in fire_until(c, 2.7)] == [2.6]
    c.receive(request("ACK", branch="z9hG4bKack2", to_tag="uas", cseq="2 ACK"), SRC, 2.8)
    (ack,) = events(c)
    assert isinstance(ack, AckReceived) and ack.request.cseq.seq == 2
    assert fire_until(c, 30.0) == []


# -- 100 Trying left out when the application answers in time (RFC 3261 §17.2.1, CoreSettings.trying_delay)


def test_a_provisional_response_within_the_trying_delay_replaces_100_trying() -> None:
    c = core(trying_delay=0.1)
    c.receive(request(), SRC, 0.0)
    assert codes(c) == [] and c.next_timer() == 0.1
    (ev,) = events(c)
    assert isinstance(ev, RequestReceived)
    assert c.respond(ev, make_response(ev.request, 180, to_tag="uas"), 0.02)
    assert codes(c) == [180]
    # The deferred 100 is dropped: the Trying deadline is no timer any more, and firing it sends nothing.
    assert c.next_timer() != 0.1
    c.handle_timer(0.1)
    assert codes(c) == []
    assert c.respond(ev, make_response(ev.request, 200, to_tag="uas"), 0.2)
    assert codes(c) == [200]


def test_an_invite_left_unanswered_gets_100_trying_at_the_delay_and_retransmissions_get_it_again() -> None:
    c = core(trying_delay=0.1)
    c.receive(request(), SRC, 0.0)
    assert codes(c) == []
    (ev,) = events(c)
    assert isinstance(ev, RequestReceived)
    log = fire_until(c, 0.15)
    assert [(when, parse_message(o.data).status) for when, o in log] == [(0.1, 100)]  # type: ignore[union-attr]
    c.receive(request(), SRC, 0.5)  # the INVITE retransmitted: the transaction repeats its provisional
    assert codes(c) == [100] and events(c) == []
    assert c.respond(ev, make_response(ev.request, 486, to_tag="uas"), 0.6)
    assert codes(c) == [486]


def test_a_cancel_before_the_trying_delay_gets_200_and_487_and_no_late_100() -> None:
    c = core(trying_delay=0.1)
    c.receive(request(), SRC, 0.0)
    events(c)
    c.receive(request("CANCEL", cseq="1 CANCEL"), SRC, 0.01)
    assert sorted(codes(c)) == [200, 487]
    assert [e.__class__ for e in events(c)] == [CancelReceived]
    assert [o for _, o in fire_until(c, 0.2)] == []
