"""The media engine's errors and small records (imported from :mod:`switch.media.engine`, which
re-exports them)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ChannelStats", "EgressDenied", "MediaError", "NoPortAvailable", "UnknownChannel", "PtimeSender"]


class MediaError(Exception):
    """Root of the media engine's errors."""


class NoPortAvailable(MediaError):
    """Every even port of the RTP range is taken."""


class EgressDenied(MediaError):
    """The remote media address is not one the switch may send to."""


class UnknownChannel(MediaError, KeyError):
    """No open channel has this id."""


@dataclass(frozen=True, slots=True)
class ChannelStats:
    packets_sent: int
    octets_sent: int
    packets_received: int
    octets_received: int
    invalid_received: int
    foreign_received: int
    """Packets dropped because they came from an address the channel does not take media from."""
    remote: tuple[str, int]
    """Where the channel sends (the SDP address, or the source it latched to)."""


@dataclass(slots=True)
class PtimeSender:
    """A channel's packetiser for a ptime other than 20 ms (the tick makes 20 ms of payload at a time)."""

    size: int
    pending: bytearray = field(default_factory=bytearray)
    timestamp: int = 0
