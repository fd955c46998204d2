"""Recording decisions frame by frame, and the writer thread's WAV files."""

from __future__ import annotations

import threading
import wave
from pathlib import Path

import numpy as np

from switch.media.recorder import Recording, WavWriter, silent_rows

LOUD = (np.full(160, 3000, np.int16)).tobytes()
QUIET = bytes(320)


def _recording(**kwargs: object) -> Recording:
    options: dict[str, object] = {
        "max_length": 10.0,
        "silence_timeout": 1.0,
        "finish_on_digits": "#",
        "trim_silence": True,
        "dual": False,
    }
    options.update(kwargs)
    return Recording(Path("x.wav"), **options)  # type: ignore[arg-type]


def _feed(rec: Recording, pattern: str) -> list[bytes]:
    out: list[bytes] = []
    for c in pattern:
        out += rec.feed(LOUD if c == "L" else QUIET, c != "L")
    return out


def test_trim_drops_leading_and_trailing_silence_and_silence_ends_it() -> None:
    rec = _recording()
    written = _feed(rec, "QQQ" + "L" * 10 + "QQ" + "L" * 5 + "Q" * 50 + "L")
    assert written == [LOUD] * 10 + [QUIET] * 2 + [LOUD] * 5
    assert rec.ended_by == "silence"
    assert rec.result().duration == 17 / 50


def test_without_trim_everything_is_written_until_max_length() -> None:
    rec = _recording(trim_silence=False, silence_timeout=None, max_length=0.2)
    written = _feed(rec, "QLQLQLQLQLQLQ")
    assert len(written) == 10 and rec.ended_by == "max-length"


def test_beep_frames_are_skipped_and_a_digit_ends_it() -> None:
    rec = _recording(skip_frames=3)
    assert _feed(rec, "LLLLL") == [LOUD] * 2
    assert rec.finish("digit", "#") and not rec.finish("stopped")
    assert rec.result().ended_by == "digit" and rec.result().digit == "#"


def test_silence_is_judged_by_rms() -> None:
    frames = np.stack([np.full(160, 100, np.int16), np.full(160, 400, np.int16)])
    assert silent_rows(frames).tolist() == [True, False]


def test_writer_thread_writes_mono_and_dual_wav(tmp_path: Path) -> None:
    writer = WavWriter()
    done = threading.Event()
    errors: list[OSError | None] = []

    def finished(error: OSError | None) -> None:
        errors.append(error)
        if len(errors) == 2:
            done.set()

    pcm = np.arange(-800, 800, dtype=np.int16)
    writer.open(1, tmp_path / "a" / "mono.wav", 1)
    writer.open(2, tmp_path / "dual.wav", 2)
    writer.write(1, pcm.tobytes())
    writer.write(2, np.stack([pcm, -pcm], axis=1).tobytes())
    writer.close(1, finished)
    writer.close(2, finished)
    assert done.wait(5)
    writer.shutdown()
    assert errors == [None, None]
    with wave.open(str(tmp_path / "a" / "mono.wav")) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth(), w.getnframes()) == (1, 8000, 2, 1600)
        assert np.array_equal(np.frombuffer(w.readframes(1600), np.int16), pcm)
    with wave.open(str(tmp_path / "dual.wav")) as w:
        data = np.frombuffer(w.readframes(1600), np.int16).reshape(-1, 2)
        assert w.getnchannels() == 2
        assert np.array_equal(data[:, 0], pcm) and np.array_equal(data[:, 1], -pcm)


def test_writer_reports_a_path_it_cannot_write(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    writer = WavWriter()
    done = threading.Event()
    errors: list[OSError | None] = []
    writer.open(1, tmp_path / "file" / "x.wav", 1)

    def finished(error: OSError | None) -> None:
        errors.append(error)
        done.set()

    writer.close(1, finished)
    assert done.wait(5)
    writer.shutdown()
    assert isinstance(errors[0], OSError)
