"""The command line: help names every setting; a bad value is a clear error with exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from switch.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def _switch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "switch", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_help_lists_every_setting() -> None:
    result = _switch("serve", "--help")
    assert result.returncode == 0, result.stderr
    for name in Settings.__dataclass_fields__:
        if name != "extra":
            assert "--" + name.replace("_", "-") in result.stdout


def test_bad_value_exits_2_naming_the_flag() -> None:
    result = _switch("serve", "--sip-port", "99999")
    assert result.returncode == 2
    assert "sip-port" in result.stderr


def test_flags_without_subcommand_mean_serve() -> None:
    result = _switch("--rtp-ports", "nonsense")
    assert result.returncode == 2
    assert "rtp-ports" in result.stderr


def test_a_bad_dialplan_is_a_clear_error(tmp_path: Path) -> None:
    dialplan = tmp_path / "bad.toml"
    dialplan.write_text('[[routes]]\nmatch = "("\ntwiml = "x.xml"\n')
    result = _switch("serve", "--dialplan", str(dialplan), "--data-dir", str(tmp_path), "--sip-port", "0")
    assert result.returncode == 1, result.stderr
    assert "cannot start" in result.stderr and "Traceback" not in result.stderr
