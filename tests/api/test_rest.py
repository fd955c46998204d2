"""The REST API through the official twilio library, over a fake call service and a real SQLite store."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
import wave
from pathlib import Path

import av
import numpy as np
import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException

from switch.api.shapes import Paging, page_json
from switch.store import ConferenceRecord, RecordingRecord, new_sid
from tests.api.conftest import AC, TOKEN, Api, FakeCall

UAS = "sip:uas@127.0.0.1:5099"
APP = "http://127.0.0.1:9/voice"


async def test_create_call_returns_201_queued_and_passes_every_parameter(api: Api) -> None:
    client = api.client()
    call = await api.run(
        client.calls.create,
        to=UAS,
        from_="+15550001111",
        url=APP,
        method="GET",
        fallback_url="http://127.0.0.1:9/fallback",
        status_callback="http://127.0.0.1:9/status",
        status_callback_event=["initiated", "answered", "completed"],
        timeout=15,
    )
    assert call.status == "queued" and call.to == UAS and call._from == "+15550001111"
    assert call.sid.startswith("CA") and len(call.sid) == 34 and call.account_sid == AC
    assert call.direction == "outbound-api" and call.uri == f"/2010-04-01/Accounts/{AC}/Calls/{call.sid}.json"
    [placed] = api.service.originated
    assert placed == {
        "to": UAS,
        "from_": "+15550001111",
        "url": APP,
        "twiml": None,
        "method": "GET",
        "fallback_url": "http://127.0.0.1:9/fallback",
        "status_callback": "http://127.0.0.1:9/status",
        "events": ("initiated", "answered", "completed"),
        "timeout": 15,
    }
    stored = await api.store.get_call(AC, call.sid)
    assert stored is not None and stored.status == "queued"


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        ({"to": "", "from_": "+1555", "url": APP}, 21201),
        ({"to": UAS, "from_": "", "url": APP}, 21213),
        ({"to": UAS, "from_": "+1555", "url": "not a url"}, 21205),
        ({"to": UAS, "from_": "+1555", "url": "ftp://127.0.0.1/x"}, 21205),
        ({"to": "+15551234567", "from_": "+1555", "url": APP}, 21211),
    ],
)
async def test_bad_create_parameters_raise_the_twilio_code(
    api: Api, arguments: dict[str, str], code: int
) -> None:
    with pytest.raises(TwilioRestException) as raised:
        await api.run(api.client().calls.create, **arguments)
    assert (raised.value.code, raised.value.status) == (code, 400)
    assert api.service.originated == [] or code == 21211


async def test_wrong_credentials_raise_20003(api: Api) -> None:
    for client in (api.client(token="wrong"), api.client(account_sid="AC" + "0" * 32)):
        with pytest.raises(TwilioRestException) as raised:
            await api.run(client.calls("CA" + "0" * 32).fetch)
        assert (raised.value.code, raised.value.status) == (20003, 401)
        with pytest.raises(TwilioRestException) as raised:
            await api.run(client.calls.create, to=UAS, from_="+1", url=APP)
        assert (raised.value.code, raised.value.status) == (20003, 401)
    assert api.service.originated == []


async def test_unknown_sids_raise_20404(api: Api) -> None:
    client = api.client()
    for fetch in (
        client.calls("CA" + "0" * 32).fetch,
        client.recordings("RE" + "0" * 32).fetch,
        client.queues("QU" + "0" * 32).fetch,
        client.conferences("CF" + "0" * 32).fetch,
    ):
        with pytest.raises(TwilioRestException) as raised:
            await api.run(fetch)
        assert (raised.value.code, raised.value.status) == (20404, 404)


async def test_list_pages_across_several_pages_newest_first(api: Api) -> None:
    client = api.client()
    sids = []
    for n in range(7):
        created = await api.run(client.calls.create, to=UAS, from_=f"+1555000{n}", twiml="<Response/>")
        sids.append(created.sid)
    listed = await api.run(client.calls.list, page_size=3)
    assert [c.sid for c in listed] == sids[::-1]
    first = await api.run(client.calls.page, page_size=3)
    second = await api.run(first.next_page)
    third = await api.run(second.next_page)
    assert [[c.sid for c in page] for page in (first, second, third)] == [
        sids[6:3:-1],
        sids[3:0:-1],
        sids[:1],
    ]
    assert third.next_page_url is None
    assert await api.run(third.next_page) is None
    assert [c.sid for c in await api.run(client.calls.list, from_="+15550003")] == [sids[3]]


async def test_list_filters_by_status_and_start_time(api: Api) -> None:
    client = api.client()
    first = await api.run(client.calls.create, to=UAS, from_="+1", url=APP)
    second = await api.run(client.calls.create, to="sip:other@127.0.0.1:5099", from_="+1", url=APP)
    api.service.set_status(api.service.calls[first.sid], "in-progress")
    in_progress = await api.run(client.calls.list, status="in-progress")
    assert [c.sid for c in in_progress] == [first.sid]
    assert [c.sid for c in await api.run(client.calls.list, to="sip:other@127.0.0.1:5099")] == [second.sid]
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    assert len(await api.run(client.calls.list, start_time_after=now - timedelta(minutes=1))) == 2
    assert await api.run(client.calls.list, start_time_after=now + timedelta(minutes=1)) == []
    assert len(await api.run(client.calls.list, start_time_before=now + timedelta(minutes=1))) == 2
    with pytest.raises(TwilioException) as failed:  # the library reports list errors without a code
        await api.run(client.calls.list, status="nonsense")
    assert json.loads(failed.value.args[1].text)["code"] == 20001


async def test_update_redirect_hangup_and_delete(api: Api) -> None:
    client = api.client()
    created = await api.run(client.calls.create, to=UAS, from_="+1", url=APP)
    live = api.service.calls[created.sid]
    api.service.set_status(live, "in-progress")
    updated = await api.run(client.calls(created.sid).update, twiml="<Response><Say>new</Say></Response>")
    assert updated.status == "in-progress"
    assert api.service.redirects == [(created.sid, None, "<Response><Say>new</Say></Response>", "POST")]
    await api.run(client.calls(created.sid).update, url="http://127.0.0.1:9/next", method="GET")
    assert api.service.redirects[-1] == (created.sid, "http://127.0.0.1:9/next", None, "GET")
    with pytest.raises(TwilioRestException) as raised:
        await api.run(client.calls(created.sid).update, status="canceled")
    assert raised.value.code == 21220
    with pytest.raises(TwilioRestException) as raised:
        await api.run(client.calls(created.sid).delete)
    assert raised.value.code == 21220
    ended = await api.run(client.calls(created.sid).update, status="completed")
    assert ended.status == "completed" and ended.end_time is not None and ended.duration == "0"
    with pytest.raises(TwilioRestException) as raised:
        await api.run(client.calls(created.sid).update, twiml="<Response/>")
    assert (raised.value.code, raised.value.status) == (21220, 400)
    assert await api.run(client.calls(created.sid).delete) is True
    with pytest.raises(TwilioRestException) as raised:
        await api.run(client.calls(created.sid).fetch)
    assert raised.value.code == 20404


async def test_cancel_a_queued_call(api: Api) -> None:
    client = api.client()
    created = await api.run(client.calls.create, to=UAS, from_="+1", url=APP)
    canceled = await api.run(client.calls(created.sid).update, status="canceled")
    assert canceled.status == "canceled"
    fetched = await api.run(client.calls(created.sid).fetch)
    assert fetched.status == "canceled" and fetched.duration == "0"


def _get(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url) as response:
        return str(response.headers["Content-Type"]), bytes(response.read())


def _tone_wav(path: Path, seconds: float = 1.0, frequency: float = 440.0) -> np.ndarray:
    t = np.arange(int(8000 * seconds)) / 8000
    pcm = (8000 * np.sin(2 * np.pi * frequency * t)).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(pcm.tobytes())
    return pcm


async def test_recordings_json_media_and_delete(api: Api, tmp_path: Path) -> None:
    client = api.client()
    created = await api.run(client.calls.create, to=UAS, from_="+1", url=APP)
    wav = tmp_path / "rec.wav"
    pcm = _tone_wav(wav)
    sid = new_sid("RE")
    now = time.time()
    await api.store.add_recording(RecordingRecord(sid, AC, created.sid, str(wav), 1, now, now, now))
    fetched = await api.run(client.recordings(sid).fetch)
    assert (fetched.call_sid, fetched.duration, fetched.channels, fetched.status) == (
        created.sid,
        "1",
        1,
        "completed",
    )
    assert [r.sid for r in await api.run(client.calls(created.sid).recordings.list)] == [sid]
    assert [r.sid for r in await api.run(client.recordings.list)] == [sid]
    media = f"{api.base_url}/2010-04-01/Accounts/{AC}/Recordings/{sid}"
    # Media needs no credentials, as on Twilio.
    wav_type, wav_bytes = await api.run(_get, media + ".wav")
    assert wav_type == "audio/x-wav" and wav_bytes == wav.read_bytes()
    mp3_type, mp3_bytes = await api.run(_get, media + ".mp3")
    assert mp3_type == "audio/mpeg"
    mp3 = tmp_path / "got.mp3"
    mp3.write_bytes(mp3_bytes)
    with av.open(str(mp3)) as container:
        decoded = np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)])
    spectrum = np.abs(np.fft.rfft(decoded[: len(pcm)]))
    assert abs(np.argmax(spectrum) * 8000 / len(pcm) - 440) < 5
    assert await api.run(client.recordings(sid).delete) is True
    assert not wav.exists() and not wav.with_suffix(".mp3").exists()
    with pytest.raises(TwilioRestException) as raised:
        await api.run(client.recordings(sid).fetch)
    assert raised.value.code == 20404


async def test_queues_create_list_update_delete_and_members(api: Api) -> None:
    client = api.client()
    support = await api.run(client.queues.create, friendly_name="support", max_size=10)
    assert (support.friendly_name, support.max_size, support.current_size) == ("support", 10, 0)
    assert support.sid.startswith("QU")
    with pytest.raises(TwilioRestException) as raised:
        await api.run(client.queues.create, friendly_name="support")
    assert raised.value.status == 400
    with pytest.raises(TwilioRestException) as raised:
        await api.run(client.queues.create, friendly_name="big", max_size=5001)
    assert raised.value.code == 20001
    await api.run(client.queues.create, friendly_name="sales")
    assert [q.friendly_name for q in await api.run(client.queues.list)] == ["sales", "support"]
    renamed = await api.run(client.queues(support.sid).update, friendly_name="help", max_size=20)
    assert (renamed.friendly_name, renamed.max_size) == ("help", 20)
    assert await api.run(client.queues(support.sid).members.list) == []
    # A caller in line through <Enqueue> (the live queue of that name) is a member of the API's queue.
    caller = FakeCall(UAS, "+1")
    api.service.calls[caller.sid] = caller
    entry = api.service.queues.enqueue(caller, "help", 20)  # type: ignore[arg-type]
    assert entry is not None and entry.queue_sid == support.sid
    entry.enqueued_at -= 30
    [member] = await api.run(client.queues(support.sid).members.list)
    assert (member.call_sid, member.position) == (caller.sid, 1) and member.wait_time >= 30
    front = await api.run(client.queues(support.sid).members("Front").fetch)
    assert front.call_sid == caller.sid
    fetched = await api.run(client.queues(support.sid).fetch)
    assert fetched.current_size == 1 and fetched.average_wait_time >= 30
    with pytest.raises(TwilioRestException) as raised:
        await api.run(client.queues(support.sid).delete)
    assert raised.value.code == 20001
    entry.leave()
    assert await api.run(client.queues(support.sid).delete) is True
    with pytest.raises(TwilioRestException) as raised:
        await api.run(client.queues(support.sid).fetch)
    assert raised.value.code == 20404


async def test_conferences_list_and_fetch(api: Api) -> None:
    client = api.client()
    assert await api.run(client.conferences.list) == []
    room = ConferenceRecord(new_sid("CF"), AC, "room", "in-progress", time.time(), time.time())
    await api.store.save_conference(room)
    [listed] = await api.run(client.conferences.list, status="in-progress")
    assert (listed.sid, listed.friendly_name) == (room.sid, "room")
    assert (await api.run(client.conferences(room.sid).fetch)).status == "in-progress"
    assert await api.run(client.conferences(room.sid).participants.list) == []


async def test_openapi_document_lists_the_resources(api: Api) -> None:
    _, raw = await api.run(_get, f"{api.base_url}/openapi.json")
    document = json.loads(raw)
    assert document["openapi"] == "3.1.0"
    calls = document["paths"]["/2010-04-01/Accounts/{AccountSid}/Calls.json"]
    assert set(calls) == {"get", "post"}
    account = "/2010-04-01/Accounts/{AccountSid}"
    assert set(document["paths"][f"{account}/Queues/{{Sid}}/Members/{{CallSid}}.json"]) == {"get", "post"}
    participant = document["paths"][f"{account}/Conferences/{{Sid}}/Participants/{{CallSid}}.json"]
    assert set(participant) == {"get", "post", "delete"}
    assert calls["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"][
        "required"
    ] == [
        "To",
        "From",
    ]


def test_page_has_exactly_one_resource_key_and_carries_filters() -> None:
    paging = Paging.parse({"PageSize": "2", "Page": "1", "PageToken": "PT2"})
    body = page_json("calls", "/x/Calls.json", [("To", "sip:a@b"), ("PageSize", "2")], paging, [{}, {}], True)
    meta = {
        "end",
        "first_page_uri",
        "next_page_uri",
        "page",
        "page_size",
        "previous_page_uri",
        "start",
        "uri",
    }
    assert set(body) - meta == {"calls"}
    assert (body["start"], body["end"], body["page"]) == (2, 3, 1)
    assert body["next_page_uri"] == "/x/Calls.json?To=sip%3Aa%40b&PageSize=2&Page=2&PageToken=PT4"
    assert body["previous_page_uri"] == "/x/Calls.json?To=sip%3Aa%40b&PageSize=2&Page=0&PageToken=PT0"


async def test_recordings_auth_makes_media_need_credentials(api: Api, tmp_path: Path) -> None:
    """--recordings-auth: recording media asks for the same Basic auth as the rest of the API."""
    api.server.context.public_recordings = False
    wav = tmp_path / "private.wav"
    _tone_wav(wav)
    sid = new_sid("RE")
    now = time.time()
    await api.store.add_recording(RecordingRecord(sid, AC, None, str(wav), 1, now, now, now))
    media = f"{api.base_url}/2010-04-01/Accounts/{AC}/Recordings/{sid}.wav"
    with pytest.raises(urllib.error.HTTPError) as refused:
        await api.run(_get, media)
    assert refused.value.code == 401
    refused.value.close()
    request = urllib.request.Request(media)
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{AC}:{TOKEN}".encode()).decode())
    assert (await api.run(_get_request, request))[1] == wav.read_bytes()


def _get_request(request: urllib.request.Request) -> tuple[str, bytes]:
    with urllib.request.urlopen(request) as response:
        return str(response.headers["Content-Type"]), bytes(response.read())
