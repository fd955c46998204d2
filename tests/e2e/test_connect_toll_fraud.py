"""Toll fraud: TwiML may dial SIP URIs only as --dial-allow / --dial-deny let it, and <Number> only digits
through a configured trunk. A refused Dial sends no INVITE, ends with DialCallStatus=failed and is logged."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import start_switch
from tests.e2e.test_connect_dial import SELFCHECK
from tests.e2e.test_first_call import why
from tests.helpers.ports import free_tcp_port
from tests.helpers.sipp import SippUas, run_sipp
from tests.helpers.switch_process import SwitchProcess
from tests.helpers.twiml_server import TwimlServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def guarded(twiml_server: TwimlServer) -> Iterator[SwitchProcess]:
    process = start_switch(
        twiml_server.url("/voice"),
        ["--dial-allow", r"re:^callee@127\.0\.0\.1$,127.0.0.2", "--dial-deny", "premium@*,127.0.0.2"],
    )
    try:
        yield process
    finally:
        process.stop()


def dial(guarded: SwitchProcess, twiml_server: TwimlServer, user: str, noun: str) -> dict[str, str]:
    twiml_server.on_user(
        user, f'<Response><Dial action="/tf-done/{user}" timeout="5">{noun}</Dial></Response>'
    )
    twiml_server.route(f"/tf-done/{user}", "<Response><Hangup/></Response>")
    result = run_sipp("uac-invite-say-expect-bye.xml", guarded.target, "udp", service=user,
                      keys={"rtp_port": free_tcp_port()}, timeout=15)  # fmt: skip
    assert result.ok, why(result, guarded)
    [done] = twiml_server.wait_for_requests(1, path=f"/tf-done/{user}", timeout=10)
    return done.params


@pytest.mark.parametrize(
    ("user", "noun", "error"),
    [
        ("tf-not-allowed", "<Sip>sip:other@127.0.0.1:5999</Sip>", "not in --dial-allow"),
        ("tf-denied-user", "<Sip>sip:premium@127.0.0.1:5999</Sip>", "denied by --dial-deny 'premium@*'"),
        ("tf-deny-wins", "<Sip>sip:callee@127.0.0.2:5999</Sip>", "denied by --dial-deny '127.0.0.2'"),
        ("tf-no-trunk", "<Number>+15550100199</Number>", "no trunk may call it"),
        ("tf-injected", "<Number>+1555@127.0.0.1:5999</Number>", "is not a phone number"),
    ],
)
def test_refused_destinations_fail_without_an_invite(
    guarded: SwitchProcess, twiml_server: TwimlServer, user: str, noun: str, error: str
) -> None:
    params = dial(guarded, twiml_server, user, noun)
    assert params["DialCallStatus"] == "failed" and "DialCallSid" not in params
    call_sid = params["CallSid"]
    logged = [line for line in guarded.log_lines(error) if call_sid in line]
    assert logged and " ERROR " in logged[0], guarded.log[-3000:]
    assert not [line for line in guarded.log_lines("direction=outbound-dial") if call_sid in line]


def test_an_allowed_uri_is_dialled(guarded: SwitchProcess, twiml_server: TwimlServer) -> None:
    uas = SippUas(str(SELFCHECK / "uas-answer-then-bye.xml"), timeout=20)
    params = dial(guarded, twiml_server, "tf-allowed", f"<Sip>sip:callee@{uas.target}</Sip>")
    callee = uas.finish()
    assert callee.ok, why(callee, guarded)
    assert params["DialCallStatus"] == "completed" and params["DialCallSid"].startswith("CA")
