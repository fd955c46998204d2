"""Text to speech with espeak-ng (PyPI ``espeakng-loader``) or a neural Piper voice (``switch.media.piper``),
rendered to 8 kHz int16 and cached.

espeak-ng keeps global state and is not thread-safe (Piper phonemizes through its own espeak-ng), so every
render, and every initialisation, runs on one dedicated thread: a single-worker executor shared by the whole
process. The event loop only awaits the result. A Piper voice, when there is one, speaks the ``<Say>`` it
``speaks`` (its language, its gender); espeak-ng speaks the rest.

Twilio voice names are mapped to espeak-ng voices: ``man`` to the language's default (male) voice, ``woman``,
``alice``, ``Polly.*`` and ``Google.*`` to a female variant (``+f3``), and Polly's male voices to the default.
Languages are BCP 47 tags (``en-US``); the tag is used if espeak-ng knows it, else its primary subtag
(``fr-FR`` -> ``fr``), else ``en-us``.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from switch.media.piper import NeuralVoice, PiperRenderer, find_voice
from voicecodecs.resample import resample

__all__ = ["DEFAULT_LANGUAGE", "TextToSpeech", "TtsError", "espeak_voice_name"]

log = logging.getLogger("switch.tts")

DEFAULT_LANGUAGE = "en-us"
FEMALE_VARIANT = "+f3"
OUTPUT_RATE = 8000

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0

_POLLY_MALE = frozenset(
    "matthew joey justin kevin stephen gregory brian arthur russell geraint mathieu remi hans daniel giorgio "
    "adriano enrique miguel andres sergio takumi ricardo thiago cristiano jacek jan maxim filiz carlos "
    "liam aiden".split()
)

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class TtsError(RuntimeError):
    """espeak-ng could not be loaded or refused to speak."""


def _is_female(voice: str | None) -> bool:
    if voice is None:
        return False
    v = voice.strip()
    low = v.lower()
    if low == "man":
        return False
    if low.startswith("polly."):
        name = low.removeprefix("polly.").split("-")[0]
        return name not in _POLLY_MALE
    return low in ("woman", "alice") or low.startswith("google.")


def espeak_voice_name(voice: str | None, language: str | None, languages: Mapping[str, str]) -> str:
    """The espeak-ng voice name for a Twilio ``voice`` and ``language`` (for example ``en-US+f3``).

    ``languages`` maps lower-case language codes to espeak-ng voice file names.
    """
    lang = languages.get(DEFAULT_LANGUAGE, DEFAULT_LANGUAGE)
    if language:
        tag = language.strip().lower().replace("_", "-")
        primary = tag.split("-")[0]
        if tag in languages:
            lang = languages[tag]
        elif primary in languages:
            lang = languages[primary]
    return lang + (FEMALE_VARIANT if _is_female(voice) else "")


class _Espeak:
    """The process's espeak-ng library; every method runs on the dedicated thread only."""

    def __init__(self) -> None:
        self._lib: ctypes.CDLL | None = None
        self._chunks: list[bytes] = []
        self._callback = _SynthCallback(self._on_samples)
        self.rate = 0
        self.languages: dict[str, str] = {}
        self._voice = ""

    def _on_samples(self, wav: ctypes._Pointer[ctypes.c_short], count: int, events: int | None) -> int:
        if count > 0 and wav:
            self._chunks.append(ctypes.string_at(wav, count * 2))
        return 0

    def _ensure(self) -> ctypes.CDLL:
        if self._lib is not None:
            return self._lib
        try:
            import espeakng_loader

            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data_path = str(espeakng_loader.get_data_path())
        except (ImportError, OSError) as exc:
            raise TtsError(f"cannot load espeak-ng: {exc}") from exc
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
        if rate <= 0:
            raise TtsError(f"espeak_Initialize failed ({rate})")
        lib.espeak_SetSynthCallback(self._callback)
        self.rate = rate
        self.languages = _read_languages(Path(data_path) / "lang")
        self._lib = lib
        return lib

    def render(self, text: str, voice: str | None, language: str | None) -> NDArray[np.int16]:
        """Speak ``text`` at 8 kHz; the whole render, resampling included, runs on this thread."""
        lib = self._ensure()
        name = espeak_voice_name(voice, language, self.languages)
        # espeak-ng keeps state from one render to the next that no API resets (the pitch flutter index,
        # the echo buffer, the glottal phase): the same text renders to the same length and envelope, but
        # not bit for bit. The cache is what makes a prompt identical every time it is played.
        if lib.espeak_SetVoiceByName(name.encode()) != _EE_OK:
            raise TtsError(f"espeak-ng has no voice {name!r}")
        self._voice = name
        data = text.encode("utf-8") + b"\0"
        self._chunks = []
        if lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None) != _EE_OK:
            raise TtsError("espeak_Synth failed")
        lib.espeak_Synchronize()
        pcm = np.frombuffer(b"".join(self._chunks), dtype=np.int16)
        self._chunks = []
        return resample(pcm, self.rate, OUTPUT_RATE)


def _read_languages(root: Path) -> dict[str, str]:
    """Language code (lower case) -> the voice file name espeak-ng selects by, from espeak-ng-data/lang.

    A file's own name wins (``en-US``); otherwise the file declaring the code with the best priority
    (``language en-gb 2`` in the file ``en``).
    """
    by_file: dict[str, str] = {}
    declared: dict[str, tuple[int, str]] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        by_file[path.name.lower()] = path.name
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "language":
                priority = int(parts[2]) if len(parts) >= 3 and parts[2].isdigit() else 5
                code = parts[1].lower()
                if code not in declared or priority < declared[code][0]:
                    declared[code] = (priority, path.name)
    languages = {code: name for code, (_, name) in declared.items()}
    languages.update(by_file)
    return languages


class _Engines:
    """espeak-ng and the Piper voices loaded so far; every method runs on the dedicated thread only."""

    def __init__(self) -> None:
        self.espeak = _Espeak()
        self._piper: dict[NeuralVoice, PiperRenderer | None] = {}

    def piper(self, voice: NeuralVoice) -> PiperRenderer | None:
        """The loaded voice; None (logged once) when it cannot be loaded."""
        if voice not in self._piper:
            try:
                self._piper[voice] = PiperRenderer(voice)
            except Exception:
                log.exception("text to speech: cannot load the Piper voice %s; espeak-ng speaks", voice.model)
                self._piper[voice] = None
        return self._piper[voice]

    def render(
        self, text: str, voice: str | None, language: str | None, neural: NeuralVoice | None
    ) -> NDArray[np.int16]:
        if neural is not None and neural.speaks(voice, language):
            renderer = self.piper(neural)
            if renderer is not None:
                return renderer.render(text)
        return self.espeak.render(text, voice, language)


_engine_lock = threading.Lock()
_engine: tuple[_Engines, ThreadPoolExecutor] | None = None


def _shared_engine() -> tuple[_Engines, ThreadPoolExecutor]:
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = (_Engines(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts"))
        return _engine


_Key = tuple[str, str | None, str | None]


class TextToSpeech:
    """Renders prompts off the event loop and keeps the last ``cache_size`` of them.

    ``voice_model`` is ``--tts-model``: a Piper voice file, ``"piper"`` for the shipped Piper voice, or
    None / ``"espeak"`` for espeak-ng only (``switch.media.piper.find_voice``); a Piper voice starts loading
    at once, on the TTS thread. The arrays returned are shared with the cache
    and read-only: play them, do not modify them.
    """

    def __init__(self, *, cache_size: int = 256, voice_model: str | None = None) -> None:
        self.neural = find_voice(voice_model)
        """The Piper voice in use, or None (espeak-ng only)."""
        if self.neural is not None:
            engines, executor = _shared_engine()
            executor.submit(engines.piper, self.neural)
        self._cache: OrderedDict[_Key, NDArray[np.int16]] = OrderedDict()
        self._pending: dict[_Key, asyncio.Future[NDArray[np.int16]]] = {}
        self._cache_size = cache_size
        self.renders = 0
        """How many prompts were rendered rather than served from the cache."""

    async def synthesize(
        self, text: str, *, voice: str | None = None, language: str | None = None
    ) -> NDArray[np.int16]:
        """``text`` spoken at 8 kHz mono, int16."""
        key: _Key = (text, voice, language)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        engines, executor = _shared_engine()
        loop = asyncio.get_running_loop()
        neural = self.neural
        render: Callable[[], NDArray[np.int16]] = lambda: engines.render(text, voice, language, neural)  # noqa: E731
        future = asyncio.ensure_future(loop.run_in_executor(executor, render))
        self._pending[key] = future
        try:
            pcm = await asyncio.shield(future)
        finally:
            del self._pending[key]
        pcm.flags.writeable = False
        self.renders += 1
        self._cache[key] = pcm
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return pcm
