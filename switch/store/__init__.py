"""Records of calls, recordings, queues, conferences and webhook errors: an interface and its SQLite store."""

from switch.store.base import Store, StoreError
from switch.store.records import (
    CallFilter,
    CallRecord,
    ConferenceRecord,
    NotificationRecord,
    ParticipantRecord,
    QueueMemberRecord,
    QueueRecord,
    RecordingRecord,
    new_sid,
)
from switch.store.sqlite import SQLiteStore

__all__ = [
    "CallFilter",
    "CallRecord",
    "ConferenceRecord",
    "NotificationRecord",
    "ParticipantRecord",
    "QueueMemberRecord",
    "QueueRecord",
    "RecordingRecord",
    "SQLiteStore",
    "Store",
    "StoreError",
    "new_sid",
]
