"""baresip 1.0 as a headless softphone for end-to-end tests.

Each instance gets its own config directory (RECIPES.md): a null sound card, an `aufile` microphone playing a
WAV (pad it: the call ends when the file ends), `sndfile` recording what it sent and heard (`dump-*-enc.wav`,
`dump-*-dec.wav`), and `ctrl_tcp` on a free port to dial, answer and hang up with JSON netstrings.
"""

from __future__ import annotations

import json
import queue
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.helpers.ports import free_rtp_range, free_sip_port, free_tcp_port, is_free
from tests.helpers.tools import require_tool

__all__ = ["Baresip", "BaresipError", "baresip_module_path"]

JsonObject = dict[str, Any]


class BaresipError(RuntimeError):
    """baresip did not start, refused a command, or an expected event did not come."""


def baresip_module_path() -> Path:
    """The folder holding baresip's modules (g711.so, aufile.so, ...)."""
    for candidate in (Path("/usr/lib/baresip/modules"), Path("/usr/local/lib/baresip/modules")):
        if (candidate / "g711.so").exists():
            return candidate
    found = subprocess.run(["dpkg", "-L", "baresip-core"], capture_output=True, text=True, check=False).stdout
    for line in found.splitlines():
        if line.endswith("/modules"):
            return Path(line)
    raise BaresipError("baresip modules not found (apt-get install baresip-core)")


def _config(sip_port: int, ctrl_port: int, rtp: tuple[int, int], source: Path, records: Path) -> str:
    return "\n".join(
        [
            "poll_method epoll",
            "net_interface 127.0.0.1",
            f"sip_listen 127.0.0.1:{sip_port}",
            f"audio_source aufile,{source}",
            "audio_player aubridge,nullsink",
            "audio_alert aubridge,nullsink",
            "ausrc_srate 8000",
            "auplay_srate 8000",
            "ausrc_channels 1",
            "auplay_channels 1",
            f"rtp_ports {rtp[0]}-{rtp[1]}",
            "rtp_timeout 0",
            f"module_path {baresip_module_path()}",
            "module g711.so",
            "module aufile.so",
            "module aubridge.so",
            "module sndfile.so",
            f"snd_path {records}",
            "module_tmp account.so",
            "module_app menu.so",
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen 127.0.0.1:{ctrl_port}",
            "",
        ]
    )


class Baresip:
    """One baresip process. `source_wav` is its microphone (8 kHz mono 16-bit); `auto_answer` for a callee."""

    def __init__(
        self,
        source_wav: Path,
        *,
        user: str = "alice",
        auto_answer: bool = False,
        workdir: Path | None = None,
    ) -> None:
        self.executable = require_tool("baresip")
        self.dir = Path(tempfile.mkdtemp(prefix="baresip-", dir=workdir))
        self.records = self.dir / "records"
        self.records.mkdir()
        self.sip_port = free_sip_port(span=2)  # baresip binds PORT and PORT+1
        self.ctrl_port = free_tcp_port()
        rtp = free_rtp_range(20)
        (self.dir / "config").write_text(
            _config(self.sip_port, self.ctrl_port, rtp, source_wav, self.records)
        )
        answer = ";answermode=auto" if auto_answer else ";answermode=manual"
        account = f"<sip:{user}@127.0.0.1:{self.sip_port}>;regint=0{answer};audio_codecs=PCMU,PCMA\n"
        (self.dir / "accounts").write_text(account)
        self.uri = f"sip:{user}@127.0.0.1:{self.sip_port}"
        self._log = (self.dir / "baresip.log").open("wb")
        self._process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._events: queue.Queue[JsonObject] = queue.Queue()
        self._responses: queue.Queue[JsonObject] = queue.Queue()
        self._reader: threading.Thread | None = None
        self._token = 0

    @property
    def log(self) -> str:
        path = self.dir / "baresip.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, timeout: float = 10.0) -> Baresip:
        self._process = subprocess.Popen(
            [self.executable, "-f", str(self.dir)],
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._process.poll() is None:
            if not is_free(self.ctrl_port, udp=False, tcp=True):
                try:
                    self._sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=2)
                    break
                except OSError:
                    pass
            time.sleep(0.05)
        if self._sock is None:
            self.stop()
            raise BaresipError(f"baresip did not open ctrl_tcp on {self.ctrl_port}\n{self.log[-4000:]}")
        self._sock.settimeout(None)
        self._reader = threading.Thread(target=self._read, name=f"baresip-{self.ctrl_port}", daemon=True)
        self._reader.start()
        return self

    def command(self, name: str, params: str = "", timeout: float = 5.0) -> JsonObject:
        """Send a ctrl_tcp command and return its response (BaresipError if not ok)."""
        if self._sock is None:
            raise BaresipError("baresip is not running")
        self._token += 1
        token = f"t{self._token}"
        body = json.dumps({"command": name, "params": params, "token": token}).encode()
        self._sock.sendall(str(len(body)).encode() + b":" + body + b",")
        deadline = time.monotonic() + timeout
        while True:
            try:
                response = self._responses.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise BaresipError(f"no response to {name} {params}\n{self.log[-4000:]}") from None
            if response.get("token") == token:
                break
        if not response.get("ok", False):
            raise BaresipError(f"{name} {params} refused: {response}")
        return response

    def dial(self, uri: str) -> JsonObject:
        return self.command("dial", uri)

    def hangup(self) -> JsonObject:
        return self.command("hangup")

    def wait_event(self, kind: str, timeout: float = 15.0) -> JsonObject:
        """Wait for an event of `kind` (CALL_ESTABLISHED, CALL_CLOSED, ...), dropping others before it."""
        deadline = time.monotonic() + timeout
        seen: list[object] = []
        while True:
            try:
                event = self._events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise BaresipError(
                    f"no {kind} event within {timeout} s; saw {seen}\n{self.log[-4000:]}"
                ) from None
            seen.append(event.get("type"))
            if event.get("type") == kind:
                return event

    def heard(self) -> list[Path]:
        """The recordings of what baresip heard (decoded audio), newest last."""
        return sorted(self.records.glob("dump-*-dec.wav"), key=lambda p: p.stat().st_mtime)

    def sent(self) -> list[Path]:
        return sorted(self.records.glob("dump-*-enc.wav"), key=lambda p: p.stat().st_mtime)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask baresip to quit (flushing its recordings), then terminate or kill it."""
        process = self._process
        if self._sock is not None:
            try:
                body = json.dumps({"command": "quit", "params": "", "token": "quit"}).encode()
                self._sock.sendall(str(len(body)).encode() + b":" + body + b",")
            except OSError:
                pass
        if process is not None:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(2)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._reader is not None:
            self._reader.join(2)
        self._log.close()

    def __enter__(self) -> Baresip:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _read(self) -> None:
        sock = self._sock
        assert sock is not None
        buffer = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while b":" in buffer:
                length_text, _, rest = buffer.partition(b":")
                if not length_text.isdigit():
                    return
                length = int(length_text)
                if len(rest) < length + 1:
                    break
                message = json.loads(rest[:length])
                buffer = rest[length + 1 :]
                target = self._responses if message.get("response") else self._events
                target.put(message)
