"""Call control over real sockets: hold and resume by re-INVITE, no common codec, and shutdown by signal."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.conftest import start_switch
from tests.e2e.test_first_call import (
    SAY_TEXT,
    assert_paced_g711,
    assert_says,
    call_and_listen,
    say,
    why,
)
from tests.helpers.audio import compare, read_wav, write_wav
from tests.helpers.baresip import Baresip
from tests.helpers.ports import free_tcp_port
from tests.helpers.rtp_sink import RtpSink
from tests.helpers.sipp import SippResult, run_sipp
from tests.helpers.switch_process import SwitchProcess
from tests.helpers.twiml_server import TwimlServer

pytestmark = pytest.mark.e2e

LONG_SAY = "This prompt is long on purpose. " * 8


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_hold_stops_the_switchs_rtp_and_resume_restarts_it(
    transport: str, switch: SwitchProcess, twiml_server: TwimlServer
) -> None:
    user = f"hold-{transport}"
    twiml_server.on_user(user, say(LONG_SAY))
    with RtpSink(answer_with_silence=False) as sink:
        result = run_sipp(
            "uac-reinvite-hold-expect-200.xml",
            switch.target,
            transport,
            service=user,
            keys={"rtp_port": sink.port},  # talk 1 s, hold 1.5 s, talk 1 s
            timeout=20,
        )
        sink.wait_quiet(quiet=0.3, timeout=2.0)
        stream = sink.stream()
    assert result.ok, why(result, switch)  # the 200s carried a=recvonly, then a=sendrecv
    arrivals = np.array([packet.arrival for packet in stream.packets])
    assert arrivals.size > 50, f"only {arrivals.size} packets"
    gaps = np.diff(arrivals)
    longest = float(gaps.max())
    # On hold (1.5 s) nothing is sent; before and after, a packet every 20 ms.
    assert 1.2 <= longest <= 2.5, f"longest gap in RTP {longest:.3f} s"
    gap_at = int(gaps.argmax())
    assert gap_at >= 30, "RTP flowed for the second before the hold"
    assert arrivals.size - gap_at - 1 >= 30, "RTP did not resume after the hold"
    packets = stream.packets
    assert packets[gap_at + 1].marker, "the first packet after resuming carries the marker bit"


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_no_common_codec_gets_488(transport: str, switch: SwitchProcess) -> None:
    result = run_sipp(
        "uac-invite-g729-expect-488.xml",
        switch.target,
        transport,
        service="g729-only",
        keys={"rtp_port": free_tcp_port()},
        timeout=10,
    )
    assert result.ok, why(result, switch)


def _long_call(switch: SwitchProcess, user: str, results: list[SippResult]) -> None:
    with RtpSink(answer_with_silence=True) as sink:
        results.append(
            run_sipp(
                "uac-invite-say-expect-bye.xml",
                switch.target,
                "udp",
                service=user,
                keys={"rtp_port": sink.port},
                timeout=30,
            )
        )


def test_sigterm_drains_then_hangs_up_and_exits(twiml_server: TwimlServer) -> None:
    twiml_server.on_user("drain", say(LONG_SAY))
    process = start_switch(twiml_server.url("/voice"), extra_args=["--drain-timeout", "1.5"])
    try:
        results: list[SippResult] = []
        caller = threading.Thread(target=_long_call, args=(process, "drain", results))
        caller.start()
        assert process.wait_for_log("call start", 10), process.log
        assert process._process is not None
        process._process.send_signal(signal.SIGTERM)
        assert process.wait_for_log("draining", 5), process.log
        refused = run_sipp(
            "uac-invite-expect-503.xml",
            process.target,
            "udp",
            service="late",
            keys={"rtp_port": free_tcp_port()},
            timeout=10,
        )
        assert refused.ok, why(refused, process)
        caller.join(30)
        assert results and results[0].ok, why(results[0], process) if results else process.log
        # The call in progress went on for the drain timeout, then got the switch's BYE.
        assert "reason=hangup" in process.log
        assert process._process.wait(10) == 0
        assert "switch stopped" in process.log
    finally:
        process.stop()


def test_sigint_hangs_up_every_call_at_once(twiml_server: TwimlServer) -> None:
    twiml_server.on_user("interrupt", say(LONG_SAY))
    process = start_switch(twiml_server.url("/voice"), extra_args=["--drain-timeout", "60"])
    try:
        results: list[SippResult] = []
        callers = [
            threading.Thread(target=_long_call, args=(process, "interrupt", results)) for _ in range(3)
        ]
        for caller in callers:
            caller.start()
        assert process.wait_for_log("call start", 10, count=3), process.log
        time.sleep(1.0)  # let the three answer (the document is fetched, then 200 OK)
        assert process._process is not None
        process._process.send_signal(signal.SIGINT)
        for caller in callers:
            caller.join(15)
        assert len(results) == 3 and all(r.ok for r in results), "\n".join(why(r, process) for r in results)
        assert process._process.wait(10) == 0
        assert len(process.log_lines("call end")) == 3
    finally:
        process.stop()


def test_crlf_keepalives_are_answered_over_udp_and_tcp(switch: SwitchProcess) -> None:
    """RFC 5626 §4.4.1: a phone behind NAT pings with CRLF CRLF and the switch pongs with CRLF."""
    host, port = switch.host, switch.sip_port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(3)
        udp.sendto(b"\r\n\r\n", (host, port))
        assert udp.recvfrom(100)[0] == b"\r\n"
    with socket.create_connection((host, port), timeout=3) as tcp:
        tcp.sendall(b"\r\n\r\n")
        assert tcp.recv(100) == b"\r\n"
        local = tcp.getsockname()
        tcp.sendall(
            (
                f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/TCP {local[0]}:{local[1]};branch=z9hG4bK-keepalive-1\r\n"
                f"From: <sip:ka@{local[0]}>;tag=ka1\r\nTo: <sip:{host}>\r\nCall-ID: keepalive-1\r\n"
                "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            ).encode()
        )
        assert tcp.recv(4096).startswith(b"SIP/2.0 200 "), "the connection still carries SIP after a ping"


def test_echo_sends_the_callers_audio_back(
    baresip_path: str, switch: SwitchProcess, twiml_server: TwimlServer, tmp_path: Path
) -> None:
    """<Echo>: a softphone sending a chirp hears the same chirp back."""
    twiml_server.on_user("echo", "<Response><Echo/></Response>")
    t = np.arange(8000 * 4) / 8000
    chirp = (8000 * np.sin(2 * np.pi * (300 * t + 150 * t * t))).astype(np.int16)  # 300 Hz -> 1500 Hz
    source = write_wav(tmp_path / "chirp.wav", np.concatenate([chirp, np.zeros(8000 * 20, np.int16)]))
    with Baresip(source, user="dave", workdir=tmp_path) as phone:
        phone.dial(switch.uri("echo"))
        phone.wait_event("CALL_ESTABLISHED", 10)
        time.sleep(6.0)  # the chirp goes out and comes back
        phone.hangup()
        phone.wait_event("CALL_CLOSED", 10)
    (heard_path,) = phone.heard()
    _, heard = read_wav(heard_path)
    match = compare(chirp, heard)
    # baresip's recording starts with the first packet it receives, so the echo sits near its start.
    assert 0 <= match.lag < 8000, f"echo found {match.lag} samples into the recording"
    assert match.overlap >= 0.9 * chirp.size, f"only {match.overlap} samples of the chirp came back"
    # One alignment for 4 s: the jitter buffer may move its delay by a frame mid-way (seen: 0.88 then).
    assert match.correlation > 0.8, f"echo does not match what was sent: {match}"


def test_the_switch_sends_the_packet_time_the_caller_asks_for(
    switch: SwitchProcess, twiml_server: TwimlServer
) -> None:
    twiml_server.on_user("ptime30", say("Thirty millisecond packets."))
    with RtpSink(answer_with_silence=True) as sink:
        result = run_sipp(
            "uac-invite-ptime30-expect-bye.xml",
            switch.target,
            "udp",
            service="ptime30",
            keys={"rtp_port": sink.port},
            timeout=20,
        )
        sink.wait_quiet(quiet=0.3, timeout=2.0)
        stream = sink.stream()
    assert result.ok, why(result, switch)
    assert stream.count > 20
    assert {len(p.payload) for p in stream.packets} == {240}
    assert set(stream.timestamp_steps().tolist()) == {240}
    mean = float(stream.arrival_steps_ms().mean())
    assert 27.0 <= mean <= 33.0, f"mean packet spacing {mean:.2f} ms"


def test_a_switch_with_media_workers_carries_the_call(twiml_server: TwimlServer) -> None:
    """`--media-workers 1`: the media engine runs in a worker process behind the same interface."""
    twiml_server.on_user("workers", say(SAY_TEXT))
    process = start_switch(twiml_server.url("/voice"), extra_args=["--media-workers", "1"])
    try:
        assert process._process is not None
        children = (
            Path(f"/proc/{process._process.pid}/task/{process._process.pid}/children").read_text().split()
        )
        assert children, "no media worker process was started"
        result, stream = call_and_listen(process, "workers", "udp")
        assert result.ok, why(result, process)
        assert_paced_g711(stream, min_seconds=2.0)
        assert_says(stream.pcm(), SAY_TEXT)
    finally:
        process.stop()
