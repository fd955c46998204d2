"""Suite-wide rule: under CI (the environment variable CI set, as `.ci/run` does) a skipped test is a failure.

Tests skip when a tool is missing (SIPp, tshark, SIPVicious, `unshare`, the Piper extra) so that a developer
without it can still run the rest; CI installs every one of them, and there a missing tool must not pass
silently. Expected failures (xfail) are not skips and keep their meaning.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, where every tool is installed: {report.longrepr}"
