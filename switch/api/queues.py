"""``Queues.json``, ``Queues/{Sid}.json``, ``Members.json`` and ``Members/{CallSid|Front}.json``.

A queue is one thing seen from two sides: its record in the store (FriendlyName, MaxSize; it outlives the
process) and the live queue of the call service (``<Enqueue>`` puts callers in it; it has the members). They
share the QueueSid: a queue made through the API is made live at once with the record's sid, the store's
queues are made live when the API starts, and a queue ``<Enqueue>`` made first gets its record when the API
next looks. Members are always the live queue's callers.
"""

from __future__ import annotations

from aiohttp import web

from switch.api.calls import json_response, method_of, valid_url
from switch.api.context import ApiContext, account_of, context_of, form_of
from switch.api.errors import ApiError, invalid, not_found
from switch.api.shapes import Paging, account_path, member_json, page_json, queue_json
from switch.calls.queues import CallQueue, QueueEntry
from switch.store.records import QueueMemberRecord, QueueRecord, new_sid

DEFAULT_QUEUE_SIZE = 100
MAX_QUEUE_SIZE = 5000


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


# -- the live side ---------------------------------------------------------------------------------------
def live_queue(context: ApiContext, record: QueueRecord) -> CallQueue:
    """The live queue of this record, made (empty) when there is none; it takes the record's sid and size."""
    queues = context.service.queues.queues
    queue = queues.get(record.friendly_name)
    if queue is None:
        queue = queues[record.friendly_name] = CallQueue(record.friendly_name, record.max_size, record.sid)
    elif queue.sid != record.sid:
        # <Enqueue> made the queue before the record of that name existed (one created while its calls
        # waited): the record is what the API shows, so the live queue takes its sid.
        queue.sid = record.sid
    queue.max_size = record.max_size
    return queue


def waiting(queue: CallQueue) -> list[QueueEntry]:
    """The callers in line, first first (callers that hung up are skipped)."""
    return [entry for entry in queue.entries if not entry.call.ended.is_set()]


def _member(queue: CallQueue, entry: QueueEntry, position: int) -> QueueMemberRecord:
    return QueueMemberRecord(queue.sid, entry.call.sid, position, entry.enqueued_at)


async def load_queues(context: ApiContext) -> None:
    """At start: every stored queue of the account becomes live, with its sid."""
    offset = 0
    while True:
        records = await context.store.list_queues(context.account_sid, offset=offset, limit=500)
        for record in records:
            live_queue(context, record)
        if len(records) < 500:
            return
        offset += len(records)


async def _record_live_queues(context: ApiContext) -> None:
    """Queues ``<Enqueue>`` made that have no record yet get one (same sid)."""
    for queue in list(context.service.queues.queues.values()):
        if await context.store.get_queue(context.account_sid, queue.sid) is not None:
            continue
        now = context.clock()
        record = QueueRecord(queue.sid, context.account_sid, queue.name, queue.max_size, now, now)
        if not await context.store.create_queue(record):
            # A record of that name with another sid: the live queue takes the record's sid.
            existing = await context.store.find_queue(context.account_sid, queue.name)
            if existing is not None:
                live_queue(context, existing)


def _queue_body(context: ApiContext, record: QueueRecord) -> dict[str, object]:
    queue = live_queue(context, record)
    now = context.clock()
    waits = [now - entry.enqueued_at for entry in waiting(queue)]
    average = int(sum(waits) / len(waits)) if waits else 0
    return queue_json(record, len(waits), average)


# -- queues ----------------------------------------------------------------------------------------------
async def create_queue(request: web.Request) -> web.Response:
    context = context_of(request)
    account_sid = account_of(request)
    form = await form_of(request)
    name = form.get("FriendlyName", "").strip()
    if not name:
        raise ApiError(20001, "Missing required parameter FriendlyName in the post body")
    if len(name) > 64:
        raise invalid("FriendlyName", "at most 64 characters")
    await _record_live_queues(context)
    now = context.clock()
    record = QueueRecord(
        new_sid("QU"), account_sid, name, _max_size(form.get("MaxSize"), DEFAULT_QUEUE_SIZE), now, now
    )
    if not await context.store.create_queue(record):
        raise invalid("FriendlyName", f"a queue named {name!r} already exists")
    return json_response(_queue_body(context, record), status=201)


async def _queue(request: web.Request) -> QueueRecord:
    context = context_of(request)
    account_sid = account_of(request)
    sid = request.match_info["sid"]
    record = await context.store.get_queue(account_sid, sid)
    if record is None and any(q.sid == sid for q in context.service.queues.queues.values()):
        await _record_live_queues(context)
        record = await context.store.get_queue(account_sid, sid)
    if record is None:
        raise not_found(request.path)
    return record


async def list_queues(request: web.Request) -> web.Response:
    context = context_of(request)
    account_sid = account_of(request)
    paging = Paging.parse(request.query)
    await _record_live_queues(context)
    records = await context.store.list_queues(account_sid, offset=paging.offset, limit=paging.page_size + 1)
    shown = [_queue_body(context, r) for r in records[: paging.page_size]]
    path = f"{account_path(account_sid)}/Queues.json"
    body = page_json(
        "queues", path, list(request.query.items()), paging, shown, len(records) > paging.page_size
    )
    return json_response(body)


async def fetch_queue(request: web.Request) -> web.Response:
    return json_response(_queue_body(context_of(request), await _queue(request)))


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
    queues = context.service.queues.queues
    queue = queues.get(record.friendly_name)
    if queue is not None and name != record.friendly_name and name not in queues:
        del queues[record.friendly_name]
        queue.name = name
        queues[name] = queue
    return json_response(_queue_body(context, updated))


async def delete_queue(request: web.Request) -> web.Response:
    context = context_of(request)
    record = await _queue(request)
    queues = context.service.queues.queues
    queue = queues.get(record.friendly_name)
    if queue is not None and waiting(queue):
        raise ApiError(20001, "The queue has members: it cannot be deleted")
    await context.store.delete_queue(record.account_sid, record.sid)
    if queue is not None and queue.sid == record.sid:
        del queues[record.friendly_name]
    return web.Response(status=204)


# -- members ---------------------------------------------------------------------------------------------
async def list_members(request: web.Request) -> web.Response:
    context = context_of(request)
    record = await _queue(request)
    paging = Paging.parse(request.query)
    queue = live_queue(context, record)
    entries = waiting(queue)
    now = context.clock()
    page = entries[paging.offset : paging.offset + paging.page_size]
    shown = [
        member_json(record.account_sid, _member(queue, entry, paging.offset + n + 1), now)
        for n, entry in enumerate(page)
    ]
    body = page_json(
        "queue_members",
        request.path,
        list(request.query.items()),
        paging,
        shown,
        len(entries) > paging.offset + paging.page_size,
    )
    return json_response(body)


def _find_member(request: web.Request, queue: CallQueue) -> tuple[QueueEntry, int]:
    wanted = request.match_info["member"]
    for position, entry in enumerate(waiting(queue), start=1):
        if wanted == entry.call.sid or (wanted == "Front" and position == 1):
            return entry, position
    raise not_found(request.path)


async def fetch_member(request: web.Request) -> web.Response:
    context = context_of(request)
    record = await _queue(request)
    queue = live_queue(context, record)
    entry, position = _find_member(request, queue)
    return json_response(member_json(record.account_sid, _member(queue, entry, position), context.clock()))


async def dequeue_member(request: web.Request) -> web.Response:
    """POST ``Members/{CallSid|Front}.json`` with Url (and Method): the caller leaves the queue and runs
    the document at Url."""
    context = context_of(request)
    record = await _queue(request)
    form = await form_of(request)
    url = form.get("Url", "").strip()
    if not valid_url(url):
        raise ApiError(21205, f"Url is not a valid URL: {url}")
    method = method_of(form, "Method")
    queue = live_queue(context, record)
    entry, position = _find_member(request, queue)
    member = _member(queue, entry, position)
    now = context.clock()
    queue.take(entry.call.sid, now)
    try:
        await context.service.redirect(entry.call, url=url, twiml=None, method=method)
    except ValueError:
        raise not_found(request.path) from None
    return json_response(member_json(record.account_sid, member, now))


def add_routes(app: web.Application, prefix: str) -> None:
    router = app.router
    router.add_post(f"{prefix}/Queues.json", create_queue)
    router.add_get(f"{prefix}/Queues.json", list_queues)
    router.add_get(prefix + "/Queues/{sid}.json", fetch_queue)
    router.add_post(prefix + "/Queues/{sid}.json", update_queue)
    router.add_delete(prefix + "/Queues/{sid}.json", delete_queue)
    router.add_get(prefix + "/Queues/{sid}/Members.json", list_members)
    router.add_get(prefix + "/Queues/{sid}/Members/{member}.json", fetch_member)
    router.add_post(prefix + "/Queues/{sid}/Members/{member}.json", dequeue_member)
