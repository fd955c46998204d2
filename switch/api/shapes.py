"""Twilio's JSON shapes: resources (snake_case, RFC 2822 dates, ``uri``, ``subresource_uris``) and list pages.

Paging follows Twilio: ``PageSize`` (default 50, at most 1000), ``Page`` (0-based) and ``PageToken``; a page
carries ``first_page_uri``, ``next_page_uri``, ``previous_page_uri``, ``page``, ``page_size``, ``start``,
``end``, ``uri`` and exactly one resource key (the twilio library finds the records as the one key that is not
a paging key). ``PageToken`` is ``PT`` + the offset of the page's first record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import urlencode

from switch.api.errors import invalid
from switch.store.records import (
    CallRecord,
    ConferenceRecord,
    ParticipantRecord,
    QueueMemberRecord,
    QueueRecord,
    RecordingRecord,
)

API_VERSION = "2010-04-01"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_PAGING = ("PageSize", "Page", "PageToken")


def rfc2822(timestamp: float | None) -> str | None:
    """``Tue, 14 Nov 2023 22:13:20 +0000``, as Twilio writes dates."""
    return None if timestamp is None else formatdate(timestamp, usegmt=False).replace("-0000", "+0000")


def account_path(account_sid: str) -> str:
    return f"/{API_VERSION}/Accounts/{account_sid}"


def call_json(record: CallRecord) -> dict[str, Any]:
    base = f"{account_path(record.account_sid)}/Calls/{record.sid}"
    ended = record.end_time is not None
    return {
        "account_sid": record.account_sid,
        "annotation": None,
        "answered_by": None,
        "api_version": API_VERSION,
        "caller_name": record.caller_name or None,
        "date_created": rfc2822(record.date_created),
        "date_updated": rfc2822(record.date_updated),
        "direction": record.direction,
        "duration": str(record.duration or 0) if ended else None,
        "end_time": rfc2822(record.end_time),
        "forwarded_from": None,
        "from": record.from_,
        "from_formatted": record.from_,
        "group_sid": None,
        "parent_call_sid": record.parent_call_sid,
        "phone_number_sid": None,
        "price": None,
        "price_unit": "USD",
        "queue_time": "0",
        "sid": record.sid,
        "start_time": rfc2822(record.start_time),
        "status": record.status,
        "subresource_uris": {
            "notifications": f"{base}/Notifications.json",
            "recordings": f"{base}/Recordings.json",
        },
        "to": record.to,
        "to_formatted": record.to,
        "trunk_sid": None,
        "uri": f"{base}.json",
    }


def recording_json(record: RecordingRecord) -> dict[str, Any]:
    base = f"{account_path(record.account_sid)}/Recordings/{record.sid}"
    return {
        "account_sid": record.account_sid,
        "api_version": API_VERSION,
        "call_sid": record.call_sid,
        "channels": record.channels,
        "conference_sid": record.conference_sid,
        "date_created": rfc2822(record.date_created),
        "date_updated": rfc2822(record.date_updated),
        "duration": str(record.duration),
        "encryption_details": None,
        "error_code": record.error_code,
        "media_url": f"{base}.wav",
        "price": None,
        "price_unit": "USD",
        "sid": record.sid,
        "source": record.source,
        "start_time": rfc2822(record.start_time),
        "status": record.status,
        "subresource_uris": {"transcriptions": f"{base}/Transcriptions.json"},
        "uri": f"{base}.json",
    }


def queue_json(record: QueueRecord, current_size: int, average_wait_time: int) -> dict[str, Any]:
    base = f"{account_path(record.account_sid)}/Queues/{record.sid}"
    return {
        "account_sid": record.account_sid,
        "average_wait_time": average_wait_time,
        "current_size": current_size,
        "date_created": rfc2822(record.date_created),
        "date_updated": rfc2822(record.date_updated),
        "friendly_name": record.friendly_name,
        "max_size": record.max_size,
        "sid": record.sid,
        "subresource_uris": {"members": f"{base}/Members.json"},
        "uri": f"{base}.json",
    }


def member_json(account_sid: str, record: QueueMemberRecord, now: float) -> dict[str, Any]:
    return {
        "call_sid": record.call_sid,
        "date_enqueued": rfc2822(record.date_enqueued),
        "position": record.position,
        "queue_sid": record.queue_sid,
        "uri": f"{account_path(account_sid)}/Queues/{record.queue_sid}/Members/{record.call_sid}.json",
        "wait_time": max(0, int(now - record.date_enqueued)),
    }


def conference_json(record: ConferenceRecord) -> dict[str, Any]:
    base = f"{account_path(record.account_sid)}/Conferences/{record.sid}"
    return {
        "account_sid": record.account_sid,
        "api_version": API_VERSION,
        "call_sid_ending_conference": None,
        "date_created": rfc2822(record.date_created),
        "date_updated": rfc2822(record.date_updated),
        "friendly_name": record.friendly_name,
        "reason_conference_ended": record.reason_conference_ended,
        "region": record.region,
        "sid": record.sid,
        "status": record.status,
        "subresource_uris": {
            "participants": f"{base}/Participants.json",
            "recordings": f"{base}/Recordings.json",
        },
        "uri": f"{base}.json",
    }


def participant_json(record: ParticipantRecord) -> dict[str, Any]:
    base = f"{account_path(record.account_sid)}/Conferences/{record.conference_sid}/Participants"
    return {
        "account_sid": record.account_sid,
        "call_sid": record.call_sid,
        "call_sid_to_coach": None,
        "coaching": False,
        "conference_sid": record.conference_sid,
        "date_created": rfc2822(record.date_created),
        "date_updated": rfc2822(record.date_updated),
        "end_conference_on_exit": record.end_conference_on_exit,
        "hold": record.hold,
        "label": record.label,
        "muted": record.muted,
        "queue_time": None,
        "start_conference_on_enter": record.start_conference_on_enter,
        "status": record.status,
        "uri": f"{base}/{record.call_sid}.json",
    }


@dataclass(frozen=True, slots=True)
class Paging:
    page: int
    page_size: int
    offset: int

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> Paging:
        page_size = _integer(query, "PageSize", DEFAULT_PAGE_SIZE)
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise invalid("PageSize", f"must be between 1 and {MAX_PAGE_SIZE}")
        page = _integer(query, "Page", 0)
        if page < 0:
            raise invalid("Page", "must not be negative")
        token = query.get("PageToken")
        if token:
            if not (token.startswith("PT") and token[2:].isdigit()):
                raise invalid("PageToken", "not a token this server gave")
            offset = int(token[2:])
        else:
            offset = page * page_size
        return cls(page, page_size, offset)


def _integer(query: Mapping[str, str], name: str, default: int) -> int:
    text = query.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise invalid(name, f"{text!r} is not an integer") from None


def page_json(
    key: str,
    path: str,
    filters: Sequence[tuple[str, str]],
    paging: Paging,
    records: Sequence[dict[str, Any]],
    has_more: bool,
) -> dict[str, Any]:
    """One page of a list. ``records`` holds at most ``page_size`` items; ``has_more`` says whether
    another page follows. ``filters`` are the query parameters to carry into the page links."""
    kept = [(name, value) for name, value in filters if name not in _PAGING]

    def link(page: int, offset: int | None) -> str:
        query = [*kept, ("PageSize", str(paging.page_size)), ("Page", str(page))]
        if offset is not None:
            query.append(("PageToken", f"PT{offset}"))
        return f"{path}?{urlencode(query)}"

    size = paging.page_size
    return {
        key: list(records),
        "end": paging.offset + len(records) - 1 if records else paging.offset,
        "first_page_uri": link(0, None),
        "next_page_uri": link(paging.page + 1, paging.offset + size) if has_more else None,
        "page": paging.page,
        "page_size": size,
        "previous_page_uri": (
            link(paging.page - 1, max(0, paging.offset - size))
            if paging.page > 0 and paging.offset > 0
            else None
        ),
        "start": paging.offset,
        "uri": link(paging.page, paging.offset if paging.offset else None),
    }
