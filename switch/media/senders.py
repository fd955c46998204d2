"""The packets a media tick sends one by one, beside the vectorised send of 20 ms frames: RFC 4733 events,
packets of another ptime than 20 ms, and Opus packets. :class:`OneByOne` works on the engine's own lists and
dicts (kept in place, slot for slot with the channel table), so it holds references, not copies."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

from switch.media.channels import FRAME, ChannelTable
from switch.media.dtmf import EventSender
from switch.media.engine_types import PtimeSender
from switch.media.receiver import RtpReceiver
from switch.media.wideband import WidebandLegs

__all__ = ["OneByOne"]

_HEADER = struct.Struct("!BBHII")


class OneByOne:
    """The engine's per-packet senders (one instance per engine)."""

    def __init__(
        self,
        table: ChannelTable,
        wideband: WidebandLegs,
        ids: list[int],
        slots: dict[int, int],
        protocols: list[RtpReceiver],
        sendto: list[Callable[..., None]],
        senders: dict[int, PtimeSender],
        dtmf_out: dict[int, tuple[EventSender, asyncio.Future[None]]],
    ) -> None:
        self.table = table
        self.wideband = wideband
        self.ids = ids
        self.slots = slots
        self.protocols = protocols
        self.sendto = sendto
        self.senders = senders
        self.dtmf_out = dtmf_out

    def dtmf_tick(self) -> None:
        """The next packet of every RFC 4733 event being sent; audio to those channels is suppressed."""
        table = self.table
        for channel, (sender, future) in list(self.dtmf_out.items()):
            slot = self.slots[channel]
            protocol = self.protocols[slot]
            packet = sender.next(int(table.timestamp[slot]))
            pending = self.senders.get(channel)
            if packet is None:
                table.suppress[slot] = pending is not None or slot in self.wideband.opus
                if sender.done:
                    del self.dtmf_out[channel]
                    if not future.done():
                        future.set_result(None)
                continue
            table.suppress[slot] = True
            if pending is not None:
                pending.pending.clear()
                pending.timestamp = (int(table.timestamp[slot]) + FRAME) & 0xFFFFFFFF
            if not table.sending[slot]:
                continue
            marker = 0x80 if packet.marker else 0
            seq = int(table.seq[slot])
            header = _HEADER.pack(
                0x80, marker | protocol.peer.te_pt, seq, packet.timestamp, int(table.packets["ssrc"][slot])
            )
            self.sendto[slot](header + packet.payload, protocol.peer.remote)
            table.seq[slot] = (seq + 1) & 0xFFFF
            table.tx_packets[slot] += 1

    def other_ptimes(self) -> None:
        """Packets of the channels whose ptime is not 20 ms, from this tick's payloads."""
        table = self.table
        for channel, sender in self.senders.items():
            slot = self.slots[channel]
            if channel in self.dtmf_out or not table.sending[slot]:
                sender.pending.clear()
                sender.timestamp = (int(table.timestamp[slot])) & 0xFFFFFFFF
                continue
            sender.pending += table.packets["payload"][slot].tobytes()
            remote = self.protocols[slot].peer.remote
            ssrc = int(table.packets["ssrc"][slot])
            while len(sender.pending) >= sender.size:
                mpt = int(table.mpt[slot])
                seq = int(table.seq[slot])
                header = _HEADER.pack(0x80, mpt, seq, sender.timestamp, ssrc)
                self.sendto[slot](header + sender.pending[: sender.size], remote)
                del sender.pending[: sender.size]
                sender.timestamp = (sender.timestamp + sender.size) & 0xFFFFFFFF
                table.seq[slot] = (seq + 1) & 0xFFFF
                table.mpt[slot] = mpt & 0x7F
                table.tx_packets[slot] += 1

    def opus(self, packets: list[tuple[int, bytes]]) -> None:
        """This tick's Opus packets, (slot, payload) each."""
        table = self.table
        legs = self.wideband.opus
        for slot, payload in packets:
            leg = legs[slot]
            if not payload or not table.sending[slot] or self.ids[slot] in self.dtmf_out:
                leg.timestamp = (leg.timestamp + 960) & 0xFFFFFFFF
                continue
            mpt = int(table.mpt[slot])
            seq = int(table.seq[slot])
            header = _HEADER.pack(0x80, mpt, seq, leg.timestamp, int(table.packets["ssrc"][slot]))
            self.sendto[slot](header + payload, self.protocols[slot].peer.remote)
            leg.timestamp = (leg.timestamp + 960) & 0xFFFFFFFF
            table.seq[slot] = (seq + 1) & 0xFFFF
            table.mpt[slot] = mpt & 0x7F
            table.tx_packets[slot] += 1
