"""Conferences: five legs in one room, each sending its own tone, each hearing all the others but not itself;
a muted member is heard by nobody; a moderator with endConferenceOnExit ends the room for everyone."""

from __future__ import annotations

import socket
import struct
import threading
import time

import numpy as np
import pytest
from numpy.typing import NDArray

from tests.e2e.test_first_call import why
from tests.helpers.audio import read_wav
from tests.helpers.ports import free_tcp_port
from tests.helpers.sipp import SippResult, run_sipp
from tests.helpers.switch_process import SwitchProcess
from tests.helpers.twiml_server import TwimlServer
from voicecodecs import g711

pytestmark = pytest.mark.e2e

FREQUENCIES = (450.0, 650.0, 850.0, 1150.0, 1450.0)


class ToneLeg:
    """The media side of one participant: answers each RTP packet from the switch with 20 ms of its own tone
    (symmetric RTP, as a phone would) and keeps what it heard."""

    def __init__(self, hz: float) -> None:
        self.hz = hz
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.heard: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sent = 0
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            if len(data) < 12 or data[1] & 0x7F != 0:
                continue
            self.heard.append(data[12:])
            t = (sent * 160 + np.arange(160)) / 8000
            payload = g711.ulaw_encode((4000 * np.sin(2 * np.pi * self.hz * t)).astype(np.int16)).tobytes()
            header = struct.pack(
                "!BBHII", 0x80, 0, sent & 0xFFFF, (sent * 160) & 0xFFFFFFFF, 0x1234 + self.port
            )
            self.sock.sendto(header + payload, source)
            sent += 1

    def stop(self) -> NDArray[np.int16]:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        return g711.ulaw_decode(np.frombuffer(b"".join(self.heard), dtype=np.uint8))


def level_at(pcm: NDArray[np.int16], hz: float) -> float:
    """RMS of the signal within 20 Hz of ``hz``, over the middle of the call."""
    middle = pcm[8000 : len(pcm) - 8000].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(middle.size))) / middle.size
    freqs = np.fft.rfftfreq(middle.size, 1 / 8000)
    return float(spectrum[np.abs(freqs - hz) < 20].max())


def test_five_legs_hear_each_other_but_not_themselves(
    switch: SwitchProcess, twiml_server: TwimlServer
) -> None:
    twiml_server.on_user("conf-room", "<Response><Dial><Conference>e2e-room</Conference></Dial></Response>")
    legs = [ToneLeg(hz) for hz in FREQUENCIES]
    results: list[SippResult] = []

    def place(leg: ToneLeg) -> None:
        results.append(
            run_sipp(
                "uac-invite-hangup-expect-200.xml",
                switch.target,
                "udp",
                service="conf-room",
                keys={"rtp_port": leg.port},
                extra_args=["-d", "5000"],
                timeout=20,
            )  # fmt: skip
        )

    threads = [threading.Thread(target=place, args=(leg,)) for leg in legs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    heard = [leg.stop() for leg in legs]
    assert len(results) == 5 and all(r.ok for r in results), "\n".join(why(r, switch) for r in results)
    for own, pcm in zip(FREQUENCIES, heard, strict=True):
        assert pcm.size > 3 * 8000, f"leg {own} Hz heard only {pcm.size} samples"
        others = [level_at(pcm, hz) for hz in FREQUENCIES if hz != own]
        mine = level_at(pcm, own)
        assert min(others) > 20 * mine, f"leg {own} Hz: others {others}, own {mine}"


def test_muted_member_is_not_heard_and_the_moderator_ends_the_room(
    switch: SwitchProcess, twiml_server: TwimlServer
) -> None:
    for user, attrs in (
        ("conf-mod", ' endConferenceOnExit="true"'),
        ("conf-muted", ' muted="true"'),
        ("conf-member", ""),
    ):
        twiml_server.on_user(
            user, f"<Response><Dial><Conference{attrs}>e2e-moderated</Conference></Dial></Response>"
        )
    moderator, muted, member = ToneLeg(450.0), ToneLeg(850.0), ToneLeg(1450.0)
    results: dict[str, SippResult] = {}

    def place(user: str, leg: ToneLeg, scenario: str, extra: list[str]) -> None:
        results[user] = run_sipp(scenario, switch.target, "udp", service=user, keys={"rtp_port": leg.port},
                                 extra_args=extra, timeout=20)  # fmt: skip

    # The two members join first and stay until the switch hangs up on them (when the room ends).
    threads = [
        threading.Thread(target=place, args=("conf-muted", muted, "uac-invite-say-expect-bye.xml", [])),
        threading.Thread(target=place, args=("conf-member", member, "uac-invite-say-expect-bye.xml", [])),
    ]
    for thread in threads:
        thread.start()
    twiml_server.wait_for_requests(1, user="conf-member", timeout=5)
    place("conf-mod", moderator, "uac-invite-hangup-expect-200.xml", ["-d", "4000"])
    for thread in threads:
        thread.join(20)
    heard = {name: leg.stop() for name, leg in (("mod", moderator), ("muted", muted), ("member", member))}
    assert all(r.ok for r in results.values()), "\n".join(why(r, switch) for r in results.values())
    assert level_at(heard["mod"], 1450.0) > 20 * level_at(heard["mod"], 850.0)  # the muted one is not heard
    assert level_at(heard["member"], 450.0) > 20 * level_at(heard["member"], 850.0)
    assert level_at(heard["muted"], 450.0) > 20 * level_at(heard["muted"], 850.0)  # muted still hears


def band_level(pcm: NDArray[np.int16], hz: float) -> float:
    """Peak spectral level within 15 Hz of ``hz`` over the whole of ``pcm``."""
    x = pcm.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size))) / x.size
    freqs = np.fft.rfftfreq(x.size, 1 / 8000)
    return float(spectrum[np.abs(freqs - hz) < 15].max())


def test_status_callbacks_in_order_wait_url_and_beep(
    switch: SwitchProcess, twiml_server: TwimlServer
) -> None:
    """A guest waits (hearing the waitUrl) until the moderator comes; the moderator's entry beeps (onEnter);
    the moderator leaves with endConferenceOnExit; every event reaches the statusCallback, in order."""
    room = "e2e-events"
    events = "start end join leave mute hold"
    twiml_server.on_user(
        "conf-ev-guest",
        '<Response><Dial><Conference startConferenceOnEnter="false" beep="false" waitUrl="/conf-wait"'
        f' statusCallback="/conf-events" statusCallbackEvent="{events}">{room}</Conference>'
        "</Dial></Response>",
    )
    twiml_server.on_user(
        "conf-ev-mod",
        '<Response><Dial><Conference endConferenceOnExit="true" beep="onEnter" statusCallback="/ignored">'
        f"{room}</Conference></Dial></Response>",
    )
    # A silent wait document: what the guest hears first is it, not the default music.
    twiml_server.route("/conf-wait", '<Response><Pause length="10"/></Response>')
    twiml_server.route("/conf-events", "")
    twiml_server.route("/ignored", "")
    guest, moderator = ToneLeg(650.0), ToneLeg(450.0)
    results: dict[str, SippResult] = {}

    def place(user: str, leg: ToneLeg, scenario: str, extra: list[str]) -> None:
        results[user] = run_sipp(scenario, switch.target, "udp", service=user, keys={"rtp_port": leg.port},
                                 extra_args=extra, timeout=20)  # fmt: skip

    waiting = threading.Thread(
        target=place, args=("conf-ev-guest", guest, "uac-invite-say-expect-bye.xml", [])
    )
    waiting.start()
    [wait] = twiml_server.wait_for_requests(1, path="/conf-wait", timeout=10)
    twiml_server.wait_for_requests(1, path="/conf-events", timeout=5)  # the guest's join
    time.sleep(1.0)  # the guest hears the wait document alone for a second
    place("conf-ev-mod", moderator, "uac-invite-hangup-expect-200.xml", ["-d", "3000"])
    waiting.join(20)
    heard_guest, heard_mod = guest.stop(), moderator.stop()
    assert all(r.ok for r in results.values()), "\n".join(why(r, switch) for r in results.values())
    guest_sid = twiml_server.requests(path="/voice", user="conf-ev-guest")[-1].params["CallSid"]
    mod_sid = twiml_server.requests(path="/voice", user="conf-ev-mod")[-1].params["CallSid"]
    assert wait.params["CallSid"] == guest_sid
    sent = twiml_server.wait_for_requests(6, path="/conf-events", timeout=10)
    got = [(r.params["StatusCallbackEvent"], r.params.get("CallSid")) for r in sent]
    assert got == [
        ("participant-join", guest_sid),
        ("participant-join", mod_sid),
        ("conference-start", None),
        ("participant-leave", mod_sid),
        ("participant-leave", guest_sid),
        ("conference-end", None),
    ]
    assert [r.params["SequenceNumber"] for r in sent] == ["1", "2", "3", "4", "5", "6"]
    assert {r.params["ConferenceSid"] for r in sent} == {sent[0].params["ConferenceSid"]}
    assert sent[0].params["ConferenceSid"].startswith("CF") and sent[0].params["FriendlyName"] == room
    assert sent[0].params["Muted"] == "false" and sent[0].params["StartConferenceOnEnter"] == "false"
    assert sent[1].params["EndConferenceOnExit"] == "true" and sent[1].params["Hold"] == "false"
    assert sent[5].params["ReasonConferenceEnded"] == "participant-with-end-conference-on-exit-left"
    assert sent[5].params["CallSidEndingConference"] == mod_sid
    assert all(r.params["Timestamp"].endswith("+0000") for r in sent)
    assert twiml_server.requests(path="/ignored") == []  # the room's callback is its first member's
    # The guest heard the wait document (silence, not the default music), then the beep and the moderator.
    assert np.abs(heard_guest[:6000].astype(np.int32)).max() < 200
    frames = heard_guest[: heard_guest.size // 400 * 400].reshape(-1, 400).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(400), axis=1))  # 20 Hz bins, 50 ms frames
    mod_tone, beep = spectrum[:, round(450 / 20)], spectrum[:, round(880 / 20)]
    steady = np.median(mod_tone[-30:-5])
    joined = next(i for i in range(mod_tone.size) if mod_tone[i : i + 10].min() > 0.5 * steady)
    assert beep[max(0, joined - 6) : joined + 6].max() > 20 * beep[joined + 20 : joined + 40].max()
    assert band_level(heard_guest, 880.0) > 10 * band_level(heard_mod, 880.0)
    assert level_at(heard_guest, 450.0) > 20 * level_at(heard_guest, 650.0)


def test_record_from_start_records_the_room(switch: SwitchProcess, twiml_server: TwimlServer) -> None:
    """A member with record="record-from-start": the recording holds both voices of the room, is kept with a
    RecordingSid, and the recordingStatusCallback tells about it with the ConferenceSid."""
    room = "e2e-recorded"
    twiml_server.on_user(
        "conf-rec-host",
        '<Response><Dial><Conference record="record-from-start" recordingStatusCallback="/conf-rec"'
        f' endConferenceOnExit="true">{room}</Conference></Dial></Response>',
    )
    twiml_server.on_user(
        "conf-rec-guest",
        f'<Response><Dial><Conference statusCallback="/conf-rec-ev">{room}</Conference></Dial></Response>',
    )
    twiml_server.route("/conf-rec", "")
    twiml_server.route("/conf-rec-ev", "")
    host, guest = ToneLeg(450.0), ToneLeg(1150.0)
    results: dict[str, SippResult] = {}

    def place(user: str, leg: ToneLeg, scenario: str, extra: list[str]) -> None:
        results[user] = run_sipp(scenario, switch.target, "udp", service=user, keys={"rtp_port": leg.port},
                                 extra_args=extra, timeout=20)  # fmt: skip

    waiting = threading.Thread(
        target=place, args=("conf-rec-guest", guest, "uac-invite-say-expect-bye.xml", [])
    )
    waiting.start()
    twiml_server.wait_for_requests(1, path="/voice", user="conf-rec-guest", timeout=5)
    place("conf-rec-host", host, "uac-invite-hangup-expect-200.xml", ["-d", "3000"])
    waiting.join(20)
    host.stop(), guest.stop()
    assert all(r.ok for r in results.values()), "\n".join(why(r, switch) for r in results.values())
    [callback] = twiml_server.wait_for_requests(1, path="/conf-rec", timeout=10)
    start = twiml_server.wait_for_requests(1, path="/conf-rec-ev", timeout=5)[0]
    params = callback.params
    assert params["RecordingStatus"] == "completed" and params["RecordingSource"] == "Conference"
    assert params["ConferenceSid"] == start.params["ConferenceSid"]
    assert params["RecordingChannels"] == "1" and int(params["RecordingDuration"]) >= 2
    rate, pcm = read_wav(switch.data_dir / "recordings" / f"{params['RecordingSid']}.wav")
    assert rate == 8000 and pcm.ndim == 1
    both = [level_at(pcm, hz) for hz in (450.0, 1150.0)]
    assert min(both) > 20 * level_at(pcm, 800.0), both  # both voices, and nothing between


HOLD_AC = "AC" + "4f" * 16
HOLD_TOKEN = "connect-hold-token-0123456789"


def test_rest_hold_takes_a_member_out_of_the_mix_with_hold_music(twiml_server: TwimlServer) -> None:
    """REST Hold=true with a HoldUrl: the held member is not heard and hears the HoldUrl's document instead
    of the room; Hold=false puts it back; participant-hold and -unhold reach the statusCallback."""
    from twilio.rest import Client

    from tests.e2e.conftest import start_switch

    room = "e2e-hold"
    twiml_server.on_user(
        "conf-hold-a",
        f'<Response><Dial><Conference beep="false" statusCallback="/conf-hold-ev" statusCallbackEvent="hold">'
        f"{room}</Conference></Dial></Response>",
    )
    twiml_server.on_user(
        "conf-hold-b", f'<Response><Dial><Conference beep="false">{room}</Conference></Dial></Response>'
    )
    twiml_server.route("/conf-hold-ev", "")
    twiml_server.route("/conf-hold-music", '<Response><Say>Please hold.</Say><Pause length="1"/></Response>')
    switch = start_switch(twiml_server.url("/voice"), ["--account-sid", HOLD_AC, "--auth-token", HOLD_TOKEN])
    a, b = ToneLeg(450.0), ToneLeg(1150.0)
    results: dict[str, SippResult] = {}

    def place(user: str, leg: ToneLeg) -> None:
        results[user] = run_sipp(
            "uac-invite-hangup-expect-200.xml", switch.target, "udp", service=user,
            keys={"rtp_port": leg.port}, extra_args=["-d", "9000"], timeout=25,
        )  # fmt: skip

    try:
        threads = [
            threading.Thread(target=place, args=(u, leg))
            for u, leg in (("conf-hold-a", a), ("conf-hold-b", b))
        ]
        threads[0].start()
        twiml_server.wait_for_requests(1, path="/voice", user="conf-hold-a", timeout=5)
        threads[1].start()
        twiml_server.wait_for_requests(1, path="/voice", user="conf-hold-b", timeout=5)
        a_sid = twiml_server.requests(path="/voice", user="conf-hold-a")[-1].params["CallSid"]
        client = Client(HOLD_AC, HOLD_TOKEN)
        client.api.base_url = f"http://127.0.0.1:{switch.http_port}"
        [conference] = client.conferences.list(friendly_name=room, status="in-progress")
        time.sleep(2.0)
        held_at = len(b.heard), len(a.heard)
        client.conferences(conference.sid).participants(a_sid).update(
            hold=True, hold_url=twiml_server.url("/conf-hold-music")
        )
        time.sleep(3.0)
        unheld_at = len(b.heard), len(a.heard)
        client.conferences(conference.sid).participants(a_sid).update(hold=False)
        for thread in threads:
            thread.join(30)
    finally:
        switch.stop()
    heard_a, heard_b = a.stop(), b.stop()
    assert all(r.ok for r in results.values()), "\n".join(why(r, switch) for r in results.values())

    def part(pcm: NDArray[np.int16], start: int, end: int) -> NDArray[np.int16]:
        return pcm[start * 160 : end * 160]

    # b: hears a before the hold, not during (1 s settling each side), and again after.
    before = part(heard_b, held_at[0] - 75, held_at[0] - 25)
    during = part(heard_b, held_at[0] + 50, unheld_at[0] - 10)
    after = part(heard_b, unheld_at[0] + 50, unheld_at[0] + 100)
    assert band_level(before, 450.0) > 20 * band_level(during, 450.0)
    assert band_level(after, 450.0) > 20 * band_level(during, 450.0)
    # a: hears b before, the HoldUrl's speech (not b) while held.
    a_before = part(heard_a, held_at[1] - 75, held_at[1] - 25)
    a_during = part(heard_a, held_at[1] + 50, unheld_at[1] - 10)
    assert band_level(a_before, 1150.0) > 20 * band_level(a_during, 1150.0)
    assert np.sqrt(np.mean(a_during.astype(np.float64) ** 2)) > 100  # the hold document's speech
    requested = twiml_server.requests(path="/conf-hold-music")
    assert requested and requested[0].method == "GET" and requested[0].params["CallSid"] == a_sid
    events = twiml_server.wait_for_requests(2, path="/conf-hold-ev", timeout=5)
    assert [(e.params["StatusCallbackEvent"], e.params["Hold"]) for e in events] == [
        ("participant-hold", "true"),
        ("participant-unhold", "false"),
    ]


def test_max_participants_turns_the_next_caller_away(
    switch: SwitchProcess, twiml_server: TwimlServer
) -> None:
    room = "e2e-small"
    for user in ("conf-small-1", "conf-small-2", "conf-small-3"):
        twiml_server.on_user(
            user,
            f'<Response><Dial action="/small-done"><Conference maxParticipants="2" beep="false">{room}'
            "</Conference></Dial></Response>",
        )
    twiml_server.route("/small-done", "<Response><Hangup/></Response>")
    results: dict[str, SippResult] = {}

    def place(user: str, scenario: str, extra: list[str]) -> None:
        results[user] = run_sipp(
            scenario, switch.target, "udp", service=user,
            keys={"rtp_port": free_tcp_port()}, extra_args=extra, timeout=20,
        )  # fmt: skip

    members = [
        threading.Thread(target=place, args=(u, "uac-invite-hangup-expect-200.xml", ["-d", "4000"]))
        for u in ("conf-small-1", "conf-small-2")
    ]
    for n, thread in enumerate(members):
        thread.start()
        twiml_server.wait_for_requests(1, path="/voice", user=f"conf-small-{n + 1}", timeout=5)
    time.sleep(0.5)  # both are in the room
    place("conf-small-3", "uac-invite-say-expect-bye.xml", [])
    for thread in members:
        thread.join(20)
    assert all(r.ok for r in results.values()), "\n".join(why(r, switch) for r in results.values())
    done = twiml_server.wait_for_requests(3, path="/small-done", timeout=10)
    by_call = {r.params["CallSid"]: r.params for r in done}
    third = twiml_server.requests(path="/voice", user="conf-small-3")[-1].params["CallSid"]
    assert (by_call[third]["DialCallStatus"], by_call[third]["DialBridged"]) == ("failed", "false")
    assert sorted(p["DialCallStatus"] for sid, p in by_call.items() if sid != third) == ["completed"] * 2
