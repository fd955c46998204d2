"""The store interface: what the switch keeps about calls, recordings, queues, conferences and webhook errors.

`SQLiteStore` (the default, in the data directory) implements it; a server database can implement it later.

Rules every implementation keeps:

- Writes (``save_*``, ``add_*``, ``remove_*``) are called from the event loop and must not block it: they
  enqueue the write and return a future that resolves once it is committed (durable against a crash of the
  process). Callers may ignore the future.
- Writes are applied in the order they were made, and a read started after a write sees it: so an API that
  reads a record after its ``completed`` status was saved never shows ``completed`` before it is committed.
- Lists are newest first (by ``date_created``, then insertion order).

Who writes what:

- Calls: `switch.api.records.CallRecords` saves a call when it is created and when it ends (a
  ``CallService`` listener); the REST API shows live calls from memory.
- Recordings: whoever records (the ``<Record>`` verb, ``<Dial record>``, conference recording) calls
  ``add_recording(RecordingRecord(sid=new_sid("RE"), account_sid=..., call_sid=..., path=str(wav_path),
  duration=round(seconds), start_time=..., date_created=now, date_updated=now, channels=1 or 2,
  source="RecordVerb"))`` once the WAV file is complete. The REST API serves the file at
  ``/2010-04-01/Accounts/{AC}/Recordings/{RE}.wav`` (and ``.mp3``, encoded on first request).
- Queues: the REST API creates, updates and deletes them. Their members are not stored: they live in the
  call layer's queues (``switch.calls.queues``), and a restart of the switch empties every queue.
- Conferences and participants: the REST API listens to conference control and calls ``save_conference``
  and ``save_participant`` on each change.
- Webhook errors: the TwiML layer calls ``add_notification``.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from switch.store.records import (
    CallFilter,
    CallRecord,
    ConferenceRecord,
    NotificationRecord,
    ParticipantRecord,
    QueueRecord,
    RecordingRecord,
)


class StoreError(Exception):
    """The store could not do what was asked (an I/O error, a corrupt database, a closed store)."""


class Store(Protocol):
    async def open(self) -> None:
        """Create or migrate the schema; start accepting requests."""

    async def close(self) -> None:
        """Commit what is queued, then close."""

    async def flush(self) -> None:
        """Return once every write made before this call is committed."""

    # -- calls ------------------------------------------------------------------------------------------
    def save_call(self, record: CallRecord) -> asyncio.Future[None]:
        """Insert or replace the call with this sid."""

    async def get_call(self, account_sid: str, sid: str) -> CallRecord | None: ...

    async def list_calls(
        self, account_sid: str, where: CallFilter, *, offset: int, limit: int
    ) -> list[CallRecord]: ...

    async def delete_call(self, account_sid: str, sid: str) -> bool: ...

    async def end_unfinished_calls(self) -> int:
        """At start-up: calls a crash left without an end become ended (completed when they were
        answered, else failed), their end time the last time they were saved. Returns how many."""

    # -- recordings -------------------------------------------------------------------------------------
    def add_recording(self, record: RecordingRecord) -> asyncio.Future[None]:
        """Keep a finished recording (the WAV file at ``record.path`` must be complete)."""

    async def get_recording(self, account_sid: str, sid: str) -> RecordingRecord | None: ...

    async def list_recordings(
        self, account_sid: str, *, call_sid: str | None, offset: int, limit: int
    ) -> list[RecordingRecord]: ...

    async def delete_recording(self, account_sid: str, sid: str) -> RecordingRecord | None:
        """Forget the recording and return it (the caller deletes its files)."""

    # -- queues -----------------------------------------------------------------------------------------
    async def create_queue(self, record: QueueRecord) -> bool:
        """False when the account already has a queue of that friendly name."""

    async def get_queue(self, account_sid: str, sid: str) -> QueueRecord | None: ...

    async def find_queue(self, account_sid: str, friendly_name: str) -> QueueRecord | None: ...

    async def list_queues(self, account_sid: str, *, offset: int, limit: int) -> list[QueueRecord]: ...

    async def update_queue(self, record: QueueRecord) -> bool:
        """False when the sid is unknown or the new friendly name is taken."""

    async def delete_queue(self, account_sid: str, sid: str) -> bool: ...

    # -- conferences ------------------------------------------------------------------------------------
    def save_conference(self, record: ConferenceRecord) -> asyncio.Future[None]: ...

    async def get_conference(self, account_sid: str, sid: str) -> ConferenceRecord | None: ...

    async def list_conferences(
        self, account_sid: str, *, status: str | None, friendly_name: str | None, offset: int, limit: int
    ) -> list[ConferenceRecord]: ...

    def save_participant(self, record: ParticipantRecord) -> asyncio.Future[None]:
        """Insert or replace the participant (conference_sid, call_sid)."""

    async def list_participants(
        self, conference_sid: str, *, offset: int, limit: int
    ) -> list[ParticipantRecord]:
        """The conference's participants in the order they joined."""

    # -- webhook errors ---------------------------------------------------------------------------------
    def add_notification(self, record: NotificationRecord) -> asyncio.Future[None]: ...

    async def get_notification(
        self, account_sid: str, sid: str, *, call_sid: str | None = None
    ) -> NotificationRecord | None:
        """The notification with this sid (of the call ``call_sid`` when given)."""

    async def list_notifications(
        self,
        account_sid: str,
        *,
        call_sid: str | None,
        offset: int,
        limit: int,
        log_level: int | None = None,
    ) -> list[NotificationRecord]:
        """Newest first; ``log_level`` 0 (errors) or 1 (warnings) filters."""
