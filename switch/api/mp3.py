"""MP3 copies of recordings, encoded with PyAV (libmp3lame) off the event loop and kept beside the WAV."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import av


class Mp3Error(Exception):
    """The WAV file could not be read or encoded."""


def encode_mp3(wav: Path, mp3: Path, *, bit_rate: int = 32000) -> None:
    """Encode ``wav`` (any PCM WAV) to ``mp3``; written to a temporary name, then renamed into place."""
    partial = mp3.with_name(f".{mp3.name}.{os.getpid()}.partial")
    try:
        with av.open(str(wav)) as source, av.open(str(partial), "w", format="mp3") as sink:
            audio = source.streams.audio[0]
            rate = audio.rate or 8000
            layout = "stereo" if audio.channels == 2 else "mono"
            stream = sink.add_stream("libmp3lame", rate=rate, layout=layout)
            stream.bit_rate = bit_rate
            resampler = av.AudioResampler(format="s16p", layout=layout, rate=rate)
            for frame in source.decode(audio):
                for converted in resampler.resample(frame):
                    sink.mux(stream.encode(converted))
            for converted in resampler.resample(None):
                sink.mux(stream.encode(converted))
            sink.mux(stream.encode(None))
        partial.replace(mp3)
    except (av.FFmpegError, OSError, IndexError) as exc:
        partial.unlink(missing_ok=True)
        raise Mp3Error(f"cannot encode {wav} as MP3: {exc}") from exc


async def mp3_of(wav: Path) -> Path:
    """The MP3 beside ``wav``, encoded in a worker thread on first use."""
    mp3 = wav.with_suffix(".mp3")
    if not await asyncio.to_thread(mp3.exists):
        await asyncio.to_thread(encode_mp3, wav, mp3)
    return mp3
