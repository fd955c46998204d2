"""CPU time and memory of a process tree, read from /proc (Linux).

CPU is utime + stime of the process and every live descendant, plus cutime + cstime (children that already
exited and were reaped), in seconds. RSS is the sum of VmRSS over the tree; a `PeakSampler` thread samples it
while a run goes on, since VmHWM covers one process only.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

__all__ = ["CpuSample", "PeakSampler", "cpu_seconds", "descendants", "rss_bytes"]

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class CpuSample:
    user: float
    system: float

    @property
    def total(self) -> float:
        return self.user + self.system

    def __sub__(self, other: CpuSample) -> CpuSample:
        return CpuSample(self.user - other.user, self.system - other.system)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read().decode(errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    return data[data.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """`pid` and every live descendant, found through /proc/*/task/*/children."""
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    found.extend(int(child) for child in handle.read().split())
            except OSError:
                continue
    return found


def cpu_seconds(pid: int) -> CpuSample:
    """User and system CPU seconds of the tree rooted at `pid` (reaped children included)."""
    user = system = 0
    for member in descendants(pid):
        fields = _stat_fields(member)
        if fields is None:
            continue
        # After the command name: state is index 0, utime 11, stime 12, cutime 13, cstime 14.
        user += int(fields[11]) + int(fields[13])
        system += int(fields[12]) + int(fields[14])
    return CpuSample(user / _TICK, system / _TICK)


def rss_bytes(pid: int) -> int:
    """Resident memory of the tree rooted at `pid`, in bytes."""
    total = 0
    for member in descendants(pid):
        try:
            with open(f"/proc/{member}/statm") as handle:
                total += int(handle.read().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            continue
    return total


class PeakSampler:
    """Samples the tree's RSS every `interval` seconds on a thread; `peak` is the highest seen."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = rss_bytes(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, rss_bytes(self.pid))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes(self.pid))
