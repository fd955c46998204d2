"""Late offer end to end: an INVITE without SDP (RFC 3261 §13.2.1, RFC 3264 §4).

The switch makes the offer in its 200 OK (SIPp checks it by regexp), the caller answers in the ACK, and the
call's audio flows with the codec of that answer. An ACK with no answer, or with no codec of the offer,
ends the call at once with BYE. One switch (the e2e session's) serves every test.
"""

from __future__ import annotations

import re

import pytest

from tests.e2e.test_first_call import assert_paced_g711, assert_says, say, tts, why
from tests.helpers.rtp_sink import RtpSink
from tests.helpers.sipp import SCENARIOS, SippUas, run_sipp
from tests.helpers.switch_process import SwitchProcess
from tests.helpers.twiml_server import TwimlServer

pytestmark = pytest.mark.e2e

SAY_TEXT = "A late offer, answered in the ACK."
LONG_PAUSE = '<Response><Pause length="30"/><Say>Never heard.</Say></Response>'


def _call_sid(switch: SwitchProcess, user: str) -> str:
    """The CallSid of the (one) call to ``user``, from the switch's log."""
    starts = [line for line in switch.log_lines("call start") if f"To=sip:{user}@" in line]
    assert len(starts) == 1, starts
    found = re.search(r"CallSid=(CA[0-9a-f]{32})", starts[0])
    assert found is not None, starts[0]
    return found.group(1)


def _call_end(switch: SwitchProcess, user: str) -> str:
    """The switch's "call end" log line of the (one) call to ``user``."""
    ends = switch.log_lines(f"call end CallSid={_call_sid(switch, user)}")
    assert len(ends) == 1, switch.log[-4000:]
    return ends[0]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_late_offer_call_hears_the_say_with_the_codec_of_the_ack(
    transport: str, switch: SwitchProcess, twiml_server: TwimlServer
) -> None:
    user = f"late-offer-{transport}"
    twiml_server.on_user(user, say(SAY_TEXT))
    with RtpSink(answer_with_silence=True) as sink:
        result = run_sipp(
            "uac-invite-late-offer-expect-bye.xml",
            switch.target,
            transport,
            service=user,
            keys={"rtp_port": sink.port, "answer_pt": 8, "answer_codec": "PCMA/8000"},
            timeout=20,
        )
        sink.wait_quiet(quiet=0.3, timeout=2.0)
        stream = sink.stream()
    assert result.ok, why(result, switch)
    assert "BYE sip:" in result.messages
    assert stream.payload_types == {8}, stream.payload_types  # PCMA: the ACK's answer, not our first (PCMU)
    expected = int(tts(SAY_TEXT).size / 160)
    assert_paced_g711(stream, min_seconds=expected / 50 - 0.1)
    assert_says(stream.pcm(), SAY_TEXT)
    assert "status=completed" in _call_end(switch, user)


@pytest.mark.parametrize(
    ("scenario", "keys", "why_logged"),
    [
        ("uac-invite-late-offer-empty-ack-expect-bye.xml", {}, "the ACK carries no SDP answer"),
        (
            "uac-invite-late-offer-expect-bye.xml",
            {"answer_pt": 18, "answer_codec": "G729/8000"},
            "the answer has no offered codec",
        ),
    ],
    ids=["ack-without-sdp", "ack-with-no-common-codec"],
)
def test_late_offer_without_a_usable_answer_in_the_ack_ends_with_bye(
    scenario: str,
    keys: dict[str, str | int],
    why_logged: str,
    switch: SwitchProcess,
    twiml_server: TwimlServer,
) -> None:
    user = f"late-offer-bad-{len(keys)}"
    twiml_server.on_user(user, LONG_PAUSE)  # the application alone would keep the call for 30 s
    with RtpSink() as sink:
        result = run_sipp(
            scenario, switch.target, "udp", service=user, keys={"rtp_port": sink.port, **keys}, timeout=10
        )
        sink.wait_quiet(quiet=0.3, timeout=2.0)
        heard = sink.stream().count
    assert result.ok, why(result, switch)
    assert "BYE sip:" in result.messages
    assert heard == 0  # no media channel was configured
    end = _call_end(switch, user)
    assert "status=failed" in end and why_logged in end, end


def test_answer_on_bridge_gives_a_late_offer_call_no_early_media(
    switch: SwitchProcess, twiml_server: TwimlServer
) -> None:
    """answerOnBridge would send 183 with SDP; a late-offer call cannot have SDP in a provisional
    (RFC 3261 §13.2.1), so it rings with 180 (a 183 fails the scenario) and answers with its offer later."""
    user = "late-offer-bridge"
    uas = SippUas(str(SCENARIOS / "selfcheck" / "uas-reject-486.xml"), timeout=15)
    twiml_server.on_user(
        user,
        f'<Response><Dial answerOnBridge="true" action="/dial-done/{user}" timeout="5">'
        f"<Sip>sip:callee@{uas.target}</Sip></Dial></Response>",
    )
    twiml_server.route(f"/dial-done/{user}", say(SAY_TEXT))
    with RtpSink(answer_with_silence=True) as sink:
        result = run_sipp(
            "uac-invite-late-offer-expect-bye.xml",
            switch.target,
            "udp",
            service=user,
            keys={"rtp_port": sink.port, "answer_pt": 0, "answer_codec": "PCMU/8000"},
            timeout=20,
        )
        sink.wait_quiet(quiet=0.3, timeout=2.0)
        stream = sink.stream()
    callee = uas.finish()
    assert result.ok, why(result, switch)
    assert callee.ok, why(callee, switch)
    assert "SIP/2.0 183" not in result.messages
    found = twiml_server.wait_for_requests(1, path=f"/dial-done/{user}", timeout=15)
    assert found and found[0].params["DialCallStatus"] == "busy"
    assert stream.payload_types == {0}, stream.payload_types
    assert_says(stream.pcm(), SAY_TEXT)
    assert switch.log_lines(f"no early media for CallSid={_call_sid(switch, user)}: a late-offer call")
    assert "status=completed" in _call_end(switch, user)
