"""CPU of the in-band DTMF detector's ticks under numpy's default BLAS thread pool against one BLAS thread, in
the same run: each case runs in a child process (the setting must come before numpy is imported).

    python bench/bench_blas_threads.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

CHANNELS = 40
TICKS = 500


def measure() -> dict[str, object]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "codecs"))
    import numpy as np

    from voicecodecs.dtmf_detect import DtmfDetector

    detector = DtmfDetector(CHANNELS)
    frames = (np.random.default_rng(1).standard_normal((CHANNELS, 160)) * 3000).astype(np.int16)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(TICKS):
        detector.process(frames)
        time.sleep(0.002)  # ticks come apart, as in the engine: a pool spins in between
    return {"cpu_s": round(time.process_time() - cpu0, 3), "wall_s": round(time.perf_counter() - wall0, 3)}


def child(threads: str | None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    if threads is not None:
        env["OPENBLAS_NUM_THREADS"] = threads
    command = [sys.executable, __file__, "--child"]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(out.stdout)
    return result


def main() -> None:
    if sys.argv[1:] == ["--child"]:
        print(json.dumps(measure()))
        return
    pool, one = child(None), child("1")
    ratio = float(str(pool["cpu_s"])) / max(float(str(one["cpu_s"])), 1e-9)
    report = {"ticks": TICKS, "channels": CHANNELS, "default_pool": pool, "one_thread": one}
    report["cpu_ratio"] = round(ratio, 2)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
