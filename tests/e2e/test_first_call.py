"""First call end to end: SIPp and baresip call a real switch process over loopback.

One switch serves every test (session fixture); each test dials its own To user, which the TwiML server
answers with that test's document. Audio is checked against espeak-ng renderings of the same text.
"""

from __future__ import annotations

import asyncio
import functools
import re
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from tests.e2e.conftest import start_switch
from tests.helpers.audio import read_wav, speech_match, write_wav
from tests.helpers.baresip import Baresip
from tests.helpers.ports import free_tcp_port
from tests.helpers.rtp_sink import RtpSink, RtpStream
from tests.helpers.sipp import SippResult, run_sipp
from tests.helpers.switch_process import SwitchProcess
from tests.helpers.twiml_server import Reply, TwimlServer

pytestmark = pytest.mark.e2e

TRANSPORTS = ["udp", "tcp"]
ERROR_PROMPT = "We are sorry, an application error has occurred. Goodbye."
SAY_TEXT = "Hello from the switch. This is the first call, carried end to end."
HEX32 = re.compile(r"^[0-9a-f]{32}$")


@functools.cache
def tts(text: str) -> NDArray[np.int16]:
    """The switch's own rendering of `text` (8 kHz int16), the reference for what a caller should hear."""
    from switch.media.tts import TextToSpeech

    return np.array(asyncio.run(TextToSpeech().synthesize(text)), dtype=np.int16)


def why(result: SippResult, switch: SwitchProcess) -> str:
    """SIPp's account of a failed call followed by the end of the switch's log."""
    return f"{result.describe()}\n--- switch log ---\n{switch.log[-4000:]}"


def say(text: str) -> str:
    return f"<Response><Say>{text}</Say></Response>"


def call_and_listen(
    switch: SwitchProcess, user: str, transport: str, *, timeout: float = 25.0
) -> tuple[SippResult, RtpStream]:
    """Place a call that the switch ends with BYE; return SIPp's result and the RTP stream it sent us."""
    with RtpSink(answer_with_silence=True) as sink:
        result = run_sipp(
            "uac-invite-say-expect-bye.xml",
            switch.target,
            transport,
            service=user,
            keys={"rtp_port": sink.port},
            timeout=timeout,
        )
        sink.wait_quiet(quiet=0.3, timeout=2.0)
    return result, sink.stream()


def assert_paced_g711(stream: RtpStream, min_seconds: float) -> None:
    assert stream.count >= min_seconds * 50, f"only {stream.count} RTP packets"
    assert len(stream.payload_types) == 1 and stream.payload_types <= {0, 8}, stream.payload_types
    assert set(stream.seq_steps().tolist()) == {1}, "sequence numbers not continuous"
    assert set(stream.timestamp_steps().tolist()) == {160}, "timestamps do not step by 160 (20 ms)"
    assert {len(p.payload) for p in stream.packets} == {160}
    mean = float(stream.arrival_steps_ms().mean())
    assert 18.0 <= mean <= 22.0, f"mean packet spacing {mean:.2f} ms"


def assert_says(heard: NDArray[np.int16], text: str, *, seconds: float | None = None) -> None:
    """`heard` carries the TTS of `text` (its first `seconds` when given): envelope and spectrum correlate
    above 0.9 after alignment. espeak-ng renders differ sample by sample between renders (see SpeechMatch),
    so the waveform correlation is not asserted."""
    reference = tts(text) if seconds is None else tts(text)[: round(seconds * 8000)]
    match = speech_match(reference, heard)
    assert match.envelope > 0.9 and match.spectral > 0.9, f"audio is not the TTS of {text!r}: {match}"
    assert match.overlap >= 0.9 * reference.size, f"only {match.overlap} of {reference.size} samples heard"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_say_call_streams_the_prompt_then_the_switch_hangs_up(
    transport: str, switch: SwitchProcess, twiml_server: TwimlServer
) -> None:
    user = f"say-{transport}"
    twiml_server.on_user(user, say(SAY_TEXT))
    result, stream = call_and_listen(switch, user, transport)
    assert result.ok, why(result, switch)
    assert "BYE sip:" in result.messages  # the switch hung up, the caller answered 200
    expected = int(np.ceil(tts(SAY_TEXT).size / 160))
    assert expected - 2 <= stream.count <= expected + 50, (stream.count, expected)
    assert_paced_g711(stream, min_seconds=expected / 50 - 0.1)
    assert_says(stream.pcm(), SAY_TEXT)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_options_gets_200(transport: str, switch: SwitchProcess) -> None:
    result = run_sipp("uac-options-expect-200.xml", switch.target, transport, service="options", timeout=10)
    assert result.ok, why(result, switch)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cancel_while_ringing_gets_487(
    transport: str, switch: SwitchProcess, twiml_server: TwimlServer
) -> None:
    user = f"slow-{transport}"
    twiml_server.on_user(user, Reply(say("Too late."), delay=2.0))
    result = run_sipp(
        "uac-cancel-expect-487.xml",
        switch.target,
        transport,
        service=user,
        keys={"rtp_port": free_tcp_port()},
        timeout=10,
    )
    assert result.ok, why(result, switch)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("reason", "code"), [("busy", 486), ("rejected", 603)])
def test_reject_answers_with_its_status(
    transport: str, reason: str, code: int, switch: SwitchProcess, twiml_server: TwimlServer
) -> None:
    user = f"reject-{reason}-{transport}"
    twiml_server.on_user(user, f'<Response><Reject reason="{reason}"/></Response>')
    result = run_sipp(
        f"uac-reject-expect-{code}.xml",
        switch.target,
        transport,
        service=user,
        keys={"rtp_port": free_tcp_port()},
        timeout=10,
    )
    assert result.ok, why(result, switch)


def test_webhooks_report_ringing_then_in_progress(switch: SwitchProcess, twiml_server: TwimlServer) -> None:
    twiml_server.on_user(
        "hooks", '<Response><Say>Checking.</Say><Redirect method="POST">/hooks-next</Redirect></Response>'
    )
    twiml_server.route("/hooks-next", "<Response><Hangup/></Response>")
    result, _ = call_and_listen(switch, "hooks", "udp")
    assert result.ok, why(result, switch)
    first = twiml_server.requests(path="/voice", user="hooks")
    second = twiml_server.requests(path="/hooks-next")
    assert len(first) == 1 and len(second) == 1, (first, second)
    ringing, answered = first[0].params, second[0].params
    assert first[0].method == "POST" and second[0].method == "POST"
    assert ringing["CallStatus"] == "ringing"
    assert answered["CallStatus"] == "in-progress"
    call_id = re.search(r"^\s*Call-ID:\s*(\S+)", result.messages, re.M)
    assert call_id is not None
    for params in (ringing, answered):
        assert params["CallSid"].startswith("CA") and HEX32.match(params["CallSid"][2:]), params
        assert params["AccountSid"].startswith("AC") and HEX32.match(params["AccountSid"][2:]), params
        assert params["ApiVersion"] == "2010-04-01"
        assert params["Direction"] == "inbound"
        assert "sipp@127.0.0.1" in params["From"]
        assert "hooks@" in params["To"]
        assert params["SipCallId"] == call_id.group(1)
    assert ringing["CallSid"] == answered["CallSid"]
    assert ringing["CallSid"] in switch.call_sids()


def test_application_errors_play_the_error_prompt_and_hang_up(
    switch: SwitchProcess, twiml_server: TwimlServer
) -> None:
    dead = f"http://127.0.0.1:{free_tcp_port()}/nothing-listens-here"
    twiml_server.on_user("error-dead-url", f"<Response><Redirect>{dead}</Redirect></Response>")
    twiml_server.on_user("error-500", Reply("<Response><Say>never</Say></Response>", status=500))
    twiml_server.on_user("error-malformed", "<Response><Say>unclosed</Response")
    users = ["error-dead-url", "error-500", "error-malformed"]
    with ThreadPoolExecutor(len(users)) as pool:
        outcomes = dict(zip(users, pool.map(lambda u: call_and_listen(switch, u, "udp"), users), strict=True))
    for user, (result, stream) in outcomes.items():
        assert result.ok, f"{user}: {why(result, switch)}"
        assert_paced_g711(stream, min_seconds=2.0)
        assert_says(stream.pcm(), ERROR_PROMPT)


def test_demo_dialplan_answers_without_a_twiml_url(sipp_path: str) -> None:
    demo = ET.fromstring(resources.files("switch").joinpath("dialplans/demo.xml").read_text())
    first_say = demo.findtext("Say")
    assert first_say
    process = start_switch(None)
    try:
        with RtpSink(answer_with_silence=True) as sink:
            result = run_sipp(
                "uac-invite-hangup-expect-200.xml",
                process.target,
                "udp",
                service="anyone",
                keys={"rtp_port": sink.port},
                timeout=15,
                extra_args=("-d", "4500"),
            )
            sink.wait_quiet(quiet=0.3, timeout=2.0)
    finally:
        code = process.stop()
    assert result.ok, why(result, process)
    stream = sink.stream()
    assert_paced_g711(stream, min_seconds=3.5)
    assert_says(stream.pcm(), first_say, seconds=3.0)
    assert code == 0, f"switch exit code {code} after SIGTERM\n{process.log[-4000:]}"


def test_baresip_softphone_hears_the_prompt(
    baresip_path: str, switch: SwitchProcess, twiml_server: TwimlServer, tmp_path: Path
) -> None:
    twiml_server.on_user("softphone", say(SAY_TEXT))
    quiet = write_wav(tmp_path / "quiet.wav", np.zeros(8000 * 20, dtype=np.int16))
    with Baresip(quiet, user="carol", workdir=tmp_path) as phone:
        phone.dial(switch.uri("softphone"))
        phone.wait_event("CALL_ESTABLISHED", 10)
        phone.wait_event("CALL_CLOSED", 20)
    recordings = phone.heard()
    assert len(recordings) == 1, list(phone.records.iterdir())
    rate, heard = read_wav(recordings[0])
    assert rate == 8000
    assert_says(heard, SAY_TEXT)
