"""Call control of a late offer (an INVITE without SDP), sans-IO: the CallManager between a fake SIP side
and a fake media engine that record what they are asked to do.

RFC 3261 §13.2.1 and RFC 3264 §4: the switch offers in its 200, the ACK carries the answer, the media
channel is configured from it; an ACK without a usable answer, or no ACK at all, ends the call with BYE.
The end-to-end version (SIPp, a real switch, RTP) is tests/e2e/test_late_offer.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, cast

import pytest

import switch.calls.call
from switch.calls.call import Call, InboundCall
from switch.calls.manager import CallManager
from switch.media.control import MediaControl
from switch.media.tts import TextToSpeech
from switch.sip.events import AckReceived, AckTimeout, RequestReceived, ResponseReceived
from switch.sip.message import Request, Response, parse_message
from switch.sip.sdp import parse_sdp

DIALOG = "dialog-1"
SOURCE = ("127.0.0.9", 5070)
ANSWER_PCMA = (
    b"v=0\r\no=peer 1 1 IN IP4 127.0.0.9\r\ns=-\r\nc=IN IP4 127.0.0.9\r\nt=0 0\r\n"
    b"m=audio 7000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    b"a=ptime:30\r\na=sendrecv\r\n"
)
ANSWER_G729 = ANSWER_PCMA.replace(b"RTP/AVP 8 101", b"RTP/AVP 18").replace(b"8 PCMA", b"18 G729")


class FakeSip:
    def __init__(self) -> None:
        self.responses: list[Response] = []
        self.in_dialog: list[tuple[str, str, bytes]] = []
        self.requests: list[Request] = []
        self.dialogs = True
        """False: the core takes no 2xx (its transaction is gone), so no dialog is made."""

    def respond(self, event: RequestReceived, response: Response) -> str | None:
        self.responses.append(response)
        if event.request.method == "INVITE" and event.dialog_id is None and 200 <= response.status < 300:
            return DIALOG if self.dialogs else None
        return None

    def send_request(self, request: Request, destination: tuple[str, int], transport: str) -> str:
        self.requests.append(request)
        return f"out-{len(self.requests)}"

    def send_in_dialog(
        self, dialog_id: str, method: str, *, body: bytes = b"", headers: Iterable[tuple[str, str]] = ()
    ) -> str:
        self.in_dialog.append((dialog_id, method, body))
        return f"{method}-{len(self.in_dialog)}"

    def cancel(self, transaction_id: str) -> str | None:
        return None


class FakeMedia:
    def __init__(self) -> None:
        self.on_dtmf: Any = None
        self.on_rtp_timeout: Any = None
        self.configured: list[dict[str, Any]] = []
        self.closed: list[int] = []

    async def create_channel(self, group: str | None = None, *, near: int | None = None) -> int:
        return 3

    def local_port(self, channel: int) -> int:
        return 30000 + channel

    async def close_channel(self, channel: int) -> None:
        self.closed.append(channel)

    def configure(self, channel: int, **settings: Any) -> None:
        self.configured.append({"channel": channel, **settings})


def _request(text: str, body: bytes = b"") -> Request:
    head = text.strip().replace("\n", "\r\n")
    extra = "\r\nContent-Type: application/sdp" if body else ""
    message = parse_message(f"{head}{extra}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    assert isinstance(message, Request)
    return message


def _invite() -> Request:
    return _request(
        """
INVITE sip:late@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.9:5070;branch=z9hG4bK-late-1
From: <sip:caller@127.0.0.9>;tag=abc
To: <sip:late@127.0.0.1>
Call-ID: late-offer-1@127.0.0.9
CSeq: 1 INVITE
Contact: <sip:caller@127.0.0.9:5070>
Max-Forwards: 70"""
    )


def _in_dialog(method: str, cseq: int, body: bytes = b"") -> Request:
    return _request(
        f"""
{method} sip:switch@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.9:5070;branch=z9hG4bK-late-{method}-{cseq}
From: <sip:caller@127.0.0.9>;tag=abc
To: <sip:late@127.0.0.1>;tag=xyz
Call-ID: late-offer-1@127.0.0.9
CSeq: {cseq} {method}
Max-Forwards: 70""",
        body,
    )


class Harness:
    """A CallManager whose application answers, notes the media it then has, and waits for the end."""

    def __init__(self) -> None:
        self.sip = FakeSip()
        self.media = FakeMedia()
        self.after_answer: list[object] = []
        self.manager = CallManager(
            self.sip,
            cast(MediaControl, self.media),
            cast(TextToSpeech, object()),
            self._run,
            account_sid="AC" + "0" * 32,
            contact_host="127.0.0.1",
            contact_port=5060,
            app_url="http://127.0.0.1:9/voice",
        )
        self.statuses: list[str] = []
        self.manager.add_listener(lambda call, status: self.statuses.append(status))

    async def _run(self, call: Call, url: str, method: str, twiml: bytes | None) -> None:
        await call.answer()
        self.after_answer.append(call.media)
        await call.ended.wait()

    async def invite(self) -> InboundCall:
        self.manager.handle_event(RequestReceived(_invite(), SOURCE, "UDP", None, None, "tx-1"))
        for _ in range(50):
            await asyncio.sleep(0)
            if any(r.status == 200 for r in self.sip.responses):
                break
        (call,) = self.manager.calls.values()
        assert isinstance(call, InboundCall)
        return call

    async def settle(self) -> None:
        for _ in range(20):
            await asyncio.sleep(0)


async def test_the_200_carries_our_offer_and_the_ack_answer_configures_the_media() -> None:
    h = Harness()
    call = await h.invite()
    (ok,) = [r for r in h.sip.responses if r.status == 200]
    assert ok.headers.get("Content-Type") == "application/sdp"
    (audio,) = parse_sdp(ok.body).media
    assert audio.port == 30003 and audio.formats == ("0", "8", "9", "96", "101")
    assert h.media.configured == [] and h.after_answer == []  # nothing before the answer arrives
    assert call.status == "in-progress"

    h.manager.handle_event(AckReceived(_in_dialog("ACK", 1, ANSWER_PCMA), DIALOG))
    await h.settle()
    assert h.media.configured == [
        {
            "channel": 3,
            "remote": ("127.0.0.9", 7000),
            "codec": "PCMA",
            "payload_type": 8,
            "ptime": 30,
            "telephone_event_pt": 101,
            "direction": "sendrecv",
            "on_hold": False,
        }
    ]
    assert h.after_answer == [call.media]  # the application went on only once the media was set
    assert call.media is not None and call.media.sdp == call.late_offer

    # A re-INVITE without SDP is answered with our offer again (not with the peer's answer).
    h.manager.handle_event(RequestReceived(_in_dialog("INVITE", 2), SOURCE, "UDP", None, DIALOG, "tx-2"))
    assert h.sip.responses[-1].status == 200 and h.sip.responses[-1].body == call.late_offer
    h.manager.hangup_all()
    await h.settle()
    assert h.sip.in_dialog == [(DIALOG, "BYE", b"")]
    assert h.statuses[-1] == "completed"


@pytest.mark.parametrize(("body", "reason"), [(b"", "no SDP answer"), (ANSWER_G729, "no offered codec")])
async def test_an_ack_without_a_usable_answer_ends_the_call_with_bye(body: bytes, reason: str) -> None:
    h = Harness()
    call = await h.invite()
    h.manager.handle_event(AckReceived(_in_dialog("ACK", 1, body), DIALOG))
    await h.settle()
    assert h.sip.in_dialog == [(DIALOG, "BYE", b"")]
    assert h.media.configured == [] and h.media.closed == [3]
    assert call.ended.is_set() and call.status == "failed" and reason in call.end_reason
    assert h.manager.calls == {} and DIALOG not in h.manager.by_dialog


async def test_no_ack_at_all_ends_the_call_with_bye() -> None:
    h = Harness()
    call = await h.invite()
    h.manager.handle_event(AckTimeout(DIALOG))
    await h.settle()
    assert h.sip.in_dialog == [(DIALOG, "BYE", b"")]
    assert h.media.configured == [] and call.ended.is_set()
    assert h.after_answer == [None]


async def test_a_late_offer_call_has_no_early_media() -> None:
    from switch.media.engine import MediaError

    h = Harness()
    call = await h.invite()
    with pytest.raises(MediaError, match="late-offer"):
        _ = call.offer_answer
    assert call.late_offer and parse_sdp(call.late_offer).media[0].formats == ("0", "8", "9", "96", "101")


async def test_a_2xx_that_makes_no_dialog_does_not_leave_the_call_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(switch.calls.call, "ACK_WAIT", 0.01)
    h = Harness()
    h.sip.dialogs = False
    call = await h.invite()
    for _ in range(100):
        if call.ended.is_set():
            break
        await asyncio.sleep(0.005)
    assert call.ended.is_set() and h.after_answer == [None]
    assert h.media.configured == [] and h.sip.in_dialog == []


async def test_a_reinvite_without_sdp_to_an_outbound_call_gets_our_offer_not_the_callees_answer() -> None:
    h = Harness()
    call = await h.manager.originate(
        to="sip:callee@127.0.0.9:5070", from_="+15550100", url=None, twiml="<Response/>"
    )
    await h.settle()
    (invite,) = h.sip.requests
    head = (
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-out\r\n"
        f"From: {invite.headers.get('From')}\r\nTo: <sip:callee@127.0.0.9>;tag=callee\r\n"
        f"Call-ID: {call.sip_call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:callee@127.0.0.9:5070>\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(ANSWER_PCMA)}\r\n\r\n"
    )
    ok = parse_message(head.encode() + ANSWER_PCMA)
    assert isinstance(ok, Response)
    h.manager.handle_event(ResponseReceived(ok, "out-1", DIALOG))
    await h.settle()
    assert h.media.configured[-1]["codec"] == "PCMA" and call.status == "in-progress"
    h.manager.handle_event(RequestReceived(_in_dialog("INVITE", 2), SOURCE, "UDP", None, DIALOG, "tx-2"))
    reply = h.sip.responses[-1]
    assert reply.status == 200 and reply.body == invite.body
    assert parse_sdp(reply.body).media[0].port == 30003
