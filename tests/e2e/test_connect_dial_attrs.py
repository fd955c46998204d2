"""<Dial> attributes through a running switch: the noun's url whisper (accepted, declined by <Hangup/>) and
record (record-from-answer mono, -dual stereo) with recordingStatusCallback and the stored recording."""

from __future__ import annotations

import urllib.request
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.test_connect_dial import SELFCHECK
from tests.e2e.test_first_call import why
from tests.helpers.ports import free_tcp_port
from tests.helpers.sipp import SippUas, run_sipp
from tests.helpers.switch_process import SwitchProcess
from tests.helpers.twiml_server import TwimlServer

pytestmark = pytest.mark.e2e

HANGUP = "<Response><Hangup/></Response>"


def _call(
    switch: SwitchProcess, user: str, uas: SippUas, hold_ms: int = 2000, *, switch_hangs_up: bool = False
) -> None:
    """A SIPp caller that hangs up after ``hold_ms`` (or waits for the switch's BYE); the callee's verdict."""
    scenario = "uac-invite-say-expect-bye.xml" if switch_hangs_up else "uac-invite-hangup-expect-200.xml"
    result = run_sipp(
        scenario, switch.target, "udp", service=user,
        keys={"rtp_port": free_tcp_port()}, extra_args=["-d", str(hold_ms)], timeout=20,
    )  # fmt: skip
    callee = uas.finish()
    assert result.ok, why(result, switch)
    assert callee.ok, why(callee, switch)


@pytest.mark.parametrize(
    ("whisper", "status", "bridged"),
    [
        ("<Response><Say>A call for you.</Say></Response>", "completed", "true"),
        ("<Response><Say>Press nothing.</Say><Hangup/></Response>", "no-answer", "false"),
    ],
    ids=["accepted", "declined"],
)
def test_the_nouns_url_is_played_to_the_callee_before_the_bridge(
    switch: SwitchProcess, twiml_server: TwimlServer, whisper: str, status: str, bridged: str
) -> None:
    user = f"dial-whisper-{status}"
    uas = SippUas(str(SELFCHECK / "uas-answer-expect-bye.xml"), timeout=25)
    twiml_server.on_user(
        user,
        f'<Response><Dial action="/wh-done/{user}" timeout="10">'
        f'<Sip url="/whisper/{user}">sip:callee@{uas.target}</Sip></Dial></Response>',
    )
    twiml_server.route(f"/whisper/{user}", whisper)
    twiml_server.route(f"/wh-done/{user}", HANGUP)
    _call(switch, user, uas, hold_ms=4000, switch_hangs_up=bridged == "false")
    [done] = twiml_server.wait_for_requests(1, path=f"/wh-done/{user}", timeout=15)
    [asked] = twiml_server.wait_for_requests(1, path=f"/whisper/{user}", timeout=5)
    assert (done.params["DialCallStatus"], done.params["DialBridged"]) == (status, bridged)
    # The whisper is requested for the callee's leg, which is a child of the caller.
    assert asked.params["CallSid"] == done.params["DialCallSid"]
    assert asked.params["ParentCallSid"] == done.params["CallSid"]
    assert asked.params["Direction"] == "outbound-dial"


@pytest.mark.parametrize(("mode", "channels"), [("record-from-answer", 1), ("record-from-answer-dual", 2)])
def test_dial_records_the_bridge(
    switch: SwitchProcess, twiml_server: TwimlServer, mode: str, channels: int
) -> None:
    user = f"dial-{mode}"
    uas = SippUas(str(SELFCHECK / "uas-answer-expect-bye.xml"), timeout=25)
    twiml_server.on_user(
        user,
        f'<Response><Dial action="/rec-done/{user}" record="{mode}" recordingStatusCallback="/rec-cb/{user}"'
        f' recordingStatusCallbackEvent="in-progress completed">'
        f"<Sip>sip:callee@{uas.target}</Sip></Dial></Response>",
    )
    twiml_server.route(f"/rec-done/{user}", HANGUP)
    twiml_server.route(f"/rec-cb/{user}", "")
    _call(switch, user, uas)
    [done] = twiml_server.wait_for_requests(1, path=f"/rec-done/{user}", timeout=15)
    assert done.params["DialCallStatus"] == "completed"
    sid = done.params["RecordingSid"]
    assert sid.startswith("RE") and len(sid) == 34
    assert done.params["RecordingUrl"].endswith(f"/Recordings/{sid}")
    assert int(done.params["RecordingDuration"]) >= 1
    callbacks = twiml_server.wait_for_requests(2, path=f"/rec-cb/{user}", timeout=10)
    assert [c.params["RecordingStatus"] for c in callbacks] == ["in-progress", "completed"]
    completed = callbacks[1].params
    assert completed["RecordingSid"] == sid and completed["RecordingSource"] == "DialVerb"
    assert completed["RecordingChannels"] == str(channels) and completed["CallSid"] == done.params["CallSid"]
    with wave.open(str(switch.data_dir / "recordings" / f"{sid}.wav"), "rb") as wav:
        assert wav.getnchannels() == channels and wav.getframerate() == 8000
        assert wav.getnframes() >= 8000  # at least the 1 s the action reports
    # The store has it: the REST API serves the recording (public recordings are the default).
    with urllib.request.urlopen(done.params["RecordingUrl"] + ".wav", timeout=5) as response:
        body = response.read()
    assert body[:4] == b"RIFF" and len(body) > 16000


RINGING_UAS = Path(__file__).parents[1] / "api" / "uas-ring-answer-expect-bye.xml"


def test_answer_on_bridge_keeps_the_caller_unanswered_with_early_media(
    switch: SwitchProcess, twiml_server: TwimlServer
) -> None:
    user = "dial-answer-on-bridge"
    uas = SippUas(str(RINGING_UAS), timeout=25)
    twiml_server.on_user(
        user,
        f'<Response><Dial action="/aob-done" answerOnBridge="true" ringTone="uk">'
        f"<Sip>sip:callee@{uas.target}</Sip></Dial></Response>",
    )
    twiml_server.route("/aob-done", HANGUP)
    result = run_sipp(
        "uac-invite-expect-183-then-200.xml", switch.target, "udp", service=user,
        keys={"rtp_port": free_tcp_port()}, extra_args=["-d", "1000"], timeout=20,
    )  # fmt: skip
    callee = uas.finish()
    assert result.ok, why(result, switch)
    assert callee.ok, why(callee, switch)
    [done] = twiml_server.wait_for_requests(1, path="/aob-done", timeout=10)
    assert (done.params["DialCallStatus"], done.params["DialBridged"]) == ("completed", "true")


def test_record_from_ringing_holds_the_ring_tone(switch: SwitchProcess, twiml_server: TwimlServer) -> None:
    """record-from-ringing-dual starts with the ring tone: the caller's side hears 440 + 480 Hz (us) first."""
    user = "dial-record-ringing"
    uas = SippUas(str(RINGING_UAS), timeout=25)
    twiml_server.on_user(
        user,
        f'<Response><Dial action="/rr-done" record="record-from-ringing-dual" ringTone="us">'
        f"<Sip>sip:callee@{uas.target}</Sip></Dial></Response>",
    )
    twiml_server.route("/rr-done", HANGUP)
    _call(switch, user, uas, hold_ms=3500)
    [done] = twiml_server.wait_for_requests(1, path="/rr-done", timeout=15)
    assert done.params["DialCallStatus"] == "completed"
    with wave.open(str(switch.data_dir / "recordings" / f"{done.params['RecordingSid']}.wav"), "rb") as wav:
        assert wav.getnchannels() == 2
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    heard = frames[:8000, 1].astype(np.float64)  # the first second of what the caller heard
    spectrum = np.abs(np.fft.rfft(heard * np.hanning(heard.size)))
    freqs = np.fft.rfftfreq(heard.size, 1 / 8000)

    def band(hz: float) -> float:
        return float(spectrum[np.abs(freqs - hz) < 10].max())

    assert min(band(440.0), band(480.0)) > 20 * band(1000.0)
