"""Text to speech through espeak-ng, at 8 kHz, cached."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from numpy.typing import NDArray

from switch.media.tts import TextToSpeech, espeak_voice_name

SENTENCE = "Thank you for calling. Please hold while we connect you."
LANGUAGES = {"en-us": "en-US", "en": "en", "en-gb": "en", "fr": "fr", "fr-be": "fr-BE", "de": "de"}


@pytest.mark.parametrize(
    ("voice", "language", "expected"),
    [
        (None, None, "en-US"),
        ("man", "en-US", "en-US"),
        ("woman", "en-US", "en-US+f3"),
        ("alice", "en-GB", "en+f3"),
        ("Polly.Joanna", "en-US", "en-US+f3"),
        ("Polly.Matthew-Neural", "en-US", "en-US"),
        ("Google.en-US-Standard-C", None, "en-US+f3"),
        ("man", "fr-FR", "fr"),
        ("man", "fr-BE", "fr-BE"),
        ("woman", "de_DE", "de+f3"),
        ("man", "xx-YY", "en-US"),
        ("robot", "", "en-US"),
    ],
)
def test_twilio_voice_and_language_map_to_espeak(
    voice: str | None, language: str | None, expected: str
) -> None:
    assert espeak_voice_name(voice, language, LANGUAGES) == expected


async def test_sentence_is_speech_of_plausible_length() -> None:
    pcm = await TextToSpeech().synthesize(SENTENCE)
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    seconds = len(pcm) / 8000
    assert 1.0 < seconds < 5.0
    rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
    assert rms > 500
    # Speech has pauses: the quietest 20 ms frames are far below the loudest.
    frames = pcm[: len(pcm) // 160 * 160].reshape(-1, 160).astype(np.float64)
    energy = np.sqrt(np.mean(frames**2, axis=1))
    assert energy.max() > 20 * max(energy.min(), 1.0)


async def test_same_input_gives_same_audio_and_is_cached() -> None:
    first = TextToSpeech()
    a = await first.synthesize(SENTENCE, voice="woman", language="en-GB")
    b = await first.synthesize(SENTENCE, voice="woman", language="en-GB")
    assert b is a and first.renders == 1
    assert not a.flags.writeable

    # A second render (another cache) gives the same timing (within a frame) and envelope; espeak-ng's
    # internal state (pitch flutter, echo), carried over between renders, changes the fine detail.
    c = await TextToSpeech().synthesize(SENTENCE, voice="woman", language="en-GB")
    assert c is not a and abs(len(c) - len(a)) < 160
    n = min(len(a), len(c))
    assert np.corrcoef(_envelope(a[:n]), _envelope(c[:n]))[0, 1] > 0.95


def _envelope(pcm: NDArray[np.int16]) -> NDArray[np.float64]:
    frames = pcm[: len(pcm) // 160 * 160].reshape(-1, 160).astype(np.float64)
    envelope: NDArray[np.float64] = np.sqrt(np.mean(frames**2, axis=1))
    return envelope


async def test_voice_and_language_change_the_audio() -> None:
    tts = TextToSpeech()
    male = await tts.synthesize("Hello", voice="man")
    female = await tts.synthesize("Hello", voice="woman")
    french = await tts.synthesize("Hello", voice="man", language="fr-FR")
    assert tts.renders == 3
    assert not np.array_equal(male, female)
    assert not np.array_equal(male, french)


async def test_concurrent_requests_render_once() -> None:
    tts = TextToSpeech()
    results = await asyncio.gather(*(tts.synthesize("One moment please.") for _ in range(5)))
    assert tts.renders == 1
    assert all(r is results[0] for r in results)


async def test_least_recently_used_prompt_is_evicted() -> None:
    tts = TextToSpeech(cache_size=2)
    one = await tts.synthesize("one")
    await tts.synthesize("two")
    assert await tts.synthesize("one") is one  # "one" is now the most recent
    await tts.synthesize("three")  # evicts "two"
    assert tts.renders == 3
    assert await tts.synthesize("one") is one
    await tts.synthesize("two")
    assert tts.renders == 4
