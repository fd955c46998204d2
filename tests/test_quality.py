"""The house rules run in the suite: ruff on everything, mypy strict on switch/ and the codecs package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_check() -> None:
    result = _run("ruff", "check", "switch", "codecs", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_packages_ship_only_the_project_and_its_data() -> None:
    """The wheel's package discovery finds switch* and voicecodecs only; dialplans ship as switch data."""
    from setuptools import find_packages

    found = set(find_packages(where=str(ROOT), include=["switch*", "voicecodecs*"]))
    found |= set(find_packages(where=str(ROOT / "codecs"), include=["switch*", "voicecodecs*"]))
    assert "voicecodecs" in found and "switch" in found
    assert not any(name.startswith(("tests", "bench")) for name in found)
    demo = ROOT / "switch" / "dialplans" / "demo.xml"
    assert demo.is_file(), "switch/dialplans must point at dialplans/ (the demo ships as package data)"
