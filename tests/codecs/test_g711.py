"""G.711 against the standard library's audioop: every decode value, every encode input."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest
from numpy.typing import NDArray

from voicecodecs import g711

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)
ALL_BYTES = np.arange(256, dtype=np.uint8)


def _audioop() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    return audioop


def _reference(name: str, data: bytes) -> bytes:
    audioop = _audioop()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result: bytes = getattr(audioop, name)(data, 2)
    return result


Encoder = Callable[..., NDArray[np.uint8]]
Decoder = Callable[..., NDArray[np.int16]]
LAWS: list[tuple[str, Encoder, Decoder, str, str]] = [
    ("ulaw", g711.ulaw_encode, g711.ulaw_decode, "lin2ulaw", "ulaw2lin"),
    ("alaw", g711.alaw_encode, g711.alaw_decode, "lin2alaw", "alaw2lin"),
]


@pytest.mark.parametrize(("law", "encode", "decode", "ref_enc", "ref_dec"), LAWS)
def test_encode_matches_audioop_for_all_65536_inputs(
    law: str, encode: Encoder, decode: Decoder, ref_enc: str, ref_dec: str
) -> None:
    expected = np.frombuffer(_reference(ref_enc, ALL_SAMPLES.tobytes()), dtype=np.uint8)
    got = encode(ALL_SAMPLES)
    assert got.dtype == np.uint8
    mismatches = np.nonzero(got != expected)[0]
    assert mismatches.size == 0, f"{law}: first mismatching samples {ALL_SAMPLES[mismatches[:5]]}"


@pytest.mark.parametrize(("law", "encode", "decode", "ref_enc", "ref_dec"), LAWS)
def test_decode_matches_audioop_for_all_256_bytes(
    law: str, encode: Encoder, decode: Decoder, ref_enc: str, ref_dec: str
) -> None:
    expected = np.frombuffer(_reference(ref_dec, ALL_BYTES.tobytes()), dtype=np.int16)
    got = decode(ALL_BYTES)
    assert got.dtype == np.int16
    np.testing.assert_array_equal(got, expected)


def test_tables_have_documented_shapes_and_are_read_only() -> None:
    assert g711.ULAW_ENCODE.shape == (65536,) and g711.ULAW_ENCODE.dtype == np.uint8
    assert g711.ALAW_ENCODE.shape == (65536,) and g711.ALAW_ENCODE.dtype == np.uint8
    assert g711.ULAW_DECODE.shape == (256,) and g711.ULAW_DECODE.dtype == np.int16
    assert g711.ALAW_DECODE.shape == (256,) and g711.ALAW_DECODE.dtype == np.int16
    with pytest.raises(ValueError):
        g711.ULAW_ENCODE[0] = 1


def test_table_index_is_sample_viewed_as_uint16() -> None:
    # -1 is 0xFFFF as uint16; audioop gives 0x7E for mu-law and 0x55 for A-law.
    assert g711.ULAW_ENCODE[0xFFFF] == 0x7E
    assert g711.ALAW_ENCODE[0xFFFF] == 0x55
    assert g711.ULAW_ENCODE[0x8000] == 0x00  # -32768 clips to the loudest negative code
    assert g711.ALAW_ENCODE[0x7FFF] == 0xAA


def test_silence_bytes() -> None:
    assert g711.ULAW_SILENCE == 0xFF
    assert g711.ALAW_SILENCE == 0xD5
    assert g711.ulaw_decode(np.full(4, 0xFF, dtype=np.uint8)).tolist() == [0, 0, 0, 0]
    assert g711.alaw_decode(np.full(2, 0xD5, dtype=np.uint8)).tolist() == [8, 8]


@pytest.mark.parametrize(("law", "encode", "decode", "ref_enc", "ref_dec"), LAWS)
def test_batch_of_channels_keeps_shape_and_matches_rows(
    law: str, encode: Encoder, decode: Decoder, ref_enc: str, ref_dec: str
) -> None:
    rng = np.random.default_rng(7)
    batch = rng.integers(-32768, 32768, size=(3, 160), dtype=np.int16)
    encoded = encode(batch)
    assert encoded.shape == (3, 160)
    for row in range(3):
        expected = np.frombuffer(_reference(ref_enc, batch[row].tobytes()), dtype=np.uint8)
        np.testing.assert_array_equal(encoded[row], expected)
    decoded = decode(encoded)
    assert decoded.shape == (3, 160)
    expected_row = np.frombuffer(_reference(ref_dec, encoded[1].tobytes()), dtype=np.int16)
    np.testing.assert_array_equal(decoded[1], expected_row)


@pytest.mark.parametrize(("law", "encode", "decode", "ref_enc", "ref_dec"), LAWS)
def test_out_buffers_are_filled_in_place(
    law: str, encode: Encoder, decode: Decoder, ref_enc: str, ref_dec: str
) -> None:
    samples = np.array([[0, 1000, -1000, 32767], [-32768, 5, -5, 200]], dtype=np.int16)
    enc_buf = np.zeros((2, 4), dtype=np.uint8)
    returned = encode(samples, out=enc_buf)
    assert returned is enc_buf
    np.testing.assert_array_equal(enc_buf, encode(samples))
    dec_buf = np.zeros((2, 4), dtype=np.int16)
    returned_dec = decode(enc_buf, out=dec_buf)
    assert returned_dec is dec_buf
    np.testing.assert_array_equal(dec_buf, decode(enc_buf))


def test_non_contiguous_input_is_encoded_correctly() -> None:
    batch = np.arange(-800, 800, dtype=np.int16).reshape(2, 800)
    column_slice = batch[:, ::2]
    assert not column_slice.flags.c_contiguous
    np.testing.assert_array_equal(g711.ulaw_encode(column_slice), g711.ulaw_encode(column_slice.copy()))


@pytest.mark.parametrize(("law", "encode", "decode", "ref_enc", "ref_dec"), LAWS)
def test_decode_then_encode_is_identity_on_codes(
    law: str, encode: Encoder, decode: Decoder, ref_enc: str, ref_dec: str
) -> None:
    codes = encode(decode(ALL_BYTES))
    if law == "ulaw":
        # 0x7F and 0xFF both decode to 0 (negative and positive zero); 0 encodes to 0xFF.
        expected = ALL_BYTES.copy()
        expected[0x7F] = 0xFF
        np.testing.assert_array_equal(codes, expected)
    else:
        np.testing.assert_array_equal(codes, ALL_BYTES)


def test_wrong_dtype_is_refused() -> None:
    with pytest.raises(TypeError, match="int16"):
        g711.ulaw_encode(np.zeros(4, dtype=np.int32))
    with pytest.raises(TypeError, match="uint8"):
        g711.alaw_decode(np.zeros(4, dtype=np.int8))
