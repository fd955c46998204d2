"""The REST API of a running switch, driven by the official twilio library, calling a SIPp UAS.

Statuses are observed by fetching (the library's own requests); the switch is killed with SIGKILL and
restarted on the same data directory to show that ended calls were committed.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from tests.helpers.sipp import SippUas
from tests.helpers.switch_process import SwitchProcess
from tests.helpers.tools import ToolMissingError, require_tool

pytestmark = pytest.mark.e2e

AC = "AC" + "cd" * 16
TOKEN = "e2e-token-0123456789abcdef"
RINGING_UAS = str(Path(__file__).with_name("uas-ring-answer-expect-bye.xml"))
HOLD = '<Response><Pause length="30"/></Response>'


def _switch(data_dir: Path) -> SwitchProcess:
    return SwitchProcess(data_dir=data_dir, extra_args=["--account-sid", AC, "--auth-token", TOKEN])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("switch-rest")


@pytest.fixture(scope="module")
def switch(data_dir: Path) -> Iterator[SwitchProcess]:
    try:
        require_tool("sipp")
    except ToolMissingError as exc:
        pytest.fail(str(exc), pytrace=False)
    with _switch(data_dir) as process:
        yield process


def client_of(switch: SwitchProcess, token: str = TOKEN) -> Client:
    client = Client(AC, token)
    client.api.base_url = f"http://127.0.0.1:{switch.http_port}"
    return client


def watch(client: Client, sid: str, until: str, timeout: float = 10.0) -> list[str]:
    """Fetch the call until its status is ``until``; return the distinct statuses seen, in order."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.calls(sid).fetch().status
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == until:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"call {sid} never reached {until}; statuses seen: {seen}")


def test_call_goes_queued_ringing_in_progress_completed_and_hangs_up_through_the_api(
    switch: SwitchProcess,
) -> None:
    client = client_of(switch)
    uas = SippUas(RINGING_UAS, timeout=20)
    try:
        call = client.calls.create(to=f"sip:uas@{uas.target}", from_="+15550001234", twiml=HOLD)
        assert call.status == "queued"
        seen = [call.status, *watch(client, call.sid, "in-progress")]
        assert "ringing" in seen and seen[-1] == "in-progress", seen
        assert seen.index("ringing") < seen.index("in-progress")
        ended = client.calls(call.sid).update(status="completed")
        assert ended.status == "completed" and ended.end_time is not None
        result = uas.finish()
    finally:
        uas.kill()
    assert result.ok, result.describe()
    fetched = client.calls(call.sid).fetch()
    assert (fetched.status, fetched.direction, fetched.to) == (
        "completed",
        "outbound-api",
        f"sip:uas@{uas.target}",
    )
    assert [c.sid for c in client.calls.list(status="completed", to=f"sip:uas@{uas.target}")] == [call.sid]


def test_update_with_new_twiml_replaces_the_running_application(switch: SwitchProcess) -> None:
    client = client_of(switch)
    uas = SippUas(timeout=20)
    try:
        call = client.calls.create(to=f"sip:uas@{uas.target}", from_="+15550001234", twiml=HOLD)
        watch(client, call.sid, "in-progress")
        # The new document hangs up at once: the call ends only if it replaced the 30 s pause.
        client.calls(call.sid).update(twiml="<Response><Hangup/></Response>")
        assert watch(client, call.sid, "completed")[-1] == "completed"
        result = uas.finish()
    finally:
        uas.kill()
    assert result.ok, result.describe()
    with pytest.raises(TwilioRestException) as raised:
        client.calls(call.sid).update(twiml=HOLD)
    assert (raised.value.code, raised.value.status) == (21220, 400)


def test_errors_from_a_running_switch(switch: SwitchProcess) -> None:
    client = client_of(switch)
    with pytest.raises(TwilioRestException) as raised:
        client_of(switch, token="not-the-token").calls("CA" + "0" * 32).fetch()
    assert (raised.value.code, raised.value.status) == (20003, 401)
    with pytest.raises(TwilioRestException) as raised:
        client.calls("CA" + "0" * 32).fetch()
    assert (raised.value.code, raised.value.status) == (20404, 404)
    for arguments, code in (
        ({"to": "", "from_": "+1", "twiml": HOLD}, 21201),
        ({"to": "sip:a@127.0.0.1", "from_": "", "twiml": HOLD}, 21213),
        ({"to": "sip:a@127.0.0.1", "from_": "+1", "url": "nope"}, 21205),
        ({"to": "sip:a@192.0.2.1", "from_": "+1", "twiml": HOLD}, 21211),  # outside --egress-allow
    ):
        with pytest.raises(TwilioRestException) as raised:
            client.calls.create(**arguments)
        assert (raised.value.code, raised.value.status) == (code, 400), arguments


def test_records_survive_sigkill(switch: SwitchProcess, data_dir: Path) -> None:
    client = client_of(switch)
    ended = []
    for _ in range(3):
        uas = SippUas(timeout=20)
        try:
            call = client.calls.create(to=f"sip:uas@{uas.target}", from_="+15559990000", twiml="<Response/>")
            watch(client, call.sid, "completed")
            assert uas.finish().ok
        finally:
            uas.kill()
        ended.append(call.sid)
    before = {c.sid: c.status for c in client.calls.list()}
    assert all(before[sid] == "completed" for sid in ended)
    process = switch._process
    assert process is not None
    process.send_signal(signal.SIGKILL)
    assert process.wait(10) == -signal.SIGKILL
    with _switch(data_dir) as again:
        after = {c.sid: c.status for c in client_of(again).calls.list(page_size=2)}
    assert {sid: after.get(sid) for sid in ended} == dict.fromkeys(ended, "completed")
    assert after == before


def test_a_call_live_at_sigkill_is_ended_when_the_switch_starts_again(tmp_path: Path) -> None:
    """Only creation and end are written: a call the crash cut is ended at start (failed: its answer was
    never written), not left in-progress for ever."""
    uas = SippUas(timeout=20)
    try:
        with _switch(tmp_path) as first:
            client = client_of(first)
            call = client.calls.create(to=f"sip:uas@{uas.target}", from_="+15559990001", twiml=HOLD)
            watch(client, call.sid, "in-progress")
            process = first._process
            assert process is not None
            process.send_signal(signal.SIGKILL)
            assert process.wait(10) == -signal.SIGKILL
    finally:
        uas.kill()
    with _switch(tmp_path) as again:
        fetched = client_of(again).calls(call.sid).fetch()
        assert again.wait_for_log("1 calls of an earlier run had no end", 5)
    assert (fetched.status, fetched.duration) == ("failed", "0") and fetched.end_time is not None
    assert fetched.end_time == fetched.start_time  # the last time it was saved: its creation
