"""SIPp as a load generator: the command line, a bounded run, and what its counters say.

Counters come from `-trace_stat -stf` (the last row, cumulative `(C)` columns); setup times (INVITE to 200,
response-time 1 of the load scenarios) from `-trace_rtt -rtt_freq 1`, one row per call.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["SCENARIOS", "SippCounters", "SippLoad", "percentile_ms", "sipp_binary"]

SCENARIOS = Path(__file__).resolve().parents[2] / "sipp-scenarios"
_TRANSPORT = {"udp": "u1", "tcp": "t1"}


def sipp_binary() -> str:
    path = shutil.which("sipp")
    if path is None:
        raise RuntimeError("sipp is not installed (apt-get install sip-tester)")
    return path


@dataclass(frozen=True, slots=True)
class SippCounters:
    """SIPp's cumulative counters after a run, and the per-call setup times in milliseconds."""

    stats: Mapping[str, str] = field(default_factory=dict)
    setup_ms: tuple[float, ...] = ()
    setup_done_at_ms: tuple[float, ...] = ()  # when each setup finished, ms since SIPp started

    def count(self, name: str) -> int:
        value = self.stats.get(name, "").strip()
        return int(value) if value.isdigit() else 0

    @property
    def attempted(self) -> int:
        return self.count("OutgoingCall(C)") or self.count("IncomingCall(C)")

    @property
    def succeeded(self) -> int:
        return self.count("SuccessfulCall(C)")

    @property
    def failed(self) -> int:
        return self.count("FailedCall(C)")

    @property
    def retransmissions(self) -> int:
        return self.count("Retransmissions(C)")

    @property
    def late_messages(self) -> int:
        """Messages that arrived for calls SIPp had already finished (retransmissions from the far end)."""
        return self.count("DeadCallMsgs(C)")

    def generic(self, name: str) -> int:
        """A scenario's own counter (`counter="name"` on a message): the cumulative `name(C)` column."""
        return self.count(f"{name}(C)")

    @property
    def unexpected(self) -> int:
        return self.count("FailedUnexpectedMessage(C)")

    @property
    def timeouts(self) -> int:
        return self.count("FailedTimeoutOnRecv(C)") + self.count("FailedMaxUDPRetrans(C)")

    def achieved_rate(self) -> float:
        """Calls set up per second, over the span between the first and the last 200."""
        done = self.setup_done_at_ms
        if len(done) < 2 or done[-1] <= done[0]:
            return 0.0
        return (len(done) - 1) / ((done[-1] - done[0]) / 1000.0)


def percentile_ms(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def _last_stats(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    with path.open(newline="", errors="replace") as handle:
        rows = [row for row in csv.reader(handle, delimiter=";") if row]
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


def _rtt(workdir: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    times: list[float] = []
    done: list[float] = []
    for path in sorted(workdir.glob("*_rtt.csv")):
        with path.open(errors="replace") as handle:
            for line in handle:
                parts = line.strip().split(";")
                if len(parts) < 3 or parts[2] != "1":
                    continue
                try:
                    done.append(float(parts[0]))
                    times.append(float(parts[1]))
                except ValueError:
                    continue
    order = np.argsort(np.asarray(done))
    return tuple(times[i] for i in order), tuple(done[i] for i in order)


@dataclass
class SippLoad:
    """One SIPp process: a caller (`target` set) placing `total` calls at `rate`/s with at most `limit` up at
    once, or a callee (`target` None) answering up to `total` calls. Every run is bounded by `timeout`."""

    scenario: str
    workdir: Path
    local_port: int
    media_port: int
    control_port: int
    total: int
    target: str | None = None
    rate: float = 0.0
    limit: int = 5000
    service: str = "load"
    hold_ms: int = 0
    timeout: float = 60.0
    transport: str = "udp"
    extra_args: Sequence[str] = ()
    command: list[str] = field(default_factory=list)
    _process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    def __post_init__(self) -> None:
        path = Path(self.scenario) if "/" in self.scenario else SCENARIOS / self.scenario
        if not path.is_file():
            raise FileNotFoundError(f"no SIPp scenario {path}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [sipp_binary()]
        if self.target is not None:
            command.append(self.target)
        command += [
            "-sf", str(path),
            "-t", _TRANSPORT[self.transport],
            "-i", "127.0.0.1",
            "-p", str(self.local_port),
            "-mp", str(self.media_port),
            "-cp", str(self.control_port),
            "-m", str(self.total),
            "-l", str(self.limit),
            "-buff_size", "4194304",
            "-nostdin",
            "-timeout", f"{max(1, round(self.timeout))}s",
            "-timeout_error",
            "-max_socket", "50000",
            "-trace_stat", "-stf", str(self.workdir / "stats.csv"), "-fd", "1",
            "-trace_err", "-error_file", str(self.workdir / "errors.log"),
        ]  # fmt: skip
        if self.target is not None:
            command += ["-s", self.service, "-r", f"{self.rate:g}", "-rp", "1000"]
            command += ["-trace_rtt", "-rtt_freq", "1", "-d", str(self.hold_ms)]
        command += list(self.extra_args)
        self.command = command

    def start(self) -> SippLoad:
        self.started_at = time.monotonic()
        with (self.workdir / "screen.log").open("wb") as screen:
            self._process = subprocess.Popen(
                self.command,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=screen,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def wait(self) -> tuple[int, bool]:
        """Wait for SIPp (its own -timeout plus a grace period, then kill); (exit code, killed)."""
        assert self._process is not None
        remaining = self.timeout + 10 - (time.monotonic() - self.started_at)
        try:
            return self._process.wait(max(1.0, remaining)), False
        except subprocess.TimeoutExpired:
            self._process.kill()
            return self._process.wait(), True

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def counters(self) -> SippCounters:
        setup, done = _rtt(self.workdir)
        return SippCounters(_last_stats(self.workdir / "stats.csv"), setup, done)

    def errors(self, tail: int = 3000) -> str:
        path = self.workdir / "errors.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""
