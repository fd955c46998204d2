"""L16: uncompressed 16-bit linear PCM in network byte order (RFC 3551 section 4.5.11).

Samples are signed two's complement, most significant byte first. Payload types 10 (stereo) and 11
(mono) are 44.1 kHz; any other rate is signalled dynamically (``L16/8000``, ``L16/16000``...). The RTP
clock is the sample rate. Both directions accept any shape, a ``(channels, samples)`` batch included,
and work on the last axis.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["l16_decode", "l16_encode"]

_BE_INT16 = np.dtype(">i2")


def l16_encode(pcm: NDArray[np.int16]) -> NDArray[np.uint8]:
    """Samples ``(..., n)`` to big-endian octets ``(..., 2 * n)``."""
    if pcm.dtype != np.int16:
        raise TypeError(f"L16 encodes int16 samples, got {pcm.dtype}")
    big_endian = np.ascontiguousarray(pcm, dtype=_BE_INT16)
    return big_endian.view(np.uint8).reshape(pcm.shape[:-1] + (2 * pcm.shape[-1],))


def l16_decode(octets: NDArray[np.uint8] | bytes) -> NDArray[np.int16]:
    """Big-endian octets ``(..., 2 * n)`` (or a ``bytes`` payload) to native int16 samples ``(..., n)``."""
    if isinstance(octets, bytes | bytearray | memoryview):
        octets = np.frombuffer(octets, np.uint8)
    if octets.dtype != np.uint8:
        raise TypeError(f"L16 decodes uint8 octets, got {octets.dtype}")
    if octets.shape[-1] % 2:
        raise ValueError(f"L16 payloads hold whole samples: {octets.shape[-1]} octets is odd")
    contiguous = np.ascontiguousarray(octets)
    samples = contiguous.view(_BE_INT16).reshape(octets.shape[:-1] + (octets.shape[-1] // 2,))
    return samples.astype(np.int16)
