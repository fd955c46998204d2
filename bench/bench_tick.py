"""Cost of one media tick for 1000/2000/4000 legs, against a per-channel Python loop doing the same work.

Scenarios (every leg receives one 20 ms packet per tick, put into its jitter buffer before the tick):

- ``players``: no bridge, half the legs play a prompt (the first engine's work: gather, encode, headers);
- ``bridge-transcode``: legs bridged in pairs, PCMU to PCMA: jitter pull, decode, conceal, mix (index
  swap), encode, headers;
- ``bridge-passthrough``: legs bridged in pairs, PCMU to PCMU: payloads pass through, nothing decoded;
- ``rooms``: rooms of 4 legs: decode, conceal, room total minus own, clip, encode.

The baseline, in the same run, is a per-leg Python loop doing the ``bridge-transcode`` work with the same
numpy tables (decode the partner's frame, encode, pack the header), timed over fewer ticks. ``put_us`` is
the jitter buffer's cost per received packet. Sending is measured apart, per packet, on one loopback
socket. ``wideband_us_per_leg`` is the decode + encode cost of one G.722 or Opus leg per tick (C codecs
through PyAV plus the 8 kHz resamplers), ``rtcp_report_us`` the cost of building one compound report.
Prints JSON; runs in about a minute.

    python bench/bench_tick.py
    python bench/bench_tick.py --profile rooms     # cProfile of 60 ticks of one scenario at 4000 legs
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
from switch.media.codec_registry import DECODE, ENCODE  # noqa: E402
from switch.media.pipeline import Pipeline  # noqa: E402
from switch.media.recorder import WavWriter  # noqa: E402
from switch.media.rtcp import ReceiveCounters, RtcpSession  # noqa: E402
from switch.media.wideband import G722, OPUS, WidebandLegs  # noqa: E402
from voicecodecs.g711 import ALAW_ENCODE, ULAW_DECODE, ULAW_ENCODE  # noqa: E402
from voicecodecs.g722 import G722Encoder  # noqa: E402
from voicecodecs.opus import OpusEncoder  # noqa: E402

PROMPT = (8000 * np.sin(np.arange(24000) * 2 * np.pi * 440 / 8000)).astype(np.int16)
HEADER = struct.Struct("!BBHII")
SPEECH_BYTES = ULAW_ENCODE[(6000 * np.sin(np.arange(160 * 50) * 0.07)).astype(np.int16).view(np.uint16)]


def _pipeline(n: int, scenario: str) -> tuple[Pipeline, ChannelTable]:
    table = ChannelTable(capacity=n)
    ids: dict[int, int] = {}
    pipeline = Pipeline(table, ids.__getitem__, WavWriter())
    rng = random.Random(1)
    for i in range(n):
        slot = table.add(rng)
        pipeline.added(slot)
        ids[i + 1] = slot
        codec = "PCMA" if scenario == "bridge-transcode" and i % 2 else "PCMU"
        table.configure(slot, codec=codec, payload_type=0, sending=True, expect_rx=True, marker=True)
        if scenario == "players" and i % 4 < 2:
            table.play(slot, PROMPT, 0)
    for i in range(0, n, 2):
        if scenario.startswith("bridge"):
            pipeline.mixer.bridge(i + 1, i + 2)
    if scenario == "rooms":
        for i in range(n):
            pipeline.mixer.join_room(i + 1, f"room{i // 4}")
    return pipeline, table


def _feed(pipeline: Pipeline, n: int, tick: int) -> float:
    """One packet per leg into the jitter buffers; returns seconds spent."""
    payload = memoryview(SPEECH_BYTES[(tick % 50) * 160 : (tick % 50 + 1) * 160].tobytes())
    put = pipeline.jitter.put
    ts = 160 * tick
    now = tick * 0.02
    start = time.perf_counter()
    for slot in range(n):
        put(slot, ts, payload, now)
    return time.perf_counter() - start


def vectorised(n: int, scenario: str, ticks: int) -> tuple[float, float, bool]:
    pipeline, table = _pipeline(n, scenario)
    for k in range(5):
        _feed(pipeline, n, k)
        pipeline.run()
    put_time = 0.0
    times = []
    for k in range(5, 5 + ticks):
        put_time += _feed(pipeline, n, k)
        start = time.perf_counter()
        pipeline.run()
        times.append(time.perf_counter() - start)
    # The median tick: on a shared machine the mean is dominated by the ticks another process preempted.
    return float(np.median(times)), put_time / (ticks * n), pipeline.decoded


def per_leg_loop(n: int, ticks: int) -> float:
    """The bridge-transcode work one leg at a time: decode partner's frame, encode, header (median tick)."""
    frames = [SPEECH_BYTES[:160].copy() for _ in range(n)]
    seq = [random.getrandbits(16) for _ in range(n)]
    ts = [random.getrandbits(32) for _ in range(n)]
    ssrc = [random.getrandbits(32) for _ in range(n)]
    tables = [ULAW_ENCODE if i % 2 == 0 else ALAW_ENCODE for i in range(n)]
    packets: list[bytes] = [b""] * n
    times = []
    for _ in range(ticks):
        start = time.perf_counter()
        for i in range(n):
            partner = i ^ 1
            pcm = ULAW_DECODE[frames[partner]]
            payload = tables[i][pcm.view(np.uint16)].tobytes()
            packets[i] = HEADER.pack(0x80, 0, seq[i], ts[i], ssrc[i]) + payload
            seq[i] = (seq[i] + 1) & 0xFFFF
            ts[i] = (ts[i] + 160) & 0xFFFFFFFF
        times.append(time.perf_counter() - start)
    return float(np.median(times))


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


def wideband_cost(kind: int, legs: int = 50, ticks: int = 50) -> float:
    """Seconds per leg per tick to decode one received frame and encode one frame to send."""
    wide = WidebandLegs()
    for slot in range(legs):
        wide.set_codec(slot, kind, 0)
    heard = np.zeros((legs, 160), np.int16)
    audio = np.tile(PROMPT[:160], (legs, 1))
    payload = np.zeros((legs, 160), np.uint8)
    complete = np.ones(legs, bool)
    lost = np.zeros(legs, bool)
    present = np.ones((legs, 160), bool)
    x16 = np.repeat(PROMPT[: 160 * ticks], 2)
    if kind == G722:
        octets = G722Encoder().encode(x16[None, :])[0].reshape(ticks, 160)
    else:
        encoder = OpusEncoder()
        x48 = np.repeat(PROMPT[: 160 * ticks], 6)
        packets = [encoder.encode(x48[i * 960 : (i + 1) * 960]) for i in range(ticks)]
    elapsed = 0.0
    for k in range(ticks):
        rx = np.tile(octets[k], (legs, 1)) if kind == G722 else np.zeros((legs, 160), np.uint8)
        if kind == OPUS:
            for slot in range(legs):
                wide.put_opus(slot, 960 * k, packets[k])
        start = time.perf_counter()
        wide.decode(heard, rx, complete, lost, present)
        wide.encode(audio, payload)
        elapsed += time.perf_counter() - start
    return elapsed / (ticks * legs)


def rtcp_cost(reports: int = 2000) -> float:
    session = RtcpSession(1234, "bench@127.0.0.1")
    start = time.perf_counter()
    for k in range(reports):
        counters = ReceiveCounters(99, 0, 250 * k, 245 * k, 30)
        session.report(k * 5.0, counters, packets_sent=250 * k, octets_sent=40000 * k, rtp_timestamp=k)
    return (time.perf_counter() - start) / reports


def profile(scenario: str, n: int = 4000) -> None:
    """Print where 60 ticks of ``scenario`` spend their time (cProfile, sorted by own time)."""
    import cProfile
    import pstats

    pipeline, _ = _pipeline(n, scenario)
    for k in range(5):
        _feed(pipeline, n, k)
        pipeline.run()
    profiler = cProfile.Profile()
    for k in range(5, 65):
        _feed(pipeline, n, k)
        profiler.enable()
        pipeline.run()
        profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--profile":
        profile(sys.argv[2])
        return
    assert DECODE.size and ENCODE.size
    results = []
    for n in (1000, 2000, 4000):
        baseline = per_leg_loop(n, 7)
        row: dict[str, object] = {"legs": n, "per_leg_loop_ms": round(baseline * 1e3, 3)}
        for scenario in ("players", "bridge-transcode", "bridge-passthrough", "rooms"):
            tick, put, decoded = vectorised(n, scenario, 100)
            row[scenario] = {
                "tick_ms": round(tick * 1e3, 3),
                "share_of_20ms": round(tick / 0.020, 4),
                "vs_loop": round(tick / baseline, 3),
                "decoded": decoded,
            }
            row["put_us_per_packet"] = round(put * 1e6, 2)
        transcode = row["bridge-transcode"]
        assert isinstance(transcode, dict)
        row["speedup_vs_loop"] = round(baseline * 1e3 / transcode["tick_ms"], 1)
        results.append(row)
    print(
        json.dumps(
            {
                "tick": results,
                "sendto_us_per_packet": round(sendto_cost(20000) * 1e6, 2),
                "wideband_us_per_leg": {
                    "G722": round(wideband_cost(G722) * 1e6, 1),
                    "opus": round(wideband_cost(OPUS) * 1e6, 1),
                },
                "rtcp_report_us": round(rtcp_cost() * 1e6, 2),
                "note": "tick_ms excludes socket I/O; each leg adds one sendto and one receive per tick",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
