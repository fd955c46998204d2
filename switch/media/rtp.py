"""RTP packets (RFC 3550 section 5.1): parse and serialize one packet, and the fixed header as an array.

Two ways in:

- :class:`RtpPacket` parses and serializes a single packet with every header field (CSRC list, header
  extension, padding). It is for tests, tools and rare paths; parsing raises :class:`RtpError` with an exact
  message for every malformed packet, and nothing else.
- :data:`RTP_HEADER` (a :class:`struct.Struct`) and :data:`PACKET_HEADER_DTYPE` are the hot path: the receive
  side unpacks the 12 fixed bytes and nothing more, and the media tick writes the headers of every channel at
  once through a structured numpy array whose fields are big-endian.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "PACKET_HEADER_DTYPE",
    "RTP_HEADER",
    "RTP_HEADER_SIZE",
    "RTP_VERSION",
    "RtpError",
    "RtpPacket",
    "packet_dtype",
]

RTP_VERSION = 2
RTP_HEADER_SIZE = 12
RTP_HEADER = struct.Struct("!BBHII")
"""The fixed header: first byte (V, P, X, CC), second byte (M, PT), sequence, timestamp, SSRC."""

_EXTENSION_HEADER = struct.Struct("!HH")

PACKET_HEADER_DTYPE = np.dtype(
    [("vpxcc", "u1"), ("mpt", "u1"), ("seq", ">u2"), ("timestamp", ">u4"), ("ssrc", ">u4")]
)
"""The 12-byte fixed header as a numpy record; assigning native integers to a field byte-swaps them."""


def packet_dtype(payload_size: int) -> np.dtype[np.void]:
    """A record of the fixed header followed by ``payload_size`` payload bytes (no CSRC, no extension)."""
    return np.dtype(PACKET_HEADER_DTYPE.descr + [("payload", "u1", (payload_size,))])


class RtpError(ValueError):
    """A malformed RTP packet; the message says exactly what is wrong."""


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet. ``bytes(RtpPacket.parse(data)) == data`` for every packet this module accepts."""

    payload_type: int = 0
    marker: bool = False
    sequence_number: int = 0
    timestamp: int = 0
    ssrc: int = 0
    payload: bytes = b""
    csrc: list[int] = field(default_factory=list)
    extension_profile: int = 0
    extension_value: bytes | None = None
    padding_size: int = 0

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one packet; raise :class:`RtpError` if it is malformed."""
        if len(data) < RTP_HEADER_SIZE:
            raise RtpError("RTP packet length is less than 12 bytes")
        first, second, seq, timestamp, ssrc = RTP_HEADER.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise RtpError("RTP packet has invalid version")
        has_padding = bool(first & 0x20)
        has_extension = bool(first & 0x10)
        cc = first & 0x0F
        pos = RTP_HEADER_SIZE
        end = len(data)
        if pos + 4 * cc > end:
            raise RtpError("RTP packet has truncated CSRC")
        csrc = list(struct.unpack_from(f"!{cc}I", data, pos))
        pos += 4 * cc
        extension_profile = 0
        extension_value: bytes | None = None
        if has_extension:
            if pos + 4 > end:
                raise RtpError("RTP packet has truncated extension profile / length")
            extension_profile, length = _EXTENSION_HEADER.unpack_from(data, pos)
            pos += 4
            if pos + 4 * length > end:
                raise RtpError("RTP packet has truncated extension value")
            extension_value = bytes(data[pos : pos + 4 * length])
            pos += 4 * length
        padding_size = 0
        if has_padding:
            padding_size = data[-1]
            if padding_size == 0 or pos + padding_size > end:
                raise RtpError("RTP packet padding length is invalid")
            end -= padding_size
        return cls(
            payload_type=second & 0x7F,
            marker=bool(second >> 7),
            sequence_number=seq,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=bytes(data[pos:end]),
            csrc=csrc,
            extension_profile=extension_profile,
            extension_value=extension_value,
            padding_size=padding_size,
        )

    def serialize(self) -> bytes:
        """The packet as bytes; raise :class:`RtpError` if a field is out of range."""
        if not 0 <= self.payload_type <= 127:
            raise RtpError("RTP payload type must be in 0..127")
        if len(self.csrc) > 15:
            raise RtpError("RTP packet can carry at most 15 CSRC")
        if not 0 <= self.padding_size <= 255:
            raise RtpError("RTP padding size must be in 0..255")
        ext = self.extension_value
        if ext is not None and len(ext) % 4:
            raise RtpError("RTP extension value length must be a multiple of 4")
        first = (RTP_VERSION << 6) | len(self.csrc)
        if self.padding_size:
            first |= 0x20
        if ext is not None:
            first |= 0x10
        second = (0x80 if self.marker else 0) | self.payload_type
        parts = [
            RTP_HEADER.pack(
                first,
                second,
                self.sequence_number & 0xFFFF,
                self.timestamp & 0xFFFFFFFF,
                self.ssrc & 0xFFFFFFFF,
            )
        ]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if ext is not None:
            parts.append(_EXTENSION_HEADER.pack(self.extension_profile, len(ext) // 4))
            parts.append(ext)
        parts.append(self.payload)
        if self.padding_size:
            parts.append(bytes(self.padding_size - 1) + bytes([self.padding_size]))
        return b"".join(parts)

    def __bytes__(self) -> bytes:
        return self.serialize()
