"""G.711 mu-law and A-law by lookup table, bit-exact with the standard library's ``audioop``.

The four tables are built once at import with numpy. Encoding indexes a 65,536-entry table with the
int16 sample viewed as uint16; decoding indexes a 256-entry table. Every function accepts arrays of
any shape, a ``(channels, samples)`` batch included, and takes an optional ``out=`` buffer so the media
tick can encode and decode into memory allocated in advance.

The formulas follow the ITU-T G.711 reference code (the Sun implementation that ``audioop`` uses):
mu-law works on the 14 most significant bits, A-law on the 13 most significant bits.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "ALAW_DECODE",
    "ALAW_ENCODE",
    "ALAW_SILENCE",
    "ULAW_DECODE",
    "ULAW_ENCODE",
    "ULAW_SILENCE",
    "alaw_decode",
    "alaw_encode",
    "ulaw_decode",
    "ulaw_encode",
]

_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159
_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)


def _all_int16_by_uint16_index() -> NDArray[np.int32]:
    """Every int16 value, placed at the index of its uint16 bit pattern."""
    return np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)


def _build_ulaw_encode() -> NDArray[np.uint8]:
    pcm = _all_int16_by_uint16_index() >> 2  # 14-bit two's complement
    negative = pcm < 0
    mask = np.where(negative, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(pcm), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = np.searchsorted(_ULAW_SEG_END, magnitude, side="left").astype(np.int32)
    seg_clamped = np.minimum(seg, 7)
    uval = (seg_clamped << 4) | ((magnitude >> (seg_clamped + 1)) & 0xF)
    uval = np.where(seg >= 8, 0x7F, uval)
    return (uval ^ mask).astype(np.uint8)


def _build_ulaw_decode() -> NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + _ULAW_BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


def _build_alaw_encode() -> NDArray[np.uint8]:
    pcm = _all_int16_by_uint16_index() >> 3  # 13-bit two's complement
    negative = pcm < 0
    mask = np.where(negative, 0x55, 0xD5)
    magnitude = np.where(negative, -pcm - 1, pcm)
    seg = np.searchsorted(_ALAW_SEG_END, magnitude, side="left").astype(np.int32)
    seg_clamped = np.minimum(seg, 7)
    shift = np.where(seg_clamped < 2, 1, seg_clamped)
    aval = (seg_clamped << 4) | ((magnitude >> shift) & 0x0F)
    aval = np.where(seg >= 8, 0x7F, aval)
    return (aval ^ mask).astype(np.uint8)


def _build_alaw_decode() -> NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


ULAW_ENCODE: NDArray[np.uint8] = _build_ulaw_encode()
"""65,536 mu-law bytes, indexed by the int16 sample viewed as uint16."""
ULAW_DECODE: NDArray[np.int16] = _build_ulaw_decode()
"""256 int16 samples, indexed by the mu-law byte."""
ALAW_ENCODE: NDArray[np.uint8] = _build_alaw_encode()
"""65,536 A-law bytes, indexed by the int16 sample viewed as uint16."""
ALAW_DECODE: NDArray[np.int16] = _build_alaw_decode()
"""256 int16 samples, indexed by the A-law byte."""

for _table in (ULAW_ENCODE, ULAW_DECODE, ALAW_ENCODE, ALAW_DECODE):
    _table.setflags(write=False)
del _table

ULAW_SILENCE = int(ULAW_ENCODE[0])
"""The mu-law byte for a zero sample (0xFF)."""
ALAW_SILENCE = int(ALAW_ENCODE[0])
"""The A-law byte for a zero sample (0xD5)."""


def _encode(
    table: NDArray[np.uint8], x: NDArray[np.int16], out: NDArray[np.uint8] | None
) -> NDArray[np.uint8]:
    if x.dtype != np.int16:
        raise TypeError(f"G.711 encoding needs int16 samples, got {x.dtype}")
    # mode="clip" avoids the buffered copy that mode="raise" makes; every uint16 index is in range.
    return np.take(table, x.view(np.uint16), out=out, mode="clip")


def _decode(
    table: NDArray[np.int16], b: NDArray[np.uint8], out: NDArray[np.int16] | None
) -> NDArray[np.int16]:
    if b.dtype != np.uint8:
        raise TypeError(f"G.711 decoding needs uint8 bytes, got {b.dtype}")
    return np.take(table, b, out=out, mode="clip")


def ulaw_encode(x: NDArray[np.int16], out: NDArray[np.uint8] | None = None) -> NDArray[np.uint8]:
    """Encode int16 samples (any shape) to mu-law bytes, into ``out`` when given."""
    return _encode(ULAW_ENCODE, x, out)


def ulaw_decode(b: NDArray[np.uint8], out: NDArray[np.int16] | None = None) -> NDArray[np.int16]:
    """Decode mu-law bytes (any shape) to int16 samples, into ``out`` when given."""
    return _decode(ULAW_DECODE, b, out)


def alaw_encode(x: NDArray[np.int16], out: NDArray[np.uint8] | None = None) -> NDArray[np.uint8]:
    """Encode int16 samples (any shape) to A-law bytes, into ``out`` when given."""
    return _encode(ALAW_ENCODE, x, out)


def alaw_decode(b: NDArray[np.uint8], out: NDArray[np.int16] | None = None) -> NDArray[np.int16]:
    """Decode A-law bytes (any shape) to int16 samples, into ``out`` when given."""
    return _decode(ALAW_DECODE, b, out)
