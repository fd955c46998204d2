"""The harness checks itself: each caller scenario against a SIPp UAS playing the switch's part, over UDP and
TCP, so a failure in test_first_call.py points at the switch, not at the scenario."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers.sipp import SCENARIOS, SippResult, SippUas, run_sipp

pytestmark = pytest.mark.e2e

# (caller scenario, the SIPp UAS that plays the switch's part, UAS keys, extra caller args)
PAIRS: dict[str, tuple[str, str, dict[str, str | int], tuple[str, ...]]] = {
    "say-expect-bye": ("uac-invite-say-expect-bye.xml", "selfcheck/uas-answer-then-bye.xml", {}, ()),
    "hangup-expect-200": (
        "uac-invite-hangup-expect-200.xml",
        "selfcheck/uas-answer-expect-bye.xml",
        {},
        ("-d", "300"),
    ),
    "cancel-expect-487": ("uac-cancel-expect-487.xml", "selfcheck/uas-ring-expect-cancel.xml", {}, ()),
    "reject-expect-486": ("uac-reject-expect-486.xml", "selfcheck/uas-reject-486.xml", {}, ()),
    "reject-expect-603": ("uac-reject-expect-603.xml", "selfcheck/uas-reject-603.xml", {}, ()),
    "options-expect-200": ("uac-options-expect-200.xml", "selfcheck/uas-options-200.xml", {}, ()),
}


def _pair(name: str, transport: str, workdir: Path) -> tuple[SippResult, SippResult]:
    caller, callee, keys, extra = PAIRS[name]
    uas = SippUas(str(SCENARIOS / callee), transport, keys=keys, timeout=10, workdir=workdir)
    try:
        result = run_sipp(
            caller,
            uas.target,
            transport,
            service="selfcheck",
            keys={"rtp_port": 40000},
            timeout=10,
            extra_args=extra,
            workdir=workdir,
        )
    finally:
        peer = uas.finish()
    return result, peer


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_every_caller_scenario_completes_against_its_sipp_peer(
    transport: str, sipp_path: str, tmp_path: Path
) -> None:
    with ThreadPoolExecutor(len(PAIRS)) as pool:
        futures = {name: pool.submit(_pair, name, transport, tmp_path) for name in PAIRS}
        results = {name: future.result() for name, future in futures.items()}
    for name, (caller, peer) in results.items():
        assert caller.ok, f"{name}: {caller.describe()}"
        assert caller.successful_calls == 1 and caller.failed_calls == 0, name
        assert peer.ok, f"{name} (peer): {peer.describe()}"


def test_a_caller_scenario_fails_when_the_peer_answers_otherwise(sipp_path: str, tmp_path: Path) -> None:
    # The 486 caller against a UAS that sends 603 must fail: the scenarios really check the status code.
    uas = SippUas(
        str(SCENARIOS / "selfcheck/uas-reject-603.xml"),
        "udp",
        timeout=4,
        workdir=tmp_path,
    )
    try:
        result = run_sipp(
            "uac-reject-expect-486.xml",
            uas.target,
            "udp",
            service="x",
            keys={"rtp_port": 40000},
            timeout=3,
            workdir=tmp_path,
        )
    finally:
        uas.kill()
    assert not result.ok
    assert result.exit_code != 0
    assert result.failed_calls == 1
    assert "SIP/2.0 603 Rejected" in result.messages
