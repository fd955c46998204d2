"""``Calls.json`` and ``Calls/{CallSid}.json``: create (originate), list, fetch, update, delete.

Live calls are read from the call service (fresh state); ended calls from the store, whose reads are ordered
after its writes, so a call the API shows as ended is committed.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from multidict import MultiDictProxy

from switch.api.answer import AnswerPlan
from switch.api.context import ApiContext, account_of, context_of, form_of
from switch.api.errors import ApiError, invalid, not_found
from switch.api.records import record_of
from switch.api.shapes import Paging, account_path, call_json, page_json
from switch.store.records import CallFilter, CallRecord

STATUSES = frozenset(
    {"queued", "initiated", "ringing", "in-progress", "completed", "busy", "no-answer", "failed", "canceled"}
)
CALLBACK_EVENTS = frozenset({"initiated", "ringing", "answered", "completed"})
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DIGITS = re.compile(r"^[0-9*#A-DwW]*$")
DAY = 86400.0


def valid_url(url: str) -> bool:
    """An absolute http(s) URL with a host."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def method_of(form: Mapping[str, str], name: str) -> str:
    value = (form.get(name) or "POST").upper()
    if value not in ("GET", "POST"):
        raise invalid(name, "must be GET or POST")
    return value


def _time_bound(name: str, text: str) -> tuple[float, bool]:
    """POSIX seconds of a ``YYYY-MM-DD`` or ISO 8601 value, and whether it was a whole day."""
    text = text.strip()
    try:
        if _DATE.match(text):
            parsed = datetime.strptime(text, "%Y-%m-%d")
            return float(calendar.timegm(parsed.timetuple())), True
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(name, f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
    if parsed.tzinfo is None:
        return float(calendar.timegm(parsed.timetuple())), False
    return parsed.timestamp(), False


def call_filter(query: Mapping[str, str]) -> CallFilter:
    """The filters of ``GET Calls.json``: To, From, Status, ParentCallSid, StartTime, StartTime<, StartTime>.

    ``StartTime=D`` is the day D (or that second); ``StartTime>T`` and ``StartTime>=T`` on or after T;
    ``StartTime<T`` before T; ``StartTime<=D`` up to the end of day D.
    """
    after: float | None = None
    before: float | None = None
    for name in ("StartTime", "StartTime>", "StartTime<"):
        text = query.get(name, "")
        # ``StartTime<=2024-01-31`` arrives as the key ``StartTime<`` with the value ``=2024-01-31``.
        inclusive = text.startswith("=")
        text = text.removeprefix("=")
        if not text:
            continue
        at, whole_day = _time_bound(name, text)
        if name == "StartTime":
            after, before = at, at + (DAY if whole_day else 1.0)
        elif name == "StartTime>":
            after = at
        else:
            before = at + DAY if inclusive and whole_day else at
    status = query.get("Status") or None
    if status is not None and status not in STATUSES:
        raise invalid("Status", f"{status!r} is not a call status")
    return CallFilter(
        to=query.get("To") or None,
        from_=query.get("From") or None,
        status=status,
        parent_call_sid=query.get("ParentCallSid") or None,
        started_on_or_after=after,
        started_before=before,
    )


async def find_call(context: ApiContext, account_sid: str, sid: str) -> CallRecord | None:
    live = context.service.calls.get(sid)
    if live is not None and live.account_sid == account_sid:
        return record_of(live, now=context.clock())
    return await context.store.get_call(account_sid, sid)


def json_response(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _flag(form: Mapping[str, str], name: str) -> bool:
    value = (form.get(name) or "false").strip().lower()
    if value not in ("true", "false"):
        raise invalid(name, "must be true or false")
    return value == "true"


def answer_plan(form: MultiDictProxy[str]) -> AnswerPlan:
    """Record, SendDigits and RecordingStatusCallback(Method, Event) of a created call."""
    digits = form.get("SendDigits", "").strip()
    if not _DIGITS.match(digits):
        raise invalid("SendDigits", "only 0-9, *, #, A-D, w and W")
    callback = form.get("RecordingStatusCallback") or None
    if callback is not None and not valid_url(callback):
        raise ApiError(21205, f"RecordingStatusCallback is not a valid URL: {callback}")
    events = [e for value in form.getall("RecordingStatusCallbackEvent", []) for e in value.split()]
    return AnswerPlan(
        send_digits=digits,
        record=_flag(form, "Record"),
        recording_status_callback=callback,
        recording_status_callback_method=method_of(form, "RecordingStatusCallbackMethod"),
        recording_status_callback_event=tuple(events) or ("completed",),
    )


def client_contact(context: ApiContext, to: str) -> str:
    """``client:alice``: the SIP URI where alice is registered (over UDP); ValueError-free: 21211 when
    she is not."""
    user = to.removeprefix("client:").strip()
    for binding in context.service.registrar.contacts(user, context.clock()):
        if binding.transport.upper() == "UDP":
            return binding.contact
    raise ApiError(21211, f"Invalid 'To': {to} is not registered (over UDP)")


async def create_call(request: web.Request) -> web.Response:
    context = context_of(request)
    account_of(request)
    form = await form_of(request)
    to = form.get("To", "").strip()
    if not to:
        raise ApiError(21201, "No 'To' number is specified")
    from_ = form.get("From", "").strip()
    if not from_:
        raise ApiError(21213, "No 'From' number is specified")
    url = form.get("Url") or None
    twiml = form.get("Twiml") or None
    if twiml is None and (url is None or not valid_url(url)):
        raise ApiError(21205, f"Url is not a valid URL: {url or ''}")
    fallback_url = form.get("FallbackUrl") or None
    if fallback_url is not None and not valid_url(fallback_url):
        raise ApiError(21205, f"FallbackUrl is not a valid URL: {fallback_url}")
    status_callback = form.get("StatusCallback") or None
    if status_callback is not None and not valid_url(status_callback):
        raise ApiError(21205, f"StatusCallback is not a valid URL: {status_callback}")
    events = [event for value in form.getall("StatusCallbackEvent", []) for event in value.split()]
    unknown = [event for event in events if event not in CALLBACK_EVENTS]
    if unknown:
        raise invalid(
            "StatusCallbackEvent", f"{unknown[0]!r} is not one of initiated ringing answered completed"
        )
    timeout_text = form.get("Timeout") or "60"
    try:
        timeout = min(600, max(1, int(timeout_text)))
    except ValueError:
        raise invalid("Timeout", f"{timeout_text!r} is not an integer") from None
    plan = answer_plan(form)
    target = client_contact(context, to) if to.startswith("client:") else to
    try:
        call = await context.service.originate(
            to=target,
            from_=from_,
            url=url,
            twiml=twiml,
            method=method_of(form, "Method"),
            fallback_url=fallback_url,
            status_callback=status_callback,
            status_callback_event=tuple(events) or ("completed",),
            status_callback_method=method_of(form, "StatusCallbackMethod"),
            timeout=timeout,
        )
    except ValueError as exc:
        raise ApiError(21211, f"Invalid 'To' Phone Number: {to} ({exc})") from None
    if target != to:
        call.to = to  # as Twilio shows it: client:alice
    if plan.record or plan.send_digits:
        context.answers.plan(call.sid, plan)
    # The creation record is committed before the 201: a call whose sid the client holds survives a crash.
    await context.store.flush()
    # Shown as created: queued, whatever the call has reached since.
    return json_response(call_json(record_of(call, "queued", now=context.clock())), status=201)


def _live_matches(record: CallRecord, where: CallFilter) -> bool:
    return (
        (where.to is None or record.to == where.to)
        and (where.from_ is None or record.from_ == where.from_)
        and (where.status is None or record.status == where.status)
        and (where.parent_call_sid is None or record.parent_call_sid == where.parent_call_sid)
        and (where.started_on_or_after is None or record.start_time >= where.started_on_or_after)
        and (where.started_before is None or record.start_time < where.started_before)
    )


def _newest_first(record: CallRecord) -> float:
    return -record.date_created


async def calls_page(
    context: ApiContext, account_sid: str, where: CallFilter, offset: int, limit: int
) -> list[CallRecord]:
    """Records ``offset`` to ``offset + limit`` of the calls matching ``where``, newest first: the live
    calls (from memory) merged with the ended ones (from the store)."""
    now = context.clock()
    live = sorted(
        (
            record
            for record in (
                record_of(call, now=now)
                for call in list(context.service.calls.values())
                if call.account_sid == account_sid
            )
            if _live_matches(record, where)
        ),
        key=_newest_first,
    )
    ended = replace(where, ended_only=True)
    if not live:
        return await context.store.list_calls(account_sid, ended, offset=offset, limit=limit)
    # The page's stored calls are among stored rows [offset - len(live), offset + limit): at most
    # len(live) live calls come before the page.
    first = max(0, offset - len(live))
    window = await context.store.list_calls(account_sid, ended, offset=first, limit=offset + limit - first)
    if first == 0:
        merged, start = sorted([*window, *live], key=_newest_first), 0
    elif not window:
        return []  # the stored calls end before the page, and the live ones cannot fill the gap
    else:
        anchor = window[0].date_created
        before = sum(1 for record in live if record.date_created > anchor)
        merged = sorted([*window, *live[before:]], key=_newest_first)
        start = first + before
    return merged[offset - start : offset - start + limit]


async def list_calls(request: web.Request) -> web.Response:
    context = context_of(request)
    account_sid = account_of(request)
    query = request.query
    paging = Paging.parse(query)
    records = await calls_page(
        context, account_sid, call_filter(query), offset=paging.offset, limit=paging.page_size + 1
    )
    shown = [call_json(record) for record in records[: paging.page_size]]
    path = f"{account_path(account_sid)}/Calls.json"
    body = page_json("calls", path, list(query.items()), paging, shown, len(records) > paging.page_size)
    return json_response(body)


async def fetch_call(request: web.Request) -> web.Response:
    context = context_of(request)
    account_sid = account_of(request)
    record = await find_call(context, account_sid, request.match_info["sid"])
    if record is None:
        raise not_found(request.path)
    return json_response(call_json(record))


async def update_call(request: web.Request) -> web.Response:
    context = context_of(request)
    account_sid = account_of(request)
    sid = request.match_info["sid"]
    form = await form_of(request)
    call = context.service.calls.get(sid)
    if call is None or call.account_sid != account_sid:
        if await context.store.get_call(account_sid, sid) is None:
            raise not_found(request.path)
        raise ApiError(21220, "Call is not in-progress. Cannot redirect or hang up.")
    status = form.get("Status") or None
    url = form.get("Url") or None
    twiml = form.get("Twiml") or None
    if status is not None:
        if status not in ("completed", "canceled"):
            raise invalid("Status", "must be completed or canceled")
        if status == "canceled" and call.status == "in-progress":
            raise ApiError(21220, "Call is in-progress: only Status=completed ends it")
        await context.service.hangup(call)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(call.ended.wait()), context.hangup_wait)
    elif url is not None or twiml is not None:
        if twiml is None and url is not None and not valid_url(url):
            raise ApiError(21205, f"Url is not a valid URL: {url}")
        try:
            await context.service.redirect(call, url=url, twiml=twiml, method=method_of(form, "Method"))
        except ValueError:
            raise ApiError(21220, "Call is not in-progress. Cannot redirect.") from None
    else:
        raise invalid("Url", "an update needs Url, Twiml or Status")
    record = await find_call(context, account_sid, sid)
    if record is None:
        raise not_found(request.path)
    return json_response(call_json(record))


async def delete_call(request: web.Request) -> web.Response:
    context = context_of(request)
    account_sid = account_of(request)
    sid = request.match_info["sid"]
    if sid in context.service.calls:
        raise ApiError(21220, "Call is still live: hang it up (Status=completed) before deleting it")
    if not await context.store.delete_call(account_sid, sid):
        raise not_found(request.path)
    return web.Response(status=204)


def add_routes(app: web.Application, prefix: str) -> None:
    app.router.add_post(f"{prefix}/Calls.json", create_call)
    app.router.add_get(f"{prefix}/Calls.json", list_calls)
    app.router.add_get(prefix + "/Calls/{sid}.json", fetch_call)
    app.router.add_post(prefix + "/Calls/{sid}.json", update_call)
    app.router.add_delete(prefix + "/Calls/{sid}.json", delete_call)
