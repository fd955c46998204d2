"""The media side of a call without SIP: ``create_channel``, ``configure``, a short life, ``close_channel`` on
one media worker, at a steady rate; prints the CPU per call of the worker process and of this (the switch's)
process. Run it from a tree (or a ``git worktree`` of an older revision) to compare:

    python bench/bench_media_control.py --rate 200 --calls 2000

The switch-process figure includes this harness's own tasks and timers (the same in every tree).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "codecs")]

from switch.media.workers import WorkerMediaEngine  # noqa: E402


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _call(engine: WorkerMediaEngine, remote: tuple[str, int], life: float) -> None:
    channel = await engine.create_channel()
    engine.configure(channel, remote=remote, codec="PCMU", payload_type=0, telephone_event_pt=101)
    await asyncio.sleep(life)
    await engine.close_channel(channel)


async def _run(rate: float, calls: int, life: float, ports: tuple[int, int]) -> None:
    engine = WorkerMediaEngine("127.0.0.1", ports, workers=1)
    await engine.start()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    remote = ("127.0.0.1", sink.getsockname()[1])
    try:
        await asyncio.sleep(0.5)
        worker = engine._workers[0].process.pid
        assert worker is not None
        w0, m0 = _cpu(worker), time.process_time()
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        for k in range(calls):
            delay = start + k / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(_call(engine, remote, life)))
        await asyncio.gather(*tasks)
        await asyncio.sleep(0.2)
        w1, m1 = _cpu(worker), time.process_time()
        print(
            f"{ROOT}: media worker {1000 * (w1 - w0) / calls:.3f} ms/call, "
            f"switch process {1000 * (m1 - m0) / calls:.3f} ms/call"
        )
    finally:
        sink.close()
        await engine.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--life", type=float, default=0.010, help="seconds from configure to close")
    parser.add_argument("--ports", default="42000-43999")
    args = parser.parse_args()
    low, high = (int(p) for p in args.ports.split("-"))
    import uvloop

    uvloop.run(_run(args.rate, args.calls, args.life, (low, high)))


if __name__ == "__main__":
    main()
