"""SipCore as a UAC, and two cores joined by a fake link making a whole call (no sockets, no sleeping)."""

from __future__ import annotations

from switch.sip.core import CoreSettings, Outgoing, SipCore
from switch.sip.events import (
    AckReceived,
    Event,
    RequestReceived,
    ResponseReceived,
    TransactionTimeout,
)
from switch.sip.headers import Headers
from switch.sip.message import Request, make_response, parse_message, serialize
from switch.sip.timers import TimerSettings
from switch.sip.uri import parse_uri

T = TimerSettings()
A = ("127.0.0.1", 5070)
B = ("127.0.0.2", 5080)


def new_request(method: str, call_id: str = "c-1", cseq: int = 1) -> Request:
    headers = Headers(
        [
            ("From", "<sip:alice@127.0.0.1>;tag=alice"),
            ("To", "<sip:bob@127.0.0.2>"),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} {method}"),
            ("Contact", "<sip:alice@127.0.0.1:5070>"),
        ]
    )
    return Request(method, parse_uri("sip:bob@127.0.0.2:5080"), headers)


def events(c: SipCore) -> list[Event]:
    out = []
    while (e := c.next_event()) is not None:
        out.append(e)
    return out


def methods(out: list[Outgoing]) -> list[str]:
    return [m.method if isinstance(m := parse_message(o.data), Request) else str(m.status) for o in out]


def test_options_retransmits_and_times_out_with_f() -> None:
    c = SipCore(CoreSettings(T, "127.0.0.1", 5070))
    tx = c.send_request(new_request("OPTIONS"), B, 10.0)
    (first,) = c.datagrams_to_send()
    assert first.destination == B and first.transport == "UDP"
    msg = parse_message(first.data)
    assert isinstance(msg, Request)
    top = msg.vias[0]
    assert (top.host, top.port, top.rport_requested) == ("127.0.0.1", 5070, True)
    assert top.branch is not None and top.branch.startswith("z9hG4bK") and len(top.branch) > 7
    assert msg.max_forwards == 70 and msg.headers.get("User-Agent") == "switch"
    times: list[float] = []
    while (deadline := c.next_timer()) is not None:
        c.handle_timer(deadline)
        times.extend(deadline for _ in c.datagrams_to_send())
    assert times[:5] == [10.5, 11.5, 13.5, 17.5, 21.5]
    assert events(c) == [TransactionTimeout(tx)]


def test_invite_times_out_with_b_and_reliable_has_no_retransmissions() -> None:
    c = SipCore(CoreSettings(T, "127.0.0.1", 5070))
    conn = object()
    tx = c.send_request(new_request("INVITE"), B, 0.0, "TCP", conn)
    (out,) = c.datagrams_to_send()
    assert out.connection is conn and b"SIP/2.0/TCP 127.0.0.1:5070" in out.data
    assert c.next_timer() == 32.0
    c.handle_timer(32.0)
    assert c.datagrams_to_send() == []
    assert events(c) == [TransactionTimeout(tx)]


def test_non_2xx_is_acked_by_the_transaction_and_retransmission_absorbed() -> None:
    c = SipCore(CoreSettings(T, "127.0.0.1", 5070))
    tx = c.send_request(new_request("INVITE"), B, 0.0)
    (inv,) = c.datagrams_to_send()
    req = parse_message(inv.data)
    assert isinstance(req, Request)
    busy = make_response(req, 486, to_tag="bob")
    c.receive(serialize(busy), B, 0.1)
    (ack,) = c.datagrams_to_send()
    ack_msg = parse_message(ack.data)
    assert isinstance(ack_msg, Request) and ack_msg.method == "ACK"
    assert ack_msg.vias[0].branch == req.vias[0].branch and ack_msg.cseq.seq == 1
    assert ack_msg.to.tag == "bob"
    (ev,) = events(c)
    assert isinstance(ev, ResponseReceived) and ev.transaction_id == tx and ev.response.status == 486
    c.receive(serialize(busy), B, 0.2)
    assert [o.data for o in c.datagrams_to_send()] == [ack.data]
    assert events(c) == []


def test_cancel_sends_cancel_with_the_invite_branch() -> None:
    c = SipCore(CoreSettings(T, "127.0.0.1", 5070))
    tx = c.send_request(new_request("INVITE"), B, 0.0)
    (inv,) = c.datagrams_to_send()
    cancel_id = c.cancel(tx, 1.0)
    assert cancel_id is not None
    (cancel,) = c.datagrams_to_send()
    i, k = parse_message(inv.data), parse_message(cancel.data)
    assert isinstance(i, Request) and isinstance(k, Request) and k.method == "CANCEL"
    assert k.vias[0].branch == i.vias[0].branch and (k.cseq.seq, k.cseq.method) == (1, "CANCEL")
    assert str(k.uri) == str(i.uri) and k.call_id == i.call_id
    assert c.cancel("nope", 1.0) is None


def pump(a: SipCore, b: SipCore, now: float) -> None:
    """Deliver everything in flight between the two cores until both are quiet."""
    while True:
        moved = False
        for src, dst, addr in ((a, b, A), (b, a, B)):
            for out in src.datagrams_to_send():
                dst.receive(out.data, addr, now)
                moved = True
        if not moved:
            return


def test_two_cores_make_a_call() -> None:
    uac = SipCore(CoreSettings(T, "127.0.0.1", 5070))
    uas = SipCore(CoreSettings(T, "127.0.0.2", 5080))
    tx = uac.send_request(new_request("INVITE"), B, 0.0)
    pump(uac, uas, 0.0)
    (incoming,) = events(uas)
    assert isinstance(incoming, RequestReceived) and incoming.request.method == "INVITE"
    trying = events(uac)
    assert [e.response.status for e in trying if isinstance(e, ResponseReceived)] == [100]
    ok = make_response(incoming.request, 200, to_tag="bob")
    ok.headers.add("Contact", "<sip:bob@127.0.0.2:5080>")
    assert uas.respond(incoming, ok, 0.5)
    pump(uac, uas, 0.5)
    (answered,) = events(uac)
    assert isinstance(answered, ResponseReceived) and answered.transaction_id == tx
    assert answered.response.status == 200 and answered.dialog_id == "c-1;alice;bob"
    uac.send_in_dialog("c-1;alice;bob", "ACK", 0.6)
    pump(uac, uas, 0.6)
    (acked,) = events(uas)
    assert isinstance(acked, AckReceived) and acked.dialog_id == "c-1;bob;alice"
    # the 2xx is no longer retransmitted, and a late 2xx retransmission would be re-ACKed by the UAC
    deadline = uas.next_timer()
    assert deadline is not None and deadline == 32.5  # only timer L remains
    bye_id = uas.send_in_dialog("c-1;bob;alice", "BYE", 1.0)
    pump(uac, uas, 1.0)
    (bye,) = events(uac)
    assert isinstance(bye, RequestReceived) and bye.dialog_id == "c-1;alice;bob"
    assert bye.request.cseq.seq == 1 and bye.request.method == "BYE"
    assert str(bye.request.uri) == "sip:alice@127.0.0.1:5070"
    assert uac.respond(bye, make_response(bye.request, 200), 1.1)
    pump(uac, uas, 1.1)
    (done,) = events(uas)
    assert isinstance(done, ResponseReceived) and done.transaction_id == bye_id
    assert done.response.status == 200
    assert uac.dialogs == {} and uas.dialogs == {}
    for c in (uac, uas):
        while (d := c.next_timer()) is not None:
            c.handle_timer(d)
            pump(uac, uas, d)
        assert c.transaction_count == 0 and events(c) == []
    assert uac.counters.dropped == uas.counters.dropped == 0


def test_retransmitted_2xx_is_reacked_once_acked() -> None:
    uac = SipCore(CoreSettings(T, "127.0.0.1", 5070))
    uac.send_request(new_request("INVITE"), B, 0.0)
    (inv,) = uac.datagrams_to_send()
    req = parse_message(inv.data)
    assert isinstance(req, Request)
    ok = make_response(req, 200, to_tag="bob")
    uac.receive(serialize(ok), B, 0.1)
    (ev,) = events(uac)
    assert isinstance(ev, ResponseReceived) and ev.dialog_id is not None
    uac.receive(serialize(ok), B, 0.2)
    assert uac.datagrams_to_send() == [] and events(uac) == []  # not yet ACKed: absorbed
    uac.send_in_dialog(ev.dialog_id, "ACK", 0.3)
    (ack,) = uac.datagrams_to_send()
    assert methods([ack]) == ["ACK"]
    uac.receive(serialize(ok), B, 0.4)
    assert [o.data for o in uac.datagrams_to_send()] == [ack.data]
