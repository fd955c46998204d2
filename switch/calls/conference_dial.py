"""``<Dial><Conference>``: one member's part in a room (mix, wait music, hold, mute, beep, recording).

The room's state is the ConferenceManager's (switch.calls.conferences); this module runs one member: it
waits with the waitUrl music until the room starts, joins the media engine's room mix, applies mute and hold
as the REST API changes them, beeps the others in and out, and leaves when the caller hangs up, presses
``*`` (hangupOnStar), reaches timeLimit, is removed or the room ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from switch.calls.bridge_record import BridgeRecording
from switch.calls.conference_events import callbacks_for, parse_events
from switch.calls.conferences import Conference, Member
from switch.calls.hold import first_of, play_hold_music, wait_for_star
from switch.media.engine import MediaError
from switch.twiml.dial import DIAL_CONTEXT, DialRequest, DialResult, DialTarget, recording_events
from voicecodecs.tones import dual_tone

if TYPE_CHECKING:
    from switch.calls.call import Call

__all__ = ["dial_conference"]

log = logging.getLogger("switch.calls")


def _flag(target: DialTarget, name: str, default: bool) -> bool:
    value = target.option(name, "").strip().lower()
    return default if value not in ("true", "false") else value == "true"


async def dial_conference(call: Call, request: DialRequest, target: DialTarget) -> DialResult:
    """``<Dial><Conference>``: join the room's mix until the caller leaves, is removed or the room ends."""
    manager = call.manager
    member = Member(
        call,
        muted=_flag(target, "muted", False),
        start_on_enter=_flag(target, "startConferenceOnEnter", True),
        end_on_exit=_flag(target, "endConferenceOnExit", False),
        beep=target.option("beep", "true").strip(),
    )
    try:
        limit = int(target.option("maxParticipants", "250"))
    except ValueError:
        limit = 250
    room = manager.conferences.find(target.value)
    callback = target.option("statusCallback")
    ctx = DIAL_CONTEXT.get()
    if room is None and callback and ctx is not None:
        # The room's callback is the first member's: subscribed before the join, so it hears it.
        room = manager.conferences.create(target.value, max(2, min(limit, 250)), call.account_sid)
        events = parse_events(target.option("statusCallbackEvent"))
        method = target.option("statusCallbackMethod", "POST").upper()
        callbacks_for(manager.conferences).subscribe(room, callback, method, events, ctx)
    room = manager.conferences.join(member, target.value, max(2, min(limit, 250)))
    if room is None:
        log.info("Dial CallSid=%s: conference %r is full", call.sid, target.value)
        return DialResult("failed")
    if not call.answered:
        await call.answer()
    log.info("conference join CallSid=%s ConferenceSid=%s room=%s", call.sid, room.sid, room.name)
    started = time.time()
    recording: BridgeRecording | None = None
    seat = _Seat(call, member, room)
    member.on_change = seat.apply
    _SEATS[call.sid] = seat
    try:
        if not room.started.is_set():
            seat.music(True, target.option("waitUrl") or None, target.option("waitMethod", "POST").upper())
            await first_of(room.started.wait(), member.removed.wait(), call.ended.wait())
        seat.in_room = not member.removed.is_set() and not call.ended.is_set()
        seat.apply(member)
        if seat.in_room:
            _beep(room, member, entering=True)
            recording = _room_recording(call, request, target, room)
            waits: list[Awaitable[Any]] = [member.removed.wait(), call.ended.wait()]
            if request.hangup_on_star:
                waits.append(wait_for_star(call))
            await first_of(*waits, timeout=request.time_limit)
    finally:
        # Nothing here may wait before the member has left: the Dial may be cancelled (the caller hung up)
        # while it waits, and an endConferenceOnExit member must still end the room.
        finishing = _keep(asyncio.ensure_future(recording.finish())) if recording is not None else None
        member.on_change = None
        _SEATS.pop(call.sid, None)
        seat.in_room = False
        seat.music(False)
        if not call.ended.is_set():
            try:
                manager.media.leave_room(call.channel)
            except MediaError:
                pass
        manager.conferences.leave(room, call)
        if not room.ended.is_set():
            _beep(room, member, entering=False)
        log.info("conference leave CallSid=%s ConferenceSid=%s", call.sid, room.sid)
        if finishing is not None:
            _RECORDED_ROOMS.discard(room.sid)
            await asyncio.shield(finishing)
    return DialResult("completed", None, int(time.time() - started), bridged=True)


_RECORDED_ROOMS: set[str] = set()
_FINISHING: set[asyncio.Future[dict[str, str]]] = set()


def _keep(task: asyncio.Future[dict[str, str]]) -> asyncio.Future[dict[str, str]]:
    """Hold a reference to a recording being kept until it is done (it outlives a cancelled Dial)."""
    _FINISHING.add(task)
    task.add_done_callback(_FINISHING.discard)
    return task


def _room_recording(
    call: Call, request: DialRequest, target: DialTarget, room: Conference
) -> BridgeRecording | None:
    """record="record-from-start": the room's audio through this member's channel (what it says and what
    it hears, mixed down), until it leaves; one recording per room at a time."""
    if target.option("record") != "record-from-start" or room.sid in _RECORDED_ROOMS:
        return None
    settings = dataclasses.replace(
        request,
        record="record-from-answer",
        recording_status_callback=target.option("recordingStatusCallback"),
        recording_status_callback_method=target.option("recordingStatusCallbackMethod", "POST").upper(),
        recording_status_callback_events=recording_events(target.option("recordingStatusCallbackEvent")),
        trim=target.option("trim", "trim-silence"),
    )
    recording = BridgeRecording(call, settings, source="Conference", extra={"ConferenceSid": room.sid})
    recording.start()
    _RECORDED_ROOMS.add(room.sid)
    return recording


class _Seat:
    """A member's media: in the room's mix (muted or not), or out of it hearing music (waiting, on hold)."""

    def __init__(self, call: Call, member: Member, room: Conference) -> None:
        self.call = call
        self.member = member
        self.room = room
        self.in_room = False
        self.mixed = False
        self._music: asyncio.Future[None] | None = None
        self._stopping: asyncio.Future[None] | None = None
        self._music_url: str | None = None
        self._context = contextvars.copy_context()
        """The Dial's context (its webhook client): a hold asked by the REST API plays holdUrl with it."""

    def apply(self, member: Member) -> None:
        media = self.call.manager.media
        if self.call.ended.is_set():
            return
        try:
            if not self.in_room and self.room.started.is_set() and not member.removed.is_set():
                self.in_room = True  # the room started: leave the wait music before anyone beeps
            if not self.in_room:
                return
            if member.hold:
                if self.mixed:
                    media.leave_room(self.call.channel)
                    self.mixed = False
                self.music(True, member.hold_url, "GET")  # Twilio's holdMethod default
                return
            self.music(False)
            if not self.mixed:
                media.join_room(self.call.channel, self.room.sid, muted=member.muted)
                self.mixed = True
            else:
                media.set_muted(self.call.channel, member.muted)
        except MediaError as exc:
            log.warning("conference media CallSid=%s: %s", self.call.sid, exc)

    def music(self, on: bool, url: str | None = None, method: str = "POST") -> None:
        if self._music is not None and (not on or url != self._music_url):
            self._music.cancel()
            self._stopping, self._music = self._music, None
        if on and self._music is None and not self.call.ended.is_set():
            self._music_url = url
            loop = asyncio.get_running_loop()
            self._music = loop.create_task(play_hold_music(self.call, url, method), context=self._context)

    async def quiet(self) -> None:
        """Until the music just stopped has really stopped (its task stops the channel's playback)."""
        if self._stopping is not None:
            await asyncio.wait({self._stopping})


_SEATS: dict[str, _Seat] = {}
_BEEP = dual_tone(880.0, 0.0, 2000, level_dbm0=-12.0)  # 250 ms
_BEEPS: set[asyncio.Future[None]] = set()


def _beep(room: Conference, member: Member, *, entering: bool) -> None:
    """Twilio's beep (true, false, onEnter, onExit): the others in the mix hear a member come or go."""
    mode = member.beep.lower()
    if mode == "false" or mode == ("onexit" if entering else "onenter") or not room.started.is_set():
        return
    others = [m for m in room.members.values() if m is not member]
    task = asyncio.ensure_future(_play_beep(others))
    _BEEPS.add(task)
    task.add_done_callback(_BEEPS.discard)


async def _play_beep(members: list[Member]) -> None:
    seats = [seat for m in members if (seat := _SEATS.get(m.call.sid)) is not None]
    await asyncio.gather(*(seat.quiet() for seat in seats))  # a wait music that stops must not cut it
    for other in members:
        if other.hold or other.removed.is_set() or other.call.ended.is_set():
            continue
        try:
            played = other.call.manager.media.play(other.call.channel, _BEEP, 1)
        except MediaError:
            continue
        played.add_done_callback(_quiet)


def _quiet(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
