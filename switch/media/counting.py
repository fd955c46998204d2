"""The engine-wide RTP totals of :class:`~switch.media.engine_types.MediaCounters`: what a closed channel
adds, and the live channels' part summed over the channel arrays (for a scrape, or a media worker's report
once a second: nothing is counted per packet beyond what the receivers and the jitter buffer already do)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from switch.media.channels import FRAME
from switch.media.engine_types import MediaCounters
from switch.media.jitter import JitterBuffer
from switch.media.receiver import Peer

__all__ = ["count_closed", "live_counters", "lost"]


def lost(peer: Peer) -> int:
    """RFC 3550 A.3 for the current source: expected (first to highest sequence number) less received."""
    if peer.extended_max < 0:
        return 0
    return max(0, peer.extended_max - peer.base_seq + 1 - peer.received)


def count_closed(closed: MediaCounters, peer: Peer, sent: int, jitter: JitterBuffer, slot: int) -> None:
    """Add the counters of the channel in ``slot`` (closing now) to ``closed``."""
    closed.packets_received += peer.packets
    closed.octets_received += peer.octets
    closed.packets_sent += sent
    closed.octets_sent += sent * FRAME
    closed.lost += lost(peer)
    closed.late += int(jitter.late[slot])
    closed.duplicate += int(jitter.duplicate[slot])
    closed.concealed += int(jitter.concealed[slot])


def live_counters(
    peers: Sequence[Peer], counted: NDArray[np.bool_], sent: NDArray[np.int64], jitter: JitterBuffer
) -> MediaCounters:
    """The totals of the live channels ``0..n-1`` whose ``counted`` is set (``sent``: their packets sent)."""
    n = counted.size
    received = octets = gaps = 0
    for peer, count in zip(peers, counted.tolist(), strict=True):
        if count:
            received += peer.packets
            octets += peer.octets
            gaps += lost(peer)
    packets_sent = int(sent[:n][counted].sum())
    live = counted & jitter.started[:n]
    receiving = int(live.sum())
    return MediaCounters(
        packets_received=received,
        octets_received=octets,
        packets_sent=packets_sent,
        octets_sent=packets_sent * FRAME,
        lost=gaps,
        late=int(jitter.late[:n][counted].sum()),
        duplicate=int(jitter.duplicate[:n][counted].sum()),
        concealed=int(jitter.concealed[:n][counted].sum()),
        jitter_seconds=float(jitter.jitter[:n][live].mean()) / 8000.0 if receiving else 0.0,
        receiving=receiving,
    )
