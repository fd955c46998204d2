"""The demo IVR (no --twiml-url): a welcome, a menu whose Gather action dispatches on the key with a TwiML
Bins template (``demo-option-{{Digits}}.xml``), "not an option" for a key it does not offer, and the queue's
wait document announcing the caller's position and the average wait from the template fields.

Each caller is SIPp for the signalling with the test's own RTP endpoint as its media: that endpoint answers
every packet of the switch with 20 ms of silence (symmetric RTP), presses keys as RFC 4733 events, and keeps
what it heard. Keys are pressed once the caller has heard a given length of audio, so a slow machine moves
the presses with the prompts."""

from __future__ import annotations

import asyncio
import functools
import socket
import struct
import threading
import time

import numpy as np
import pytest
from numpy.typing import NDArray

from tests.e2e.conftest import start_switch
from tests.e2e.test_first_call import why
from tests.helpers.audio import SpeechMatch, speech_match
from tests.helpers.sipp import SippResult, run_sipp
from voicecodecs import g711

pytestmark = pytest.mark.e2e

WELCOME = "Welcome to switch, a self hosted programmable voice switch."
MENU = "Press 1 for an echo test, 2 to leave a message, 3 to wait in the queue, or 4 for the conference room."
NOT_AN_OPTION = "Sorry, that is not an option."
ECHO = "Echo test. Speak, and you will hear yourself."
JOINING = "You are joining the queue. An agent will be with you shortly."
WAITING = "You are caller number 1 in line. The average wait is 0 seconds."
EVENT_PT = 101
EVENTS = "0123456789*#"


@functools.cache
def tts(text: str) -> NDArray[np.int16]:
    """The switch's own rendering of ``text`` at 8 kHz."""
    from switch.media.tts import TextToSpeech

    return np.array(asyncio.run(TextToSpeech().synthesize(text)), dtype=np.int16)


class KeypadPhone:
    """The media side of a caller: silence back for each packet heard, RFC 4733 keys on request."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.heard: list[bytes] = []
        self._keys: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def seconds_heard(self) -> float:
        return len(self.heard) * 0.02

    def press(self, key: str) -> None:
        with self._lock:
            self._keys.append(key)

    def press_after(self, key: str, seconds: float, timeout: float = 30.0) -> bool:
        """Press ``key`` once ``seconds`` of audio were heard; False when that much never came."""
        deadline = time.monotonic() + timeout
        while self.seconds_heard < seconds:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        self.press(key)
        return True

    def _run(self) -> None:
        seq, timestamp = 0, 0
        ssrc = 0x5EED0000 + self.port
        silence = g711.ulaw_encode(np.zeros(160, dtype=np.int16)).tobytes()
        event: tuple[int, int] | None = None  # (event code, packets sent so far)
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            if len(data) < 12 or data[1] & 0x7F != 0:
                continue
            self.heard.append(data[12:])
            if event is None:
                with self._lock:
                    if self._keys:
                        event = (EVENTS.index(self._keys.pop(0)), 0)
            if event is None:
                header = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)
                self.sock.sendto(header + silence, source)
                timestamp += 160
            else:
                code, sent = event
                end = sent >= 8
                marker = 0x80 if sent == 0 else 0
                duration = min(sent + 1, 9) * 160
                payload = struct.pack("!BBH", code, (0x80 if end else 0) | 10, duration)
                header = struct.pack(
                    "!BBHII", 0x80, marker | EVENT_PT, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc
                )
                for _ in range(3 if end else 1):  # the end packet three times (RFC 4733 §2.5.1.4)
                    self.sock.sendto(header + payload, source)
                if end:
                    event = None
                    timestamp += duration
                else:
                    event = (code, sent + 1)
            seq += 1

    def stop(self) -> NDArray[np.int16]:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        return g711.ulaw_decode(np.frombuffer(b"".join(self.heard), dtype=np.uint8))


def call(phone: KeypadPhone, target: str, user: str, hold_ms: int) -> SippResult:
    return run_sipp(
        "uac-invite-4733-hangup-expect-200.xml", target, "udp", service=user,
        keys={"rtp_port": phone.port}, extra_args=["-d", str(hold_ms)], timeout=hold_ms / 1000 + 20,
    )  # fmt: skip


def heard_well(match: SpeechMatch) -> bool:
    return match.envelope > 0.85 and match.spectral > 0.85


def seconds(text: str) -> float:
    return tts(text).size / 8000


def test_menu_keys_reach_their_options_and_a_wrong_key_is_not_an_option() -> None:
    switch = start_switch(None)
    menu_phone, queue_phone = KeypadPhone(), KeypadPhone()
    results: dict[str, SippResult] = {}
    try:
        menu_call = threading.Thread(
            target=lambda: results.update(menu=call(menu_phone, switch.target, "anyone", 22000))
        )
        queue_call = threading.Thread(
            target=lambda: results.update(queue=call(queue_phone, switch.target, "demo", 16000))
        )
        menu_call.start()
        queue_call.start()
        into_menu = seconds(WELCOME) + 1.5
        # 7 is not an option: the caller hears so, then the menu again, where 1 takes it to the echo test.
        assert menu_phone.press_after("7", into_menu), switch.log[-3000:]
        sorry_at = menu_phone.seconds_heard
        assert menu_phone.press_after("1", sorry_at + seconds(NOT_AN_OPTION) + 1.5), switch.log[-3000:]
        echo_at = menu_phone.seconds_heard
        # 3 joins the queue: its wait document says the position and the average wait.
        assert queue_phone.press_after("3", into_menu), switch.log[-3000:]
        queue_at = queue_phone.seconds_heard
        menu_call.join(40)
        queue_call.join(40)
    finally:
        switch.stop()
    menu_heard, queue_heard = menu_phone.stop(), queue_phone.stop()
    assert results.keys() == {"menu", "queue"} and all(r.ok for r in results.values()), "\n".join(
        why(r, switch) for r in results.values()
    )
    assert "application error" not in switch.log.lower(), switch.log[-3000:]
    start = int(sorry_at * 8000)
    sorry = speech_match(tts(NOT_AN_OPTION), menu_heard[start : start + 4 * 8000])
    assert heard_well(sorry), sorry
    start = int(echo_at * 8000)
    echo = speech_match(tts(ECHO), menu_heard[start : start + 6 * 8000])
    assert heard_well(echo), echo
    welcome = speech_match(tts(WELCOME), menu_heard[: 6 * 8000])
    assert heard_well(welcome), welcome
    start = int((queue_at + seconds(JOINING)) * 8000)
    waiting = speech_match(tts(WAITING), queue_heard[start : start + 8 * 8000])
    assert heard_well(waiting), waiting
    # the same sentence without the template's fields filled in is a worse match
    unfilled = speech_match(
        tts(WAITING.replace(" 1 ", " ").replace(" 0 ", " ")), queue_heard[start : start + 8 * 8000]
    )
    assert unfilled.envelope < waiting.envelope, (unfilled, waiting)
    [enqueued] = switch.log_lines("enqueue CallSid=")
    assert "queue=demo " in enqueued and enqueued.rstrip().endswith("position=1"), enqueued
