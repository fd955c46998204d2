"""Ringback tones by country for ``<Dial ringTone>`` (ITU-T E.180 Supplement 2), made with voicecodecs.tones.

Each is (low Hz, high Hz (0: a single tone), cadence in ms: on, off, on, off...). One period is synthesised
once per country and looped by the media engine; an unknown code falls back to ``us`` (Twilio's default).
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray

from voicecodecs.tones import RINGBACK_UK, RINGBACK_US, cadenced_tone

__all__ = ["RING_TONES", "ring_tone"]

log = logging.getLogger("switch.calls")

_UK = (RINGBACK_UK[0], RINGBACK_UK[1], RINGBACK_UK[2])
_EU = (425.0, 0.0, (1000, 4000))
RING_TONES: dict[str, tuple[float, float, tuple[int, ...]]] = {
    "us": (RINGBACK_US[0], RINGBACK_US[1], RINGBACK_US[2]),
    "ca": (RINGBACK_US[0], RINGBACK_US[1], RINGBACK_US[2]),
    "us-old": (440.0, 480.0, (2000, 4000)),
    "uk": _UK,
    "ie": _UK,
    "nz": (400.0, 450.0, (400, 200, 400, 2000)),
    "au": (425.0, 400.0, (400, 200, 400, 2000)),
    "de": _EU,
    "at": _EU,
    "ch": _EU,
    "nl": _EU,
    "it": _EU,
    "be": _EU,
    "pl": _EU,
    "cz": _EU,
    "dk": _EU,
    "no": _EU,
    "se": _EU,
    "fi": _EU,
    "pt": _EU,
    "gr": _EU,
    "ru": (425.0, 0.0, (800, 3200)),
    "es": (425.0, 0.0, (1500, 3000)),
    "fr": (440.0, 0.0, (1500, 3500)),
    "jp": (400.0, 0.0, (1000, 2000)),
    "cn": (450.0, 0.0, (1000, 4000)),
    "in": (400.0, 0.0, (400, 200, 400, 2000)),
    "br": (425.0, 0.0, (1000, 4000)),
    "mx": (425.0, 0.0, (1000, 4000)),
    "il": (400.0, 0.0, (1000, 3000)),
    "za": (400.0, 450.0, (400, 200, 400, 2000)),
}
_CACHE: dict[str, NDArray[np.int16]] = {}


def ring_tone(country: str | None) -> NDArray[np.int16]:
    """One period of the ringback tone of ``country`` (a Twilio ringTone code), 8 kHz mono."""
    code = (country or "us").strip().lower()
    if code not in RING_TONES:
        log.warning("ringTone %r is not known; using us", country)
        code = "us"
    cached = _CACHE.get(code)
    if cached is None:
        low, high, cadence = RING_TONES[code]
        period = sum(cadence) * 8
        cached = _CACHE[code] = cadenced_tone(low, high, cadence, period, level_dbm0=-16.0)
    return cached
