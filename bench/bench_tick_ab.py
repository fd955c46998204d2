"""A/B of one tick scenario: the pipeline and jitter buffer of a git revision against the working tree's,
interleaved in one process on the same packets (``bench_tick``'s set-up), median tick of 100, five runs.

    python bench/bench_tick_ab.py 9f36f9c bridge-passthrough

On a shared machine compare within one run: absolute numbers move with the load, the A/B does not.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "codecs"), str(ROOT / "bench")]

import bench_tick  # noqa: E402

from switch.media.pipeline import Pipeline  # noqa: E402


def _load(revision: str, path: str, name: str, folder: Path) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{revision}:{path}"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    file = folder / f"{name}.py"
    file.write_bytes(source)
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def median_tick(pipeline_class: type, scenario: str, legs: int, ticks: int = 100) -> float:
    bench_tick.Pipeline = pipeline_class  # type: ignore[attr-defined,assignment]  # the set-up builds this
    pipeline, _ = bench_tick._pipeline(legs, scenario)
    times = []
    for tick in range(ticks):
        bench_tick._feed(pipeline, legs, tick)
        start = time.perf_counter()
        pipeline.run()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2] * 1e3


def main() -> None:
    revision, scenario = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        old_jitter = _load(revision, "switch/media/jitter.py", "old_jitter", Path(tmp))
        old_pipeline = _load(revision, "switch/media/pipeline.py", "old_pipeline", Path(tmp))
        old_pipeline.JitterBuffer = old_jitter.JitterBuffer  # type: ignore[attr-defined]
        for legs in (1000, 2000, 4000):
            runs = [
                (median_tick(old_pipeline.Pipeline, scenario, legs), median_tick(Pipeline, scenario, legs))
                for _ in range(5)
            ]
            before = " ".join(f"{a:.3f}" for a, _ in runs)
            after = " ".join(f"{b:.3f}" for _, b in runs)
            print(f"{scenario} {legs} legs, ms: {revision} {before} | working tree {after}")


if __name__ == "__main__":
    main()
