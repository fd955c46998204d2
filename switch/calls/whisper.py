"""Small TwiML documents a ``<Dial>`` runs on one leg outside the call's own session.

* the noun's ``url`` (the whisper): played to the callee once it answered, before the bridge; its document
  may Say, Play, Pause or Gather; a ``<Hangup>`` (or ``<Reject>``) in it means the callee declined;
* a conference's ``waitUrl`` and a held member's ``holdUrl``: looped while the member waits.

They are requested with the webhook client of the ``<Dial>`` that runs them (``DIAL_CONTEXT``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from switch.twiml.dial import DIAL_CONTEXT
from switch.twiml.errors import TwimlError
from switch.twiml.session import Action, RunContext
from switch.twiml.urls import is_local

if TYPE_CHECKING:
    from switch.calls.call import Call
    from switch.twiml.parser import Document

__all__ = ["AUDIO_SUFFIXES", "leg_params", "play_twiml_loop", "run_whisper"]

log = logging.getLogger("switch.calls")

AUDIO_SUFFIXES = (".wav", ".mp3", ".ulaw", ".alaw", ".ogg")


async def _decode(ctx: RunContext, call: Call, url: str) -> NDArray[np.int16]:
    return await call.decode(await ctx.client.fetch_audio(url))


def leg_params(call: Call, status: str = "in-progress") -> dict[str, str]:
    """The standard request parameters of a leg (a Dial's callee, a conference member)."""
    ctx = DIAL_CONTEXT.get()
    params = {
        "CallSid": call.sid,
        "AccountSid": call.account_sid or (ctx.settings.account_sid if ctx is not None else ""),
        "From": call.from_,
        "To": call.to,
        "CallStatus": status,
        "ApiVersion": "2010-04-01",
        "Direction": call.direction,
    }
    if call.parent_call_sid:
        params["ParentCallSid"] = call.parent_call_sid
    return params


async def _document(
    ctx: RunContext, call: Call, url: str, method: str, extra: Mapping[str, str]
) -> tuple[RunContext, Document] | None:
    from switch.twiml.parser import parse_twiml

    if is_local(url) and not ctx.local:
        log.warning("CallSid=%s: a remote document cannot lead to %r", call.sid, url)
        return None
    try:
        fetched = await ctx.client.fetch(url, method, {**leg_params(call), **extra})
        document = parse_twiml(fetched.body, base_url=url if is_local(url) else fetched.url)
    except TwimlError as exc:
        log.warning("CallSid=%s: %s failed: %s", call.sid, url, exc)
        return None
    sub = RunContext(call, ctx.settings, ctx.client, document.url, document.local, lambda: leg_params(call))
    return sub, document


async def run_whisper(call: Call, url: str, method: str = "POST", extra: Mapping[str, str] = {}) -> bool:
    """Run the whisper document at ``url`` on the answered callee ``call``.

    False when the callee declined (the document hung up or rejected); True otherwise (also when the
    document could not be fetched: Twilio bridges the call all the same)."""
    ctx = DIAL_CONTEXT.get()
    if ctx is None:
        log.warning("CallSid=%s: no webhook client for the whisper %s; bridging", call.sid, url)
        return True
    loaded = await _document(ctx, call, url, method, extra)
    if loaded is None:
        return True
    sub, document = loaded
    for verb in document.verbs:
        if call.ended.is_set():
            return False
        if verb.TAG in ("Hangup", "Reject"):
            return False
        outcome = await verb.run(sub)
        if outcome.action is Action.HANGUP:
            return False
        if outcome.action is Action.REDIRECT:
            return await run_whisper(call, outcome.url, outcome.method, outcome.params)
    return not call.ended.is_set()


async def play_twiml_loop(call: Call, url: str, method: str = "POST") -> bool:
    """Loop the Play/Say/Pause of the document at ``url`` until cancelled; False when it cannot be used."""
    ctx = DIAL_CONTEXT.get()
    if ctx is None:
        return False
    if url.lower().rsplit("?", 1)[0].endswith(AUDIO_SUFFIXES):  # a waitUrl may name the music itself
        try:
            pcm = await ctx.client.audio_cache.get(url, lambda: _decode(ctx, call, url))
        except (TwimlError, ValueError) as exc:
            log.warning("CallSid=%s: music %s failed: %s", call.sid, url, exc)
            return False
        await call.play(pcm, 0)
        return True
    loaded = await _document(ctx, call, url, method, {})
    if loaded is None:
        return False
    sub, document = loaded
    verbs = [v for v in document.verbs if v.TAG in ("Play", "Say", "Pause")]
    if not verbs:
        return False
    while not call.ended.is_set():
        for verb in verbs:
            await verb.run(sub)
        await asyncio.sleep(0)
    return True
