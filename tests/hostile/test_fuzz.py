"""Bounded atheris runs of every fuzz target (fuzz/*.py) in a subprocess, on a copy of its seed corpus."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.switch_process import REPO_ROOT

FUZZ = REPO_ROOT / "fuzz"
TARGETS = {"sip_message": "sip", "sip_stream": "sip_stream", "sdp": "sdp", "rtp": "rtp", "twiml": "twiml"}
KNOWN: dict[str, str] = {}  # target: reason, for a target whose known crasher is not fixed yet (strict xfail)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzz_target(target: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if importlib.util.find_spec("atheris") is None:
        pytest.fail("atheris is not installed: it is in the test extras (pip install -e '.[test]')")
    if target in KNOWN:
        request.applymarker(pytest.mark.xfail(strict=True, reason=KNOWN[target]))
    corpus = tmp_path / "corpus"
    shutil.copytree(FUZZ / "corpus" / TARGETS[target], corpus)
    done = subprocess.run(
        [
            sys.executable,
            str(FUZZ / f"{target}.py"),
            "-runs=30000",
            "-max_total_time=10",
            "-max_len=4096",
            "-seed=1",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    assert done.returncode == 0 and not crashes, f"{target}: {crashes}\n{done.stderr[-3000:]}"
    assert "Done" in done.stderr
