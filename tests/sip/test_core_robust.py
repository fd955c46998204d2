"""Whatever bytes arrive, SipCore.receive neither raises nor sends anything but responses."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switch.sip.core import CoreSettings, SipCore
from switch.sip.events import RequestReceived
from switch.sip.message import make_response
from switch.sip.timers import TimerSettings

VALID = (
    b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@127.0.0.1>\r\n"
    b"From: Alice <sip:alice@127.0.0.1>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@127.0.0.1:40000>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n\r\nv=0\n"
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "flip":
            data[pos] = draw(st.integers(0, 255))
        elif action == "insert":
            data[pos:pos] = draw(st.sampled_from([b" ", b"\r\n", b";", b",", b"<", b'"', b"\x00", b"9999"]))
        else:
            del data[pos : pos + draw(st.integers(1, 8))]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), st.sampled_from(["UDP", "TCP"]))
def test_mutated_invites_never_break_the_core(data: bytes, transport: str) -> None:
    core = SipCore(CoreSettings(TimerSettings(), "127.0.0.1", 5060, force_rport=True))
    now = 0.0
    for _ in range(2):  # the message and its retransmission
        core.receive(data, ("127.0.0.1", 40000), now, transport)
        while (event := core.next_event()) is not None:
            if isinstance(event, RequestReceived):
                core.respond(event, make_response(event.request, 200, to_tag="x"), now)
        now += 0.1
    while (deadline := core.next_timer()) is not None:
        core.handle_timer(deadline)
        while core.next_event() is not None:
            pass
    for out in core.datagrams_to_send():
        assert out.data.startswith(b"SIP/2.0 ")
        assert out.destination == ("127.0.0.1", 40000)
    assert core.transaction_count == 0
    assert core.counters.received == 2


def test_request_not_utf8_gets_400_and_never_reaches_the_application() -> None:
    """RFC 3261 §7.3.1: header text is UTF-8.  The parser keeps other octets (as lone surrogates); the core
    answers 400 instead of handing the application strings that the store or a webhook cannot encode."""
    core = SipCore(CoreSettings(TimerSettings(), "127.0.0.1", 5060, force_rport=True))
    bad = VALID.replace(b"From: Alice", b'From: "Al\xffice"')
    core.receive(bad, ("127.0.0.1", 40000), 0.0)
    assert core.next_event() is None
    (out,) = core.datagrams_to_send()
    assert out.data.startswith(b"SIP/2.0 400 Bad Request (not UTF-8)\r\n")
    assert b'From: "Al\xffice"' in out.data  # echoed as received
    good = VALID.replace(b"From: Alice", 'From: "Zoë"'.encode()).replace(b"a84b4c76e66710", b"other-call")
    core.receive(good.replace(b"z9hG4bK776asdhds", b"z9hG4bK776other"), ("127.0.0.1", 40000), 0.0)
    event = core.next_event()
    assert isinstance(event, RequestReceived) and event.request.from_.display_name == "Zoë"
