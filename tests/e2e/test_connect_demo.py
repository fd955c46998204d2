"""The shipped demo dialplan (no --twiml-url): its extensions echo (1), take a message (2), queue (3) with an
agent (5) who takes the caller, and hold a conference room (4)."""

from __future__ import annotations

import threading
import wave

import numpy as np
import pytest

from tests.e2e.conftest import start_switch
from tests.e2e.test_connect_conference import ToneLeg, level_at
from tests.e2e.test_first_call import why
from tests.helpers.ports import free_tcp_port
from tests.helpers.sipp import SippResult, run_sipp

pytestmark = pytest.mark.e2e


def test_demo_extensions() -> None:
    switch = start_switch(None)
    results: dict[str, SippResult] = {}

    def place(extension: str, scenario: str, port: int, hold_ms: int) -> None:
        extra = ["-d", str(hold_ms)] if hold_ms else []
        results[extension] = run_sipp(scenario, switch.target, "udp", service=extension,
                                      keys={"rtp_port": port}, extra_args=extra, timeout=25)  # fmt: skip

    echo, message = ToneLeg(700.0), ToneLeg(900.0)
    try:
        calls = [
            threading.Thread(target=place, args=("1", "uac-invite-hangup-expect-200.xml", echo.port, 9000)),
            threading.Thread(
                target=place, args=("2", "uac-invite-hangup-expect-200.xml", message.port, 10000)
            ),
            threading.Thread(target=place, args=("3", "uac-invite-say-expect-bye.xml", free_tcp_port(), 0)),
            threading.Thread(
                target=place, args=("4", "uac-invite-hangup-expect-200.xml", free_tcp_port(), 4000)
            ),
        ]
        for thread in calls:
            thread.start()
        assert switch.wait_for_log("conference join", 15), switch.log[-3000:]
        assert switch.wait_for_log("enqueue CallSid", 15), switch.log[-3000:]
        place("5", "uac-invite-hangup-expect-200.xml", free_tcp_port(), 9000)
        for thread in calls:
            thread.join(40)
    finally:
        switch.stop()
    heard_echo = echo.stop()
    message.stop()
    assert len(results) == 5 and all(r.ok for r in results.values()), "\n".join(
        why(r, switch) for r in results.values()
    )
    # 1: the caller hears its own tone back once the prompt is over.
    tail = heard_echo[-3 * 8000 :]
    assert level_at(np.concatenate([tail, tail]), 700.0) > 20 * level_at(np.concatenate([tail, tail]), 900.0)
    # 2: the message is kept as a recording with the caller's tone in it.
    recordings = sorted((switch.data_dir / "recordings").glob("RE*.wav"))
    assert len(recordings) == 1
    with wave.open(str(recordings[0]), "rb") as wav:
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert pcm.size >= 8000 and level_at(np.tile(pcm, 3), 900.0) > 20 * level_at(np.tile(pcm, 3), 700.0)
    # 3 and 5: the agent took the waiting caller and they were bridged.
    [enqueued] = switch.log_lines("enqueue CallSid=")
    [ended] = switch.log_lines("Enqueue ended")
    caller = enqueued.split("CallSid=")[1].split()[0]
    assert f"CallSid={caller} QueueResult=bridged" in ended, switch.log[-3000:]
