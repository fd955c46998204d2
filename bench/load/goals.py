"""Issue 8's targets, and how far a run is from each: every mode prints them beside its numbers.

A goal is a bound on one measured figure. ``factor`` says by how much it is missed or met: measured over
target for a ceiling (2.0 = twice the allowed cost), target over measured for a floor (2.0 = half the
rate asked for), so a factor above 1 is always "short by that much" and ``met`` is ``factor <= 1``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Goal", "check", "format_goals"]


@dataclass(frozen=True)
class Goal:
    name: str
    target: float
    measured: float | None
    ceiling: bool  # True: measured must be <= target; False: measured must be >= target
    unit: str
    note: str = ""

    @property
    def factor(self) -> float | None:
        if self.measured is None:
            return None
        if self.ceiling:
            if not self.target:
                return 1.0 if self.measured <= 0 else float("inf")
            return self.measured / self.target
        return self.target / self.measured if self.measured else float("inf")

    @property
    def met(self) -> bool:
        factor = self.factor
        return factor is not None and factor <= 1.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        factor = self.factor
        data["factor"] = None if factor is None else round(factor, 2)
        data["met"] = self.met
        return data


def _ceiling(name: str, target: float, measured: float | None, unit: str, note: str = "") -> Goal:
    return Goal(name, target, measured, True, unit, note)


def _floor(name: str, target: float, measured: float | None, unit: str, note: str = "") -> Goal:
    return Goal(name, target, measured, False, unit, note)


def _clean_rate(result: Mapping[str, Any]) -> float:
    """The achieved rate of a clean run, 0 for a run that was not clean."""
    return float(result.get("achieved_cps") or 0.0) if result.get("clean") else 0.0


def check(mode: str, document: Mapping[str, Any]) -> list[Goal]:
    """The goals of issue 8 that a run of ``mode`` measures, from the JSON document it prints."""
    results: Sequence[Mapping[str, Any]] = document.get("results") or []
    goals: list[Goal] = []
    if mode == "rate" and results:
        run = results[0]
        webhook = "webhook" in str(run.get("label", ""))
        goals.append(
            _ceiling(
                "switch CPU per signalling-only call" + (" (HTTP webhook)" if webhook else " (local file)"),
                1.0 if webhook else 0.5,
                run.get("cpu_ms_per_call"),
                "ms",
            )
        )
        if not webhook:
            seconds = float(run.get("wall_s") or 0.0)
            goals.append(
                _floor(
                    "clean signalling rate held for 30 s",
                    1000.0,
                    _clean_rate(run) if seconds >= 30.0 else None,
                    "calls/s",
                    "" if seconds >= 30.0 else f"this run lasted {seconds:.0f} s: too short to count",
                )
            )
    elif mode == "ramp":
        best = document.get("best_clean_rate")
        goals.append(
            _floor("highest clean signalling rate", 1000.0, best, "calls/s", "steps shorter than 30 s")
        )
    elif mode == "peer":
        ratio = document.get("cpu_ratio_sippy_over_switch")
        goals.append(_floor("Sippy's CPU per call over the switch's <Dial><Sip>", 10.0, ratio, "x"))
    elif mode == "full" and results:
        goals.append(_floor("clean rate of full calls", 500.0, _clean_rate(results[0]), "calls/s"))
    elif mode == "memory" and len(results) >= 2:
        first, last = results[0], results[-1]
        grown = float(last.get("rss_end_mb") or 0.0) - float(first.get("rss_end_mb") or 0.0)
        goals.append(
            _ceiling(
                "RSS growth between the first and the last checkpoint",
                10.0,
                grown,
                "MB",
                "noise allowance 10 MB; clean runs only count"
                if all(r.get("clean") for r in results)
                else "NOT CLEAN: retransmitted calls hold transactions longer",
            )  # fmt: skip
        )
    elif mode == "media":
        run = document.get("result") or {}
        calls, seconds = int(run.get("calls") or 0), float(run.get("seconds") or 0.0)
        full = calls >= 1000 and seconds >= 60.0
        scale = "" if full else f"this run: {calls} calls for {seconds:.0f} s (the goal is 1,000 for 60 s)"
        each_way = run.get("switch_us_per_packet")  # the tree's CPU over packets received plus packets sent
        pair = None if each_way is None else round(2 * float(each_way), 2)
        goals.append(_ceiling("switch CPU per RTP packet (received + sent)", 5.0, pair, "µs",
                              "twice the soak's µs per packet each way"))  # fmt: skip
        goals.append(_ceiling("loss inside the switch", 0.0, run.get("loss_ratio"), "ratio", scale))
        goals.append(_ceiling("p99 send-interval jitter (median stream)", 2.0,
                              run.get("jitter_p99_ms_median"), "ms", scale))  # fmt: skip
    return goals


def format_goals(goals: Sequence[Goal]) -> str:
    lines = []
    for goal in goals:
        sign = "<=" if goal.ceiling else ">="
        if goal.measured is None:
            verdict = "not measured"
        elif goal.met:
            verdict = "MET"
        elif goal.factor == float("inf") or goal.target == 0:
            verdict = "NOT MET"
        else:
            verdict = f"NOT MET: {goal.factor:.2f}x short"
        measured = "-" if goal.measured is None else f"{goal.measured:g}"
        note = f" ({goal.note})" if goal.note else ""
        lines.append(
            f"goal {goal.name}: {sign} {goal.target:g} {goal.unit}, measured {measured}: {verdict}{note}"
        )
    return "\n".join(lines)
