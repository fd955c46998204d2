"""The switch's shutdown steps are bounded: one that stalls is logged by name and skipped."""

from __future__ import annotations

import asyncio
import logging

import pytest

from switch.app import _bounded


async def test_a_stalled_step_is_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    ran_after = []

    async def stalls() -> None:
        await asyncio.Event().wait()

    with caplog.at_level(logging.ERROR, logger="switch"):
        await _bounded("media", stalls(), timeout=0.05)
        ran_after.append(True)
    assert ran_after == [True]
    assert "shutdown: media did not stop within" in caplog.text


async def test_a_failing_step_is_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise OSError("pipe gone")

    with caplog.at_level(logging.ERROR, logger="switch"):
        await _bounded("store", fails(), timeout=1.0)
    assert "shutdown: store failed to stop" in caplog.text
    assert "pipe gone" in caplog.text


async def test_a_quick_step_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    done = []

    async def quick() -> None:
        done.append(1)

    with caplog.at_level(logging.ERROR, logger="switch"):
        await _bounded("api", quick(), timeout=1.0)
    assert done == [1]
    assert caplog.text == ""
