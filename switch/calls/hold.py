"""Waiting helpers shared by Dial's bridges and conferences: hold music, the first of several waits, ``*``."""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from switch.calls.call import Call

__all__ = ["first_of", "hold_music", "play_hold_music", "wait_for_star"]

log = logging.getLogger("switch.calls")


async def first_of(*waits: Awaitable[Any], timeout: float | None = None) -> None:
    """Wait until the first of ``waits`` is done (or ``timeout``); cancel the others."""
    futures = {asyncio.ensure_future(w) for w in waits}
    try:
        await asyncio.wait(futures, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in futures:
            future.cancel()


_HOLD_TASKS: dict[str, asyncio.Future[None]] = {}


def hold_music(peer: Call, on: bool) -> None:
    """The other party put the bridge on hold (re-INVITE sendonly/inactive): ``peer`` hears hold music
    until it is taken off hold."""
    running = _HOLD_TASKS.pop(peer.sid, None)
    if running is not None:
        running.cancel()
        log.info("hold music off CallSid=%s", peer.sid)
    if on:
        log.info("hold music on CallSid=%s", peer.sid)
    if on and not peer.ended.is_set():
        task = asyncio.ensure_future(play_hold_music(peer))
        _HOLD_TASKS[peer.sid] = task
        task.add_done_callback(
            lambda _: _HOLD_TASKS.pop(peer.sid, None) if _HOLD_TASKS.get(peer.sid) is task else None
        )


async def play_hold_music(call: Call, url: str | None = None, method: str = "POST") -> None:
    """Hold music, looped: ``url``'s audio or what its TwiML plays (Play/Say), else the shipped music."""
    if url:
        from switch.calls.whisper import play_twiml_loop

        if await play_twiml_loop(call, url, method):
            return
    source = importlib.resources.files("switch") / "dialplans" / "music" / "hold.wav"
    data = await asyncio.to_thread(source.read_bytes)
    await call.play(await call.decode(data), 0)


async def wait_for_star(call: Call) -> None:
    while await call.digits.get() != "*":
        pass
