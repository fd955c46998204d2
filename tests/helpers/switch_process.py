"""The switch under test as a subprocess: `python -m switch serve` with the short test profile.

Ports are picked free, the data directory is temporary, the log (stderr) is collected by a reader thread, and
`start()` returns once a line containing `switch ready` appears. `stop()` sends SIGTERM, then SIGKILL after a
timeout. Calls are found in the log by their `CallSid=CA...` lines.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from tests.helpers.ports import free_rtp_range, free_sip_port, free_tcp_port

__all__ = ["REPO_ROOT", "SwitchNotReadyError", "SwitchProcess"]

REPO_ROOT = Path(__file__).resolve().parents[2]
_CALL_SID = re.compile(r"CallSid=(CA[0-9a-f]{32})")


class SwitchNotReadyError(RuntimeError):
    """The switch exited or did not log `switch ready` in time; the message carries its log."""


class SwitchProcess:
    """One switch process; a context manager. `twiml_url=None` serves the shipped demo dialplan.

    `trusted_sources` (127.0.0.1/32 by default) exempts the test clients from per-source rate limits;
    attack tools bind 127.0.0.66 and stay limited. Pass None to test the limits themselves.
    """

    def __init__(
        self,
        twiml_url: str | None = None,
        *,
        data_dir: Path | None = None,
        rtp_ports: int = 200,
        extra_args: Sequence[str] = (),
        ready_timeout: float = 20.0,
        log_level: str = "INFO",
        trusted_sources: str | None = "127.0.0.1/32",
    ) -> None:
        self.host = "127.0.0.1"
        self.sip_port = free_sip_port()
        self.http_port = free_tcp_port()
        self.rtp_low, self.rtp_high = free_rtp_range(rtp_ports)
        self._own_dir = data_dir is None
        self.data_dir = Path(tempfile.mkdtemp(prefix="switch-data-")) if data_dir is None else data_dir
        self.twiml_url = twiml_url
        self.ready_timeout = ready_timeout
        self.command: list[str] = [
            sys.executable, "-m", "switch", "serve",
            "--host", self.host,
            "--sip-port", str(self.sip_port),
            "--http-port", str(self.http_port),
            "--rtp-ports", f"{self.rtp_low}-{self.rtp_high}",
            "--data-dir", str(self.data_dir),
            "--force-rport",
            "--egress-allow", "127.0.0.0/8",
            "--t1", "0.05",
            "--drain-timeout", "2",
            "--log-level", log_level,
        ]  # fmt: skip
        if twiml_url is not None:
            self.command += ["--twiml-url", twiml_url]
        if trusted_sources:  # the test clients on 127.0.0.1 burst past per-source rate limits
            self.command += ["--trusted-sources", trusted_sources]
        self.command += list(extra_args)
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    @property
    def target(self) -> str:
        """host:port for SIPp."""
        return f"{self.host}:{self.sip_port}"

    def uri(self, user: str, transport: str | None = None) -> str:
        suffix = f";transport={transport}" if transport else ""
        return f"sip:{user}@{self.host}:{self.sip_port}{suffix}"

    @property
    def log(self) -> str:
        with self._cond:
            return "".join(self._lines)

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def call_sids(self) -> list[str]:
        """CallSids named in the log so far, in order of first appearance."""
        return list(dict.fromkeys(_CALL_SID.findall(self.log)))

    def log_lines(self, containing: str) -> list[str]:
        with self._cond:
            return [line for line in self._lines if containing in line]

    def start(self) -> SwitchProcess:
        env = dict(os.environ)
        paths = [str(REPO_ROOT), str(REPO_ROOT / "codecs"), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        env["PYTHONUNBUFFERED"] = "1"
        self._process = subprocess.Popen(
            self.command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        self._reader = threading.Thread(target=self._read, name="switch-log", daemon=True)
        self._reader.start()
        if not self.wait_for_log("switch ready", self.ready_timeout):
            self.stop()
            raise SwitchNotReadyError(
                f"switch did not log 'switch ready' within {self.ready_timeout} s "
                f"(exit code {self.returncode}); command: {' '.join(self.command)}\n"
                f"--- log ---\n{self.log[-8000:]}"
            )
        return self

    def wait_for_log(self, text: str, timeout: float, *, count: int = 1) -> bool:
        """Block until `text` appears in `count` log lines, or the process exits, or `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if sum(text in line for line in self._lines) >= count:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._exited():
                    return False
                self._cond.wait(min(remaining, 0.2))

    def _exited(self) -> bool:
        reader_done = self._reader is None or not self._reader.is_alive()
        return self._process is not None and self._process.poll() is not None and reader_done

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; return the exit code."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._reader is not None:
            self._reader.join(5)
        if process.stdout is not None:
            process.stdout.close()
        return process.returncode

    def __enter__(self) -> SwitchProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()
