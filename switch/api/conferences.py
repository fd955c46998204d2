"""``Conferences.json``, ``Conferences/{Sid}.json`` and its ``Participants``.

Conference records (and the participants of ended conferences) come from the store, which
`switch.api.records.ConferenceRecords` keeps up to date from conference control's events; the participants of
a live conference are its members. Creating a participant dials someone into the room: a call whose TwiML is
``<Dial><Conference>`` with the participant's options; it is shown ``queued`` until it joins.
"""

from __future__ import annotations

from collections.abc import Mapping
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from switch.api.calls import CALLBACK_EVENTS, client_contact, json_response, method_of, valid_url
from switch.api.context import ApiContext, account_of, context_of, form_of
from switch.api.errors import ApiError, invalid, not_found
from switch.api.records import participant_of
from switch.api.shapes import Paging, account_path, conference_json, page_json, participant_json
from switch.calls.conferences import Conference, Member
from switch.store.records import ConferenceRecord, ParticipantRecord

STATUSES = frozenset({"init", "in-progress", "completed"})
BEEPS = frozenset({"true", "false", "onEnter", "onExit"})
CONFERENCE_EVENTS = frozenset(
    {"start", "end", "join", "leave", "mute", "hold", "modify", "speaker", "announcement"}
)


async def list_conferences(request: web.Request) -> web.Response:
    context = context_of(request)
    account_sid = account_of(request)
    paging = Paging.parse(request.query)
    status = request.query.get("Status") or None
    if status is not None and status not in STATUSES:
        raise invalid("Status", "must be init, in-progress or completed")
    records = await context.store.list_conferences(
        account_sid,
        status=status,
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


async def _conference(request: web.Request) -> ConferenceRecord:
    context = context_of(request)
    record = await context.store.get_conference(account_of(request), request.match_info["sid"])
    if record is None:
        raise not_found(request.path)
    return record


async def fetch_conference(request: web.Request) -> web.Response:
    return json_response(conference_json(await _conference(request)))


async def update_conference(request: web.Request) -> web.Response:
    """``Status=completed`` ends the conference: every participant's Dial ends."""
    context = context_of(request)
    record = await _conference(request)
    form = await form_of(request)
    status = form.get("Status") or None
    if status is not None:
        if status != "completed":
            raise invalid("Status", "only completed")
        room = context.service.conferences.by_sid(record.sid)
        if room is not None:
            context.conferences.ended_by_api.add(room.sid)
            context.service.conferences.end(room)
            record = await _conference(request)  # read after the end's write
    return json_response(conference_json(record))


# -- participants ----------------------------------------------------------------------------------------
def _live_room(context: ApiContext, sid: str) -> Conference | None:
    return context.service.conferences.by_sid(sid)


def _participant(context: ApiContext, room: Conference, member: Member) -> ParticipantRecord:
    return participant_of(room, member, "connected", room.account_sid or context.account_sid)


async def list_participants(request: web.Request) -> web.Response:
    context = context_of(request)
    record = await _conference(request)
    paging = Paging.parse(request.query)
    room = _live_room(context, record.sid)
    if room is not None:
        everyone = [_participant(context, room, m) for m in sorted(room.members.values(), key=_joined)]
        everyone += [p for p in context.conferences.pending.values() if p.conference_sid == record.sid]
        for name, attribute in (("Muted", "muted"), ("Hold", "hold")):
            wanted = request.query.get(name, "").lower()
            if wanted in ("true", "false"):
                everyone = [p for p in everyone if getattr(p, attribute) == (wanted == "true")]
        records = everyone[paging.offset : paging.offset + paging.page_size + 1]
    else:
        records = await context.store.list_participants(
            record.sid, offset=paging.offset, limit=paging.page_size + 1
        )
    shown = [participant_json(r) for r in records[: paging.page_size]]
    body = page_json(
        "participants",
        request.path,
        list(request.query.items()),
        paging,
        shown,
        len(records) > paging.page_size,
    )
    return json_response(body)


def _joined(member: Member) -> float:
    return member.joined_at


def _bool(form: Mapping[str, str], name: str, default: bool) -> bool:
    value = form.get(name)
    if value is None or value == "":
        return default
    if value.lower() not in ("true", "false"):
        raise invalid(name, "must be true or false")
    return value.lower() == "true"


def conference_twiml(name: str, form: Mapping[str, str], events: list[str]) -> str:
    """The TwiML of a dialled participant: ``<Dial><Conference>`` with the participant's options."""
    attributes: dict[str, str] = {
        "muted": str(_bool(form, "Muted", False)).lower(),
        "startConferenceOnEnter": str(_bool(form, "StartConferenceOnEnter", True)).lower(),
        "endConferenceOnExit": str(_bool(form, "EndConferenceOnExit", False)).lower(),
    }
    beep = form.get("Beep") or "true"
    if beep not in BEEPS:
        raise invalid("Beep", "must be true, false, onEnter or onExit")
    attributes["beep"] = beep
    for parameter, attribute in (
        ("WaitUrl", "waitUrl"),
        ("ConferenceStatusCallback", "statusCallback"),
    ):
        value = form.get(parameter) or ""
        if value:
            if not valid_url(value):
                raise ApiError(21205, f"{parameter} is not a valid URL: {value}")
            attributes[attribute] = value
    if form.get("WaitMethod"):
        attributes["waitMethod"] = method_of(form, "WaitMethod")
    if form.get("ConferenceStatusCallbackMethod"):
        attributes["statusCallbackMethod"] = method_of(form, "ConferenceStatusCallbackMethod")
    if events:
        attributes["statusCallbackEvent"] = " ".join(events)
    maximum = form.get("MaxParticipants") or ""
    if maximum:
        if not maximum.isdigit() or not 2 <= int(maximum) <= 250:
            raise invalid("MaxParticipants", "must be between 2 and 250")
        attributes["maxParticipants"] = maximum
    written = " ".join(f"{key}={quoteattr(value)}" for key, value in attributes.items())
    return f"<Response><Dial><Conference {written}>{escape(name)}</Conference></Dial></Response>"


async def create_participant(request: web.Request) -> web.Response:
    """Dial ``To`` into the conference (a live one by sid, or by friendly name: created when it starts)."""
    context = context_of(request)
    account_sid = account_of(request)
    key = request.match_info["sid"]
    form = await form_of(request)
    conference_sid = ""
    name = key
    if key.startswith("CF") and len(key) == 34:
        record = await context.store.get_conference(account_sid, key)
        if record is None:
            raise not_found(request.path)
        if record.status == "completed":
            raise ApiError(20001, "The conference has ended: no participant can join it")
        conference_sid, name = record.sid, record.friendly_name
    to = form.get("To", "").strip()
    if not to:
        raise ApiError(21201, "No 'To' number is specified")
    from_ = form.get("From", "").strip()
    if not from_:
        raise ApiError(21213, "No 'From' number is specified")
    callback = form.get("StatusCallback") or None
    if callback is not None and not valid_url(callback):
        raise ApiError(21205, f"StatusCallback is not a valid URL: {callback}")
    call_events = [e for value in form.getall("StatusCallbackEvent", []) for e in value.split()]
    if any(event not in CALLBACK_EVENTS for event in call_events):
        raise invalid("StatusCallbackEvent", "one of initiated ringing answered completed")
    room_events = [e for value in form.getall("ConferenceStatusCallbackEvent", []) for e in value.split()]
    if any(event not in CONFERENCE_EVENTS for event in room_events):
        raise invalid("ConferenceStatusCallbackEvent", f"one of {' '.join(sorted(CONFERENCE_EVENTS))}")
    twiml = conference_twiml(name, form, room_events)
    timeout_text = form.get("Timeout") or "60"
    if not timeout_text.isdigit():
        raise invalid("Timeout", f"{timeout_text!r} is not an integer")
    target = client_contact(context, to) if to.startswith("client:") else to
    try:
        call = await context.service.originate(
            to=target,
            from_=from_,
            url=None,
            twiml=twiml,
            status_callback=callback,
            status_callback_event=tuple(call_events) or ("completed",),
            status_callback_method=method_of(form, "StatusCallbackMethod"),
            timeout=min(600, max(5, int(timeout_text))),
        )
    except ValueError as exc:
        raise ApiError(21211, f"Invalid 'To' Phone Number: {to} ({exc})") from None
    if target != to:
        call.to = to
    now = context.clock()
    participant = ParticipantRecord(
        conference_sid=conference_sid,
        call_sid=call.sid,
        account_sid=account_sid,
        status="queued",
        muted=_bool(form, "Muted", False),
        hold=False,
        start_conference_on_enter=_bool(form, "StartConferenceOnEnter", True),
        end_conference_on_exit=_bool(form, "EndConferenceOnExit", False),
        date_created=now,
        date_updated=now,
        label=form.get("Label") or None,
    )
    if conference_sid:
        context.conferences.pending[call.sid] = participant
    return json_response(participant_json(participant), status=201)


def _member(request: web.Request) -> tuple[Conference, Member]:
    context = context_of(request)
    account_of(request)
    room = _live_room(context, request.match_info["sid"])
    member = room.members.get(request.match_info["call_sid"]) if room is not None else None
    if room is None or member is None:
        raise not_found(request.path)
    return room, member


async def fetch_participant(request: web.Request) -> web.Response:
    context = context_of(request)
    try:
        room, member = _member(request)
    except ApiError:
        pending = context.conferences.pending.get(request.match_info["call_sid"])
        if pending is None or pending.conference_sid != request.match_info["sid"]:
            raise
        return json_response(participant_json(pending))
    return json_response(participant_json(_participant(context, room, member)))


async def update_participant(request: web.Request) -> web.Response:
    """Muted, Hold and HoldUrl (HoldMethod) of a participant."""
    context = context_of(request)
    room, member = _member(request)
    form = await form_of(request)
    manager = context.service.conferences
    if form.get("Muted"):
        manager.set_muted(room, member.call.sid, _bool(form, "Muted", member.muted))
    hold_url = form.get("HoldUrl") or None
    if hold_url is not None and not valid_url(hold_url):
        raise ApiError(21205, f"HoldUrl is not a valid URL: {hold_url}")
    if form.get("Hold"):
        manager.set_hold(room, member.call.sid, _bool(form, "Hold", member.hold), hold_url)
    return json_response(participant_json(_participant(context, room, member)))


async def delete_participant(request: web.Request) -> web.Response:
    context = context_of(request)
    room, member = _member(request)
    context.service.conferences.remove(room, member.call.sid)
    return web.Response(status=204)


def add_routes(app: web.Application, prefix: str) -> None:
    router = app.router
    base = prefix + "/Conferences/{sid}"
    router.add_get(f"{prefix}/Conferences.json", list_conferences)
    router.add_get(base + ".json", fetch_conference)
    router.add_post(base + ".json", update_conference)
    router.add_get(base + "/Participants.json", list_participants)
    router.add_post(base + "/Participants.json", create_participant)
    router.add_get(base + "/Participants/{call_sid}.json", fetch_participant)
    router.add_post(base + "/Participants/{call_sid}.json", update_participant)
    router.add_delete(base + "/Participants/{call_sid}.json", delete_participant)
