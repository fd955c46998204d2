"""PROTOS c07-sip: all 4,527 cases, three times, against a live switch in a loopback-only namespace.

After every case a valid OPTIONS (fresh Call-ID and branch) must be answered; the process must survive;
grammar-breaking groups must never be accepted (no 2xx); nothing may get a 500; memory after the third
pass must be where the first two left it (no growth per case).  Counts by group go to a JSON file in the
test's tmp dir and into every assertion message.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import pytest

from tests.hostile.conftest import run_in_namespace

GRAMMAR_GROUPS = {
    "sip-method",
    "sip-version",
    "sip-via-version",
    "sip-cseq-integer",
    "sip-cseq-string",
    "sip-content-length",
    "sip-contact-left-paranthesis",
    "sip-contact-right-paranthesis",
    "sip-to-left-paranthesis",
    "sip-to-right-paranthesis",
    "sip-request-crlf",
    "crlf-request",
}


def summarise(run: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per group: how many cases ended with each final status ('none' = dropped, '1xx' = no final)."""
    codes = {int(k): v for k, v in run["codes"].items()}
    table: dict[str, dict[str, int]] = {}
    for group, first, last in run["groups"]:
        counts: collections.Counter[str] = collections.Counter()
        for case in range(first, last + 1):
            got = codes.get(case, [])
            finals = [c for c in got if c >= 200]
            counts[str(finals[0]) if finals else ("1xx" if got else "none")] += 1
        table[group] = dict(sorted(counts.items()))
    return table


@pytest.fixture(scope="module")
def protos_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, Path]:
    run = run_in_namespace(["protos", "--every", "1", "--passes", "3"], timeout=240)
    table = summarise(run)
    out = tmp_path_factory.mktemp("protos") / "protos-by-group.json"
    report = {k: v for k, v in run.items() if k not in ("codes", "groups")} | {"by_group": table}
    out.write_text(json.dumps(report, indent=1))
    text = "\n".join(f"{group}: {counts}" for group, counts in table.items())
    text += f"\nrss_kib={run['rss_kib']} seconds={run['seconds']} (written to {out})"
    return run, text, out


def test_every_case_sent_and_switch_answers_after_each(protos_run: tuple[dict[str, Any], str, Path]) -> None:
    run, text, _ = protos_run
    assert run["hung_at"] is None, text
    assert run["cases_sent"] == 4527, text
    assert run["probes"] == 3 * 4527, text
    assert run["alive_after"], text


def test_grammar_breaking_groups_never_accepted(protos_run: tuple[dict[str, Any], str, Path]) -> None:
    run, text, _ = protos_run
    codes = {int(k): v for k, v in run["codes"].items()}
    accepted = [
        (group, case, codes.get(case))
        for group, first, last in run["groups"]
        if group in GRAMMAR_GROUPS
        for case in range(first, last + 1)
        if any(200 <= c < 300 for c in codes.get(case, []))
    ]
    assert accepted == [], text
    version = [c for case in range(255, 330) for c in codes.get(case, []) if c >= 200]
    assert set(version) <= {400, 505}, text


def test_no_server_error(protos_run: tuple[dict[str, Any], str, Path]) -> None:
    run, text, _ = protos_run
    errors = {case: got for case, got in run["codes"].items() if 500 in got}
    assert errors == {}, text


def test_memory_does_not_grow_per_case(protos_run: tuple[dict[str, Any], str, Path]) -> None:
    run, text, _ = protos_run
    # Before the core refused non-UTF-8 requests, one PROTOS case with such octets in From killed the
    # store's writer thread and every later call record piled up in memory (135 -> 167 MB, +23% a pass).
    # After the fix the Python heap is flat (tracemalloc: 31.6, 30.0, 30.1 MB after passes 1-3) but RSS
    # moves by up to 10% either way (allocator arenas of the media and store threads): 149, 148, 150 MB
    # in one run, 154, 165, 158 in another.  So the third pass is compared with the worst of the first two.
    first, second, third = run["rss_kib"]["after_each_pass"]
    assert third <= max(first, second) * 1.10, text
