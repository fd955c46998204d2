"""The REST API end to end: the official twilio library drives a running switch that calls registered baresip
phones (auto-answer). What the phones hear is checked in baresip's recordings; status callbacks and dequeue
documents arrive at a real HTTP server (the TwiML test server).
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import av
import numpy as np
import pytest
from numpy.typing import NDArray
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from tests.e2e.conftest import start_switch
from tests.e2e.test_connect_register import registered_phone, tone_wav, wait_registration
from tests.helpers.audio import read_wav, write_wav
from tests.helpers.baresip import Baresip
from tests.helpers.switch_process import SwitchProcess
from tests.helpers.twiml_server import TwimlServer

pytestmark = pytest.mark.e2e

AC = "AC" + "e7" * 16
TOKEN = "rest-e2e-token-0123456789"
DIALPLAN = """
algorithms = ["MD5"]

[users.alice]
password = "alice-secret"

[users.bob]
password = "bob-secret"
"""
PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret"}
ALICE_HZ, BOB_HZ = 700.0, 1100.0
T = TypeVar("T")


@pytest.fixture(scope="module")
def rest_switch(
    twiml_server: TwimlServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SwitchProcess]:
    plan = tmp_path_factory.mktemp("rest-dialplan") / "plan.toml"
    plan.write_text(DIALPLAN)
    process = start_switch(
        twiml_server.url("/voice"),
        ["--dialplan", str(plan), "--account-sid", AC, "--auth-token", TOKEN],
    )
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def client(rest_switch: SwitchProcess) -> Client:
    client = Client(AC, TOKEN)
    client.api.base_url = f"http://127.0.0.1:{rest_switch.http_port}"
    return client


def phone(switch: SwitchProcess, user: str, source: Path, workdir: Path) -> Baresip:
    return registered_phone(switch, source, user, PASSWORDS[user], workdir)


def silence(path: Path, seconds: float = 30.0) -> Path:
    return write_wav(path, np.zeros(int(8000 * seconds), dtype=np.int16))


def until(condition: Callable[[], T | None], what: str, timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def watch(client: Client, sid: str, final: str, timeout: float = 15.0) -> list[str]:
    """Fetch the call until its status is ``final``; the distinct statuses seen, in order."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.calls(sid).fetch().status
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == final:
            return seen
        time.sleep(0.02)
    raise AssertionError(f"call {sid} never reached {final}: {seen}")


def heard(phone: Baresip) -> NDArray[np.float64]:
    """What the phone heard in its last call (read once baresip has quit and flushed it)."""
    _, pcm = read_wav(phone.heard()[-1])
    return pcm.astype(np.float64)


def rms(pcm: NDArray[np.float64], start: float, end: float) -> float:
    part = pcm[int(start * 8000) : int(end * 8000)]
    return float(np.sqrt(np.mean(part**2))) if len(part) else 0.0


def tone_share(pcm: NDArray[np.float64], start: float, end: float, hz: float) -> float:
    """The share of the segment's energy within 30 Hz of ``hz``."""
    part = pcm[int(start * 8000) : int(end * 8000)]
    spectrum = np.abs(np.fft.rfft(part)) ** 2
    freqs = np.fft.rfftfreq(len(part), 1 / 8000)
    total = float(spectrum.sum())
    return float(spectrum[np.abs(freqs - hz) < 30].sum()) / total if total > 0 else 0.0


def dominant_hz(pcm: NDArray[np.generic]) -> float:
    spectrum = np.abs(np.fft.rfft(np.asarray(pcm, dtype=np.float64)))
    return float(np.argmax(spectrum) * 8000 / len(pcm))


def test_a_call_to_a_registered_phone_plays_updates_and_hangs_up(
    rest_switch: SwitchProcess, client: Client, twiml_server: TwimlServer, tmp_path: Path
) -> None:
    twiml_server.route("/rest-status", "")
    with phone(rest_switch, "alice", silence(tmp_path / "quiet.wav"), tmp_path) as alice:
        assert "[1 binding]" in wait_registration(alice)
        call = client.calls.create(
            to="client:alice",
            from_="+15550007000",
            twiml='<Response><Say>Hello from the switch.</Say><Pause length="30"/></Response>',
            status_callback=twiml_server.url("/rest-status"),
            status_callback_event=["initiated", "ringing", "answered", "completed"],
        )
        assert (call.status, call.to, call.direction) == ("queued", "client:alice", "outbound-api")
        seen = ["queued", *watch(client, call.sid, "in-progress")]
        order = ["queued", "initiated", "ringing", "in-progress"]
        assert seen == sorted(set(seen), key=order.index), seen
        alice.wait_event("CALL_ESTABLISHED", timeout=5)
        established = time.monotonic()
        time.sleep(4.0)
        # A new document for the live call: the phone hears it instead of the pause.
        client.calls(call.sid).update(
            twiml='<Response><Say>This is the new document.</Say><Pause length="30"/></Response>'
        )
        updated = time.monotonic() - established
        time.sleep(3.5)
        ended = client.calls(call.sid).update(status="completed")
        assert ended.status == "completed" and ended.end_time is not None
        alice.wait_event("CALL_CLOSED", timeout=5)
    fetched = client.calls(call.sid).fetch()
    assert (fetched.status, fetched.to) == ("completed", "client:alice") and int(fetched.duration) >= 6
    callbacks = twiml_server.wait_for_requests(4, path="/rest-status", timeout=10)
    statuses = [r.params["CallStatus"] for r in callbacks if r.params.get("CallSid") == call.sid]
    assert statuses == ["initiated", "ringing", "in-progress", "completed"]
    pcm = heard(alice)
    assert rms(pcm, 0.0, 2.5) > 300, "the call's TwiML (Say) was not heard"
    assert rms(pcm, 3.0, updated - 0.3) < 100, "the pause was not silent"
    assert rms(pcm, updated + 0.4, updated + 2.5) > 300, "the updated TwiML was not heard"


def test_list_filters_and_pages_across_several_pages(
    rest_switch: SwitchProcess, client: Client, tmp_path: Path
) -> None:
    sids = []
    with phone(rest_switch, "bob", silence(tmp_path / "quiet.wav"), tmp_path) as bob:
        assert "[1 binding]" in wait_registration(bob)
        for n in range(5):
            call = client.calls.create(
                to="client:bob", from_=f"+1555111000{n}", twiml='<Response><Pause length="1"/></Response>'
            )
            sids.append(call.sid)
            watch(client, call.sid, "completed")
    page = client.calls.page(to="client:bob", page_size=2)
    pages = []
    while page is not None:
        pages.append([c.sid for c in page])
        page = page.next_page()
    assert pages == [sids[4:2:-1], sids[2:0:-1], sids[:1]]
    assert [c.sid for c in client.calls.list(from_="+15551110003")] == [sids[3]]
    assert [c.sid for c in client.calls.list(to="client:bob", status="completed", limit=3)] == sids[4:1:-1]
    assert client.calls.list(to="client:bob", status="in-progress") == []


def test_queue_member_is_dequeued_to_a_document(
    rest_switch: SwitchProcess, client: Client, twiml_server: TwimlServer, tmp_path: Path
) -> None:
    twiml_server.route("/dequeued", "<Response><Say>You left the queue.</Say><Hangup/></Response>")
    with phone(rest_switch, "alice", silence(tmp_path / "quiet.wav"), tmp_path) as alice:
        assert "[1 binding]" in wait_registration(alice)
        call = client.calls.create(
            to="client:alice",
            from_="+15550007001",
            twiml="<Response><Enqueue>rest-support</Enqueue></Response>",
        )
        queue = until(
            lambda: next((q for q in client.queues.list() if q.friendly_name == "rest-support"), None),
            "the queue",
        )
        members = until(lambda: client.queues(queue.sid).members.list(), "the member")
        assert [m.call_sid for m in members] == [call.sid]
        assert client.queues(queue.sid).fetch().current_size == 1
        member = client.queues(queue.sid).members("Front").update(url=twiml_server.url("/dequeued"))
        assert (member.call_sid, member.position) == (call.sid, 1)
        assert watch(client, call.sid, "completed")[-1] == "completed"
        alice.wait_event("CALL_CLOSED", timeout=5)
    [document] = twiml_server.wait_for_requests(1, path="/dequeued", timeout=5)
    assert document.params["CallSid"] == call.sid
    assert client.queues(queue.sid).members.list() == []
    with pytest.raises(TwilioRestException) as raised:
        client.queues(queue.sid).members(call.sid).update(url=twiml_server.url("/dequeued"))
    assert (raised.value.code, raised.value.status) == (20404, 404)


def test_conference_participants_mute_remove_and_end(
    rest_switch: SwitchProcess, client: Client, tmp_path: Path
) -> None:
    alice_tone = tone_wav(tmp_path / "alice.wav", 40, ALICE_HZ)
    bob_tone = tone_wav(tmp_path / "bob.wav", 40, BOB_HZ)
    with (
        phone(rest_switch, "alice", alice_tone, tmp_path) as alice,
        phone(rest_switch, "bob", bob_tone, tmp_path) as bob,
    ):
        assert "[1 binding]" in wait_registration(alice)
        assert "[1 binding]" in wait_registration(bob)
        first = client.calls.create(
            to="client:alice",
            from_="+15550007002",
            twiml='<Response><Dial><Conference beep="false">rest-room</Conference></Dial></Response>',
        )
        room = until(
            lambda: next(
                iter(client.conferences.list(friendly_name="rest-room", status="in-progress")), None
            ),
            "the conference",
        )
        created = client.conferences(room.sid).participants.create(
            from_="+15550007003", to="client:bob", beep="false"
        )
        assert (created.status, created.conference_sid) == ("queued", room.sid)
        bob.wait_event("CALL_ESTABLISHED", timeout=10)
        joined = time.monotonic()
        listed = until(
            lambda: len(client.conferences(room.sid).participants.list()) == 2,
            "two participants",
        )
        assert listed
        time.sleep(3.0)
        muted = client.conferences(room.sid).participants(first.sid).update(muted=True)
        assert muted.muted is True
        at_mute = time.monotonic() - joined
        time.sleep(3.0)
        assert client.conferences(room.sid).participants(created.call_sid).delete() is True
        bob.wait_event("CALL_CLOSED", timeout=10)
        assert [p.call_sid for p in client.conferences(room.sid).participants.list()] == [first.sid]
        ended = client.conferences(room.sid).update(status="completed")
        assert (ended.status, ended.reason_conference_ended) == ("completed", "conference-ended-via-api")
        alice.wait_event("CALL_CLOSED", timeout=10)
    assert watch(client, first.sid, "completed")[-1] == "completed"
    pcm = heard(bob)
    assert tone_share(pcm, 1.0, at_mute - 0.5, ALICE_HZ) > 0.3, "bob did not hear alice before the mute"
    assert tone_share(pcm, at_mute + 0.8, at_mute + 2.5, ALICE_HZ) < 0.05, (
        "bob still heard alice once she was muted"
    )


def test_recorded_call_media_as_wav_and_mp3(
    rest_switch: SwitchProcess, client: Client, twiml_server: TwimlServer, tmp_path: Path
) -> None:
    twiml_server.route("/rest-recording", "")
    with phone(rest_switch, "alice", tone_wav(tmp_path / "alice.wav", 30, ALICE_HZ), tmp_path) as alice:
        assert "[1 binding]" in wait_registration(alice)
        call = client.calls.create(
            to="client:alice",
            from_="+15550007004",
            twiml='<Response><Pause length="30"/></Response>',
            record=True,
            recording_status_callback=twiml_server.url("/rest-recording"),
        )
        alice.wait_event("CALL_ESTABLISHED", timeout=10)
        time.sleep(3.0)
        client.calls(call.sid).update(status="completed")
        alice.wait_event("CALL_CLOSED", timeout=5)
    recordings: list[Any] = until(lambda: client.calls(call.sid).recordings.list(), "the recording")
    [recording] = recordings
    assert (
        recording.call_sid == call.sid and recording.source == "OutboundAPI" and int(recording.duration) >= 2
    )
    media = f"{client.api.base_url}/2010-04-01/Accounts/{AC}/Recordings/{recording.sid}"
    [posted] = twiml_server.wait_for_requests(1, path="/rest-recording", timeout=5)
    assert posted.params["RecordingSid"] == recording.sid and posted.params["CallSid"] == call.sid
    assert posted.params["RecordingUrl"] == media and "X-Twilio-Signature" in posted.headers
    with urllib.request.urlopen(media + ".wav") as response:
        assert response.headers["Content-Type"] == "audio/x-wav"
        wav = tmp_path / "got.wav"
        wav.write_bytes(response.read())
    _, pcm = read_wav(wav)
    assert abs(dominant_hz(pcm[8000:]) - ALICE_HZ) < 10
    with urllib.request.urlopen(media + ".mp3") as response:
        assert response.headers["Content-Type"] == "audio/mpeg"
        mp3 = tmp_path / "got.mp3"
        mp3.write_bytes(response.read())
    with av.open(str(mp3)) as container:
        decoded = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    assert abs(dominant_hz(decoded[8000:]) - ALICE_HZ) < 10


def test_api_errors_carry_twilio_codes(rest_switch: SwitchProcess, client: Client) -> None:
    wrong = Client(AC, "not-the-token")
    wrong.api.base_url = client.api.base_url
    with pytest.raises(TwilioRestException) as raised:
        wrong.calls("CA" + "0" * 32).fetch()
    assert (raised.value.code, raised.value.status) == (20003, 401)
    for fetch in (
        client.calls("CA" + "0" * 32).fetch,
        client.queues("QU" + "0" * 32).fetch,
        client.conferences("CF" + "0" * 32).fetch,
        client.recordings("RE" + "0" * 32).fetch,
    ):
        with pytest.raises(TwilioRestException) as raised:
            fetch()
        assert (raised.value.code, raised.value.status) == (20404, 404)
    for arguments, code in (
        ({"to": "", "from_": "+1", "twiml": "<Response/>"}, 21201),
        ({"to": "client:alice", "from_": "", "twiml": "<Response/>"}, 21213),
        ({"to": "client:alice", "from_": "+1", "url": "nope"}, 21205),
        ({"to": "client:nobody", "from_": "+1", "twiml": "<Response/>"}, 21211),
    ):
        with pytest.raises(TwilioRestException) as raised:
            client.calls.create(**arguments)
        assert (raised.value.code, raised.value.status) == (code, 400), arguments
