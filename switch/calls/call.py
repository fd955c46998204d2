"""One call: the SIP side (its INVITE server transaction and dialog) and the media side (its channel).

`Call` implements `switch.twiml.session.CallControl`, which is all the TwiML interpreter knows of a call.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from switch.media.engine import MediaError
from switch.sip.events import RequestReceived
from switch.sip.message import Request, Response, make_response
from switch.sip.sdp import AudioAnswer

if TYPE_CHECKING:
    from switch.calls.manager import CallManager

log = logging.getLogger("switch.calls")


def new_call_sid() -> str:
    return "CA" + uuid.uuid4().hex


def _uri_text(value: object) -> str:
    return str(value)


class Call:
    """An inbound call, as the interpreter and the call manager see it."""

    direction = "inbound"

    def __init__(
        self,
        manager: CallManager,
        invite: RequestReceived,
        channel: int,
        answer: AudioAnswer,
    ) -> None:
        request = invite.request
        self.manager = manager
        self.invite = invite
        self.channel = channel
        self.media = answer
        self.sid = new_call_sid()
        self.account_sid = manager.account_sid
        self.from_ = _uri_text(request.from_.uri)
        self.to = _uri_text(request.to.uri)
        self.caller_name = request.from_.display_name or ""
        self.sip_call_id = request.call_id
        self.local_tag = secrets.token_hex(8)
        self.dialog_id: str | None = None
        self.answered = False
        self.final_sent = False
        self.status = "ringing"
        self.ended = asyncio.Event()
        self.started_at = time.time()
        self.answered_at: float | None = None
        self.end_reason = ""
        self._ringing_sent = False
        self._playback: asyncio.Future[None] | None = None

    # -- SIP helpers -----------------------------------------------------------------------------------------
    def _response(self, status: int, *, body: bytes = b"", content_type: str | None = None) -> Response:
        response = make_response(self.invite.request, status, to_tag=self.local_tag)
        manager = self.manager
        if status < 300 or status == 180:
            response.headers.add("Contact", f"<sip:{manager.contact_host}:{manager.contact_port}>")
        response.headers.add("Allow", manager.allow_header)
        response.headers.add("Server", manager.user_agent)
        if body:
            response.body = body
            response.headers.set("Content-Type", content_type or "application/sdp")
        return response

    def _respond(self, response: Response) -> None:
        self.manager.respond(self.invite, response)

    # -- CallControl -----------------------------------------------------------------------------------------
    async def ringing(self) -> None:
        if self._ringing_sent or self.final_sent or self.ended.is_set():
            return
        self._ringing_sent = True
        self._respond(self._response(180))

    async def answer(self) -> None:
        if self.answered or self.final_sent or self.ended.is_set():
            return
        manager = self.manager
        try:
            self._configure_media(self.media)
        except MediaError as exc:
            log.warning("cannot answer CallSid=%s: %s", self.sid, exc)
            self.final_sent = True
            self.status = "failed"
            response = self._response(488)
            response.headers.add("Warning", f'399 switch "{exc}"')
            self._respond(response)
            manager.end(self, "media refused")
            return
        self.answered = True
        self.final_sent = True
        self.answered_at = time.time()
        self.status = "in-progress"
        self.dialog_id = manager.respond(self.invite, self._response(200, body=self.media.sdp))
        if self.dialog_id is not None:
            manager.by_dialog[self.dialog_id] = self

    async def reject(self, status: int) -> None:
        if self.final_sent or self.ended.is_set():
            return
        self.final_sent = True
        self.status = "busy" if status == 486 else "failed"
        self._respond(self._response(status))
        self.manager.end(self, "rejected")

    async def hangup(self) -> None:
        if self.ended.is_set():
            return
        if self.answered:
            self.manager.send_bye(self)
            self.status = "completed"
            self.manager.end(self, "hangup")
        else:
            if not self.final_sent:
                self.final_sent = True
                self._respond(self._response(480))
            self.status = "failed"
            self.manager.end(self, "hangup before answer")

    async def play(self, pcm: NDArray[np.int16], loop: int = 1) -> None:
        if self.ended.is_set():
            return
        future = self.manager.media.play(self.channel, pcm, loop)
        self._playback = future
        try:
            await future
        finally:
            if not future.done():
                self.manager.media.stop_playback(self.channel)
            self._playback = None

    async def say(self, text: str, voice: str | None, language: str | None) -> NDArray[np.int16]:
        return await self.manager.tts.synthesize(text, voice=voice, language=language)

    async def decode(self, data: bytes) -> NDArray[np.int16]:
        from switch.media.decode import decode_audio_async

        return await decode_audio_async(data)

    # -- events from the far end -----------------------------------------------------------------------------
    def reinvite(self, request: Request, answer: AudioAnswer) -> None:
        """A re-INVITE: new remote address, codec or direction (hold and resume)."""
        self.media = answer
        self._configure_media(answer)

    def _configure_media(self, answer: AudioAnswer) -> None:
        # The engine sends 20 ms packets whatever ptime the peer asked for (a peer must accept any
        # packet time it can decode; RFC 3264 makes ptime a hint).
        self.manager.media.configure(
            self.channel,
            remote=(answer.remote_address, answer.remote_port),
            codec=answer.codec,
            payload_type=answer.payload_type,
            telephone_event_pt=answer.telephone_event_pt,
            direction=answer.remote_direction,
            on_hold=answer.on_hold,
        )

    @property
    def duration(self) -> int:
        if self.answered_at is None:
            return 0
        return int(round(time.time() - self.answered_at))
