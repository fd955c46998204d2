"""The legs of a <Dial>: a noun's statusCallback hears the child leg's own events (initiated, ringing,
answered, completed; CallSid of the leg, ParentCallSid of the caller, Direction outbound-dial), and a
<Number> goes out through a dialplan trunk whose gateway (a SIPp UAS) demands proxy authentication, with the
trunk's caller-ID policy applied and its number patterns enforced."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from switch.sip.auth import compute_ha1, parse_authorization, verify_response
from tests.e2e.conftest import start_switch
from tests.e2e.test_first_call import why
from tests.helpers.ports import free_tcp_port
from tests.helpers.sipp import SCENARIOS, SippUas, run_sipp
from tests.helpers.switch_process import SwitchProcess
from tests.helpers.twiml_server import RecordedRequest, TwimlServer

pytestmark = pytest.mark.e2e

HANGUP = "<Response><Hangup/></Response>"
EVENTS = "initiated ringing answered completed"


def leg_callbacks(twiml_server: TwimlServer, path: str, count: int) -> list[RecordedRequest]:
    found = twiml_server.wait_for_requests(count, path=path, timeout=15)
    assert len(found) >= count, found
    return found


def test_sip_noun_status_callback_hears_the_leg(switch: SwitchProcess, twiml_server: TwimlServer) -> None:
    user = "leg-status-sip"
    uas = SippUas(str(SCENARIOS / "selfcheck" / "uas-answer-expect-bye.xml"), timeout=20)
    twiml_server.on_user(
        user,
        f'<Response><Dial action="/leg-done/{user}" timeout="10"><Sip statusCallback="/leg-status/{user}" '
        f'statusCallbackEvent="{EVENTS}" statusCallbackMethod="POST">sip:callee@{uas.target}</Sip>'
        "</Dial></Response>",
    )
    twiml_server.route(f"/leg-status/{user}", "")
    twiml_server.route(f"/leg-done/{user}", HANGUP)
    result = run_sipp(
        "uac-invite-hangup-expect-200.xml", switch.target, "udp", service=user,
        keys={"rtp_port": free_tcp_port()}, extra_args=["-d", "1500"], timeout=15,
    )  # fmt: skip
    callee = uas.finish()
    assert result.ok, why(result, switch)
    assert callee.ok, why(callee, switch)
    [done] = twiml_server.wait_for_requests(1, path=f"/leg-done/{user}", timeout=15)
    callbacks = leg_callbacks(twiml_server, f"/leg-status/{user}", 4)
    [caller] = twiml_server.requests(path="/voice", user=user)
    statuses = [r.params["CallStatus"] for r in callbacks]
    assert statuses == ["initiated", "ringing", "in-progress", "completed"], statuses
    assert {r.params["CallSid"] for r in callbacks} == {done.params["DialCallSid"]}
    assert {r.params["ParentCallSid"] for r in callbacks} == {caller.params["CallSid"]}
    assert {r.params["Direction"] for r in callbacks} == {"outbound-dial"}
    assert [r.params["SequenceNumber"] for r in callbacks] == ["0", "1", "2", "3"]
    assert int(callbacks[-1].params["CallDuration"]) >= 1
    assert all(r.method == "POST" for r in callbacks)


def test_a_noun_without_events_reports_completed_only(
    switch: SwitchProcess, twiml_server: TwimlServer
) -> None:
    user = "leg-status-default"
    uas = SippUas(str(SCENARIOS / "selfcheck" / "uas-reject-486.xml"), timeout=15)
    twiml_server.on_user(
        user,
        f'<Response><Dial action="/leg-done/{user}"><Sip statusCallback="/leg-status/{user}" '
        f'statusCallbackMethod="GET">sip:callee@{uas.target}</Sip></Dial></Response>',
    )
    twiml_server.route(f"/leg-status/{user}", "")
    twiml_server.route(f"/leg-done/{user}", HANGUP)
    result = run_sipp("uac-invite-say-expect-bye.xml", switch.target, "udp", service=user,
                      keys={"rtp_port": free_tcp_port()}, timeout=15)  # fmt: skip
    assert uas.finish().ok
    assert result.ok, why(result, switch)
    [done] = twiml_server.wait_for_requests(1, path=f"/leg-done/{user}", timeout=15)
    [callback] = leg_callbacks(twiml_server, f"/leg-status/{user}", 1)
    assert callback.method == "GET"
    assert callback.params["CallStatus"] == "busy" and callback.params["SipResponseCode"] == "486"
    assert callback.params["CallSid"] == done.params["DialCallSid"]


@pytest.fixture(scope="module")
def gateway() -> Iterator[SippUas]:
    uas = SippUas("uas-challenge-407-expect-bye.xml", timeout=60)
    yield uas
    uas.kill()


@pytest.fixture(scope="module")
def trunk_switch(
    gateway: SippUas, twiml_server: TwimlServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SwitchProcess]:
    plan = tmp_path_factory.mktemp("trunk") / "plan.toml"
    plan.write_text(
        "[trunks.gw]\n"
        f'gateway = "sip:{gateway.target}"\n'
        'username = "dialer"\npassword = "letmein"\n'
        'caller_id = "+15550100"\n'
        'allow = ["^\\\\+1555"]\n'
    )
    process = start_switch(twiml_server.url("/voice"), ["--dialplan", str(plan)])
    try:
        yield process
    finally:
        process.stop()


def test_number_through_a_trunk_answers_its_407_with_the_callerid_policy(
    trunk_switch: SwitchProcess, gateway: SippUas, twiml_server: TwimlServer
) -> None:
    user = "trunk-caller"
    twiml_server.on_user(
        user,
        f'<Response><Dial action="/leg-done/{user}" callerId="+4420000000">'
        f'<Number statusCallback="/leg-status/{user}" statusCallbackEvent="initiated answered completed">'
        "+1 (555) 010-2030</Number></Dial></Response>",
    )
    twiml_server.route(f"/leg-status/{user}", "")
    twiml_server.route(f"/leg-done/{user}", HANGUP)
    result = run_sipp(
        "uac-invite-hangup-expect-200.xml", trunk_switch.target, "udp", service=user,
        keys={"rtp_port": free_tcp_port()}, extra_args=["-d", "1500"], timeout=20,
    )  # fmt: skip
    callee = gateway.finish()
    assert result.ok, why(result, trunk_switch)
    assert callee.ok, why(callee, trunk_switch)
    # The gateway saw the number in the Request-URI, the trunk's caller ID, and right credentials.
    assert f"INVITE sip:+15550102030@{gateway.target}" in callee.messages, callee.messages[-3000:]
    from_lines = [line for line in callee.messages.splitlines() if line.startswith("From:")]
    assert from_lines and all("+15550100" in line and "+4420000000" not in line for line in from_lines)
    header = next(line for line in callee.messages.splitlines() if line.startswith("Proxy-Authorization:"))
    credentials = parse_authorization(header.split(":", 1)[1].strip())
    assert credentials.username == "dialer"
    assert verify_response(credentials, "INVITE", compute_ha1("dialer", "sipp", "letmein", "MD5"))
    [done] = twiml_server.wait_for_requests(1, path=f"/leg-done/{user}", timeout=15)
    assert done.params["DialCallStatus"] == "completed" and done.params["DialBridged"] == "true"
    callbacks = leg_callbacks(twiml_server, f"/leg-status/{user}", 3)
    assert [r.params["CallStatus"] for r in callbacks] == ["initiated", "in-progress", "completed"]
    assert {r.params["To"] for r in callbacks} == {f"sip:+15550102030@{gateway.target}"}


def test_a_number_no_trunk_allows_is_not_dialled(
    trunk_switch: SwitchProcess, twiml_server: TwimlServer
) -> None:
    user = "trunk-refused"
    twiml_server.on_user(
        user, f'<Response><Dial action="/leg-done/{user}"><Number>+44 20 7946 0000</Number></Dial></Response>'
    )
    twiml_server.route(f"/leg-done/{user}", HANGUP)
    result = run_sipp("uac-invite-say-expect-bye.xml", trunk_switch.target, "udp", service=user,
                      keys={"rtp_port": free_tcp_port()}, timeout=15)  # fmt: skip
    assert result.ok, why(result, trunk_switch)
    [done] = twiml_server.wait_for_requests(1, path=f"/leg-done/{user}", timeout=15)
    assert done.params["DialCallStatus"] == "failed"
    assert trunk_switch.wait_for_log("no trunk may call it", 5)
