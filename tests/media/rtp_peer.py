"""A test peer for the media engine: a loopback UDP socket that sends RTP built with numpy and keeps what
it receives. Streams are built whole (headers as one structured array, payloads by G.711 table), then
sent paced on the event loop's clock, optionally impaired by a seeded loss/reorder/jitter model."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from switch.media.rtp import RtpPacket, packet_dtype
from voicecodecs.dtmf import pack_event
from voicecodecs.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

ENCODERS = {0: ulaw_encode, 8: alaw_encode}
DECODERS = {0: ulaw_decode, 8: alaw_decode}


def build_stream(
    pcm: NDArray[np.int16],
    *,
    payload_type: int = 0,
    ptime: int = 20,
    ssrc: int = 0x1234ABCD,
    seq: int = 65500,
    timestamp: int = 2**32 - 800,
) -> list[bytes]:
    """``pcm`` as RTP packets of ``ptime`` ms (sequence and timestamp chosen to wrap inside the stream)."""
    size = ptime * 8
    count = len(pcm) // size
    records = np.zeros(count, packet_dtype(size))
    records["vpxcc"] = 0x80
    records["mpt"] = payload_type
    records["mpt"][0] |= 0x80
    records["seq"] = (seq + np.arange(count)) % 65536
    records["timestamp"] = (timestamp + size * np.arange(count, dtype=np.int64)) % 2**32
    records["ssrc"] = ssrc
    records["payload"] = ENCODERS[payload_type](pcm[: count * size]).reshape(count, size)
    return [r.tobytes() for r in records]


def event_packets(
    digit_code: int, *, payload_type: int = 101, seq: int = 100, timestamp: int = 8000, ssrc: int = 7
) -> list[bytes]:
    """One RFC 4733 event as a sender makes it: 5 packets of growing duration, then 3 end packets."""
    out = []
    for i in range(8):
        end = i >= 5
        duration = 160 * min(i + 1, 5)
        marker = i == 0
        payload = pack_event(digit_code, end, 10, duration)
        out.append(
            RtpPacket(
                payload_type=payload_type,
                marker=marker,
                sequence_number=seq + i,
                timestamp=timestamp,
                ssrc=ssrc,
                payload=payload,
            ).serialize()
        )
    return out


@dataclass
class Impairment:
    loss: float = 0.0
    reorder: float = 0.0
    """Probability that a packet is held back and sent after the next one."""
    jitter_ms: float = 0.0
    seed: int = 1


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, peer: Peer) -> None:
        self.peer = peer

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.peer.received.append((asyncio.get_running_loop().time(), data))
        self.peer.arrived.set()


class Peer:
    """A UDP endpoint on 127.0.0.1 with a free port."""

    def __init__(self) -> None:
        self.received: list[tuple[float, bytes]] = []
        self.arrived = asyncio.Event()
        self.transport: asyncio.DatagramTransport | None = None

    async def open(self, host: str = "127.0.0.1") -> Peer:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: _Collector(self), local_addr=(host, 0)
        )
        return self

    @property
    def addr(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def send(self, data: bytes, target: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, target)

    async def stream(
        self,
        packets: list[bytes],
        target: tuple[str, int],
        *,
        ptime: int = 20,
        impairment: Impairment | None = None,
    ) -> list[int]:
        """Send ``packets`` paced at ``ptime`` on absolute deadlines; return the indexes dropped."""
        imp = impairment or Impairment()
        rng = np.random.default_rng(imp.seed)
        lost = rng.random(len(packets)) < imp.loss
        swap = rng.random(len(packets)) < imp.reorder
        delay = np.abs(rng.normal(0.0, imp.jitter_ms / 1000.0, len(packets)))
        order = list(range(len(packets)))
        i = 0
        while i < len(order) - 1:
            if swap[order[i]]:
                order[i], order[i + 1] = order[i + 1], order[i]
                i += 1
            i += 1
        loop = asyncio.get_running_loop()
        start = loop.time()
        for k, index in enumerate(order):
            due = start + k * ptime / 1000.0 + float(delay[index])
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not lost[index]:
                self.send(packets[index], target)
        return [int(i) for i in np.flatnonzero(lost)]

    def packets(self) -> list[RtpPacket]:
        return [RtpPacket.parse(data) for _, data in self.received]

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[RtpPacket]:
        async def enough() -> None:
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), timeout)
        return self.packets()[:count]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def decode(packets: list[RtpPacket], payload_type: int = 0) -> NDArray[np.int16]:
    """The audio of the packets of ``payload_type`` in arrival order."""
    chunks = [np.frombuffer(p.payload, np.uint8) for p in packets if p.payload_type == payload_type]
    if not chunks:
        return np.zeros(0, np.int16)
    return DECODERS[payload_type](np.concatenate(chunks))


def tone(freq: float, samples: int, amplitude: float = 6000.0, start: int = 0) -> NDArray[np.int16]:
    t = (start + np.arange(samples)) / 8000.0
    return np.rint(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)
