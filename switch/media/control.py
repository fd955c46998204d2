"""What call control needs of a media engine: `MediaEngine` (in process) and `WorkerMediaEngine` (in worker
processes, `switch serve --media-workers N`) both provide it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from switch.media.engine_types import MediaCounters
from switch.media.recorder import RecordingResult

__all__ = ["MediaControl"]


class MediaControl(Protocol):
    on_dtmf: Callable[[int, str, str], None] | None
    on_rtp_timeout: Callable[[int], None] | None

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def create_channel(self, group: str | None = None, *, near: int | None = None) -> int:
        """A new channel; with workers, on the worker of ``group`` or of the channel ``near`` (pass the
        parent call's channel for a Dial leg, so both legs of the bridge share a worker and no trunk is
        needed). The in-process engine ignores both."""
        ...

    def local_port(self, channel: int) -> int: ...

    async def close_channel(self, channel: int) -> None: ...

    def configure(
        self,
        channel: int,
        *,
        remote: tuple[str, int],
        codec: str,
        payload_type: int,
        ptime: int = 20,
        telephone_event_pt: int | None = None,
        direction: str = "sendrecv",
        on_hold: bool = False,
        rtcp_mux: bool = False,
    ) -> None: ...

    def play(self, channel: int, pcm: NDArray[np.int16], loop: int = 1) -> asyncio.Future[None]: ...

    def stop_playback(self, channel: int) -> None: ...

    def bridge(self, a: int, b: int) -> None: ...

    def unbridge(self, channel: int) -> None: ...

    def join_room(self, channel: int, room: str, *, muted: bool = False) -> None: ...

    def leave_room(self, channel: int) -> None: ...

    def set_muted(self, channel: int, muted: bool) -> None: ...

    def record(
        self,
        channel: int,
        path: Path,
        *,
        max_length: float = 3600.0,
        silence_timeout: float | None = 5.0,
        finish_on_digits: str = "",
        trim_silence: bool = True,
        dual: bool = False,
        beep: bool = False,
    ) -> asyncio.Future[RecordingResult]: ...

    def stop_recording(self, channel: int) -> None: ...

    def send_dtmf(self, channel: int, digits: str, *, duration_ms: int = 100) -> asyncio.Future[None]: ...

    def counters(self) -> MediaCounters:
        """RTP totals and the tick histogram since start (with workers: as of their last report)."""
        ...
