"""Cost of one media tick for 1000/2000/4000 channels, against a per-channel Python loop doing the same work.

Both sides build every channel's 20 ms RTP packet: gather 160 samples (half the channels play a prompt,
half carry silence), encode G.711 by table (half PCMU, half PCMA), write the 12-byte header. Sending is
measured apart, per packet, on one loopback socket. Prints JSON; runs in a few seconds.

    python bench/bench_tick.py
"""

from __future__ import annotations

import json
import random
import socket
import struct
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "codecs")]

from switch.media.channels import ChannelTable  # noqa: E402
from voicecodecs.g711 import ALAW_ENCODE, ULAW_ENCODE  # noqa: E402

PROMPT = (8000 * np.sin(np.arange(24000) * 2 * np.pi * 440 / 8000)).astype(np.int16)
HEADER = struct.Struct("!BBHII")


def vectorised(n: int, ticks: int) -> float:
    table = ChannelTable(capacity=n)
    rng = random.Random(1)
    for i in range(n):
        slot = table.add(rng)
        codec = "PCMU" if i % 2 == 0 else "PCMA"
        table.configure(
            slot,
            codec=codec,
            payload_type=0 if codec == "PCMU" else 8,
            sending=True,
            expect_rx=True,
            marker=True,
        )
        if i % 4 < 2:
            table.play(slot, PROMPT, 0)
    table.render()
    start = time.perf_counter()
    for _ in range(ticks):
        table.render()
    return (time.perf_counter() - start) / ticks


def per_channel_loop(n: int, ticks: int) -> float:
    silence = np.zeros(160, dtype=np.int16)
    pos = [0] * n
    seq = [random.getrandbits(16) for _ in range(n)]
    ts = [random.getrandbits(32) for _ in range(n)]
    ssrc = [random.getrandbits(32) for _ in range(n)]
    tables = [ULAW_ENCODE if i % 2 == 0 else ALAW_ENCODE for i in range(n)]
    pts = [0 if i % 2 == 0 else 8 for i in range(n)]
    packets: list[bytes] = [b""] * n
    start = time.perf_counter()
    for _ in range(ticks):
        for i in range(n):
            if i % 4 < 2:
                p = pos[i]
                frame = PROMPT[p : p + 160]
                pos[i] = (p + 160) % len(PROMPT)
            else:
                frame = silence
            payload = tables[i][frame.view(np.uint16)].tobytes()
            packets[i] = HEADER.pack(0x80, pts[i], seq[i], ts[i], ssrc[i]) + payload
            seq[i] = (seq[i] + 1) & 0xFFFF
            ts[i] = (ts[i] + 160) & 0xFFFFFFFF
    return (time.perf_counter() - start) / ticks


def sendto_cost(packets: int) -> float:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    src = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    src.setblocking(False)
    buf = memoryview(bytearray(172))
    addr = sink.getsockname()
    start = time.perf_counter()
    for _ in range(packets):
        try:
            src.sendto(buf, addr)
        except BlockingIOError:
            pass
    elapsed = time.perf_counter() - start
    src.close()
    sink.close()
    return elapsed / packets


def main() -> None:
    results = []
    for n in (1000, 2000, 4000):
        fast = vectorised(n, 200)
        slow = per_channel_loop(n, 10)
        results.append(
            {
                "channels": n,
                "tick_ms": round(fast * 1e3, 3),
                "per_channel_loop_ms": round(slow * 1e3, 3),
                "speedup": round(slow / fast, 1),
                "tick_budget_used": round(fast / 0.020, 4),
            }
        )
    per_packet = sendto_cost(20000)
    print(
        json.dumps(
            {
                "tick": results,
                "sendto_us_per_packet": round(per_packet * 1e6, 2),
                "note": "tick_ms: render only (gather, encode, headers); sending adds channels x sendto",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
