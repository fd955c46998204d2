"""RFC 4475 and RFC 5118 torture messages through ``SipCore.receive`` (UDP, force_rport).

The final response the core sends (or none = drop) must be one of the ``expected`` alternatives of the
folder's EXPECTED.tsv.  INVITEs that pass the automatic rules reach a minimal application that answers
486 or 200 (both are run).  The corpus lives outside the repository; if it is missing these tests fail.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from switch.sip.core import CoreSettings, Outgoing, SipCore
from switch.sip.events import RequestReceived
from switch.sip.message import make_response
from switch.sip.timers import TimerSettings

CONFORMANCE = Path(__file__).resolve().parents[2].parent / "shared" / "conformance"
SOURCE = ("127.0.0.1", 40000)

# name -> reason, for cases this core knowingly does not meet (strict xfail).
KNOWN_UNMET: dict[str, str] = {}


def _vectors() -> list[tuple[str, str, bytes, tuple[str, ...]]]:
    out: list[tuple[str, str, bytes, tuple[str, ...]]] = []
    for corpus, table in (
        ("rfc4475", CONFORMANCE / "rfc4475" / "EXPECTED.tsv"),
        ("rfc5118/crlf", CONFORMANCE / "rfc5118" / "EXPECTED.tsv"),
    ):
        if not table.is_file():
            raise FileNotFoundError(f"conformance corpus missing: {table}")
        with table.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                data = (CONFORMANCE / corpus / f"{row['name']}.dat").read_bytes()
                out.append((corpus, row["name"], data, tuple(row["expected"].split("|"))))
    return out


VECTORS = _vectors()


def test_corpus_is_complete() -> None:
    assert sum(1 for corpus, *_ in VECTORS if corpus == "rfc4475") == 50
    assert sum(1 for corpus, *_ in VECTORS if corpus == "rfc5118/crlf") == 12


def _final_statuses(out: list[Outgoing]) -> list[int]:
    statuses = []
    for item in out:
        assert item.destination == SOURCE, "force_rport: every response goes back to the packet's source"
        # status line only: a 400 echoes the request's (possibly malformed) Via values verbatim
        version, code, _ = item.data.split(b" ", 2)
        assert version == b"SIP/2.0", "a UAS core answering one request sends only responses"
        if int(code) >= 200:
            statuses.append(int(code))
    return statuses


def _outcome_ok(status: int | None, expected: tuple[str, ...]) -> bool:
    for alt in expected:
        if alt == "drop" and status is None:
            return True
        if alt == "!400" and status is not None and status not in (400, 505):
            return True
        if alt.isdigit() and status == int(alt):
            return True
    return False


def _params() -> list[object]:
    params: list[object] = []
    for corpus, name, data, expected in VECTORS:
        for answer in (486, 200):
            marks = []
            if name in KNOWN_UNMET:
                marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_UNMET[name]))
            params.append(
                pytest.param(data, expected, answer, id=f"{corpus}/{name}-app{answer}", marks=marks)
            )
    return params


@pytest.mark.parametrize(("data", "expected", "answer"), _params())
def test_core_answers_as_expected(data: bytes, expected: tuple[str, ...], answer: int) -> None:
    core = SipCore(CoreSettings(TimerSettings(), "127.0.0.1", 5060, force_rport=True))
    core.receive(data, SOURCE, 0.0)
    while (event := core.next_event()) is not None:
        assert isinstance(event, RequestReceived)
        assert core.respond(event, make_response(event.request, answer, to_tag="app"), 0.1)
    statuses = _final_statuses(core.datagrams_to_send())
    assert len(statuses) <= 1, f"more than one final response: {statuses}"
    status = statuses[0] if statuses else None
    assert _outcome_ok(status, expected), f"core sent {status}, expected one of {expected}"
    assert core.counters.received == 1
    assert core.counters.dropped == (1 if status is None else 0)
