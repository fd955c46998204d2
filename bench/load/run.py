"""Measured load runs: one rate, a ramp to the highest clean rate, memory checkpoints, and the Sippy peer.

Every run is bounded: SIPp places a fixed number of calls and carries `-timeout`; a ramp has a time budget.
CPU is read from /proc for the process tree under test just before SIPp starts and once the last call has
ended (plus a short settle, so the last BYE's 200 is counted), and divided by the calls attempted.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.load.ports import free_port
from bench.load.proc import PeakSampler, cpu_seconds, rss_bytes
from bench.load.sipp import SippLoad, percentile_ms
from bench.load.targets import Managed, SippyPeer, SwitchUnderTest, WebhookApp
from voicecodecs.g711 import ulaw_encode

__all__ = [
    "HANGUP",
    "RunResult",
    "memory_run",
    "peer_run",
    "ramp",
    "capacity_run",
    "full_run",
    "rate_run",
    "start_switch",
]

HANGUP = "<Response><Hangup/></Response>"
MB = 1024 * 1024
SETTLE = 0.5
IDLE_PROBE = 2.0


@dataclass
class RunResult:
    label: str
    rate: float
    calls: int
    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    retransmissions: int = 0
    late_messages: int = 0
    refused_503: int = 0  # capacity runs: calls answered 503 (load-uac-invite-expect-bye-or-503)
    achieved_cps: float = 0.0
    setup_p50_ms: float | None = None
    setup_p99_ms: float | None = None
    cpu_s: float = 0.0
    cpu_ms_per_call: float | None = None
    idle_cpu_per_s: float = 0.0  # the subject's CPU seconds per second with no calls (media clock, timers)
    cpu_ms_per_call_net: float | None = None  # cpu_ms_per_call less the idle rate over the run's wall time
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    peak_rss_mb: float = 0.0
    wall_s: float = 0.0
    sipp_exit: int = 0
    sipp_killed: bool = False
    sipp_command: str = ""
    target_command: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return (
            self.attempted == self.calls
            and self.succeeded == self.calls
            and self.failed == 0
            and self.retransmissions == 0
            and not self.sipp_killed
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["clean"] = self.clean
        return data


def _workdir(base: Path | None, name: str) -> Path:
    root = base if base is not None else Path(tempfile.mkdtemp(prefix="load-"))
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def start_switch(
    workdir: Path,
    *,
    webhook: bool = False,
    twiml: str = HANGUP,
    extra_args: tuple[str, ...] = (),
    rtp_ports: int = 2000,
) -> tuple[SwitchUnderTest, WebhookApp | None]:
    """The switch with its application: a TwiML file, or (webhook=True) an HTTP app in its own process."""
    app: WebhookApp | None = None
    workdir.mkdir(parents=True, exist_ok=True)
    if webhook:
        app = WebhookApp(workdir, twiml).start()
        location = app.url
    else:
        path = workdir / "app.xml"
        path.write_text(twiml)
        location = str(path)
    try:
        switch = SwitchUnderTest(workdir, location, extra_args=extra_args, rtp_ports=rtp_ports).start()
    except BaseException:
        if app is not None:
            app.stop()
        raise
    return switch, app


def _caller(
    workdir: Path,
    target: str,
    scenario: str,
    *,
    rate: float,
    calls: int,
    limit: int,
    timeout: float,
    hold_ms: int = 0,
    transport: str = "udp",
) -> SippLoad:
    return SippLoad(
        scenario,
        workdir,
        free_port(),
        free_port(),
        free_port(),
        calls,
        target=target,
        rate=rate,
        limit=limit,
        hold_ms=hold_ms,
        timeout=timeout,
        transport=transport,
    )


def measure(
    label: str,
    subject: Managed,
    caller: SippLoad,
    *,
    rate: float,
    calls: int,
    callee: SippLoad | None = None,
) -> RunResult:
    """Run `caller` (and `callee`) against `subject`, reading the subject's CPU and RSS around the run."""
    pid = subject.pid
    result = RunResult(label, rate, calls, sipp_command=" ".join(caller.command))
    result.target_command = " ".join(subject.command)
    result.rss_start_mb = rss_bytes(pid) / MB
    idle_from = cpu_seconds(pid)
    time.sleep(IDLE_PROBE)
    before = cpu_seconds(pid)
    result.idle_cpu_per_s = round((before - idle_from).total / IDLE_PROBE, 4)
    started = time.monotonic()
    with PeakSampler(pid) as sampler:
        if callee is not None:
            callee.start()
            time.sleep(0.3)
        caller.start()
        result.sipp_exit, result.sipp_killed = caller.wait()
        result.wall_s = time.monotonic() - started
        if callee is not None:
            callee.wait()
        time.sleep(SETTLE)
    after = cpu_seconds(pid)
    elapsed = time.monotonic() - started
    result.rss_end_mb = rss_bytes(pid) / MB
    result.peak_rss_mb = sampler.peak / MB
    counters = caller.counters()
    result.attempted = counters.attempted
    result.succeeded = counters.succeeded
    result.failed = counters.failed
    result.retransmissions = counters.retransmissions
    result.late_messages = counters.late_messages
    result.refused_503 = counters.generic("refused")
    result.achieved_cps = round(counters.achieved_rate(), 1)
    p50 = percentile_ms(counters.setup_ms, 50)
    p99 = percentile_ms(counters.setup_ms, 99)
    result.setup_p50_ms = None if p50 is None else round(p50, 2)
    result.setup_p99_ms = None if p99 is None else round(p99, 2)
    result.cpu_s = round((after - before).total, 3)
    if result.attempted:
        result.cpu_ms_per_call = round(1000 * result.cpu_s / result.attempted, 3)
        net = result.cpu_s - result.idle_cpu_per_s * elapsed
        result.cpu_ms_per_call_net = round(1000 * max(0.0, net) / result.attempted, 3)
    if result.failed or result.sipp_killed:
        result.notes.append(caller.errors(600))
    return result


def rate_run(
    *,
    rate: float,
    calls: int,
    webhook: bool = False,
    limit: int = 5000,
    transport: str = "udp",
    base: Path | None = None,
    extra_args: tuple[str, ...] = (),
) -> RunResult:
    """Signalling-only calls (the application hangs up at once) at `rate`/s against a fresh switch."""
    workdir = _workdir(base, f"{'webhook' if webhook else 'file'}-{rate:g}")
    switch, app = start_switch(workdir, webhook=webhook, extra_args=extra_args)
    try:
        caller = _caller(
            workdir / "sipp",
            switch.target,
            "load-uac-invite-expect-bye.xml",
            rate=rate,
            calls=calls,
            limit=limit,
            timeout=calls / rate + 30,
            transport=transport,
        )
        label = f"signalling {'webhook' if webhook else 'file'} {transport}"
        return measure(label, switch, caller, rate=rate, calls=calls)
    finally:
        switch.stop()
        if app is not None:
            app.stop()


SAY = "<Response><Say>Thank you for calling. Goodbye.</Say><Hangup/></Response>"
"""About one second of speech (espeak), then the switch hangs up."""


def full_run(
    *,
    rate: float,
    calls: int,
    twiml: str = SAY,
    limit: int = 5000,
    base: Path | None = None,
    extra_args: tuple[str, ...] = (),
) -> RunResult:
    """Full calls: an HTTP webhook per call answers `twiml` (a <Say> of about 1 s, then <Hangup/>), SIPp sends
    RTP for the whole call (rtp_stream of a 1 kHz-free tone file) and hears the Say; the switch sends BYE."""
    workdir = _workdir(base, f"full-{rate:g}")
    switch, app = start_switch(workdir, webhook=True, twiml=twiml, extra_args=extra_args, rtp_ports=8000)
    try:
        sipp_dir = workdir / "sipp"
        sipp_dir.mkdir(parents=True, exist_ok=True)
        t = np.arange(8000) / 8000.0
        tone = np.rint(3000 * np.sin(2 * np.pi * 425 * t)).astype(np.int16)
        (sipp_dir / "caller.ul").write_bytes(ulaw_encode(tone).tobytes())
        caller = _caller(
            sipp_dir,
            switch.target,
            "load-uac-invite-rtp-say-expect-bye.xml",
            rate=rate,
            calls=calls,
            limit=limit,
            timeout=calls / rate + 40,
        )
        return measure("full webhook+say+rtp", switch, caller, rate=rate, calls=calls)
    finally:
        switch.stop()
        if app is not None:
            app.stop()


def capacity_run(
    *,
    rate: float,
    calls: int,
    max_calls: int,
    hold_seconds: float = 2.0,
    base: Path | None = None,
) -> RunResult:
    """Drive past `--max-calls`: each call holds `hold_seconds` (<Pause>) so about rate x hold are up at once;
    the calls above `max_calls` must get 503 with Retry-After, the rest must complete."""
    workdir = _workdir(base, f"capacity-{rate:g}-{max_calls}")
    twiml = f'<Response><Pause length="{hold_seconds:g}"/><Hangup/></Response>'
    switch, _ = start_switch(workdir, twiml=twiml, extra_args=("--max-calls", str(max_calls)))
    try:
        caller = _caller(
            workdir / "sipp",
            switch.target,
            "load-uac-invite-expect-bye-or-503.xml",
            rate=rate,
            calls=calls,
            limit=5000,
            timeout=calls / rate + hold_seconds + 30,
        )
        return measure(f"max-calls {max_calls}", switch, caller, rate=rate, calls=calls)
    finally:
        switch.stop()


def ramp(
    *,
    start: float,
    step_seconds: float,
    budget_seconds: float,
    webhook: bool = False,
    max_rate: float = 5000.0,
    on_step: Callable[[RunResult], None] | None = None,
    base: Path | None = None,
) -> tuple[float, list[RunResult]]:
    """Double the rate until a step is not clean (a failure or a retransmission), then bisect between the
    last clean and the first unclean rate; stop when the budget is spent. Returns (best clean rate, steps)."""
    deadline = time.monotonic() + budget_seconds
    steps: list[RunResult] = []
    good, bad = 0.0, max_rate * 2
    rate = start
    while time.monotonic() + step_seconds + 5 < deadline:
        calls = max(50, round(rate * step_seconds))
        result = rate_run(rate=rate, calls=calls, webhook=webhook, base=base)
        steps.append(result)
        if on_step is not None:
            on_step(result)
        if result.clean:
            good = max(good, rate)
        else:
            bad = min(bad, rate)
        if bad > max_rate:
            if rate >= max_rate:
                break
            rate = min(rate * 2, max_rate)
        else:
            if bad - good <= max(10.0, 0.05 * bad):
                break
            rate = round((good + bad) / 2) if good else round(bad / 2)
    return good, steps


def memory_run(
    *,
    rate: float,
    checkpoints: tuple[int, ...],
    base: Path | None = None,
    on_step: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """One switch; calls placed in segments up to each checkpoint (cumulative); RSS read after each."""
    workdir = _workdir(base, f"memory-{rate:g}")
    switch, _ = start_switch(workdir)
    results: list[RunResult] = []
    done = 0
    try:
        for index, checkpoint in enumerate(checkpoints):
            calls = checkpoint - done
            caller = _caller(
                workdir / f"sipp-{index}",
                switch.target,
                "load-uac-invite-expect-bye.xml",
                rate=rate,
                calls=calls,
                limit=5000,
                timeout=calls / rate + 30,
            )
            result = measure(f"memory after {checkpoint}", switch, caller, rate=rate, calls=calls)
            done = checkpoint
            results.append(result)
            if on_step is not None:
                on_step(result)
    finally:
        switch.stop()
    return results


def peer_run(
    *,
    rate: float,
    calls: int,
    hold_ms: int = 0,
    base: Path | None = None,
    switch_too: bool = True,
) -> list[RunResult]:
    """The same SIPp caller and SIPp UAS with Sippy B2BUA between them, then with the switch doing
    <Dial><Sip> to the UAS. Each subject's own CPU is measured (not the SIPp processes')."""
    results: list[RunResult] = []
    workdir = _workdir(base, f"peer-{rate:g}")
    timeout = calls / rate + 30

    def uas(sub: str) -> SippLoad:
        return SippLoad(
            "load-uas-answer-expect-bye.xml",
            workdir / sub,
            free_port(),
            free_port(),
            free_port(),
            calls,
            timeout=timeout + 5,
        )

    callee = uas("sippy-uas")
    sippy = SippyPeer(workdir / "sippy", f"127.0.0.1:{callee.local_port}").start()
    try:
        caller = _caller(
            workdir / "sippy-uac",
            sippy.target,
            "load-uac-invite-hangup-expect-200.xml",
            rate=rate,
            calls=calls,
            limit=5000,
            timeout=timeout,
            hold_ms=hold_ms,
        )
        results.append(measure("sippy b2bua", sippy, caller, rate=rate, calls=calls, callee=callee))
    finally:
        sippy.stop()
        callee.stop()
    if not switch_too:
        return results
    callee = uas("switch-uas")
    dial = f"<Response><Dial><Sip>sip:uas@127.0.0.1:{callee.local_port}</Sip></Dial></Response>"
    switch, _ = start_switch(workdir / "switch", twiml=dial)
    try:
        caller = _caller(
            workdir / "switch-uac",
            switch.target,
            "load-uac-invite-hangup-expect-200.xml",
            rate=rate,
            calls=calls,
            limit=5000,
            timeout=timeout,
            hold_ms=hold_ms,
        )
        results.append(measure("switch <Dial><Sip>", switch, caller, rate=rate, calls=calls, callee=callee))
    finally:
        switch.stop()
        callee.stop()
    return results
