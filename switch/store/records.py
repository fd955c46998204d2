"""The records the switch keeps: plain frozen dataclasses, one per Twilio resource.

Times are POSIX seconds (floats, UTC); the REST layer formats them as RFC 2822. Sids follow Twilio:
``CA`` calls, ``RE`` recordings, ``QU`` queues, ``CF`` conferences, ``NO`` notifications (webhook errors).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass


def new_sid(prefix: str) -> str:
    """A Twilio-shaped sid: two letters and 32 lower-case hex digits."""
    return prefix + uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class CallRecord:
    sid: str
    account_sid: str
    direction: str  # "inbound" | "outbound-api" | "outbound-dial"
    from_: str
    to: str
    status: str
    start_time: float
    date_created: float
    date_updated: float
    parent_call_sid: str | None = None
    caller_name: str = ""
    answer_time: float | None = None
    end_time: float | None = None
    duration: int | None = None  # seconds from answer to end, known once the call has ended
    sip_call_id: str = ""


@dataclass(frozen=True, slots=True)
class CallFilter:
    """The filters of ``GET Calls.json``; None means "any". Times compare with the call's start_time."""

    to: str | None = None
    from_: str | None = None
    status: str | None = None
    parent_call_sid: str | None = None
    started_on_or_after: float | None = None
    started_before: float | None = None
    ended_only: bool = False
    """Only calls that have ended (``end_time`` set): the REST API shows live calls from memory."""


@dataclass(frozen=True, slots=True)
class RecordingRecord:
    """One recording. ``path`` is the WAV file on disk (8 kHz 16-bit PCM, ``channels`` 1 or 2)."""

    sid: str
    account_sid: str
    call_sid: str | None
    path: str
    duration: int  # seconds
    start_time: float
    date_created: float
    date_updated: float
    channels: int = 1
    source: str = (
        "RecordVerb"  # Twilio's sources: RecordVerb, DialVerb, Conference, OutboundAPI, StartCallRecording
    )
    status: str = "completed"
    conference_sid: str | None = None
    error_code: int | None = None


@dataclass(frozen=True, slots=True)
class QueueRecord:
    sid: str
    account_sid: str
    friendly_name: str
    max_size: int
    date_created: float
    date_updated: float


@dataclass(frozen=True, slots=True)
class QueueMemberRecord:
    """A call waiting in a queue, as the REST API shows it (from the live queue: members are not stored)."""

    queue_sid: str
    call_sid: str
    position: int
    date_enqueued: float


@dataclass(frozen=True, slots=True)
class ConferenceRecord:
    sid: str
    account_sid: str
    friendly_name: str
    status: str  # "init" | "in-progress" | "completed"
    date_created: float
    date_updated: float
    region: str = "local"
    reason_conference_ended: str | None = None


@dataclass(frozen=True, slots=True)
class ParticipantRecord:
    """A call in a conference, as it was when last saved (status ``connected``, then ``complete``)."""

    conference_sid: str
    call_sid: str
    account_sid: str
    status: str
    muted: bool
    hold: bool
    start_conference_on_enter: bool
    end_conference_on_exit: bool
    date_created: float
    date_updated: float
    label: str | None = None


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    """A webhook error (Twilio's Notifications resource): code 11200, 11205, 12100, 12300, ..."""

    sid: str
    account_sid: str
    call_sid: str | None
    error_code: int
    message: str
    url: str
    date_created: float
    log_level: int = 0  # Twilio: 0 error, 1 warning
    request_method: str = ""
    """The method of the request that failed (GET or POST); blank when there was no HTTP request."""
