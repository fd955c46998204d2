"""The media engine's errors and small records (imported from :mod:`switch.media.engine`, which
re-exports them)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "TICK_BOUNDS",
    "ChannelStats",
    "EgressDenied",
    "MediaCounters",
    "MediaError",
    "NoPortAvailable",
    "PtimeSender",
    "UnknownChannel",
]

TICK_BOUNDS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
"""Upper bounds (seconds) of the tick-duration histogram's buckets (one more bucket counts the rest)."""


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


@dataclass(slots=True)
class MediaCounters:
    """An engine's totals since it started: the RTP of every channel, closed ones included (the trunks
    between media workers excluded), and how long its ticks took."""

    packets_received: int = 0
    octets_received: int = 0
    packets_sent: int = 0
    octets_sent: int = 0
    lost: int = 0
    """Sequence gaps (RFC 3550 A.3: expected minus received, per source)."""
    late: int = 0
    duplicate: int = 0
    concealed: int = 0
    """Frames the jitter buffers concealed."""
    jitter_seconds: float = 0.0
    """Mean interarrival jitter (RFC 3550) of the live channels that receive."""
    receiving: int = 0
    """Live channels that receive (the weight of ``jitter_seconds`` in a sum)."""
    tick_counts: list[int] = field(default_factory=lambda: [0] * (len(TICK_BOUNDS) + 1))
    """Ticks per duration bucket (:data:`TICK_BOUNDS`, then the rest), not cumulative."""
    tick_seconds: float = 0.0
    """The ticks' durations summed."""

    def plus(self, other: MediaCounters) -> MediaCounters:
        """The totals of two engines (media workers) together."""
        receiving = self.receiving + other.receiving
        jitter = self.jitter_seconds * self.receiving + other.jitter_seconds * other.receiving
        return MediaCounters(
            packets_received=self.packets_received + other.packets_received,
            octets_received=self.octets_received + other.octets_received,
            packets_sent=self.packets_sent + other.packets_sent,
            octets_sent=self.octets_sent + other.octets_sent,
            lost=self.lost + other.lost,
            late=self.late + other.late,
            duplicate=self.duplicate + other.duplicate,
            concealed=self.concealed + other.concealed,
            jitter_seconds=jitter / receiving if receiving else 0.0,
            receiving=receiving,
            tick_counts=[a + b for a, b in zip(self.tick_counts, other.tick_counts, strict=True)],
            tick_seconds=self.tick_seconds + other.tick_seconds,
        )
