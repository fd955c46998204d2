"""Recording a channel to WAV: the per-recording frame logic (sans-IO) and one writer thread.

:class:`Recording` decides, frame by frame, what goes into the file: it skips the beep, ends on silence
(``silence_timeout`` seconds of consecutive frames below :data:`SILENCE_RMS`), on ``max_length`` or when
told (digit, stop, close), and with ``trim_silence`` drops the silence before the first sound and after the
last (trailing silent frames are held back until sound follows, so they are never written if none does).

:class:`WavWriter` owns the files: one daemon thread takes (open, write, close) commands from a queue and
writes 8 kHz 16-bit PCM WAV, mono (the caller) or dual (caller left, what the caller hears right), so the
event loop never waits for a disk. The tick hands it ``bytes`` (copies of the frames), never views of
arrays the next tick overwrites.
"""

from __future__ import annotations

import logging
import queue
import threading
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = ["ENDED_BY", "SILENCE_RMS", "Recording", "RecordingResult", "WavWriter"]

log = logging.getLogger(__name__)

SILENCE_RMS = 200.0
"""A frame whose RMS is below this (about -38 dBm0 for G.711 audio) is silence."""
FRAMES_PER_SECOND = 50
ENDED_BY = ("silence", "max-length", "digit", "stopped", "closed")


@dataclass(frozen=True)
class RecordingResult:
    path: Path
    duration: float
    """Seconds of audio in the file."""
    ended_by: str
    """``silence``, ``max-length``, ``digit``, ``stopped`` or ``closed``."""
    digit: str | None


class Recording:
    """What one recording writes, frame by frame (20 ms frames at 8 kHz)."""

    def __init__(
        self,
        path: Path,
        *,
        max_length: float,
        silence_timeout: float | None,
        finish_on_digits: str,
        trim_silence: bool,
        dual: bool,
        skip_frames: int = 0,
    ) -> None:
        if max_length <= 0:
            raise ValueError("max_length must be positive")
        if silence_timeout is not None and silence_timeout <= 0:
            raise ValueError("silence_timeout must be positive or None")
        self.path = path
        self.dual = dual
        self.finish_on_digits = finish_on_digits
        self.trim = trim_silence
        self._max_frames = max(1, round(max_length * FRAMES_PER_SECOND))
        self._silence_frames = (
            None if silence_timeout is None else max(1, round(silence_timeout * FRAMES_PER_SECOND))
        )
        self._skip = skip_frames
        self._elapsed = 0
        self._silent_run = 0
        self._heard_sound = False
        self._held: list[bytes] = []
        self.frames_written = 0
        self.ended_by: str | None = None
        self.digit: str | None = None

    def feed(self, frame: bytes, silent: bool) -> list[bytes]:
        """Take one frame (already interleaved when dual); return the frames to write now."""
        if self.ended_by is not None:
            return []
        if self._skip:
            self._skip -= 1
            return []
        self._elapsed += 1
        out: list[bytes] = []
        if silent:
            self._silent_run += 1
            if not self.trim:
                out.append(frame)
            elif self._heard_sound:
                self._held.append(frame)
        else:
            self._silent_run = 0
            self._heard_sound = True
            if self._held:
                out.extend(self._held)
                self._held.clear()
            out.append(frame)
        self.frames_written += len(out)
        if self._silence_frames is not None and self._silent_run >= self._silence_frames:
            self.finish("silence")
        elif self._elapsed >= self._max_frames:
            self.finish("max-length")
        return out

    def finish(self, reason: str, digit: str | None = None) -> bool:
        """End the recording (held trailing silence is dropped); False if it had already ended."""
        if self.ended_by is not None:
            return False
        self.ended_by = reason
        self.digit = digit
        self._held.clear()
        return True

    def result(self) -> RecordingResult:
        return RecordingResult(
            path=self.path,
            duration=self.frames_written / FRAMES_PER_SECOND,
            ended_by=self.ended_by or "stopped",
            digit=self.digit,
        )


def silent_rows(frames: NDArray[np.int16]) -> NDArray[np.bool_]:
    """Per row of ``(rows, samples)`` audio: is its RMS below :data:`SILENCE_RMS`?"""
    x = frames.astype(np.float32)
    energy = np.einsum("ij,ij->i", x, x) / max(frames.shape[1], 1)
    return np.asarray(energy < SILENCE_RMS**2)


_Command = tuple[str, int, object]


class WavWriter:
    """One thread writing every open recording; commands are queued, never awaited by the event loop."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Command | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="wav-writer", daemon=True)
            self._thread.start()

    def open(self, key: int, path: Path, channels: int) -> None:
        self._ensure_thread()
        self._queue.put(("open", key, (path, channels)))

    def write(self, key: int, data: bytes) -> None:
        self._queue.put(("write", key, data))

    def close(self, key: int, done: Callable[[OSError | None], object]) -> None:
        """Finish the file; ``done`` is called on the writer thread with the error, if any."""
        self._ensure_thread()
        self._queue.put(("close", key, done))

    def shutdown(self) -> None:
        """Let the thread finish what is queued and stop (it does not wait for it)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread = None

    def _run(self) -> None:
        files: dict[int, wave.Wave_write] = {}
        errors: dict[int, OSError] = {}
        while True:
            command = self._queue.get()
            if command is None:
                break
            op, key, arg = command
            try:
                if op == "open":
                    assert isinstance(arg, tuple)
                    path, channels = arg
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                    wav = wave.open(str(path), "wb")
                    wav.setnchannels(channels)
                    wav.setsampwidth(2)
                    wav.setframerate(8000)
                    files[key] = wav
                elif op == "write":
                    wav_file = files.get(key)
                    if wav_file is not None:
                        assert isinstance(arg, bytes)
                        wav_file.writeframesraw(arg)
                else:
                    wav_file = files.pop(key, None)
                    if wav_file is not None:
                        wav_file.close()
                    done: Callable[[OSError | None], object] = arg  # type: ignore[assignment]
                    done(errors.pop(key, None))
            except OSError as exc:
                log.warning("recording %d: %s", key, exc)
                errors[key] = exc
                broken = files.pop(key, None)
                if broken is not None:
                    try:
                        broken.close()
                    except OSError:
                        pass
                if op == "close":
                    done = arg  # type: ignore[assignment]
                    done(errors.pop(key, None))
