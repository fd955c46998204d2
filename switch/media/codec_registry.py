"""The codecs the media engine carries, as a small registry of lookup-table codecs.

Every codec here maps one 8 kHz sample to one payload byte (PCMU, PCMA): the tick decodes and encodes
every channel at once by indexing one combined table, each channel's index offset by its codec's block.
A codec with state (G.722, Opus) needs a different kind of entry (a decoder object per channel group) and
is not registered yet.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from voicecodecs.g711 import ALAW_DECODE, ALAW_ENCODE, ULAW_DECODE, ULAW_ENCODE

__all__ = ["CODECS", "DECODE", "DECODE_PAIRS", "ENCODE", "TableCodec", "codec_index"]


@dataclass(frozen=True, slots=True)
class TableCodec:
    """A codec of one byte per sample at 8 kHz, by table."""

    name: str
    static_payload_type: int
    encode: NDArray[np.uint8]
    """65,536 bytes indexed by the int16 sample viewed as uint16."""
    decode: NDArray[np.int16]
    """256 samples indexed by the byte."""

    @property
    def silence(self) -> int:
        return int(self.encode[0])


CODECS: dict[str, TableCodec] = {
    "PCMU": TableCodec("PCMU", 0, ULAW_ENCODE, ULAW_DECODE),
    "PCMA": TableCodec("PCMA", 8, ALAW_ENCODE, ALAW_DECODE),
}
"""Codec name (as SDP spells it) -> entry; the order gives each codec's block in the combined tables."""

_ORDER = list(CODECS)
ENCODE: NDArray[np.uint8] = np.concatenate([CODECS[name].encode for name in _ORDER])
"""Every encoder side by side: index ``codec_index * 65536 + uint16(sample)``."""
DECODE: NDArray[np.int16] = np.concatenate([CODECS[name].decode for name in _ORDER])
"""Every decoder side by side: index ``codec_index * 256 + byte``."""
ENCODE.setflags(write=False)
DECODE.setflags(write=False)


def _pairs(decode: NDArray[np.int16]) -> NDArray[np.int32]:
    """65,536 entries: two payload bytes read as one native uint16 -> their two samples as one int32."""
    assert sys.byteorder == "little", "the paired tables assume a little-endian machine"
    index = np.arange(65536)
    low = decode[index & 0xFF].astype(np.uint16).astype(np.uint32)
    high = decode[index >> 8].astype(np.uint16).astype(np.uint32)
    pairs: NDArray[np.int32] = (low | (high << 16)).view(np.int32)
    return pairs


DECODE_PAIRS: NDArray[np.int32] = np.concatenate([_pairs(CODECS[name].decode) for name in _ORDER])
"""Every decoder two bytes at a time: index ``codec_index * 65536 + uint16(two bytes)`` gives both samples
(the tick decodes a ``(n, 160)`` byte array viewed as ``(n, 80)`` uint16 into ``(n, 80)`` int32, half the
lookups of one sample at a time)."""
DECODE_PAIRS.setflags(write=False)


def codec_index(name: str) -> int:
    """The block of ``name`` in :data:`ENCODE` / :data:`DECODE`; ValueError for a codec not registered."""
    try:
        return _ORDER.index(name)
    except ValueError:
        raise ValueError(f"unsupported codec {name!r} ({' or '.join(_ORDER)})") from None
