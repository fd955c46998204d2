"""A running switch, SIPp callers and a TwiML server: what a SIP call's webhook receives (SipHeader_X-*,
SipSourceIp, SipCallId, ForwardedFrom), the Notifications a failed webhook leaves (read with the twilio
library), and the /metrics values those calls move."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from twilio.rest import Client

from tests.helpers.rtp_sink import RtpSink
from tests.helpers.sipp import SippResult, run_sipp
from tests.helpers.switch_process import SwitchProcess
from tests.helpers.tools import ToolMissingError, require_tool
from tests.helpers.twiml_server import Reply, TwimlServer

pytestmark = pytest.mark.e2e

AC = "AC" + "5e" * 16
TOKEN = "e2e-sip-params-token-0123456789"
SCENARIO = str(Path(__file__).with_name("uac-invite-xheaders-expect-bye.xml"))
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def app() -> Iterator[TwimlServer]:
    with TwimlServer() as server:
        server.dispatch_by_to("/voice")
        server.on_user("xhdr", "<Response><Hangup/></Response>")
        server.on_user("broken", Reply("oops", status=500, content_type="text/plain"))
        yield server


@pytest.fixture(scope="module")
def switch(app: TwimlServer) -> Iterator[SwitchProcess]:
    try:
        require_tool("sipp")
    except ToolMissingError as exc:
        pytest.fail(str(exc), pytrace=False)
    with SwitchProcess(app.url("/voice"), extra_args=["--account-sid", AC, "--auth-token", TOKEN]) as process:
        yield process


def call(switch: SwitchProcess, user: str) -> SippResult:
    with RtpSink(answer_with_silence=True) as sink:
        return run_sipp(
            SCENARIO, switch.target, "udp", service=user, keys={"rtp_port": sink.port}, timeout=20
        )


def metrics(switch: SwitchProcess) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{switch.http_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_sip_call_webhook_params_notifications_and_metrics(switch: SwitchProcess, app: TwimlServer) -> None:
    before = metrics(switch)
    assert before[("switch_sip_guard_events_total", (("event", "auth_failed"),))] == 0.0

    result = call(switch, "xhdr")
    assert result.ok, result.describe()
    [request] = app.wait_for_requests(1, user="xhdr")
    params = request.params
    assert params["SipHeader_X-Customer-Id"] == "4711"
    assert params["SipHeader_X-Campaign"] == "spring sale; tier=gold"
    assert params["SipSourceIp"] == "127.0.0.1"
    assert params["ForwardedFrom"] == "sip:+15550001111@pbx.example"
    assert params["SipCallId"] and params["SipCallId"] in result.messages
    assert "SipHeader_User-Agent" not in params and "SipHeader_Diversion" not in params

    # A webhook that fails: the caller hears the application-error prompt, the call keeps a notification.
    result = call(switch, "broken")
    assert result.ok, result.describe()
    [failed] = app.wait_for_requests(1, user="broken")
    call_sid = failed.params["CallSid"]
    client = Client(AC, TOKEN)
    client.api.base_url = f"http://127.0.0.1:{switch.http_port}"
    [note] = client.calls(call_sid).notifications.list()
    assert (note.error_code, note.log, note.call_sid) == ("11200", "0", call_sid)
    assert (note.request_url, note.request_method) == (app.url("/voice"), "POST")
    assert note.sid.startswith("NO") and "500" in note.message_text
    assert client.notifications(note.sid).fetch().error_code == "11200"
    assert note.sid in [n.sid for n in client.notifications.list(log=0)]

    after = metrics(switch)

    def moved(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert moved("switch_webhook_seconds_count") >= 2  # the two document requests
    assert moved("switch_sip_responses_total", code="200", direction="sent") >= 2  # two answers
    assert moved("switch_sip_responses_total", code="200", direction="received") >= 2  # two BYEs answered
    assert moved("switch_calls_total", status="completed") == 2
    assert after[("switch_active_calls", ())] == 0.0
    assert moved("switch_event_loop_lag_seconds_count") > 0
