"""A caller whose offer puts G.722 or Opus first is answered in that codec and hears the Say in it
(issue 4: "Offer and accept PCMU, PCMA, G722/8000, opus/48000/2 and telephone-event")."""

from __future__ import annotations

import numpy as np
import pytest

from tests.e2e.test_first_call import assert_says, say, tts, why
from tests.helpers.rtp_sink import RtpSink, RtpStream
from tests.helpers.sipp import run_sipp
from tests.helpers.switch_process import SwitchProcess
from tests.helpers.twiml_server import TwimlServer
from voicecodecs.g722 import G722Decoder
from voicecodecs.opus import OpusDecoder
from voicecodecs.resample import resample

pytestmark = pytest.mark.e2e

SAY_TEXT = "Wideband audio, sixteen thousand samples a second."


def _g722_pcm(stream: RtpStream) -> np.ndarray:
    octets = np.frombuffer(b"".join(p.payload for p in stream.packets), dtype=np.uint8)
    return resample(G722Decoder(1).decode(octets.reshape(1, -1))[0], 16000, 8000)


def _opus_pcm(stream: RtpStream) -> np.ndarray:
    decoder = OpusDecoder()
    pcm = np.concatenate([decoder.decode(p.payload) for p in stream.packets])
    return resample(pcm, 48000, 8000)


@pytest.mark.parametrize(
    ("codec", "payload_type", "rtpmap", "clock_step", "decode"),
    [("g722", 9, "G722/8000", 160, _g722_pcm), ("opus", 96, "opus/48000/2", 960, _opus_pcm)],
    ids=["g722", "opus"],
)
def test_a_wideband_first_offer_is_answered_and_heard_in_that_codec(
    switch: SwitchProcess,
    twiml_server: TwimlServer,
    codec: str,
    payload_type: int,
    rtpmap: str,
    clock_step: int,
    decode: object,
) -> None:
    user = f"wideband-{codec}"
    twiml_server.on_user(user, say(SAY_TEXT))
    with RtpSink() as sink:
        result = run_sipp(
            "uac-invite-wideband-first-expect-bye.xml",
            switch.target,
            "udp",
            service=user,
            keys={"rtp_port": sink.port, "first_pt": payload_type, "first_codec": rtpmap},
            timeout=25,
        )
        sink.wait_quiet(quiet=0.3, timeout=2.0)
        stream = sink.stream()
    assert result.ok, why(result, switch)
    answer = result.messages.split("SIP/2.0 200 OK", 1)[1]
    assert "m=audio" in answer and f"a=rtpmap:{payload_type} {rtpmap}" in answer, answer[:1500]
    assert stream.payload_types == {payload_type}, stream.payload_types
    assert set(stream.seq_steps().tolist()) == {1}
    assert set(stream.timestamp_steps().tolist()) == {clock_step}  # RFC 3551: G.722 at 8000; Opus at 48000
    expected = tts(SAY_TEXT).size / 8000
    assert stream.count >= (expected - 0.2) * 50, (stream.count, expected)
    assert callable(decode)
    assert_says(decode(stream), SAY_TEXT)
