"""The programs under load, each a subprocess in its own session on loopback ports picked free:
the switch (`python -m switch serve`), the HTTP voice application, and Sippy B2BUA (the peer).

Each is ready when its SIP (or HTTP) port is bound; `stop()` sends SIGTERM to the process group it started,
then SIGKILL after a timeout.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.load.ports import free_port, free_range

__all__ = ["ROOT", "Managed", "SippyPeer", "SwitchUnderTest", "WebhookApp"]

ROOT = Path(__file__).resolve().parents[2]


def _bound(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT), str(ROOT / "codecs"), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Managed:
    """A subprocess started in its own session, with its output in `log_path`."""

    name = "process"

    def __init__(self, command: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.command = list(command)
        self.log_path = log_path
        self.env = env or _env()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _launch(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_bound(self, port: int, kind: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                break
            if _bound(port, kind):
                return
            time.sleep(0.05)
        tail = self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
        self.stop()
        raise RuntimeError(f"{self.name} did not bind port {port}: {' '.join(self.command)}\n{tail}")

    def stop(self, timeout: float = 10.0) -> int | None:
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return process.returncode

    def log_tail(self, size: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-size:] if self.log_path.exists() else ""


class SwitchUnderTest(Managed):
    """`python -m switch serve` with an application (`--twiml-url`, a file path or an http URL), the load
    generator trusted (no per-source rate limit), logging at WARNING so logging costs nothing per call."""

    name = "switch"

    def __init__(
        self,
        workdir: Path,
        app: str,
        *,
        rtp_ports: int = 2000,
        extra_args: Sequence[str] = (),
        log_level: str = "WARNING",
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.sip_port = free_port()
        self.http_port = free_port()
        # Large ranges (media runs) below the single ports and the kernel's ephemeral range, which the
        # generator's and other programs' sockets fragment.
        where = {"low": 2000, "high": 15000} if rtp_ports > 2000 else {}
        low = free_range(rtp_ports, align=2, tcp=False, remember=False, **where)
        command = [
            sys.executable, "-m", "switch", "serve",
            "--host", "127.0.0.1",
            "--sip-port", str(self.sip_port),
            "--http-port", str(self.http_port),
            "--rtp-ports", f"{low}-{low + rtp_ports - 1}",
            "--data-dir", str(workdir / "data"),
            "--force-rport",
            "--egress-allow", "127.0.0.0/8",
            "--trusted-sources", "127.0.0.0/8",
            "--twiml-url", app,
            "--log-level", log_level,
            "--drain-timeout", "1",
        ]  # fmt: skip
        super().__init__(command + list(extra_args), workdir / "switch.log")

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.sip_port}"

    def start(self, timeout: float = 30.0) -> SwitchUnderTest:
        self._launch()
        self._wait_bound(self.sip_port, socket.SOCK_STREAM, timeout)
        self._wait_bound(self.sip_port, socket.SOCK_DGRAM, timeout)
        time.sleep(0.2)  # the TCP listener is bound just after UDP: let start-up finish
        return self


class WebhookApp(Managed):
    """bench.load.webhook in its own process: every request gets the same TwiML."""

    name = "webhook"

    def __init__(self, workdir: Path, twiml: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        super().__init__(
            [sys.executable, "-m", "bench.load.webhook", str(self.port), twiml], workdir / "webhook.log"
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/voice"

    def start(self, timeout: float = 20.0) -> WebhookApp:
        self._launch()
        self._wait_bound(self.port, socket.SOCK_STREAM, timeout)
        return self


class SippyPeer(Managed):
    """Sippy B2BUA (PyPI `sippy`) relaying every call to `route` ("127.0.0.1:PORT"), as in RECIPES.md."""

    name = "sippy"

    def __init__(self, workdir: Path, route: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.sip_port = free_port()
        control = free_port()
        env = _env()
        env["SIPLOG_LVL"] = "WARN"
        command = [
            "b2bua", "-f",
            "--sip_address=127.0.0.1", f"--sip_port={self.sip_port}",
            f"--static_route={route}",
            "--auth_enable=off", "--acct_enable=off", "--digest_auth=off",
            f"--b2bua_socket=udp:127.0.0.1:{control}",
            f"--pidfile={workdir / 'b2bua.pid'}", f"--logfile={workdir / 'b2bua.log'}",
        ]  # fmt: skip
        super().__init__(command, workdir / "sippy.out", env)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.sip_port}"

    def start(self, timeout: float = 30.0) -> SippyPeer:
        self._launch()
        self._wait_bound(self.sip_port, socket.SOCK_DGRAM, timeout)
        time.sleep(0.5)
        return self
