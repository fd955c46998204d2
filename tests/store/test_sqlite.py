"""The SQLite store: schema and migrations, upserts, filters, paging, ordering, durability against SIGKILL."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from switch.store import (
    CallFilter,
    CallRecord,
    ConferenceRecord,
    NotificationRecord,
    ParticipantRecord,
    QueueRecord,
    RecordingRecord,
    SQLiteStore,
    StoreError,
    new_sid,
)
from switch.store.sqlite import MIGRATIONS

REPO = Path(__file__).resolve().parents[2]
AC = "AC" + "1" * 32
OTHER = "AC" + "2" * 32


def call(
    n: int, *, status: str = "completed", account: str = AC, to: str = "sip:bob@127.0.0.1"
) -> CallRecord:
    return CallRecord(
        sid=f"CA{n:032x}",
        account_sid=account,
        direction="outbound-api",
        from_=f"+1555000{n:04d}",
        to=to,
        status=status,
        start_time=1_700_000_000.0 + n,
        date_created=1_700_000_000.0 + n,
        date_updated=1_700_000_000.0 + n,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    db = SQLiteStore(tmp_path / "switch.db")
    await db.open()
    yield db
    await db.close()


async def test_fresh_database_gets_the_latest_schema_in_wal_mode(store: SQLiteStore) -> None:
    await store.flush()
    with sqlite3.connect(store.path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"calls", "recordings", "queues", "conferences", "notifications", "participants"} <= tables
    assert "queue_members" not in tables  # members live in the call layer's queues (migration 2 -> 3)


async def test_a_version_2_database_migrates_and_keeps_its_notifications(tmp_path: Path) -> None:
    path = tmp_path / "switch.db"
    with sqlite3.connect(path) as connection:
        for script in MIGRATIONS[:2]:
            connection.executescript(script)
        connection.execute("PRAGMA user_version=2")
        connection.execute(
            "INSERT INTO notifications VALUES ('NO1', ?, 'CA1', 11200, 'HTTP 500', 'http://x/', 5.0, 0, 1)",
            (AC,),
        )
    db = SQLiteStore(path)
    await db.open()
    try:
        [kept] = await db.list_notifications(AC, call_sid="CA1", offset=0, limit=5)
        assert kept == NotificationRecord("NO1", AC, "CA1", 11200, "HTTP 500", "http://x/", 5.0, 0, "")
        note = NotificationRecord("NO2", AC, "CA1", 12100, "bad", "http://y/", 6.0, 0, "GET")
        await db.add_notification(note)
        assert await db.get_notification(AC, "NO2") == note
    finally:
        await db.close()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) == 3


async def test_a_database_from_a_newer_switch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "switch.db"
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="newer"):
        await SQLiteStore(path).open()


async def test_save_call_upserts_and_keeps_creation_order(store: SQLiteStore) -> None:
    first, second = call(1, status="queued"), call(2, status="queued")
    store.save_call(first)
    store.save_call(second)
    await store.save_call(replace(first, status="completed", duration=7))
    fetched = await store.get_call(AC, first.sid)
    assert fetched is not None and fetched.status == "completed" and fetched.duration == 7
    listed = await store.list_calls(AC, CallFilter(), offset=0, limit=10)
    assert [c.sid for c in listed] == [second.sid, first.sid]
    assert await store.get_call(OTHER, first.sid) is None


async def test_a_record_sqlite_cannot_encode_fails_alone_and_the_writer_lives_on(store: SQLiteStore) -> None:
    # A lone surrogate (bytes that were not UTF-8) raises UnicodeEncodeError in SQLite's binding: it used to
    # kill the writer thread, and every later record piled up in memory unwritten (found by PROTOS).
    with pytest.raises(StoreError, match="UnicodeEncodeError"):
        await store.save_call(replace(call(4), from_="\udcff<sip:x@127.0.0.1>"))
    await store.save_call(call(5))
    fetched = await store.get_call(AC, call(5).sid)
    assert fetched is not None and fetched.status == "completed"
    assert await store.get_call(AC, call(4).sid) is None


async def test_read_after_write_sees_the_write_without_awaiting_it(store: SQLiteStore) -> None:
    record = call(3, status="in-progress")
    store.save_call(record)  # not awaited: the FIFO queue orders it before the read
    store.save_call(replace(record, status="completed"))
    fetched = await store.get_call(AC, record.sid)
    assert fetched is not None and fetched.status == "completed"


async def test_call_filters_and_paging(store: SQLiteStore) -> None:
    for n in range(1, 8):
        store.save_call(call(n, status="completed" if n % 2 else "busy", to=f"sip:u{n % 3}@127.0.0.1"))
    store.save_call(call(99, account=OTHER))
    busy = await store.list_calls(AC, CallFilter(status="busy"), offset=0, limit=50)
    assert [c.sid for c in busy] == [call(n).sid for n in (6, 4, 2)]
    to_u1 = await store.list_calls(AC, CallFilter(to="sip:u1@127.0.0.1"), offset=0, limit=50)
    assert [c.sid for c in to_u1] == [call(n).sid for n in (7, 4, 1)]
    window = CallFilter(started_on_or_after=1_700_000_003.0, started_before=1_700_000_005.0)
    assert [c.sid for c in await store.list_calls(AC, window, offset=0, limit=50)] == [
        call(4).sid,
        call(3).sid,
    ]
    pages = [await store.list_calls(AC, CallFilter(), offset=o, limit=3) for o in (0, 3, 6)]
    assert [[c.sid for c in page] for page in pages] == [
        [call(n).sid for n in (7, 6, 5)],
        [call(n).sid for n in (4, 3, 2)],
        [call(1).sid],
    ]
    assert await store.delete_call(AC, call(1).sid) is True
    assert await store.delete_call(AC, call(1).sid) is False
    assert await store.get_call(AC, call(1).sid) is None


async def test_recordings_by_call_and_delete(store: SQLiteStore) -> None:
    records = [
        RecordingRecord(
            sid=new_sid("RE"),
            account_sid=AC,
            call_sid=call_sid,
            path=f"/tmp/{n}.wav",
            duration=n,
            start_time=1.0 + n,
            date_created=1.0 + n,
            date_updated=1.0 + n,
        )
        for n, call_sid in enumerate([call(1).sid, call(2).sid, call(1).sid])
    ]
    for record in records:
        store.add_recording(record)
    of_call_1 = await store.list_recordings(AC, call_sid=call(1).sid, offset=0, limit=10)
    assert of_call_1 == [records[2], records[0]]
    assert await store.delete_recording(AC, records[0].sid) == records[0]
    assert await store.delete_recording(AC, records[0].sid) is None
    assert len(await store.list_recordings(AC, call_sid=None, offset=0, limit=10)) == 2


async def test_queue_names_are_unique_per_account(store: SQLiteStore) -> None:
    support = QueueRecord(new_sid("QU"), AC, "support", 100, 1.0, 1.0)
    assert await store.create_queue(support) is True
    assert await store.create_queue(QueueRecord(new_sid("QU"), AC, "support", 5, 2.0, 2.0)) is False
    assert await store.create_queue(QueueRecord(new_sid("QU"), OTHER, "support", 5, 2.0, 2.0)) is True
    sales = QueueRecord(new_sid("QU"), AC, "sales", 10, 3.0, 3.0)
    await store.create_queue(sales)
    renamed = QueueRecord(support.sid, AC, "sales", 100, 4.0, 4.0)
    assert await store.update_queue(renamed) is False  # the name is taken
    assert await store.update_queue(QueueRecord(support.sid, AC, "help", 50, 4.0, 4.0)) is True
    assert await store.find_queue(AC, "help") == QueueRecord(support.sid, AC, "help", 50, 1.0, 4.0)
    assert await store.delete_queue(AC, support.sid) is True
    assert await store.delete_queue(AC, support.sid) is False
    assert [q.friendly_name for q in await store.list_queues(AC, offset=0, limit=10)] == ["sales"]


async def test_conferences_and_notifications(store: SQLiteStore) -> None:
    room = ConferenceRecord(new_sid("CF"), AC, "room", "in-progress", 1.0, 1.0)
    store.save_conference(room)
    store.save_conference(ConferenceRecord(room.sid, AC, "room", "completed", 1.0, 2.0, "local", "last left"))
    assert await store.list_conferences(AC, status="in-progress", friendly_name=None, offset=0, limit=5) == []
    [ended] = await store.list_conferences(AC, status="completed", friendly_name="room", offset=0, limit=5)
    assert ended.reason_conference_ended == "last left"
    note = NotificationRecord(new_sid("NO"), AC, call(1).sid, 11200, "HTTP 500", "http://127.0.0.1/x", 5.0)
    await store.add_notification(note)
    assert await store.list_notifications(AC, call_sid=call(1).sid, offset=0, limit=5) == [note]
    warning = NotificationRecord(new_sid("NO"), AC, call(1).sid, 12200, "schema", "", 6.0, 1)
    await store.add_notification(warning)
    assert await store.list_notifications(AC, call_sid=None, offset=0, limit=5) == [warning, note]
    assert await store.list_notifications(AC, call_sid=None, offset=0, limit=5, log_level=0) == [note]
    assert await store.list_notifications(OTHER, call_sid=None, offset=0, limit=5) == []
    assert await store.get_notification(AC, note.sid, call_sid=call(1).sid) == note
    assert await store.get_notification(AC, note.sid, call_sid=call(2).sid) is None
    assert await store.get_notification(OTHER, note.sid) is None


async def test_writes_made_together_commit_together(store: SQLiteStore) -> None:
    # The first write in a while goes to the thread at once; the ones right after it are gathered on the
    # loop for a short window and handed over as one transaction: once one is committed, so are the others.
    await store.flush()
    futures = [store.save_call(call(n, status="ringing")) for n in range(20, 30)]
    await futures[1]
    assert all(future.done() and future.exception() is None for future in futures)
    listed = await store.list_calls(AC, CallFilter(status="ringing"), offset=0, limit=20)
    assert sorted(c.sid for c in listed) == sorted(call(n).sid for n in range(20, 30))


async def test_a_short_calls_creation_and_end_in_one_window_write_one_row_in_creation_order(
    store: SQLiteStore,
) -> None:
    await store.flush()  # a hand-over just now: the saves below are gathered together
    first, second = (
        call(40, status="ringing"),
        replace(call(41, status="ringing"), date_created=call(40).date_created),
    )
    created = store.save_call(first)
    store.save_call(second)
    ended = store.save_call(replace(first, status="completed", duration=3))
    await ended
    assert created.done() and created.exception() is None
    fetched = await store.get_call(AC, first.sid)
    assert fetched is not None and (fetched.status, fetched.duration) == ("completed", 3)
    # Same date_created: the order falls to seq, and the first call keeps the seq of its creation.
    listed = await store.list_calls(AC, CallFilter(), offset=0, limit=10)
    assert [c.sid for c in listed] == [second.sid, first.sid]


async def test_reopening_keeps_records(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path / "switch.db")
    await first.open()
    first.save_call(call(5))
    await first.close()
    again = SQLiteStore(tmp_path / "switch.db")
    await again.open()
    assert await again.get_call(AC, call(5).sid) == call(5)
    store_seq_call = call(6)
    again.save_call(store_seq_call)
    listed = await again.list_calls(AC, CallFilter(), offset=0, limit=5)
    await again.close()
    assert [c.sid for c in listed] == [call(6).sid, call(5).sid]


def test_a_committed_write_survives_sigkill(tmp_path: Path) -> None:
    """A child saves a call, awaits the commit, and is killed with SIGKILL at once."""
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal, sys
        from pathlib import Path
        from switch.store import CallRecord, SQLiteStore

        async def main():
            store = SQLiteStore(Path(sys.argv[1]))
            await store.open()
            record = CallRecord("CA{"a" * 32}", "{AC}", "inbound", "a", "b", "completed", 1.0, 1.0, 1.0)
            await store.save_call(record)
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    path = tmp_path / "switch.db"
    result = subprocess.run(
        [sys.executable, "-c", script, str(path)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT sid, status FROM calls").fetchall()
    assert rows == [("CA" + "a" * 32, "completed")]


async def test_calls_a_crash_left_unfinished_are_ended_at_their_last_save(store: SQLiteStore) -> None:
    answered = replace(
        call(10, status="in-progress"), answer_time=1_700_000_010.0, date_updated=1_700_000_040.0
    )
    ringing = call(11, status="ringing")
    store.save_call(answered)
    store.save_call(ringing)
    store.save_call(replace(call(12), end_time=1_700_000_020.0, duration=3))
    assert len(await store.list_calls(AC, CallFilter(ended_only=True), offset=0, limit=10)) == 1
    assert await store.end_unfinished_calls() == 2
    first = await store.get_call(AC, answered.sid)
    second = await store.get_call(AC, ringing.sid)
    assert first is not None and (first.status, first.end_time, first.duration) == (
        "completed",
        1_700_000_040.0,
        30,
    )
    assert second is not None and (second.status, second.end_time, second.duration) == (
        "failed",
        ringing.date_updated,
        0,
    )
    assert len(await store.list_calls(AC, CallFilter(ended_only=True), offset=0, limit=10)) == 3


async def test_participants_are_kept_per_conference_in_join_order(store: SQLiteStore) -> None:
    room = new_sid("CF")
    first = ParticipantRecord(room, "CA" + "1" * 32, AC, "connected", False, False, True, False, 10.0, 10.0)
    second = replace(first, call_sid="CA" + "2" * 32, date_created=11.0, label="bob")
    store.save_participant(second)
    store.save_participant(first)
    store.save_participant(replace(first, status="complete", muted=True, date_updated=20.0))
    store.save_participant(replace(first, conference_sid=new_sid("CF")))
    listed = await store.list_participants(room, offset=0, limit=10)
    assert listed == [replace(first, status="complete", muted=True, date_updated=20.0), second]
    assert await store.list_participants(room, offset=1, limit=10) == [second]


async def test_a_version_1_database_is_migrated_keeping_its_records(tmp_path: Path) -> None:
    path = tmp_path / "switch.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(MIGRATIONS[0])
        connection.execute(
            'INSERT INTO calls (sid, account_sid, direction, from_, "to", status, start_time, date_created, '
            "date_updated, seq) VALUES (?, ?, 'inbound', '+1', 'sip:a@b', 'completed', 1, 1, 1, 1)",
            ("CA" + "9" * 32, AC),
        )
        connection.execute("PRAGMA user_version=1")
    store = SQLiteStore(path)
    await store.open()
    try:
        assert (await store.get_call(AC, "CA" + "9" * 32)) is not None
        assert await store.list_participants(new_sid("CF"), offset=0, limit=1) == []
    finally:
        await store.close()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) == 3
