"""Decode an audio file (WAV or MP3, as fetched for <Play>) to 8 kHz mono int16 with PyAV.

Only the container formats in :data:`ALLOWED_FORMATS` are opened; anything else, and anything PyAV cannot
read, raises :class:`AudioDecodeError`. Decoding is CPU work: from the event loop, call
:func:`decode_audio_async`, which runs it in a thread pool.
"""

from __future__ import annotations

import asyncio
import io

import av
import numpy as np
from numpy.typing import NDArray

__all__ = ["ALLOWED_FORMATS", "AudioDecodeError", "decode_audio", "decode_audio_async"]

ALLOWED_FORMATS = frozenset({"wav", "mp3"})
OUTPUT_RATE = 8000


class AudioDecodeError(ValueError):
    """The bytes are not a WAV or MP3 file that can be decoded."""


def decode_audio(data: bytes) -> NDArray[np.int16]:
    """``data`` (a whole WAV or MP3 file) as 8 kHz mono int16 samples."""
    if not data:
        raise AudioDecodeError("cannot decode audio: no data")
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except av.FFmpegError as exc:
        raise AudioDecodeError(f"cannot decode audio: {exc}") from exc
    with container:
        formats = set(container.format.name.split(","))
        if not formats & ALLOWED_FORMATS:
            raise AudioDecodeError(f"cannot decode audio: format {container.format.name!r} is not WAV or MP3")
        if not container.streams.audio:
            raise AudioDecodeError("cannot decode audio: no audio stream")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=OUTPUT_RATE)
        chunks: list[NDArray[np.int16]] = []
        try:
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    chunks.append(np.asarray(out.to_ndarray(), dtype=np.int16).reshape(-1))
            for out in resampler.resample(None):
                chunks.append(np.asarray(out.to_ndarray(), dtype=np.int16).reshape(-1))
        except av.FFmpegError as exc:
            raise AudioDecodeError(f"cannot decode audio: {exc}") from exc
    if not chunks:
        raise AudioDecodeError("cannot decode audio: no samples")
    return np.concatenate(chunks).astype(np.int16, copy=False)


async def decode_audio_async(data: bytes) -> NDArray[np.int16]:
    """:func:`decode_audio` in the default thread pool, never on the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, decode_audio, data)
