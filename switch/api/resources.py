"""Recordings and their media: ``Recordings.json``, ``Recordings/{Sid}``, ``Calls/{CallSid}/Recordings.json``.

Recording media (``Recordings/{Sid}.wav``, ``.mp3``, or no extension for WAV) is served without
authentication, as Twilio does by default: a recording sid is 128 random bits, and a TwiML application
may ``<Play>`` its own ``RecordingUrl``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from switch.api.calls import json_response
from switch.api.context import account_of, context_of
from switch.api.errors import ApiError, not_found
from switch.api.mp3 import Mp3Error, mp3_of
from switch.api.shapes import (
    Paging,
    page_json,
    recording_json,
)

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


def add_routes(app: web.Application, prefix: str) -> None:
    router = app.router
    router.add_get(f"{prefix}/Recordings.json", list_recordings)
    router.add_get(prefix + "/Calls/{call_sid}/Recordings.json", list_recordings)
    router.add_get(prefix + "/Recordings/{name}", fetch_recording)
    router.add_delete(prefix + "/Recordings/{name}", delete_recording)
