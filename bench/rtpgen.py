"""A numpy RTP load generator: many G.711 streams, every tick's packets built as one array and sent in
batches (``sendmmsg`` through :mod:`switch.media.fastio`), echoes drained with ``recvmmsg``.

Stream ``i`` is sent from source socket ``i % sources`` (so several streams share a source address, each
with its own SSRC, as from a gateway) to ``targets[i]``. Every tick (20 ms on absolute deadlines) all
streams send one packet: sequence and timestamp columns advance, the payload is a fixed mu-law tone.

    python bench/rtpgen.py --target 127.0.0.1:20000 --streams 500 --seconds 5
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path[:0] = [str(ROOT), str(ROOT / "codecs")]

from switch.media.fastio import BatchReceiver, BatchSender, sockaddrs  # noqa: E402

__all__ = ["RtpGenerator", "TICK"]

TICK = 0.020
HEADER = 12


class RtpGenerator:
    """``streams`` RTP streams of ``payload_size`` bytes every tick, from ``sources`` loopback sockets."""

    def __init__(
        self,
        targets: Sequence[tuple[str, int]],
        *,
        sources: int = 32,
        payload_size: int = 160,
        payload_type: int = 0,
        host: str = "127.0.0.1",
        ssrc_base: int = 0x10000000,
    ) -> None:
        streams = len(targets)
        self.streams = streams
        self.sources = max(1, min(sources, streams))
        self.size = HEADER + payload_size
        order = np.argsort(np.arange(streams) % self.sources, kind="stable")  # rows grouped by source
        self.stream_of_row = order
        self.packets: NDArray[np.uint8] = np.zeros((streams, self.size), np.uint8)
        self.packets[:, 0] = 0x80
        self.packets[:, 1] = payload_type
        self.ssrc = (ssrc_base + order).astype(np.uint32)
        self.packets[:, 8:12].view(">u4")[:, 0] = self.ssrc
        t = np.arange(payload_size)
        tone = np.rint(4000 * np.sin(2 * np.pi * 440 * t / 8000)).astype(np.int16)
        from voicecodecs.g711 import ulaw_encode

        self.packets[:, HEADER:] = ulaw_encode(tone)
        self.seq = np.zeros(streams, np.uint16)
        self.timestamp = np.zeros(streams, np.uint32)
        self.lengths = np.full(streams, self.size, np.int64)
        self.addresses = sockaddrs([targets[int(i)] for i in order])
        self.socks: list[socket.socket] = []
        counts = np.bincount(np.arange(streams) % self.sources, minlength=self.sources)
        self.bounds = np.concatenate([[0], np.cumsum(counts)]).tolist()
        for _ in range(self.sources):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 21)
            s.bind((host, 0))
            s.setblocking(False)
            self.socks.append(s)
        self.sender = BatchSender(
            capacity=max(self.bounds[i + 1] - self.bounds[i] for i in range(self.sources))
        )
        self.receiver = BatchReceiver(capacity=256)
        self.sent = 0
        self.received = 0
        self.ticks = 0
        self.row_sent = np.zeros(streams, np.int64)
        """Packets sent per row (see :attr:`stream_of_row`)."""
        self._active: list[NDArray[np.intp]] | None = None

    def source_addresses(self) -> list[tuple[str, int]]:
        """The source address of every stream, in stream order."""
        names = [s.getsockname() for s in self.socks]
        return [
            (str(names[i % self.sources][0]), int(names[i % self.sources][1])) for i in range(self.streams)
        ]

    def stream_ssrcs(self) -> list[int]:
        """The SSRC of every stream, in stream order."""
        out = np.empty(self.streams, np.uint32)
        out[self.stream_of_row] = self.ssrc
        return [int(x) for x in out]

    def set_active(self, rows: NDArray[np.bool_] | None) -> None:
        """Send only the rows where ``rows`` is true from now on (None: every row, the default)."""
        if rows is None:
            self._active = None
            return
        self._active = [
            np.flatnonzero(rows[self.bounds[k] : self.bounds[k + 1]]) + self.bounds[k]
            for k in range(self.sources)
        ]

    def tick(self) -> int:
        """Send one packet of every (active) stream; return how many left."""
        header = self.packets
        header[:, 2:4].view(">u2")[:, 0] = self.seq
        header[:, 4:8].view(">u4")[:, 0] = self.timestamp
        self.seq += np.uint16(1)
        self.timestamp += np.uint32(self.size - HEADER)
        sent = 0
        active = self._active
        for k, sock in enumerate(self.socks):
            lo, hi = self.bounds[k], self.bounds[k + 1]
            if active is None:
                done = self.sender.send(sock, header[lo:hi], self.lengths[lo:hi], self.addresses[lo:hi])
                self.row_sent[lo : lo + done] += 1
            else:
                rows = active[k]
                if rows.size == 0:
                    continue
                done = self.sender.send(sock, header, self.lengths[: rows.size], self.addresses, rows=rows)
                self.row_sent[rows[:done]] += 1
            sent += done
        self.sent += sent
        self.ticks += 1
        return sent

    def drain(self) -> int:
        """Read every echo waiting on every source socket; return how many."""
        got = 0
        for sock in self.socks:
            while count := self.receiver.recv(sock):
                got += count
        self.received += got
        return got

    def run(self, seconds: float) -> dict[str, float]:
        """Send for ``seconds`` on absolute 20 ms deadlines, draining echoes once per tick (the sockets'
        buffers hold a tick of packets; draining every few ms cost a system call per socket each time,
        most of a core with a socket per stream)."""
        start = time.monotonic()
        k = 0
        while True:
            now = time.monotonic()
            if now - start >= seconds:
                break
            deadline = start + k * TICK
            if now < deadline:
                time.sleep(deadline - now)
            self.tick()
            k += 1
            self.drain()
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            self.drain()
            time.sleep(0.005)
        return {"ticks": self.ticks, "sent": self.sent, "received": self.received}

    def close(self) -> None:
        for s in self.socks:
            s.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:20000", help="HOST:PORT every stream sends to")
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--sources", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    host, port = args.target.rsplit(":", 1)
    gen = RtpGenerator([(host, int(port))] * args.streams, sources=args.sources)
    print(json.dumps(gen.run(args.seconds)))
    gen.close()


if __name__ == "__main__":
    main()
