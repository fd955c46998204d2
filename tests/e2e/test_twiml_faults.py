"""The TwiML application failing, with real callers: each fault ends with the caller hearing the
application-error prompt (or the fallback's TwiML), a BYE from the switch, the Twilio error code logged with
the CallSid and kept with the call's record, and no call left behind.

One switch (a dialplan routes each called user to its application; `--webhook-timeout 1.5`, so "slow" costs
1.5 s, not 15), a real TwiML server inside the test, a second one that is stopped in the middle of a call,
and a SIPp caller per fault, all at once. Each caller records the RTP it hears.
"""

from __future__ import annotations

import asyncio
import functools
import re
import socket
import sqlite3
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.voice_response import Gather, Redirect, VoiceResponse
from yarl import URL

from switch.twiml.errors import APPLICATION_ERROR
from tests.e2e.conftest import start_switch
from tests.helpers.audio import SpeechMatch, speech_match
from tests.helpers.ports import free_tcp_port
from tests.helpers.rtp_sink import RtpSink
from tests.helpers.sipp import SippResult, run_sipp
from tests.helpers.switch_process import SwitchProcess
from tests.helpers.twiml_server import RecordedRequest, Reply, TwimlServer

pytestmark = pytest.mark.e2e

ACCOUNT_SID = "AC" + "fa" * 16
AUTH_TOKEN = "faults-token-" + "3c" * 10
WEBHOOK_TIMEOUT = 1.5
MAX_REDIRECTS = 20  # InterpreterSettings.max_redirects
FALLBACK_TEXT = "The fallback application takes this call."
BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + "".join(
        f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n' for i in range(1, 10)
    )
    + "]>\n<Response><Say>&lol9;</Say></Response>"
)
HTML = "<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1></body></html>"

# called user -> the Twilio error code its application ends with
FAULTS: dict[str, int] = {
    "down": 11205,  # nothing listens on the application's port
    "slow": 11205,  # answers after the webhook timeout
    "http-500": 11200,
    "html": 12300,  # an HTML page (text/html) instead of TwiML
    "billion-laughs": 12100,
    "lowercase": 12100,  # <response><say>: element names are case-sensitive, as on Twilio
    "too-large": 11750,  # a document over 64 KiB (Twilio's "TwiML response body too large")
    "garbage": 11206,  # the application's port answers bytes that are not HTTP
    "redirect-loop": 11200,  # <Redirect> to itself, past the redirect limit
    "dies-mid-call": 11205,  # the Gather action goes to a server stopped meanwhile
    "fallback-500": 11200,  # ... and its FallbackUrl answers
}
STILL_HERE = "The call goes on after the audio that could not be played."
PLAYLIST = "play-playlist"
"""A caller whose <Play> URLs answer an HLS playlist and an ffconcat list naming other resources: neither
is opened (no request for the segment), each is warning 12300, and the call goes on."""
WARNED = "unknown-attribute"
"""A caller whose document has an attribute Twilio does not know: warning 12200, and the call goes on."""
USERS = (*FAULTS, PLAYLIST, WARNED)


@functools.cache
def tts(text: str) -> NDArray[np.int16]:
    """The switch's own rendering of `text` at 8 kHz."""
    from switch.media.tts import TextToSpeech

    return np.array(asyncio.run(TextToSpeech().synthesize(text)), dtype=np.int16)


@dataclass(frozen=True, slots=True)
class Heard:
    result: SippResult
    pcm: NDArray[np.int16]
    covered: NDArray[np.bool_]
    """Per sample of `pcm`: did a packet bring it (False in the gaps the media clock skipped or the network
    lost)."""


@dataclass(frozen=True, slots=True)
class Faults:
    switch: SwitchProcess
    server: TwimlServer
    mid_server: TwimlServer
    heard: dict[str, Heard]
    calls: dict[str, dict[str, str]]
    """The REST Calls list after every call ended: To user -> {sid, status}."""
    metrics: str
    notifications: list[tuple[str, int, str, str]]
    """The store's notifications: (call_sid, error_code, message, url)."""
    levels: dict[str, list[tuple[int, int]]]
    """The store's notifications by CallSid: (error_code, log_level) in order."""
    stopped_mid: str
    """'' when the mid-call server was stopped after its first request, else what went wrong."""


def listen(switch: SwitchProcess, user: str) -> Heard:
    """Call `user` from SIPp, expect the switch's BYE, and keep what the caller heard."""
    with RtpSink(answer_with_silence=True) as sink:
        result = run_sipp(
            "uac-invite-say-expect-bye.xml",
            switch.target,
            "udp",
            service=user,
            keys={"rtp_port": sink.port},
            timeout=40,
        )
        sink.wait_quiet(quiet=0.3, timeout=2.0)
        stream = sink.stream()
        pcm = stream.pcm()
        covered = np.zeros(pcm.size, dtype=np.bool_)
        if stream.packets:
            first = stream.packets[0].timestamp
            for packet in stream.packets:
                offset = (packet.timestamp - first) % (1 << 32)
                covered[offset : offset + len(packet.payload)] = True
        return Heard(result, pcm, covered)


class GarbageServer:
    """Answers every connection on 127.0.0.1 with bytes that are not HTTP, from a thread of its own."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="garbage-http", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(4096)
                    conn.sendall(b"SPAM SPAM SPAM\r\n\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


def stop_after_first_request(server: TwimlServer) -> str:
    """Stop `server` once the call's first document was fetched: its Gather action finds nobody."""
    if not server.wait_for_requests(1, path="/voice", timeout=30):
        return "the mid-call application was never asked for its document"
    server.stop()
    return ""


def dialplan(folder: Path, server: TwimlServer, mid: TwimlServer, dead_port: int, garbage_port: int) -> Path:
    path = folder / "faults.toml"
    path.write_text(
        "[[routes]]\n"
        'match = "^down$"\n'
        f'twiml = "http://127.0.0.1:{dead_port}/voice"\n'
        "public = true\n\n"
        "[[routes]]\n"
        'match = "^garbage$"\n'
        f'twiml = "http://127.0.0.1:{garbage_port}/voice"\n'
        "public = true\n\n"
        "[[routes]]\n"
        'match = "^dies-mid-call$"\n'
        f'twiml = "{mid.url("/voice")}"\n'
        "public = true\n\n"
        "[[routes]]\n"
        'match = "^fallback-"\n'
        f'twiml = "{server.url("/voice")}"\n'
        f'fallback = "{server.url("/fallback")}"\n'
        f'status_callback = "{server.url("/status")}"\n'
        "public = true\n\n"
        "[[routes]]\n"
        'match = ".*"\n'
        f'twiml = "{server.url("/voice")}"\n'
        "public = true\n"
    )
    return path


def serve(server: TwimlServer, mid: TwimlServer) -> None:
    server.dispatch_by_to("/voice")
    never = "<Response><Say>This application should never be heard.</Say></Response>"
    server.on_user("slow", Reply(never, delay=WEBHOOK_TIMEOUT + 2.5))
    server.on_user("http-500", Reply(never, status=500))
    server.on_user("html", Reply(HTML, content_type="text/html"))
    server.on_user("billion-laughs", Reply(BILLION_LAUGHS))
    server.on_user("lowercase", "<response><say>This application should never be heard.</say></response>")
    server.route("/status", "")
    server.on_user("too-large", f"<Response><Say>{'la ' * 22000}</Say></Response>")
    server.on_user(WARNED, f'<Response><Say voice="man" mood="cheerful">{STILL_HERE}</Say></Response>')
    loop = VoiceResponse()
    loop.append(Redirect("/loop"))
    server.on_user("redirect-loop", str(loop))
    server.route("/loop", str(loop))
    server.on_user("fallback-500", Reply(never, status=500))
    fallback = VoiceResponse()
    fallback.say(FALLBACK_TEXT)
    server.route("/fallback", str(fallback))
    server.on_user(
        PLAYLIST,
        f"<Response><Play>/playlist.mp3</Play><Play>/list.wav</Play><Say>{STILL_HERE}</Say></Response>",
    )
    hls = f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{server.url('/segment.ts')}\n#EXT-X-ENDLIST\n"
    server.route("/playlist.mp3", Reply(hls, content_type="audio/mpeg"))
    server.route("/list.wav", Reply("ffconcat version 1.0\nfile /etc/hostname\n", content_type="audio/wav"))
    server.route("/segment.ts", Reply("", content_type="audio/mpeg"))
    mid.dispatch_by_to("/voice")
    first = VoiceResponse()
    gather = Gather(action="/after", timeout=2, action_on_empty_result=True)
    gather.say("Enter digits.")
    first.append(gather)
    mid.on_user("dies-mid-call", str(first))
    mid.route("/after", never)


def rest_calls(switch: SwitchProcess) -> dict[str, dict[str, str]]:
    client = Client(ACCOUNT_SID, AUTH_TOKEN)
    client.api.base_url = f"http://127.0.0.1:{switch.http_port}"
    found: dict[str, dict[str, str]] = {}
    for call in client.api.v2010.accounts(ACCOUNT_SID).calls.list():
        user = re.sub(r"^sips?:([^@;]*).*$", r"\1", str(call.to))
        found[user] = {"sid": str(call.sid), "status": str(call.status)}
    return found


def notifications(database: Path) -> list[tuple[str, int, str, str]]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT call_sid, error_code, message, url FROM notifications ORDER BY seq")
        return [(str(sid), int(code), str(message), str(url)) for sid, code, message, url in rows]


def levels(database: Path) -> dict[str, list[tuple[int, int]]]:
    found: dict[str, list[tuple[int, int]]] = {}
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        for sid, code, level in db.execute(
            "SELECT call_sid, error_code, log_level FROM notifications ORDER BY seq"
        ):
            found.setdefault(str(sid), []).append((int(code), int(level)))
    return found


@pytest.fixture(scope="module")
def faults(sipp_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    folder = tmp_path_factory.mktemp("twiml-faults")
    tts(APPLICATION_ERROR), tts(FALLBACK_TEXT), tts(STILL_HERE)  # rendered before the calls, off their clock
    with TwimlServer() as server:
        mid = TwimlServer().start()
        garbage = GarbageServer()
        try:
            serve(server, mid)
            plan = dialplan(folder, server, mid, free_tcp_port(), garbage.port)
            switch = start_switch(
                None,
                extra_args=[
                    "--dialplan", str(plan),
                    "--account-sid", ACCOUNT_SID,
                    "--auth-token", AUTH_TOKEN,
                    "--webhook-timeout", str(WEBHOOK_TIMEOUT),
                    "--webhook-connect-timeout", str(WEBHOOK_TIMEOUT),
                ],
            )  # fmt: skip
            try:
                with ThreadPoolExecutor(len(USERS) + 1) as pool:
                    stopper = pool.submit(stop_after_first_request, mid)
                    futures = {user: pool.submit(listen, switch, user) for user in USERS}
                    heard = {user: future.result() for user, future in futures.items()}
                    stopped = stopper.result()
                calls = rest_calls(switch)
                with urllib.request.urlopen(f"http://127.0.0.1:{switch.http_port}/metrics", timeout=10) as r:
                    metrics = r.read().decode()
            finally:
                switch.stop()  # the store is flushed and closed: its notifications are all on disk
            database = switch.data_dir / "switch.db"
            kept, by_call = notifications(database), levels(database)
            yield Faults(switch, server, mid, heard, calls, metrics, kept, by_call, stopped)
        finally:
            garbage.close()
            mid.stop()


def why(faults: Faults, user: str) -> str:
    return f"{user}: {faults.heard[user].result.describe()}\n--- switch log ---\n{faults.switch.log[-5000:]}"


def assert_heard(faults: Faults, user: str, text: str) -> None:
    """The caller heard `text` as the switch renders it. On a loaded machine the media clock may skip ahead
    (ticks_skipped): the RTP timestamps jump while the prompt goes on where it was, and the gaps, which no
    packet covers, shift the rest of the prompt. Then the packets are judged in order, the gaps closed."""
    heard = faults.heard[user]
    check_heard(heard.pcm, heard.covered, text, user)


def check_heard(pcm: NDArray[np.int16], covered: NDArray[np.bool_], text: str, label: str) -> None:
    reference = tts(text)
    match = speech_match(reference, pcm)
    if not heard_well(match, reference.size):
        match = speech_match(reference, pcm[covered])
    assert heard_well(match, reference.size), (label, f"{(~covered).sum() / 8000:.2f} s of gaps", match)


def heard_well(match: SpeechMatch, size: int) -> bool:
    return match.envelope > 0.9 and match.spectral > 0.9 and match.overlap >= 0.9 * size


def test_the_audio_check_closes_the_gaps_of_a_skipping_clock() -> None:
    """What a caller of an overloaded switch gets: the prompt whole, its timestamps jumping twice."""
    prompt = tts(APPLICATION_ERROR)
    gaps = ((4000, 1600), (12000, 2400))  # (where, how long) in samples
    pieces, covered, at = [], [], 0
    for where, length in gaps:
        pieces += [prompt[at:where], np.zeros(length, dtype=np.int16)]
        covered += [np.ones(where - at, dtype=np.bool_), np.zeros(length, dtype=np.bool_)]
        at = where
    pieces.append(prompt[at:])
    covered.append(np.ones(prompt.size - at, dtype=np.bool_))
    pcm, mask = np.concatenate(pieces), np.concatenate(covered)
    assert not heard_well(speech_match(prompt, pcm), prompt.size)  # shifted: no match as it is
    check_heard(pcm, mask, APPLICATION_ERROR, "skipping clock")
    other = tts(FALLBACK_TEXT)  # and another prompt is not taken for it, gaps closed or not
    with pytest.raises(AssertionError):
        check_heard(other, np.ones(other.size, dtype=np.bool_), APPLICATION_ERROR, "another prompt")


@pytest.mark.parametrize("user", sorted(USERS))
def test_the_switch_hangs_up_with_bye(faults: Faults, user: str) -> None:
    assert faults.heard[user].result.ok, why(faults, user)


@pytest.mark.parametrize("user", sorted(set(FAULTS) - {"fallback-500"}))
def test_the_caller_hears_the_application_error_prompt(faults: Faults, user: str) -> None:
    assert not faults.stopped_mid, faults.stopped_mid
    assert_heard(faults, user, APPLICATION_ERROR)


def test_the_fallback_answers_with_error_code_and_url(faults: Faults) -> None:
    assert_heard(faults, "fallback-500", FALLBACK_TEXT)
    requests = faults.server.requests(path="/fallback")
    assert [r.to_user for r in requests] == ["fallback-500"], requests
    params = requests[0].params
    assert params["ErrorCode"] == "11200" and params["ErrorUrl"] == faults.server.url("/voice"), params
    assert params["CallSid"] == faults.calls["fallback-500"]["sid"], params
    # the application-error prompt is not what this caller heard
    prompt = speech_match(tts(APPLICATION_ERROR), faults.heard["fallback-500"].pcm)
    assert prompt.spectral < 0.9 or prompt.overlap < 0.5 * tts(APPLICATION_ERROR).size, prompt


@pytest.mark.parametrize(("user", "code"), sorted(FAULTS.items()))
def test_the_error_code_is_logged_with_the_call_sid_and_kept(faults: Faults, user: str, code: int) -> None:
    sid = faults.calls[user]["sid"]
    logged = faults.switch.log_lines(f"TwiML error {code} (call {sid})")
    assert logged, f"{user}: no 'TwiML error {code}' logged for {sid}\n{faults.switch.log[-5000:]}"
    kept = [(c, url) for call_sid, c, _, url in faults.notifications if call_sid == sid]
    assert kept and kept[0][0] == code, (user, kept)
    # every call's errors are its own: no other call's SID in the record
    assert all(c in FAULTS.values() for c, _ in kept), kept


def test_each_error_names_the_url_that_failed(faults: Faults) -> None:
    by_sid = {faults.calls[user]["sid"]: user for user in FAULTS}
    first: dict[str, str] = {}
    for call_sid, _, _, url in faults.notifications:
        first.setdefault(by_sid.get(call_sid, call_sid), url)
    assert first["down"].startswith("http://127.0.0.1:") and first["down"].endswith("/voice"), first
    assert first["dies-mid-call"] == faults.mid_server.url("/after"), first
    assert first["redirect-loop"] == faults.server.url("/loop"), first
    assert first["garbage"].endswith("/voice") and first["garbage"] != faults.server.url("/voice"), first
    for user in ("slow", "http-500", "html", "billion-laughs", "lowercase", "too-large", "fallback-500"):
        assert first[user] == faults.server.url("/voice"), (user, first)


def test_the_slow_application_is_given_up_at_the_webhook_timeout(faults: Faults) -> None:
    sid = faults.calls["slow"]["sid"]
    kept = [message for call_sid, _, message, _ in faults.notifications if call_sid == sid]
    assert any("Timeout" in m or "timeout" in m for m in kept), kept
    assert len(faults.server.requests(path="/voice", user="slow")) == 1


def test_the_redirect_loop_ends_at_the_limit(faults: Faults) -> None:
    loops = faults.server.requests(path="/loop", user="redirect-loop")
    assert len(loops) == MAX_REDIRECTS, len(loops)
    sid = faults.calls["redirect-loop"]["sid"]
    kept = [message for call_sid, _, message, _ in faults.notifications if call_sid == sid]
    assert any(f"more than {MAX_REDIRECTS} redirects" in m for m in kept), kept


def test_the_mid_call_application_got_its_first_request_only(faults: Faults) -> None:
    assert [r.path for r in faults.mid_server.requests()] == ["/voice"]
    assert faults.mid_server.requests()[0].params["CallSid"] == faults.calls["dies-mid-call"]["sid"]


def test_play_never_opens_what_a_playlist_names(faults: Faults) -> None:
    sid = faults.calls[PLAYLIST]["sid"]
    assert len(faults.server.requests(path="/voice", user=PLAYLIST)) == 1
    assert (
        len(faults.server.requests(path="/playlist.mp3"))
        == len(faults.server.requests(path="/list.wav"))
        == 1
    )
    assert not faults.server.requests(path="/segment.ts")
    kept = [(code, url) for call_sid, code, _, url in faults.notifications if call_sid == sid]
    assert kept == [(12300, faults.server.url("/playlist.mp3")), (12300, faults.server.url("/list.wav"))], (
        kept
    )
    assert len(faults.switch.log_lines(f"TwiML warning 12300 (call {sid})")) == 2
    assert_heard(faults, PLAYLIST, STILL_HERE)


def test_an_unknown_attribute_is_a_warning_and_the_call_goes_on(faults: Faults) -> None:
    sid = faults.calls[WARNED]["sid"]
    assert faults.levels[sid] == [(12200, 1)], faults.levels[sid]  # Twilio's log level 1: a warning
    assert faults.switch.log_lines(f"TwiML warning 12200 (call {sid})")
    assert_heard(faults, WARNED, STILL_HERE)
    # the errors of the failing calls are level 0
    assert all(level == 0 for user in FAULTS for _, level in faults.levels[faults.calls[user]["sid"]])


def test_the_route_status_callback_tells_the_failed_call_completed(faults: Faults) -> None:
    events = faults.server.requests(path="/status")
    assert {r.to_user for r in events} == {"fallback-500"}, events  # only the route with a status_callback
    statuses = [r.params["CallStatus"] for r in events]
    assert statuses == ["initiated", "ringing", "in-progress", "completed"], statuses
    params = events[-1].params
    assert params["CallSid"] == faults.calls["fallback-500"]["sid"], params
    assert params["CallbackSource"] == "call-progress-events" and params["SipResponseCode"] == "200", params


def signed_url(request: RecordedRequest) -> str:
    """The URL the request was made to, its query re-encoded as yarl (and so aiohttp) encodes it."""
    url = URL(f"http://{request.headers['Host']}{request.path}")
    return str(url.with_query(list(request.query)) if request.query else url)


def test_every_webhook_request_is_signed(faults: Faults) -> None:
    validator = RequestValidator(AUTH_TOKEN)
    audio = {"/playlist.mp3", "/list.wav"}  # media fetches for <Play> are not webhooks
    received = [r for r in (*faults.server.requests(), *faults.mid_server.requests()) if r.path not in audio]
    assert len(received) >= len(FAULTS) + MAX_REDIRECTS, len(received)
    bad = [
        (r.method, r.path, r.to_user)
        for r in received
        if not validator.validate(
            signed_url(r), dict(r.form) if r.method == "POST" else {}, r.headers.get("X-Twilio-Signature", "")
        )
    ]
    assert not bad, bad


def test_no_call_is_left_behind(faults: Faults) -> None:
    assert set(faults.calls) == set(USERS), faults.calls
    statuses = {user: call["status"] for user, call in faults.calls.items()}
    assert set(statuses.values()) == {"completed"}, statuses
    active = re.search(r"^switch_active_calls (\S+)$", faults.metrics, re.M)
    assert active is not None and float(active.group(1)) == 0, "calls left behind"
