"""Fixtures for the end-to-end suites: the external tools, one TwiML server and one switch per session.

A missing tool or a switch that does not start makes the tests FAIL with the reason, never skip.
The switch's `--twiml-url` is the server's `/voice`, which answers by the To user: each test registers its
own user (`twiml_server.on_user("say-udp", "<Response>...")`) and dials it, so tests can run at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from tests.helpers.switch_process import SwitchNotReadyError, SwitchProcess
from tests.helpers.tools import ToolMissingError, require_tool
from tests.helpers.twiml_server import TwimlServer


def _tool(name: str) -> str:
    try:
        return require_tool(name)
    except ToolMissingError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def sipp_path() -> str:
    return _tool("sipp")


@pytest.fixture(scope="session")
def baresip_path() -> str:
    return _tool("baresip")


@pytest.fixture(scope="session")
def twiml_server() -> Iterator[TwimlServer]:
    with TwimlServer() as server:
        server.dispatch_by_to("/voice")
        yield server


def start_switch(twiml_url: str | None, extra_args: Sequence[str] = ()) -> SwitchProcess:
    """Start a switch or fail the test with its log."""
    process = SwitchProcess(twiml_url, extra_args=extra_args)
    try:
        return process.start()
    except SwitchNotReadyError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def switch(twiml_server: TwimlServer) -> Iterator[SwitchProcess]:
    process = start_switch(twiml_server.url("/voice"))
    try:
        yield process
    finally:
        process.stop()
