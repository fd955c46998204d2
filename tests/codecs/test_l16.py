"""L16 against the byte order RFC 3551 prescribes, checked with the standard library's struct."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from voicecodecs.l16 import l16_decode, l16_encode


def test_every_int16_value_round_trips_and_matches_struct() -> None:
    pcm = np.arange(-32768, 32768, dtype=np.int16)
    octets = l16_encode(pcm)
    assert octets.dtype == np.uint8
    assert octets.tobytes() == struct.pack(f">{pcm.size}h", *pcm.tolist())
    np.testing.assert_array_equal(l16_decode(octets), pcm)


def test_known_bytes() -> None:
    pcm = np.array([[1, -1, 256, -32768]], np.int16)
    assert l16_encode(pcm).tolist() == [[0x00, 0x01, 0xFF, 0xFF, 0x01, 0x00, 0x80, 0x00]]
    decoded = l16_decode(b"\x7f\xff\x00\x02")
    assert decoded.dtype == np.int16
    assert decoded.dtype.byteorder in ("=", "|", "<" if np.little_endian else ">")
    assert decoded.tolist() == [32767, 2]


def test_batches_keep_their_rows() -> None:
    pcm = np.random.default_rng(0).integers(-32768, 32768, (16, 160)).astype(np.int16)
    octets = l16_encode(pcm)
    assert octets.shape == (16, 320)
    assert octets[5].tobytes() == pcm[5].astype(">i2").tobytes()
    np.testing.assert_array_equal(l16_decode(octets), pcm)
    # a strided view (every other channel) encodes the same as a copy
    np.testing.assert_array_equal(l16_encode(pcm[::2]), l16_encode(pcm[::2].copy()))


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="odd"):
        l16_decode(b"\x00\x01\x02")
    with pytest.raises(TypeError, match="int16"):
        l16_encode(np.zeros(4, np.int32))
    with pytest.raises(TypeError, match="uint8"):
        l16_decode(np.zeros(4, np.int16))
