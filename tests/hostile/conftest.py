"""Shared fixtures: running a runner module inside a private network namespace (loopback only)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest

from tests.helpers.switch_process import REPO_ROOT


def namespace_available() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    return probe.returncode == 0


def run_in_namespace(args: list[str], timeout: float) -> dict[str, Any]:
    """``python -m tests.hostile.run_corpus ARGS`` inside ``unshare -n`` with only lo up; its JSON."""
    if not namespace_available():
        pytest.skip("needs `unshare -n` (root or user namespaces) to keep foreign messages on loopback")
    command = "ip link set lo up && exec " + " ".join(
        [sys.executable, "-m", "tests.hostile.run_corpus", *args]
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), str(REPO_ROOT / "codecs"), env.get("PYTHONPATH", "")]
    )
    done = subprocess.run(
        ["unshare", "-n", "sh", "-c", command],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"runner failed ({done.returncode}):\n{done.stderr[-6000:]}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result
