"""Webhook errors and warnings of calls: Twilio's Notifications resource.

``Notifications.json`` and ``Notifications/{Sid}.json`` (the account's),
``Calls/{CallSid}/Notifications.json`` and ``Calls/{CallSid}/Notifications/{Sid}.json`` (one call's).
Read only: the TwiML layer adds them through `keep_notification` when a document cannot be fetched or
parsed (11200, 11205, 12100, 12300, ...).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from switch.api.calls import json_response
from switch.api.context import account_of, context_of
from switch.api.errors import MORE_INFO, invalid, not_found
from switch.api.shapes import API_VERSION, Paging, account_path, page_json, rfc2822
from switch.store.base import Store
from switch.store.records import NotificationRecord, new_sid

WARNINGS = frozenset({12200})
"""Codes Twilio logs as warnings (``log`` 1); every other code is an error (``log`` 0)."""

_LOG_LEVEL_NAMES = {0: "ERROR", 1: "WARNING"}


def keep_notification(
    store: Store,
    account_sid: str,
    call_sid: str,
    code: int,
    message: str,
    url: str,
    method: str = "",
) -> None:
    """A call's TwiML error or warning, kept as Twilio's Notifications resource would (an ``on_error`` of
    `switch.twiml.session.InterpreterSettings`, with the store and account bound)."""
    store.add_notification(
        NotificationRecord(
            sid=new_sid("NO"),
            account_sid=account_sid,
            call_sid=call_sid or None,
            error_code=code,
            message=message,
            url=url,
            date_created=time.time(),
            log_level=1 if code in WARNINGS else 0,
            request_method=method,
        )
    )


def notification_json(record: NotificationRecord, *, under_call: bool) -> dict[str, Any]:
    """Twilio's JSON of a notification; its ``uri`` under the call when listed as the call's."""
    if under_call and record.call_sid:
        base = f"{account_path(record.account_sid)}/Calls/{record.call_sid}/Notifications/{record.sid}"
    else:
        base = f"{account_path(record.account_sid)}/Notifications/{record.sid}"
    text = urlencode(
        {
            "Msg": record.message,
            "ErrorCode": str(record.error_code),
            "url": record.url,
            "LogLevel": _LOG_LEVEL_NAMES.get(record.log_level, "ERROR"),
        }
    )
    return {
        "account_sid": record.account_sid,
        "api_version": API_VERSION,
        "call_sid": record.call_sid,
        "date_created": rfc2822(record.date_created),
        "date_updated": rfc2822(record.date_created),
        "error_code": str(record.error_code),
        "log": str(record.log_level),
        "message_date": rfc2822(record.date_created),
        "message_text": text,
        "more_info": MORE_INFO.format(code=record.error_code),
        "request_method": record.request_method or None,
        "request_url": record.url or None,
        "request_variables": None,
        "response_body": None,
        "response_headers": None,
        "sid": record.sid,
        "uri": f"{base}.json",
    }


def _log_level(request: web.Request) -> int | None:
    text = request.query.get("Log", "")
    if text == "":
        return None
    if text not in ("0", "1"):
        raise invalid("Log", "must be 0 (errors) or 1 (warnings)")
    return int(text)


async def _known_call(request: web.Request, call_sid: str) -> None:
    context = context_of(request)
    if call_sid in context.service.calls:
        return
    if await context.store.get_call(context.account_sid, call_sid) is None:
        raise not_found(request.path)


async def list_notifications(request: web.Request) -> web.Response:
    context = context_of(request)
    account_sid = account_of(request)
    call_sid = request.match_info.get("call_sid")
    if call_sid is not None:
        await _known_call(request, call_sid)
    paging = Paging.parse(request.query)
    records = await context.store.list_notifications(
        account_sid,
        call_sid=call_sid,
        offset=paging.offset,
        limit=paging.page_size + 1,
        log_level=_log_level(request),
    )
    shown = [notification_json(r, under_call=call_sid is not None) for r in records[: paging.page_size]]
    body = page_json(
        "notifications",
        request.path,
        list(request.query.items()),
        paging,
        shown,
        len(records) > paging.page_size,
    )
    return json_response(body)


async def fetch_notification(request: web.Request) -> web.Response:
    context = context_of(request)
    account_sid = account_of(request)
    call_sid = request.match_info.get("call_sid")
    record = await context.store.get_notification(account_sid, request.match_info["sid"], call_sid=call_sid)
    if record is None:
        raise not_found(request.path)
    return json_response(notification_json(record, under_call=call_sid is not None))


def add_routes(app: web.Application, prefix: str) -> None:
    router = app.router
    router.add_get(f"{prefix}/Notifications.json", list_notifications)
    router.add_get(prefix + "/Notifications/{sid}.json", fetch_notification)
    router.add_get(prefix + "/Calls/{call_sid}/Notifications.json", list_notifications)
    router.add_get(prefix + "/Calls/{call_sid}/Notifications/{sid}.json", fetch_notification)
