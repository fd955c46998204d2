"""Run a SIPp scenario from `sipp-scenarios/` as one call and report what happened.

Every run gets free local SIP, control and media ports, its own working directory, and a hard timeout
(SIPp's `-timeout` with `-timeout_error`, and a kill from here if SIPp itself hangs). The result carries
the exit code, the statistics row from `-trace_stat -stf`, and the message and error logs.
"""

from __future__ import annotations

import csv
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.ports import free_media_port, free_sip_port, free_udp_port, is_free
from tests.helpers.tools import require_tool

__all__ = ["SCENARIOS", "SippResult", "SippUas", "run_sipp", "sipp_command"]

SCENARIOS = Path(__file__).resolve().parents[2] / "sipp-scenarios"
_TRANSPORT = {"udp": "u1", "tcp": "t1"}


@dataclass(frozen=True, slots=True)
class SippResult:
    scenario: str
    transport: str
    command: tuple[str, ...]
    exit_code: int
    timed_out: bool
    stats: Mapping[str, str] = field(default_factory=dict)
    messages: str = ""
    errors: str = ""
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.successful_calls >= 1

    def _stat(self, name: str) -> int:
        value = self.stats.get(name, "")
        return int(value) if value.strip().isdigit() else 0

    @property
    def successful_calls(self) -> int:
        return self._stat("SuccessfulCall(C)")

    @property
    def failed_calls(self) -> int:
        return self._stat("FailedCall(C)")

    def describe(self, tail: int = 6000) -> str:
        """A readable account for an assertion message: command, exit code, stats, log tails."""
        wanted = (
            "SuccessfulCall(C)",
            "FailedCall(C)",
            "FailedTimeoutOnRecv(C)",
            "FailedUnexpectedMessage(C)",
        )
        stats = {k: self.stats.get(k, "?") for k in wanted}
        return (
            f"sipp {self.scenario} over {self.transport}: exit {self.exit_code}"
            f"{' (timed out)' if self.timed_out else ''}, stats {stats}\n"
            f"command: {' '.join(self.command)}\n"
            f"--- errors ---\n{self.errors[-tail:]}\n--- messages ---\n{self.messages[-tail:]}\n"
            f"--- output ---\n{self.output[-2000:]}"
        )


def sipp_command(
    scenario: str,
    target: str,
    transport: str,
    *,
    service: str,
    local_port: int,
    control_port: int,
    media_port: int,
    workdir: Path,
    keys: Mapping[str, str | int] | None = None,
    timeout: float = 20.0,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The SIPp command line for one call of `scenario` (a file name in sipp-scenarios/ or a path)."""
    path = Path(scenario) if "/" in scenario else SCENARIOS / scenario
    if not path.is_file():
        raise FileNotFoundError(f"no SIPp scenario {path}")
    if transport not in _TRANSPORT:
        raise ValueError(f"transport must be udp or tcp, not {transport!r}")
    command = [
        require_tool("sipp"),
        target,
        "-sf", str(path),
        "-t", _TRANSPORT[transport],
        "-i", "127.0.0.1",
        "-p", str(local_port),
        "-cp", str(control_port),
        "-mp", str(media_port),
        "-s", service,
        "-m", "1",
        "-nostdin",
        "-timeout", f"{max(1, round(timeout))}s",
        "-timeout_error",
        "-trace_stat", "-stf", str(workdir / "stats.csv"), "-fd", "1",
        "-trace_msg", "-message_file", str(workdir / "messages.log"),
        "-trace_err", "-error_file", str(workdir / "errors.log"),
    ]  # fmt: skip
    for name, value in (keys or {}).items():
        command += ["-key", name, str(value)]
    command += list(extra_args)
    return command


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _last_stats(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    with path.open(newline="", errors="replace") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    if len(rows) < 2:
        return {}
    header, last = rows[0], rows[-1]
    return dict(zip(header, last, strict=False))


def run_sipp(
    scenario: str,
    target: str,
    transport: str = "udp",
    *,
    service: str = "service",
    keys: Mapping[str, str | int] | None = None,
    timeout: float = 20.0,
    extra_args: Sequence[str] = (),
    workdir: Path | None = None,
) -> SippResult:
    """Place one call of `scenario` at `target` ("127.0.0.1:5060") over `transport` ("udp" or "tcp").

    `service` is the Request-URI and To user; `keys` become `-key NAME VALUE` ([rtp_port] and the like).
    Blocks until SIPp exits or `timeout` (+5 s grace) passes.
    """
    workdir = Path(tempfile.mkdtemp(prefix="sipp-", dir=workdir))
    command = sipp_command(
        scenario,
        target,
        transport,
        service=service,
        local_port=free_sip_port(),
        control_port=free_udp_port(),
        media_port=free_media_port(),
        workdir=workdir,
        keys=keys,
        timeout=timeout,
        extra_args=extra_args,
    )
    timed_out = False
    with (workdir / "screen.log").open("wb") as screen:
        process = subprocess.Popen(
            command, cwd=workdir, stdin=subprocess.DEVNULL, stdout=screen, stderr=subprocess.STDOUT
        )
        try:
            exit_code = process.wait(timeout + 5)
        except subprocess.TimeoutExpired:
            timed_out = True
            process.kill()
            exit_code = process.wait()
    return SippResult(
        scenario=Path(scenario).name,
        transport=transport,
        command=tuple(command),
        exit_code=exit_code,
        timed_out=timed_out,
        stats=_last_stats(workdir / "stats.csv"),
        messages=_read(workdir / "messages.log"),
        errors=_read(workdir / "errors.log"),
        output=_read(workdir / "screen.log"),
    )


class SippUas:
    """A SIPp UAS on a free port for one call: a built-in scenario (`builtin="uas"`) or a file.

    Start it, point a `run_sipp` caller at `target`, then `finish()` for its own `SippResult`.
    """

    def __init__(
        self,
        scenario: str | None = None,
        transport: str = "udp",
        *,
        keys: Mapping[str, str | int] | None = None,
        timeout: float = 20.0,
        workdir: Path | None = None,
    ) -> None:
        self.port = free_sip_port()
        self.target = f"127.0.0.1:{self.port}"
        self.transport = transport
        self._workdir = Path(tempfile.mkdtemp(prefix="sipp-uas-", dir=workdir))
        self._scenario = scenario or "uas"
        self._timeout = timeout
        command = [
            require_tool("sipp"),
            "-t", _TRANSPORT[transport],
            "-i", "127.0.0.1",
            "-p", str(self.port),
            "-cp", str(free_udp_port()),
            "-mp", str(free_media_port()),
            "-m", "1",
            "-nostdin",
            "-timeout", f"{max(1, round(timeout))}s",
            "-timeout_error",
            "-trace_stat", "-stf", str(self._workdir / "stats.csv"), "-fd", "1",
            "-trace_msg", "-message_file", str(self._workdir / "messages.log"),
            "-trace_err", "-error_file", str(self._workdir / "errors.log"),
        ]  # fmt: skip
        if scenario is None:
            command += ["-sn", "uas"]
        else:
            path = Path(scenario) if "/" in scenario else SCENARIOS / scenario
            command += ["-sf", str(path)]
        for name, value in (keys or {}).items():
            command += ["-key", name, str(value)]
        self.command = tuple(command)
        self._screen = (self._workdir / "screen.log").open("wb")
        self._process = subprocess.Popen(
            command,
            cwd=self._workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._screen,
            stderr=subprocess.STDOUT,
        )
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self._process.poll() is None:
            if not is_free(self.port, udp=self.transport == "udp", tcp=self.transport == "tcp"):
                return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(
            f"SIPp UAS did not start listening on {self.target}: {' '.join(self.command)}\n"
            + _read(self._workdir / "screen.log")[-3000:]
        )

    def finish(self) -> SippResult:
        """Wait for the UAS to end its call (killing it after its timeout) and report."""
        timed_out = False
        try:
            exit_code = self._process.wait(self._timeout + 5)
        except subprocess.TimeoutExpired:
            timed_out = True
            self._process.kill()
            exit_code = self._process.wait()
        self._screen.close()
        return SippResult(
            scenario=Path(self._scenario).name,
            transport=self.transport,
            command=self.command,
            exit_code=exit_code,
            timed_out=timed_out,
            stats=_last_stats(self._workdir / "stats.csv"),
            messages=_read(self._workdir / "messages.log"),
            errors=_read(self._workdir / "errors.log"),
            output=_read(self._workdir / "screen.log"),
        )

    def kill(self) -> None:
        """Stop the UAS now (after a failure elsewhere)."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._screen.close()
