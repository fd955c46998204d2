"""The harness checks itself: baresip against baresip, the helpers on known input, and each caller scenario
against a SIPp UAS playing the switch's part over UDP and TCP, so that a failure in test_first_call.py points
at the switch, not at the harness."""

from __future__ import annotations

import asyncio
import socket
import struct
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from tests.helpers.audio import (
    align,
    compare,
    normalized_correlation,
    read_wav,
    speech_match,
    ulaw_round_trip,
    write_wav,
)
from tests.helpers.baresip import Baresip
from tests.helpers.rtp_sink import RtpSink, parse_rtp
from tests.helpers.sipp import SCENARIOS, SippResult, SippUas, run_sipp
from tests.helpers.twiml_server import Reply, TwimlServer, user_of
from voicecodecs import g711

pytestmark = pytest.mark.e2e

# (caller scenario, the SIPp UAS that plays the switch's part, UAS keys, extra caller args)
PAIRS: dict[str, tuple[str, str, dict[str, str | int], tuple[str, ...]]] = {
    "say-expect-bye": ("uac-invite-say-expect-bye.xml", "selfcheck/uas-answer-then-bye.xml", {}, ()),
    "hangup-expect-200": (
        "uac-invite-hangup-expect-200.xml",
        "selfcheck/uas-answer-expect-bye.xml",
        {},
        ("-d", "300"),
    ),
    "cancel-expect-487": ("uac-cancel-expect-487.xml", "selfcheck/uas-ring-expect-cancel.xml", {}, ()),
    "reject-expect-486": ("uac-reject-expect-486.xml", "selfcheck/uas-reject-486.xml", {}, ()),
    "reject-expect-603": ("uac-reject-expect-603.xml", "selfcheck/uas-reject-603.xml", {}, ()),
    "options-expect-200": ("uac-options-expect-200.xml", "selfcheck/uas-options-200.xml", {}, ()),
}


def _pair(name: str, transport: str, workdir: Path) -> tuple[SippResult, SippResult]:
    caller, callee, keys, extra = PAIRS[name]
    uas = SippUas(str(SCENARIOS / callee), transport, keys=keys, timeout=10, workdir=workdir)
    try:
        result = run_sipp(
            caller,
            uas.target,
            transport,
            service="selfcheck",
            keys={"rtp_port": 40000},
            timeout=10,
            extra_args=extra,
            workdir=workdir,
        )
    finally:
        peer = uas.finish()
    return result, peer


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_every_caller_scenario_completes_against_its_sipp_peer(
    transport: str, sipp_path: str, tmp_path: Path
) -> None:
    with ThreadPoolExecutor(len(PAIRS)) as pool:
        futures = {name: pool.submit(_pair, name, transport, tmp_path) for name in PAIRS}
        results = {name: future.result() for name, future in futures.items()}
    for name, (caller, peer) in results.items():
        assert caller.ok, f"{name}: {caller.describe()}"
        assert caller.successful_calls == 1 and caller.failed_calls == 0, name
        assert peer.ok, f"{name} (peer): {peer.describe()}"


def test_a_caller_scenario_fails_when_the_peer_answers_otherwise(sipp_path: str, tmp_path: Path) -> None:
    # The 486 caller against a UAS that sends 603 must fail: the scenarios really check the status code.
    uas = SippUas(
        str(SCENARIOS / "selfcheck/uas-reject-603.xml"),
        "udp",
        timeout=4,
        workdir=tmp_path,
    )
    try:
        result = run_sipp(
            "uac-reject-expect-486.xml",
            uas.target,
            "udp",
            service="x",
            keys={"rtp_port": 40000},
            timeout=3,
            workdir=tmp_path,
        )
    finally:
        uas.kill()
    assert not result.ok
    assert result.exit_code != 0
    assert result.failed_calls == 1
    assert "SIP/2.0 603 Rejected" in result.messages


def test_baresip_callee_hears_what_the_baresip_caller_sends(baresip_path: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    # 2 s of band-limited noise bursts: speech-like enough for PESQ, deterministic for the assertion.
    noise = rng.normal(0, 4000, 16000)
    envelope = (np.sin(np.arange(16000) * 2 * np.pi * 3 / 8000) > 0).astype(np.float64)
    source = np.convolve(noise * envelope, np.ones(4) / 4, mode="same").astype(np.int16)
    talk = write_wav(tmp_path / "talk.wav", source, pad_seconds=0.5)
    quiet = write_wav(tmp_path / "quiet.wav", np.zeros(8000 * 10, dtype=np.int16))
    with (
        Baresip(quiet, user="bob", auto_answer=True, workdir=tmp_path) as callee,
        Baresip(talk, workdir=tmp_path) as caller,
    ):
        caller.dial(callee.uri)
        caller.wait_event("CALL_ESTABLISHED")
        assert caller.wait_event("CALL_CLOSED", 15)["param"] == "end of file"
        callee.wait_event("CALL_CLOSED", 5)
    assert len(callee.heard()) == 1
    rate, heard = read_wav(callee.heard()[0])
    assert rate == 8000
    result = compare(ulaw_round_trip(source), heard)
    assert result.correlation > 0.99, result
    assert result.overlap == source.size


def test_align_finds_a_known_delay_and_correlation_rejects_other_audio() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(0, 1000, 4000)
    delayed = np.concatenate([np.zeros(321), reference, np.zeros(50)])
    aligned = align(reference, delayed)
    assert aligned.lag == 321
    assert normalized_correlation(aligned.reference, aligned.degraded) == pytest.approx(1.0)
    early = align(reference, reference[100:])
    assert early.lag == -100
    assert compare(reference, rng.normal(0, 1000, 4000)).correlation < 0.2


def test_rtp_sink_records_and_decodes_what_arrives() -> None:
    payload = g711.ulaw_encode(np.full(160, 1000, dtype=np.int16)).tobytes()
    with RtpSink() as sink, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for i in range(5):
            header = struct.pack("!BBHII", 0x80, 0, 65534 + i & 0xFFFF, 4294967000 + 160 * i & 0xFFFFFFFF, 42)
            sender.sendto(header + payload, ("127.0.0.1", sink.port))
        sender.sendto(b"\x81\xc8junk", ("127.0.0.1", sink.port))  # RTCP, left out
        assert sink.wait_quiet(quiet=0.2, timeout=5) == 6
    stream = sink.stream()
    assert stream.count == 5
    assert stream.seq_steps().tolist() == [1, 1, 1, 1]
    assert stream.timestamp_steps().tolist() == [160, 160, 160, 160]
    assert [p.seq for p in stream.packets] == [65534, 65535, 0, 1, 2]
    pcm = stream.pcm()
    assert pcm.size == 800
    assert set(pcm.tolist()) == {int(g711.ulaw_decode(g711.ulaw_encode(np.array([1000], np.int16)))[0])}
    with pytest.raises(ValueError, match="invalid version 1"):
        parse_rtp(b"\x40" + bytes(11))


def test_twiml_server_dispatches_by_to_user_and_records_form_params() -> None:
    with TwimlServer() as server:
        server.dispatch_by_to("/voice")
        server.on_user("hello", "<Response><Say>Hi</Say></Response>")
        server.on_user("broken", Reply(status=500, body="boom", content_type="text/plain"))
        body = urllib.parse.urlencode({"To": "sip:hello@127.0.0.1:5", "CallSid": "CA1", "Blank": ""})
        request = urllib.request.Request(server.url("/voice"), data=body.encode(), method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
            assert response.read() == b"<Response><Say>Hi</Say></Response>"
        broken = urllib.parse.urlencode({"To": "<sip:broken@127.0.0.1>"}).encode()
        with pytest.raises(urllib.error.HTTPError) as failure:
            urllib.request.urlopen(urllib.request.Request(server.url("/voice"), data=broken), timeout=5)
        assert failure.value.code == 500
        failure.value.close()
        seen = server.wait_for_requests(2, path="/voice")
    assert [r.to_user for r in seen] == ["hello", "broken"]
    assert seen[0].method == "POST"
    assert seen[0].form == (("To", "sip:hello@127.0.0.1:5"), ("CallSid", "CA1"), ("Blank", ""))
    assert seen[0].headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert user_of("tel:+15551234") == "+15551234"


def test_speech_match_tells_a_re_render_from_another_sentence() -> None:
    from switch.media.tts import TextToSpeech

    async def render(*texts: str) -> list[NDArray[np.int16]]:
        return [await TextToSpeech().synthesize(t) for t in texts]

    first, other, again = asyncio.run(
        render(
            "We are sorry, an error has occurred.",
            "Goodbye and thanks.",
            "We are sorry, an error has occurred.",
        )
    )
    delayed = np.concatenate([np.zeros(1234, np.int16), ulaw_round_trip(again)])
    same = speech_match(first, delayed)
    assert same.envelope > 0.95 and same.spectral > 0.9, same
    assert abs(same.lag - 1234) <= 8, same
    different = speech_match(first, other)
    assert different.envelope < 0.7 and different.spectral < 0.7, different
