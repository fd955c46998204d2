"""Queue members, conferences and participants, Record/SendDigits/client: on create, call records written at
creation and end only, through the twilio library over the fake call service and a real SQLite store."""

from __future__ import annotations

import asyncio
import sqlite3
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from twilio.base.exceptions import TwilioRestException

from switch.api.answer import digit_groups
from switch.calls.conferences import Member
from tests.api.conftest import AC, Api, Binding, FakeCall

UAS = "sip:uas@127.0.0.1:5099"
APP = "http://127.0.0.1:9/voice"


def _enqueue(api: Api, name: str) -> FakeCall:
    call = FakeCall(UAS, "+1555")
    api.service.calls[call.sid] = call
    assert api.service.queues.enqueue(call, name, 10) is not None  # type: ignore[arg-type]
    return call


# -- queues ----------------------------------------------------------------------------------------------
async def test_members_post_dequeues_to_a_document(api: Api) -> None:
    client = api.client()
    first, second = _enqueue(api, "support"), _enqueue(api, "support")
    # <Enqueue> made the queue: the API lists it with the live queue's sid.
    [queue] = await api.run(client.queues.list)
    assert queue.sid == api.service.queues.sid_of("support") and queue.current_size == 2
    member = await api.run(
        client.queues(queue.sid).members("Front").update, url="http://127.0.0.1:9/agent", method="GET"
    )
    assert (member.call_sid, member.position, member.queue_sid) == (first.sid, 1, queue.sid)
    assert api.service.redirects == [(first.sid, "http://127.0.0.1:9/agent", None, "GET")]
    [left] = await api.run(client.queues(queue.sid).members.list)
    assert (left.call_sid, left.position) == (second.sid, 1)
    by_sid = await api.run(client.queues(queue.sid).members(second.sid).update, url="http://127.0.0.1:9/b")
    assert by_sid.call_sid == second.sid and api.service.redirects[-1][:2] == (
        second.sid,
        "http://127.0.0.1:9/b",
    )
    assert (await api.run(client.queues(queue.sid).fetch)).current_size == 0
    for member_sid, url, code in (
        (first.sid, "http://127.0.0.1:9/x", 20404),  # no longer in line
        ("Front", "http://127.0.0.1:9/x", 20404),  # nobody in line
        ("Front", "not a url", 21205),
    ):
        with pytest.raises(TwilioRestException) as raised:
            await api.run(client.queues(queue.sid).members(member_sid).update, url=url)
        assert raised.value.code == code


async def test_a_queue_made_through_the_api_is_the_one_enqueue_uses(api: Api) -> None:
    client = api.client()
    created = await api.run(client.queues.create, friendly_name="sales", max_size=1)
    _enqueue(api, "sales")
    assert api.service.queues.sid_of("sales") == created.sid
    overflow = FakeCall(UAS, "+1")
    assert api.service.queues.enqueue(overflow, "sales", 100) is None  # type: ignore[arg-type]  # MaxSize 1


# -- conferences -----------------------------------------------------------------------------------------
def _join(api: Api, name: str, **options: Any) -> FakeCall:
    call = FakeCall(UAS, "+1555")
    api.service.calls[call.sid] = call
    assert api.service.conferences.join(Member(call, **options), name) is not None  # type: ignore[arg-type]
    return call


async def test_conference_records_follow_the_room_and_participants_are_its_members(api: Api) -> None:
    client = api.client()
    waiting = _join(api, "room", start_on_enter=False)
    [room] = await api.run(client.conferences.list)
    assert (room.friendly_name, room.status) == ("room", "init")
    moderator = _join(api, "room")
    fetched = await api.run(client.conferences(room.sid).fetch)
    assert fetched.status == "in-progress"
    participants = await api.run(client.conferences(room.sid).participants.list)
    assert [(p.call_sid, p.muted, p.hold, p.status) for p in participants] == [
        (waiting.sid, False, False, "connected"),
        (moderator.sid, False, False, "connected"),
    ]
    muted = await api.run(client.conferences(room.sid).participants(waiting.sid).update, muted=True)
    live = api.service.conferences.by_sid(room.sid)
    assert live is not None
    assert muted.muted is True and live.members[waiting.sid].muted is True
    assert [
        p.call_sid for p in await api.run(client.conferences(room.sid).participants.list, muted=True)
    ] == [waiting.sid]
    held = await api.run(
        client.conferences(room.sid).participants(moderator.sid).update,
        hold=True,
        hold_url="http://127.0.0.1:9/music",
    )
    assert held.hold is True and live.members[moderator.sid].hold_url == "http://127.0.0.1:9/music"
    assert await api.run(client.conferences(room.sid).participants(moderator.sid).delete) is True
    assert live.members[moderator.sid].removed.is_set()
    with pytest.raises(TwilioRestException) as raised:
        await api.run(client.conferences(room.sid).participants("CA" + "0" * 32).fetch)
    assert raised.value.code == 20404
    ended = await api.run(client.conferences(room.sid).update, status="completed")
    assert (ended.status, ended.reason_conference_ended) == ("completed", "conference-ended-via-api")
    assert live.ended.is_set() and api.service.conferences.by_sid(room.sid) is None
    assert [c.sid for c in await api.run(client.conferences.list, status="completed")] == [room.sid]
    # The ended conference's participants come from the store, as they last were.
    api.service.conferences.leave(live, waiting)  # type: ignore[arg-type]
    api.service.conferences.leave(live, moderator)  # type: ignore[arg-type]
    kept = await api.run(client.conferences(room.sid).participants.list)
    assert [(p.call_sid, p.muted, p.status) for p in kept] == [
        (waiting.sid, True, "complete"),
        (moderator.sid, False, "complete"),
    ]


async def test_create_participant_dials_into_the_room(api: Api) -> None:
    client = api.client()
    first = _join(api, "standup")
    [room] = await api.run(client.conferences.list)
    participant = await api.run(
        client.conferences(room.sid).participants.create,
        from_="+15550001",
        to="sip:bob@127.0.0.1:5098",
        muted=True,
        beep="onEnter",
        end_conference_on_exit=True,
        status_callback="http://127.0.0.1:9/status",
        status_callback_event=["ringing", "answered"],
        timeout=20,
    )
    assert (participant.status, participant.conference_sid, participant.muted) == ("queued", room.sid, True)
    [placed] = api.service.originated
    assert (placed["to"], placed["from_"], placed["timeout"]) == ("sip:bob@127.0.0.1:5098", "+15550001", 20)
    assert placed["status_callback"] == "http://127.0.0.1:9/status"
    assert placed["events"] == ("ringing", "answered")
    assert placed["twiml"] == (
        '<Response><Dial><Conference muted="true" startConferenceOnEnter="true" endConferenceOnExit="true" '
        'beep="onEnter">standup</Conference></Dial></Response>'
    )
    listed = await api.run(client.conferences(room.sid).participants.list)
    assert [(p.call_sid, p.status) for p in listed] == [
        (first.sid, "connected"),
        (participant.call_sid, "queued"),
    ]
    # The call answers and runs its <Dial><Conference>: it is a member now.
    bob = api.service.calls[participant.call_sid]
    api.service.conferences.join(Member(bob, muted=True, end_on_exit=True), "standup")
    fetched = await api.run(client.conferences(room.sid).participants(bob.sid).fetch)
    assert (fetched.status, fetched.muted, fetched.end_conference_on_exit) == ("connected", True, True)
    for arguments, code in (
        ({"from_": "+1", "to": ""}, 21201),
        ({"from_": "", "to": UAS}, 21213),
        ({"from_": "+1", "to": "+15551234"}, 21211),
        ({"from_": "+1", "to": UAS, "wait_url": "nope"}, 21205),
    ):
        with pytest.raises(TwilioRestException) as raised:
            await api.run(client.conferences(room.sid).participants.create, **arguments)
        assert raised.value.code == code, arguments
    with pytest.raises(TwilioRestException) as raised:
        await api.run(client.conferences("CF" + "0" * 32).participants.create, from_="+1", to=UAS)
    assert raised.value.code == 20404


# -- Calls create: Record, SendDigits, client: -----------------------------------------------------------
@pytest.fixture
async def callbacks() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    received: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append({key: str(value) for key, value in (await request.post()).items()})
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/recording", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/recording", received
    finally:
        await runner.cleanup()


def test_send_digits_pauses() -> None:
    assert digit_groups("ww12w3") == [("12", 1.0), ("3", 0.5)]
    assert digit_groups("1234#") == [("1234#", 0.0)]
    assert digit_groups("W9wW") == [("9", 1.0)]


async def test_record_and_send_digits_from_the_answer(
    api: Api, callbacks: tuple[str, list[dict[str, str]]]
) -> None:
    url, received = callbacks
    client = api.client()
    created = await api.run(
        client.calls.create,
        to=UAS,
        from_="+1",
        url=APP,
        record=True,
        send_digits="12w#",
        recording_status_callback=url,
    )
    call = api.service.calls[created.sid]
    await asyncio.sleep(0.05)
    assert call.digits_sent == [] and call.recording_to is None  # nothing before the answer
    api.service.set_status(call, "in-progress")
    for _ in range(100):
        if len(call.digits_sent) == 2 and call.recording_to is not None:
            break
        await asyncio.sleep(0.02)
    [(first, at_first), (second, at_second)] = call.digits_sent
    assert (first, second) == ("12", "#") and at_second - at_first >= 0.45
    await api.run(client.calls(created.sid).update, status="completed")
    for _ in range(200):
        if received:
            break
        await asyncio.sleep(0.02)
    [recording] = await api.run(client.calls(created.sid).recordings.list)
    assert (recording.call_sid, recording.source, recording.duration) == (created.sid, "OutboundAPI", "1")
    [posted] = received
    assert posted["RecordingSid"] == recording.sid and posted["RecordingStatus"] == "completed"
    assert posted["CallSid"] == created.sid and posted["RecordingSource"] == "OutboundAPI"
    assert posted["RecordingUrl"].endswith(f"/2010-04-01/Accounts/{AC}/Recordings/{recording.sid}")
    assert call.recording_to == Path(api.server.context.data_dir / "recordings" / f"{recording.sid}.wav")
    with wave.open(str(call.recording_to)) as wav:
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    assert abs(np.argmax(np.abs(np.fft.rfft(pcm))) * 8000 / len(pcm) - 440) < 5


async def test_bad_send_digits_and_record(api: Api) -> None:
    client = api.client()
    for arguments in ({"send_digits": "12x"}, {"record": "maybe"}):
        with pytest.raises(TwilioRestException) as raised:
            await api.run(client.calls.create, to=UAS, from_="+1", url=APP, **arguments)
        assert raised.value.code == 20001
    with pytest.raises(TwilioRestException) as raised:
        await api.run(
            client.calls.create, to=UAS, from_="+1", url=APP, record=True, recording_status_callback="x"
        )
    assert raised.value.code == 21205


async def test_to_a_registered_client(api: Api) -> None:
    client = api.client()
    api.service.registrar.users["alice"] = [Binding("sip:alice@127.0.0.1:5077;transport=udp")]
    created = await api.run(client.calls.create, to="client:alice", from_="+1", url=APP)
    assert created.to == "client:alice"
    assert api.service.originated[-1]["to"] == "sip:alice@127.0.0.1:5077;transport=udp"
    with pytest.raises(TwilioRestException) as raised:
        await api.run(client.calls.create, to="client:bob", from_="+1", url=APP)
    assert (raised.value.code, raised.value.status) == (21211, 400)


# -- call records ----------------------------------------------------------------------------------------
def _stored_status(db: Path, sid: str) -> str | None:
    connection = sqlite3.connect(db)
    try:
        row = connection.execute("SELECT status FROM calls WHERE sid = ?", (sid,)).fetchone()
    finally:
        connection.close()
    return None if row is None else str(row[0])


async def test_live_changes_are_not_written_and_the_end_is_committed_before_callbacks_hear_it(
    api: Api, tmp_path: Path
) -> None:
    db = tmp_path / "switch.db"
    heard: list[tuple[str, str | None]] = []
    # What a status callback would see: the database as another process reads it.
    api.service.add_listener(
        api.server.records.after_commit(
            lambda call, status: heard.append((status, _stored_status(db, call.sid)))
        )
    )
    client = api.client()
    created = await api.run(client.calls.create, to=UAS, from_="+1", url=APP)
    call = api.service.calls[created.sid]
    api.service.set_status(call, "ringing")
    api.service.set_status(call, "in-progress")
    await api.store.flush()
    assert _stored_status(db, call.sid) == "queued"  # ringing and in-progress were not written
    assert (await api.run(client.calls(created.sid).fetch)).status == "in-progress"  # from memory
    assert [c.sid for c in await api.run(client.calls.list, status="in-progress")] == [created.sid]
    api.service.set_status(call, "completed")
    for _ in range(1000):
        if len(heard) == 4:
            break
        await asyncio.sleep(0.01)
    assert [status for status, _ in heard] == ["queued", "ringing", "in-progress", "completed"]
    # Live changes are never written: the callbacks of ringing and in-progress see the creation record, or
    # nothing yet when its write is still in the store's queue; the end is committed before its callback runs.
    seen_live = [stored for _, stored in heard[1:3]]
    assert seen_live in ([None, None], [None, "queued"], ["queued", "queued"]), heard
    assert heard[3] == ("completed", "completed")


async def test_list_pages_merge_live_and_ended_calls(api: Api) -> None:
    client = api.client()
    sids = []
    for n in range(9):
        created = await api.run(client.calls.create, to=UAS, from_=f"+1{n}", url=APP)
        sids.append(created.sid)
        await asyncio.sleep(0.002)  # distinct creation times
    for n in (0, 2, 3, 7):  # these end; the others stay live
        call = api.service.calls[sids[n]]
        api.service.set_status(call, "in-progress")
        api.service.set_status(call, "completed")
    newest_first = sids[::-1]
    for size in (1, 2, 3, 4, 9, 10):
        page = await api.run(client.calls.page, page_size=size)
        seen = []
        while page is not None:
            seen += [c.sid for c in page]
            page = await api.run(page.next_page)
        assert seen == newest_first, size
    completed = await api.run(client.calls.list, status="completed", page_size=1)
    assert [c.sid for c in completed] == [sids[7], sids[3], sids[2], sids[0]]
    queued = await api.run(client.calls.list, status="queued", page_size=2)
    assert [c.sid for c in queued] == [sids[8], sids[6], sids[5], sids[4], sids[1]]
