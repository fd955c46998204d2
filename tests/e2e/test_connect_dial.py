"""<Dial><Sip> through the switch as a B2BUA: a SIPp caller, the switch, a SIPp callee per outcome.

Each test gives its own To user a document that dials a SIPp UAS and posts the result to an action URL;
the action's parameters (DialCallStatus, DialCallSid, DialBridged) and the callee's own SIPp verdict
(it saw the BYE, the CANCEL, the credentials) are what is checked.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from switch.sip.auth import compute_ha1, parse_authorization, verify_response
from tests.e2e.test_first_call import why
from tests.helpers.ports import free_tcp_port
from tests.helpers.sipp import SCENARIOS, SippResult, SippUas, run_sipp
from tests.helpers.switch_process import SwitchProcess
from tests.helpers.twiml_server import TwimlServer

pytestmark = pytest.mark.e2e

SELFCHECK = SCENARIOS / "selfcheck"
HANGUP = "<Response><Hangup/></Response>"


def dial_document(user: str, sip: str, *, timeout: int = 10, credentials: bool = False) -> str:
    auth = ' username="dialer" password="letmein"' if credentials else ""
    return (
        f'<Response><Dial action="/dial-done/{user}" timeout="{timeout}">'
        f"<Sip{auth}>{sip}</Sip></Dial></Response>"
    )


def caller(switch: SwitchProcess, user: str, scenario: str, results: list[SippResult], **kw: object) -> None:
    results.append(
        run_sipp(scenario, switch.target, "udp", service=user, keys={"rtp_port": free_tcp_port()}, **kw)  # type: ignore[arg-type]
    )


def action_params(twiml_server: TwimlServer, user: str) -> dict[str, str]:
    found = twiml_server.wait_for_requests(1, path=f"/dial-done/{user}", timeout=15)
    assert found, f"no request for the Dial action of {user}"
    return found[0].params


def test_dial_sip_answered_bridges_and_reports_completed(
    switch: SwitchProcess, twiml_server: TwimlServer
) -> None:
    user = "dial-answer"
    uas = SippUas(str(SELFCHECK / "uas-answer-expect-bye.xml"), timeout=20)
    twiml_server.on_user(user, dial_document(user, f"sip:callee@{uas.target}"))
    twiml_server.route(f"/dial-done/{user}", HANGUP)
    # The caller stays 2 s in the bridge, then hangs up: the switch must BYE the callee.
    result = run_sipp(
        "uac-invite-hangup-expect-200.xml", switch.target, "udp", service=user,
        keys={"rtp_port": free_tcp_port()}, extra_args=["-d", "2000"], timeout=15,
    )  # fmt: skip
    callee = uas.finish()
    assert result.ok, why(result, switch)
    assert callee.ok, why(callee, switch)
    params = action_params(twiml_server, user)
    assert params["DialCallStatus"] == "completed"
    assert params["DialBridged"] == "true"
    assert params["DialCallSid"].startswith("CA") and len(params["DialCallSid"]) == 34
    assert int(params["DialCallDuration"]) >= 1
    # The callee saw an INVITE whose From is the caller's user.
    assert "From: <sip:sipp@" in callee.messages


def test_dial_sip_busy(switch: SwitchProcess, twiml_server: TwimlServer) -> None:
    user = "dial-busy"
    uas = SippUas(str(SELFCHECK / "uas-reject-486.xml"), timeout=15)
    twiml_server.on_user(user, dial_document(user, f"sip:callee@{uas.target}"))
    twiml_server.route(f"/dial-done/{user}", HANGUP)
    result = run_sipp("uac-invite-say-expect-bye.xml", switch.target, "udp", service=user,
                      keys={"rtp_port": free_tcp_port()}, timeout=15)  # fmt: skip
    callee = uas.finish()
    assert result.ok, why(result, switch)
    assert callee.ok, why(callee, switch)
    params = action_params(twiml_server, user)
    assert params["DialCallStatus"] == "busy"
    assert params["DialBridged"] == "false"
    assert params["DialCallDuration"] == "0"


def test_dial_sip_no_answer_cancels_after_timeout(switch: SwitchProcess, twiml_server: TwimlServer) -> None:
    user = "dial-noanswer"
    uas = SippUas(str(SELFCHECK / "uas-ring-expect-cancel.xml"), timeout=15)
    twiml_server.on_user(user, dial_document(user, f"sip:callee@{uas.target}", timeout=2))
    twiml_server.route(f"/dial-done/{user}", HANGUP)
    result = run_sipp("uac-invite-say-expect-bye.xml", switch.target, "udp", service=user,
                      keys={"rtp_port": free_tcp_port()}, timeout=15)  # fmt: skip
    callee = uas.finish()
    assert result.ok, why(result, switch)
    assert callee.ok, why(callee, switch)  # it got the CANCEL
    assert "CANCEL sip:callee@" in callee.messages
    assert action_params(twiml_server, user)["DialCallStatus"] == "no-answer"


def test_dial_sip_answers_a_407_challenge(switch: SwitchProcess, twiml_server: TwimlServer) -> None:
    user = "dial-auth"
    uas = SippUas("uas-challenge-407-expect-bye.xml", timeout=20)
    twiml_server.on_user(user, dial_document(user, f"sip:callee@{uas.target}", credentials=True))
    twiml_server.route(f"/dial-done/{user}", HANGUP)
    result = run_sipp(
        "uac-invite-hangup-expect-200.xml", switch.target, "udp", service=user,
        keys={"rtp_port": free_tcp_port()}, extra_args=["-d", "1500"], timeout=15,
    )  # fmt: skip
    callee = uas.finish()
    assert result.ok, why(result, switch)
    assert callee.ok, why(callee, switch)  # the credentials were right: 200, then BYE
    header = next(line for line in callee.messages.splitlines() if line.startswith("Proxy-Authorization:"))
    credentials = parse_authorization(header.split(":", 1)[1].strip())
    assert (credentials.username, credentials.realm, credentials.algorithm) == ("dialer", "sipp", "MD5")
    assert verify_response(credentials, "INVITE", compute_ha1("dialer", "sipp", "letmein", "MD5"))
    assert action_params(twiml_server, user)["DialCallStatus"] == "completed"


def test_caller_hangs_up_while_the_callee_rings(switch: SwitchProcess, twiml_server: TwimlServer) -> None:
    user = "dial-caller-gone"
    uas = SippUas(str(SELFCHECK / "uas-ring-expect-cancel.xml"), timeout=15)
    twiml_server.on_user(user, dial_document(user, f"sip:callee@{uas.target}", timeout=20))
    results: list[SippResult] = []
    thread = threading.Thread(
        target=caller,
        args=(switch, user, "uac-invite-hangup-expect-200.xml", results),
        kwargs={"extra_args": ["-d", "1500"], "timeout": 15},
    )
    thread.start()
    thread.join(30)
    callee = uas.finish()
    assert results and results[0].ok, why(results[0], switch)
    assert callee.ok, why(callee, switch)  # CANCEL reached the callee within its timeout
    assert "CANCEL sip:callee@" in callee.messages
    # The caller is gone, but the action still hears how the Dial ended.
    assert action_params(twiml_server, user)["DialCallStatus"] == "canceled"


def test_scenario_files_exist() -> None:
    assert Path(SCENARIOS / "uas-challenge-407-expect-bye.xml").is_file()


def test_dial_follows_a_302_to_the_new_contact(switch: SwitchProcess, twiml_server: TwimlServer) -> None:
    user = "dial-redirect"
    final = SippUas(str(SELFCHECK / "uas-answer-expect-bye.xml"), timeout=20)
    mover = SippUas("uas-redirect-302.xml", keys={"target": f"sip:moved@{final.target}"}, timeout=20)
    twiml_server.on_user(user, dial_document(user, f"sip:callee@{mover.target}"))
    twiml_server.route(f"/dial-done/{user}", HANGUP)
    result = run_sipp(
        "uac-invite-hangup-expect-200.xml", switch.target, "udp", service=user,
        keys={"rtp_port": free_tcp_port()}, extra_args=["-d", "1000"], timeout=15,
    )  # fmt: skip
    moved, answered = mover.finish(), final.finish()
    assert result.ok, why(result, switch)
    assert moved.ok, why(moved, switch)
    assert answered.ok, why(answered, switch)
    assert "INVITE sip:moved@" in answered.messages
    assert action_params(twiml_server, user)["DialCallStatus"] == "completed"


def test_time_limit_ends_the_bridge(switch: SwitchProcess, twiml_server: TwimlServer) -> None:
    user = "dial-time-limit"
    uas = SippUas(str(SELFCHECK / "uas-answer-expect-bye.xml"), timeout=20)
    twiml_server.on_user(
        user,
        f'<Response><Dial action="/dial-done/{user}" timeLimit="2"><Sip>sip:callee@{uas.target}</Sip></Dial>'
        "</Response>",
    )
    twiml_server.route(f"/dial-done/{user}", HANGUP)
    result = run_sipp("uac-invite-say-expect-bye.xml", switch.target, "udp", service=user,
                      keys={"rtp_port": free_tcp_port()}, timeout=15)  # fmt: skip
    callee = uas.finish()
    assert result.ok, why(result, switch)  # the switch hung up on the caller after the action
    assert callee.ok, why(callee, switch)  # and on the callee when the time was up
    params = action_params(twiml_server, user)
    assert params["DialCallStatus"] == "completed" and params["DialCallDuration"] in ("2", "3")
