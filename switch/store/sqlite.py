"""The embedded store: SQLite in the data directory, driven by one small dedicated thread.

The thread owns the only connection. Requests (writes and reads alike) go through one FIFO queue, so they
are applied in the order they were made and a read sees every write made before it. A write nobody waits on
at once (call records, notifications) goes to the thread at once when none went in the last ``WRITE_WINDOW``;
otherwise it is gathered on the event loop until that window is over and handed over with the others as one
batch (a read, or ``flush``, hands over at once whatever is gathered before it). Under load that is one
queue hand-over, one thread wake-up and one transaction per window, not per record; a lone write is not
delayed. The thread takes whatever is queued, runs it in one transaction, commits, and only then resolves
the futures: a caller told "saved" (or shown a record) knows it is on disk. WAL with ``synchronous=NORMAL``
keeps a commit durable against a crash of the process (SIGKILL), which is the failure the switch guards
against; a power cut may lose the last commits.

The schema is versioned with ``PRAGMA user_version``; `MIGRATIONS[n]` takes version n to n + 1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any, TypeVar

from switch.store.base import StoreError
from switch.store.records import (
    CallFilter,
    CallRecord,
    ConferenceRecord,
    NotificationRecord,
    ParticipantRecord,
    QueueRecord,
    RecordingRecord,
)

log = logging.getLogger("switch.store")

T = TypeVar("T")
R = TypeVar("R")

MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: the first schema.
    """
    CREATE TABLE calls (
        sid TEXT PRIMARY KEY, account_sid TEXT NOT NULL, direction TEXT NOT NULL, from_ TEXT NOT NULL,
        "to" TEXT NOT NULL, status TEXT NOT NULL, start_time REAL NOT NULL, date_created REAL NOT NULL,
        date_updated REAL NOT NULL, parent_call_sid TEXT, caller_name TEXT NOT NULL DEFAULT '',
        answer_time REAL, end_time REAL, duration INTEGER, sip_call_id TEXT NOT NULL DEFAULT '',
        seq INTEGER NOT NULL
    );
    CREATE INDEX calls_by_account ON calls (account_sid, date_created DESC, seq DESC);
    CREATE INDEX calls_by_parent ON calls (parent_call_sid);
    CREATE TABLE recordings (
        sid TEXT PRIMARY KEY, account_sid TEXT NOT NULL, call_sid TEXT, path TEXT NOT NULL,
        duration INTEGER NOT NULL, start_time REAL NOT NULL, date_created REAL NOT NULL,
        date_updated REAL NOT NULL, channels INTEGER NOT NULL, source TEXT NOT NULL, status TEXT NOT NULL,
        conference_sid TEXT, error_code INTEGER, seq INTEGER NOT NULL
    );
    CREATE INDEX recordings_by_account ON recordings (account_sid, date_created DESC, seq DESC);
    CREATE INDEX recordings_by_call ON recordings (call_sid);
    CREATE TABLE queues (
        sid TEXT PRIMARY KEY, account_sid TEXT NOT NULL, friendly_name TEXT NOT NULL,
        max_size INTEGER NOT NULL, date_created REAL NOT NULL, date_updated REAL NOT NULL,
        seq INTEGER NOT NULL, UNIQUE (account_sid, friendly_name)
    );
    CREATE TABLE queue_members (
        queue_sid TEXT NOT NULL REFERENCES queues (sid) ON DELETE CASCADE, call_sid TEXT NOT NULL,
        position INTEGER NOT NULL, date_enqueued REAL NOT NULL, seq INTEGER NOT NULL,
        PRIMARY KEY (queue_sid, call_sid)
    );
    CREATE TABLE conferences (
        sid TEXT PRIMARY KEY, account_sid TEXT NOT NULL, friendly_name TEXT NOT NULL, status TEXT NOT NULL,
        date_created REAL NOT NULL, date_updated REAL NOT NULL, region TEXT NOT NULL,
        reason_conference_ended TEXT, seq INTEGER NOT NULL
    );
    CREATE INDEX conferences_by_account ON conferences (account_sid, date_created DESC, seq DESC);
    CREATE TABLE notifications (
        sid TEXT PRIMARY KEY, account_sid TEXT NOT NULL, call_sid TEXT, error_code INTEGER NOT NULL,
        message TEXT NOT NULL, url TEXT NOT NULL, date_created REAL NOT NULL, log_level INTEGER NOT NULL,
        seq INTEGER NOT NULL
    );
    CREATE INDEX notifications_by_account ON notifications (account_sid, date_created DESC, seq DESC);
    """,
    # 1 -> 2: conference participants.
    """
    CREATE TABLE participants (
        conference_sid TEXT NOT NULL, call_sid TEXT NOT NULL, account_sid TEXT NOT NULL, status TEXT NOT NULL,
        muted INTEGER NOT NULL, hold INTEGER NOT NULL, start_conference_on_enter INTEGER NOT NULL,
        end_conference_on_exit INTEGER NOT NULL, date_created REAL NOT NULL, date_updated REAL NOT NULL,
        label TEXT, seq INTEGER NOT NULL, PRIMARY KEY (conference_sid, call_sid)
    );
    """,
    # 2 -> 3: a notification keeps the method of the request that failed; queue members are not stored
    # (the REST API reads them from the live queue, and a restart empties every queue).
    """
    ALTER TABLE notifications ADD COLUMN request_method TEXT NOT NULL DEFAULT '';
    CREATE INDEX notifications_by_call ON notifications (call_sid);
    DROP TABLE queue_members;
    """,
)

_Job = tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]
_BATCH = 256
WRITE_WINDOW = 0.01
"""Seconds a write waits on the event loop for others to share its hand-over and transaction."""


def _columns(kind: type[Any]) -> list[str]:
    return [field.name for field in dataclasses.fields(kind)]


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _resolve_all(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in results:
        _resolve(future, result, error)


class SQLiteStore:
    """`switch.store.base.Store` on one SQLite file (``switch.db`` in the data directory)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._jobs: queue.SimpleQueue[list[_Job] | None] = queue.SimpleQueue()
        self._gathered: list[_Job] = []
        """Requests not yet handed to the thread, in order."""
        self._hand_over_handle: asyncio.TimerHandle | None = None
        self._handed_over_at = float("-inf")
        self._gathered_calls: dict[str, tuple[list[Any], asyncio.Future[None]]] = {}
        """Call upserts not yet handed over, by CallSid (a later save of the call replaces its values)."""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seq = 0
        self._upserts: dict[tuple[str, type[Any]], tuple[str, Callable[[Any], tuple[Any, ...]]]] = {}

    # -- the thread -------------------------------------------------------------------------------------
    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ready: asyncio.Future[int] = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="switch-store", daemon=True)
        self._thread.start()
        version = await ready
        log.info("store %s schema version %d", self.path, version)

    async def close(self) -> None:
        thread = self._thread
        if thread is None:
            return
        await self.flush()
        self._jobs.put(None)
        await asyncio.to_thread(thread.join)
        self._thread = None

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA busy_timeout=5000")
        return connection

    def _migrate(self, connection: sqlite3.Connection) -> int:
        version: int = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(f"{self.path} has schema version {version}, newer than this switch knows")
        for target in range(version, len(MIGRATIONS)):
            connection.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[target].split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.execute(f"PRAGMA user_version={target + 1}")
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        seq = 0
        tables = (
            "calls",
            "recordings",
            "queues",
            "conferences",
            "notifications",
            "participants",
        )
        for table in tables:
            seq = max(seq, connection.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {table}").fetchone()[0])
        self._seq = seq
        return len(MIGRATIONS)

    def _run(self, ready: asyncio.Future[int]) -> None:
        loop = self._loop
        assert loop is not None
        try:
            connection = self._connect()
            version = self._migrate(connection)
        except (sqlite3.Error, OSError, StoreError) as exc:
            error = exc if isinstance(exc, StoreError) else StoreError(f"cannot open {self.path}: {exc}")
            loop.call_soon_threadsafe(_resolve, ready, None, error)
            return
        loop.call_soon_threadsafe(_resolve, ready, version, None)
        try:
            while True:
                jobs = self._jobs.get()
                if jobs is None:
                    break
                batch = jobs
                while len(batch) < _BATCH:
                    try:
                        more = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        self._jobs.put(None)
                        break
                    batch = batch + more
                self._run_batch(connection, loop, batch)
        finally:
            connection.close()

    def _run_batch(
        self, connection: sqlite3.Connection, loop: asyncio.AbstractEventLoop, batch: list[_Job]
    ) -> None:
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        try:
            connection.execute("BEGIN")
            for work, future in batch:
                try:
                    results.append((future, work(connection), None))
                except Exception as exc:  # one bad job (sqlite3.Error, a string SQLite cannot encode, ...)
                    # fails alone: the writer thread must live on, or every later record is lost
                    results.append((future, None, StoreError(f"{type(exc).__name__}: {exc}")))
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("store commit failed: %s", exc)
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            results = [(future, None, StoreError(f"commit failed: {exc}")) for _, future in batch]
        # One wake-up of the event loop per batch, not one per request.
        loop.call_soon_threadsafe(_resolve_all, results)

    def _submit(self, work: Callable[[sqlite3.Connection], T], *, gather: bool = False) -> asyncio.Future[T]:
        """Queue ``work`` for the thread; ``gather``: it may wait up to WRITE_WINDOW for company."""
        loop = self._loop
        if loop is None or self._thread is None:
            raise StoreError("the store is not open")
        future: asyncio.Future[T] = loop.create_future()
        self._gathered.append((work, future))
        if not gather:
            self._hand_over()
        elif self._hand_over_handle is None:
            due = self._handed_over_at + WRITE_WINDOW
            if loop.time() >= due:  # the first write in a while goes at once
                self._hand_over()
            else:
                self._hand_over_handle = loop.call_at(due, self._hand_over)
        return future

    def _hand_over(self) -> None:
        """Give the thread every request gathered so far, as one batch."""
        if self._hand_over_handle is not None:
            self._hand_over_handle.cancel()
            self._hand_over_handle = None
        if self._gathered:
            jobs, self._gathered = self._gathered, []
            self._gathered_calls.clear()
            self._jobs.put(jobs)
            assert self._loop is not None
            self._handed_over_at = self._loop.time()

    def _write(self, work: Callable[[sqlite3.Connection], None]) -> asyncio.Future[None]:
        future = self._submit(work, gather=True)
        # A write nobody awaits must still report its failure.
        future.add_done_callback(_log_failure)
        return future

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    async def flush(self) -> None:
        await self._submit(lambda connection: None)

    # -- generic rows -----------------------------------------------------------------------------------
    def _upsert(self, table: str, record: Any) -> asyncio.Future[None]:
        return self._upsert_row(table, record)[1]

    def _upsert_row(self, table: str, record: Any) -> tuple[list[Any], asyncio.Future[None]]:
        """Queue the upsert; returns the row's values (seq last: changeable until handed over) and future."""
        kind = type(record)
        prepared = self._upserts.get((table, kind))
        if prepared is None:
            prepared = self._upserts[table, kind] = _prepare_upsert(table, kind)
        sql, values_of = prepared
        values = [*values_of(record), self._next_seq()]

        def work(connection: sqlite3.Connection) -> None:
            connection.execute(sql, values)

        return values, self._write(work)

    def _select(
        self, kind: type[R], table: str, where: str, parameters: Sequence[object], *, offset: int, limit: int
    ) -> asyncio.Future[list[R]]:
        names = _columns(kind)
        sql = (
            f"SELECT {_quoted(names)} FROM {table} WHERE {where} "
            f"ORDER BY date_created DESC, seq DESC LIMIT ? OFFSET ?"
        )

        def work(connection: sqlite3.Connection) -> list[R]:
            rows = connection.execute(sql, [*parameters, limit, offset]).fetchall()
            return [kind(*row) for row in rows]

        return self._submit(work)

    async def _one(self, kind: type[R], table: str, account_sid: str, sid: str) -> R | None:
        rows = await self._select(
            kind, table, "account_sid = ? AND sid = ?", (account_sid, sid), offset=0, limit=1
        )
        return rows[0] if rows else None

    def _delete(self, table: str, account_sid: str, sid: str) -> asyncio.Future[bool]:
        def work(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute(
                f"DELETE FROM {table} WHERE account_sid = ? AND sid = ?", (account_sid, sid)
            )
            return cursor.rowcount > 0

        return self._submit(work)

    # -- calls ------------------------------------------------------------------------------------------
    def save_call(self, record: CallRecord) -> asyncio.Future[None]:
        """Upsert the call. A save of a call whose last save is still gathered (a short call's creation and
        end, within one window) replaces that one: one row written, and both saves resolve at its commit."""
        gathered = self._gathered_calls.get(record.sid)
        if gathered is not None:
            values, future = gathered
            values[:-1] = self._upserts["calls", CallRecord][1](record)  # the first save's seq is kept
            return future
        values, future = self._upsert_row("calls", record)
        if self._gathered and self._gathered[-1][1] is future:  # not handed over at once
            self._gathered_calls[record.sid] = (values, future)
        return future

    async def get_call(self, account_sid: str, sid: str) -> CallRecord | None:
        return await self._one(CallRecord, "calls", account_sid, sid)

    async def list_calls(
        self, account_sid: str, where: CallFilter, *, offset: int, limit: int
    ) -> list[CallRecord]:
        clauses = ["account_sid = ?"]
        parameters: list[object] = [account_sid]
        for column, value in (
            ('"to"', where.to),
            ("from_", where.from_),
            ("status", where.status),
            ("parent_call_sid", where.parent_call_sid),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                parameters.append(value)
        if where.started_on_or_after is not None:
            clauses.append("start_time >= ?")
            parameters.append(where.started_on_or_after)
        if where.started_before is not None:
            clauses.append("start_time < ?")
            parameters.append(where.started_before)
        if where.ended_only:
            clauses.append("end_time IS NOT NULL")
        return await self._select(
            CallRecord, "calls", " AND ".join(clauses), parameters, offset=offset, limit=limit
        )

    async def delete_call(self, account_sid: str, sid: str) -> bool:
        return await self._delete("calls", account_sid, sid)

    async def end_unfinished_calls(self) -> int:
        def work(connection: sqlite3.Connection) -> int:
            cursor = connection.execute(
                "UPDATE calls SET status = CASE WHEN answer_time IS NULL THEN 'failed' ELSE 'completed' END, "
                "end_time = date_updated, "
                "duration = CASE WHEN answer_time IS NULL THEN 0 "
                "ELSE MAX(0, CAST(ROUND(date_updated - answer_time) AS INTEGER)) END "
                "WHERE end_time IS NULL"
            )
            return cursor.rowcount

        return await self._submit(work)

    # -- recordings -------------------------------------------------------------------------------------
    def add_recording(self, record: RecordingRecord) -> asyncio.Future[None]:
        return self._upsert("recordings", record)

    async def get_recording(self, account_sid: str, sid: str) -> RecordingRecord | None:
        return await self._one(RecordingRecord, "recordings", account_sid, sid)

    async def list_recordings(
        self, account_sid: str, *, call_sid: str | None, offset: int, limit: int
    ) -> list[RecordingRecord]:
        if call_sid is None:
            return await self._select(
                RecordingRecord, "recordings", "account_sid = ?", (account_sid,), offset=offset, limit=limit
            )
        return await self._select(
            RecordingRecord,
            "recordings",
            "account_sid = ? AND call_sid = ?",
            (account_sid, call_sid),
            offset=offset,
            limit=limit,
        )

    async def delete_recording(self, account_sid: str, sid: str) -> RecordingRecord | None:
        record = await self.get_recording(account_sid, sid)
        if record is None or not await self._delete("recordings", account_sid, sid):
            return None
        return record

    # -- queues -----------------------------------------------------------------------------------------
    async def create_queue(self, record: QueueRecord) -> bool:
        names = _columns(QueueRecord)
        values = [getattr(record, name) for name in names]
        seq = self._next_seq()
        placeholders = ", ".join("?" * (len(names) + 1))

        def work(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute(
                f"INSERT OR IGNORE INTO queues ({_quoted(names)}, seq) VALUES ({placeholders})",
                [*values, seq],
            )
            return cursor.rowcount > 0

        return await self._submit(work)

    async def get_queue(self, account_sid: str, sid: str) -> QueueRecord | None:
        return await self._one(QueueRecord, "queues", account_sid, sid)

    async def find_queue(self, account_sid: str, friendly_name: str) -> QueueRecord | None:
        rows = await self._select(
            QueueRecord,
            "queues",
            "account_sid = ? AND friendly_name = ?",
            (account_sid, friendly_name),
            offset=0,
            limit=1,
        )
        return rows[0] if rows else None

    async def list_queues(self, account_sid: str, *, offset: int, limit: int) -> list[QueueRecord]:
        return await self._select(
            QueueRecord, "queues", "account_sid = ?", (account_sid,), offset=offset, limit=limit
        )

    async def update_queue(self, record: QueueRecord) -> bool:
        def work(connection: sqlite3.Connection) -> bool:
            try:
                cursor = connection.execute(
                    "UPDATE queues SET friendly_name = ?, max_size = ?, date_updated = ? "
                    "WHERE account_sid = ? AND sid = ?",
                    (
                        record.friendly_name,
                        record.max_size,
                        record.date_updated,
                        record.account_sid,
                        record.sid,
                    ),
                )
            except sqlite3.IntegrityError:
                return False
            return cursor.rowcount > 0

        return await self._submit(work)

    async def delete_queue(self, account_sid: str, sid: str) -> bool:
        return await self._delete("queues", account_sid, sid)

    # -- conferences ------------------------------------------------------------------------------------
    def save_conference(self, record: ConferenceRecord) -> asyncio.Future[None]:
        return self._upsert("conferences", record)

    async def get_conference(self, account_sid: str, sid: str) -> ConferenceRecord | None:
        return await self._one(ConferenceRecord, "conferences", account_sid, sid)

    async def list_conferences(
        self, account_sid: str, *, status: str | None, friendly_name: str | None, offset: int, limit: int
    ) -> list[ConferenceRecord]:
        clauses = ["account_sid = ?"]
        parameters: list[object] = [account_sid]
        if status is not None:
            clauses.append("status = ?")
            parameters.append(status)
        if friendly_name is not None:
            clauses.append("friendly_name = ?")
            parameters.append(friendly_name)
        return await self._select(
            ConferenceRecord, "conferences", " AND ".join(clauses), parameters, offset=offset, limit=limit
        )

    def save_participant(self, record: ParticipantRecord) -> asyncio.Future[None]:
        return self._upsert("participants", record)

    async def list_participants(
        self, conference_sid: str, *, offset: int, limit: int
    ) -> list[ParticipantRecord]:
        names = _columns(ParticipantRecord)

        def work(connection: sqlite3.Connection) -> list[ParticipantRecord]:
            rows = connection.execute(
                f"SELECT {_quoted(names)} FROM participants WHERE conference_sid = ? "
                "ORDER BY date_created, seq LIMIT ? OFFSET ?",
                (conference_sid, limit, offset),
            ).fetchall()
            return [ParticipantRecord(*row[:4], *(bool(v) for v in row[4:8]), *row[8:]) for row in rows]

        return await self._submit(work)

    # -- webhook errors ---------------------------------------------------------------------------------
    def add_notification(self, record: NotificationRecord) -> asyncio.Future[None]:
        return self._upsert("notifications", record)

    async def get_notification(
        self, account_sid: str, sid: str, *, call_sid: str | None = None
    ) -> NotificationRecord | None:
        where, parameters = "account_sid = ? AND sid = ?", [account_sid, sid]
        if call_sid is not None:
            where += " AND call_sid = ?"
            parameters.append(call_sid)
        rows = await self._select(NotificationRecord, "notifications", where, parameters, offset=0, limit=1)
        return rows[0] if rows else None

    async def list_notifications(
        self,
        account_sid: str,
        *,
        call_sid: str | None,
        offset: int,
        limit: int,
        log_level: int | None = None,
    ) -> list[NotificationRecord]:
        where = "account_sid = ?"
        parameters: list[object] = [account_sid]
        if call_sid is not None:
            where += " AND call_sid = ?"
            parameters.append(call_sid)
        if log_level is not None:
            where += " AND log_level = ?"
            parameters.append(log_level)
        return await self._select(
            NotificationRecord, "notifications", where, parameters, offset=offset, limit=limit
        )


def _prepare_upsert(table: str, kind: type[Any]) -> tuple[str, Callable[[Any], tuple[Any, ...]]]:
    """The upsert statement of ``kind``'s rows in ``table`` and what reads a row's values from a record."""
    names = _columns(kind)
    updates = ", ".join(f'"{name}" = excluded."{name}"' for name in names)
    placeholders = ", ".join("?" * (len(names) + 1))
    sql = (
        f"INSERT INTO {table} ({_quoted(names)}, seq) VALUES ({placeholders}) "
        f"ON CONFLICT DO UPDATE SET {updates}"
    )
    getter = attrgetter(*names)
    if len(names) == 1:
        return sql, lambda record: (getter(record),)
    return sql, getter


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("store write failed: %s", future.exception())
