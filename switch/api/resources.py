"""Recordings (and their media), Queues with Members, Conferences with Participants.

Recording media (``Recordings/{Sid}.wav``, ``.mp3``, or no extension for WAV) is served without
authentication, as Twilio does by default: a recording sid is 128 random bits, and a TwiML application
may ``<Play>`` its own ``RecordingUrl``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from switch.api.calls import json_response
from switch.api.context import account_of, context_of, form_of
from switch.api.errors import ApiError, invalid, not_found
from switch.api.mp3 import Mp3Error, mp3_of
from switch.api.shapes import (
    Paging,
    account_path,
    conference_json,
    member_json,
    page_json,
    queue_json,
    recording_json,
)
from switch.store.records import QueueRecord, new_sid

DEFAULT_QUEUE_SIZE = 100
MAX_QUEUE_SIZE = 5000


# -- recordings ----------------------------------------------------------------------------------------
async def list_recordings(request: web.Request) -> web.Response:
    context = context_of(request)
    account_sid = account_of(request)
    call_sid = request.match_info.get("call_sid") or request.query.get("CallSid") or None
    if "call_sid" in request.match_info and await _call_unknown(request, call_sid or ""):
        raise not_found(request.path)
    paging = Paging.parse(request.query)
    records = await context.store.list_recordings(
        account_sid, call_sid=call_sid, offset=paging.offset, limit=paging.page_size + 1
    )
    shown = [recording_json(r) for r in records[: paging.page_size]]
    body = page_json(
        "recordings",
        request.path,
        list(request.query.items()),
        paging,
        shown,
        len(records) > paging.page_size,
    )
    return json_response(body)


async def _call_unknown(request: web.Request, call_sid: str) -> bool:
    context = context_of(request)
    if call_sid in context.service.calls:
        return False
    return await context.store.get_call(context.account_sid, call_sid) is None


def _recording_name(request: web.Request) -> tuple[str, str]:
    name = request.match_info["name"]
    sid, dot, extension = name.partition(".")
    return sid, extension if dot else ""


async def fetch_recording(request: web.Request) -> web.StreamResponse:
    context = context_of(request)
    account_sid = request.match_info["account_sid"]
    sid, extension = _recording_name(request)
    if extension not in ("json", "wav", "mp3", ""):
        raise not_found(request.path)
    if extension == "json":
        account_of(request)
    record = await context.store.get_recording(account_sid, sid)
    if record is None or account_sid != context.account_sid:
        raise not_found(request.path)
    if extension == "json":
        return json_response(recording_json(record))
    wav = Path(record.path)
    if not await asyncio.to_thread(wav.is_file):
        raise ApiError(20404, f"The media of recording {sid} is missing", 404)
    if extension == "mp3":
        try:
            mp3 = await mp3_of(wav)
        except Mp3Error as exc:
            raise ApiError(20500, f"Internal error: {exc}", 500) from None
        return web.FileResponse(mp3, headers={"Content-Type": "audio/mpeg"})
    return web.FileResponse(wav, headers={"Content-Type": "audio/x-wav"})


async def delete_recording(request: web.Request) -> web.Response:
    context = context_of(request)
    account_sid = account_of(request)
    sid, extension = _recording_name(request)
    if extension not in ("json", ""):
        raise not_found(request.path)
    record = await context.store.delete_recording(account_sid, sid)
    if record is None:
        raise not_found(request.path)
    wav = Path(record.path)
    for path in (wav, wav.with_suffix(".mp3")):
        await asyncio.to_thread(path.unlink, missing_ok=True)
    return web.Response(status=204)


# -- queues ----------------------------------------------------------------------------------------------
def _max_size(text: str | None, default: int) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise invalid("MaxSize", f"{text!r} is not an integer") from None
    if not 1 <= value <= MAX_QUEUE_SIZE:
        raise invalid("MaxSize", f"must be between 1 and {MAX_QUEUE_SIZE}")
    return value


async def _queue_body(request: web.Request, record: QueueRecord) -> dict[str, object]:
    context = context_of(request)
    members = await context.store.list_queue_members(record.sid, offset=0, limit=MAX_QUEUE_SIZE)
    now = context.clock()
    waits = [now - member.date_enqueued for member in members]
    average = int(sum(waits) / len(waits)) if waits else 0
    return queue_json(record, len(members), average)


async def create_queue(request: web.Request) -> web.Response:
    context = context_of(request)
    account_sid = account_of(request)
    form = await form_of(request)
    name = form.get("FriendlyName", "").strip()
    if not name:
        raise ApiError(20001, "Missing required parameter FriendlyName in the post body")
    if len(name) > 64:
        raise invalid("FriendlyName", "at most 64 characters")
    now = context.clock()
    record = QueueRecord(
        new_sid("QU"), account_sid, name, _max_size(form.get("MaxSize"), DEFAULT_QUEUE_SIZE), now, now
    )
    if not await context.store.create_queue(record):
        raise invalid("FriendlyName", f"a queue named {name!r} already exists")
    return json_response(await _queue_body(request, record), status=201)


async def _queue(request: web.Request) -> QueueRecord:
    context = context_of(request)
    account_sid = account_of(request)
    record = await context.store.get_queue(account_sid, request.match_info["sid"])
    if record is None:
        raise not_found(request.path)
    return record


async def list_queues(request: web.Request) -> web.Response:
    context = context_of(request)
    account_sid = account_of(request)
    paging = Paging.parse(request.query)
    records = await context.store.list_queues(account_sid, offset=paging.offset, limit=paging.page_size + 1)
    shown = [await _queue_body(request, r) for r in records[: paging.page_size]]
    path = f"{account_path(account_sid)}/Queues.json"
    body = page_json(
        "queues", path, list(request.query.items()), paging, shown, len(records) > paging.page_size
    )
    return json_response(body)


async def fetch_queue(request: web.Request) -> web.Response:
    return json_response(await _queue_body(request, await _queue(request)))


async def update_queue(request: web.Request) -> web.Response:
    context = context_of(request)
    record = await _queue(request)
    form = await form_of(request)
    name = form.get("FriendlyName", record.friendly_name).strip() or record.friendly_name
    updated = QueueRecord(
        record.sid,
        record.account_sid,
        name,
        _max_size(form.get("MaxSize"), record.max_size),
        record.date_created,
        context.clock(),
    )
    if not await context.store.update_queue(updated):
        raise invalid("FriendlyName", f"a queue named {name!r} already exists")
    return json_response(await _queue_body(request, updated))


async def delete_queue(request: web.Request) -> web.Response:
    context = context_of(request)
    record = await _queue(request)
    if await context.store.queue_size(record.sid):
        raise ApiError(20001, "The queue has members: it cannot be deleted")
    await context.store.delete_queue(record.account_sid, record.sid)
    return web.Response(status=204)


async def list_members(request: web.Request) -> web.Response:
    context = context_of(request)
    record = await _queue(request)
    paging = Paging.parse(request.query)
    members = await context.store.list_queue_members(
        record.sid, offset=paging.offset, limit=paging.page_size + 1
    )
    now = context.clock()
    shown = [member_json(record.account_sid, m, now) for m in members[: paging.page_size]]
    body = page_json(
        "queue_members",
        request.path,
        list(request.query.items()),
        paging,
        shown,
        len(members) > paging.page_size,
    )
    return json_response(body)


async def fetch_member(request: web.Request) -> web.Response:
    context = context_of(request)
    record = await _queue(request)
    wanted = request.match_info["member"]
    members = await context.store.list_queue_members(record.sid, offset=0, limit=MAX_QUEUE_SIZE)
    for member in members:
        if wanted == member.call_sid or (wanted == "Front" and member is members[0]):
            return json_response(member_json(record.account_sid, member, context.clock()))
    raise not_found(request.path)


# -- conferences -----------------------------------------------------------------------------------------
async def list_conferences(request: web.Request) -> web.Response:
    context = context_of(request)
    account_sid = account_of(request)
    paging = Paging.parse(request.query)
    records = await context.store.list_conferences(
        account_sid,
        status=request.query.get("Status") or None,
        friendly_name=request.query.get("FriendlyName") or None,
        offset=paging.offset,
        limit=paging.page_size + 1,
    )
    shown = [conference_json(r) for r in records[: paging.page_size]]
    path = f"{account_path(account_sid)}/Conferences.json"
    body = page_json(
        "conferences", path, list(request.query.items()), paging, shown, len(records) > paging.page_size
    )
    return json_response(body)


async def fetch_conference(request: web.Request) -> web.Response:
    context = context_of(request)
    account_sid = account_of(request)
    record = await context.store.get_conference(account_sid, request.match_info["sid"])
    if record is None:
        raise not_found(request.path)
    return json_response(conference_json(record))


async def list_participants(request: web.Request) -> web.Response:
    context = context_of(request)
    account_sid = account_of(request)
    if await context.store.get_conference(account_sid, request.match_info["sid"]) is None:
        raise not_found(request.path)
    paging = Paging.parse(request.query)
    # Participants appear once conference control exists; until then a conference has none to show.
    body = page_json("participants", request.path, list(request.query.items()), paging, [], False)
    return json_response(body)


def add_routes(app: web.Application, prefix: str) -> None:
    router = app.router
    router.add_get(f"{prefix}/Recordings.json", list_recordings)
    router.add_get(prefix + "/Calls/{call_sid}/Recordings.json", list_recordings)
    router.add_get(prefix + "/Recordings/{name}", fetch_recording)
    router.add_delete(prefix + "/Recordings/{name}", delete_recording)
    router.add_post(f"{prefix}/Queues.json", create_queue)
    router.add_get(f"{prefix}/Queues.json", list_queues)
    router.add_get(prefix + "/Queues/{sid}.json", fetch_queue)
    router.add_post(prefix + "/Queues/{sid}.json", update_queue)
    router.add_delete(prefix + "/Queues/{sid}.json", delete_queue)
    router.add_get(prefix + "/Queues/{sid}/Members.json", list_members)
    router.add_get(prefix + "/Queues/{sid}/Members/{member}.json", fetch_member)
    router.add_get(f"{prefix}/Conferences.json", list_conferences)
    router.add_get(prefix + "/Conferences/{sid}.json", fetch_conference)
    router.add_get(prefix + "/Conferences/{sid}/Participants.json", list_participants)
