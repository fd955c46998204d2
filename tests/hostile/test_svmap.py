"""SIPVicious svmap (from 127.0.0.66) learns the switch exists but no product version."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.helpers.ports import free_udp_port
from tests.helpers.switch_process import SwitchProcess
from tests.hostile.run_corpus import reject_app

_ROW = re.compile(r"^\|\s*(127\.0\.0\.1:\d+)\s*\|\s*(.*?)\s*\|$", re.M)


def test_svmap_sees_no_version(tmp_path: Path) -> None:
    if shutil.which("svmap") is None:
        pytest.skip("svmap not installed (apt-get install sipvicious)")
    with SwitchProcess(reject_app(tmp_path), rtp_ports=20) as switch:
        home = tempfile.mkdtemp(dir=tmp_path)
        port = free_udp_port("127.0.0.66")
        command = ["svmap", "-b", "127.0.0.66", "-x", "127.0.0.66", "-P", str(port)]
        command += ["-p", str(switch.sip_port), "127.0.0.1"]
        done = subprocess.run(
            command, env=dict(os.environ, HOME=home), capture_output=True, text=True, timeout=60
        )
    rows = _ROW.findall(done.stdout)
    assert rows == [(f"127.0.0.1:{switch.sip_port}", "switch")], done.stdout + done.stderr
