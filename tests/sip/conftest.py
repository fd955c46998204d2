"""The SIP conformance corpora (RFC 4475, RFC 5118) as parametrised fixtures.

The corpus lives outside the repository, at ``../shared/conformance`` from the repo root. If it is
missing, collection fails loudly: these tests must never be skipped silently.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pytest

CONFORMANCE = Path(__file__).resolve().parents[2].parent / "shared" / "conformance"


@dataclass(frozen=True)
class Vector:
    """One torture message and what EXPECTED.tsv says about it."""

    corpus: str  # "rfc4475", "rfc5118/crlf" or "rfc5118" (the LF-only originals)
    name: str
    data: bytes
    verdict: str  # valid / invalid
    parser: str  # accept / reject / either (as published)
    expected: tuple[str, ...]  # acceptable UAS outcomes: "400", "drop", "!400"...

    @property
    def id(self) -> str:
        return f"{self.corpus}/{self.name}"


def _load(corpus: str) -> list[Vector]:
    folder = CONFORMANCE / corpus
    table = folder.parent / "EXPECTED.tsv" if corpus.endswith("/crlf") else folder / "EXPECTED.tsv"
    if not table.is_file():
        raise FileNotFoundError(f"conformance corpus missing: {table}")
    with table.open(newline="", encoding="utf-8") as fh:
        rows = {row["name"]: row for row in csv.DictReader(fh, delimiter="\t")}
    vectors = []
    for path in sorted(folder.glob("*.dat")):
        row = rows[path.stem]
        vectors.append(
            Vector(
                corpus,
                path.stem,
                path.read_bytes(),
                row["verdict"],
                row["parser"],
                tuple(row["expected"].split("|")),
            )
        )
    if not vectors:
        raise FileNotFoundError(f"no .dat files in {folder}")
    return vectors


ALL_VECTORS: list[Vector] = _load("rfc4475") + _load("rfc5118/crlf") + _load("rfc5118")

# What this parser does where the corpus allows either verdict (each choice is asserted).
EITHER_CHOICES: dict[str, str] = {
    "rfc4475/ltgtruri": "reject",  # '<' is not a URI scheme character
    "rfc4475/lwsruri": "reject",  # four elements on the Request-Line
    "rfc4475/lwsstart": "accept",  # extra SP between elements tolerated
    "rfc4475/trws": "accept",  # trailing SP tolerated
    "rfc4475/escruri": "accept",  # URI headers kept as URI headers, never made real headers
    "rfc4475/baddate": "accept",  # Date is not interpreted
    "rfc4475/regbadct": "reject",  # a URI with '?' must be inside <> (RFC 3261 20)
    "rfc4475/badaspec": "accept",  # spaces inside <> ignored
    "rfc4475/insuf": "reject",  # From, To, Call-ID are mandatory
    "rfc4475/multi01": "reject",  # single-valued headers repeated
    "rfc4475/mcl01": "reject",  # conflicting Content-Length
    "rfc5118/crlf/ipv6-bug-abnf-3-colons": "accept",  # RFC 5118 4.10: tolerate
    "rfc5118/ipv6-bug-abnf-3-colons": "accept",
}

# The LF-only RFC 5118 originals whose published Content-Length exceeds the body: over UDP that is
# RFC 4475 'clerr' (Content-Length larger than the message), so the parser rejects them; EXPECTED.tsv
# judges the crlf/ copies, where Content-Length is corrected (see rfc5118/README.md).
SHORT_BODY_ORIGINALS = frozenset({"rfc5118/ipv6-in-sdp", "rfc5118/mult-ip-in-sdp"})


def parser_verdict(vector: Vector) -> str:
    """The verdict this parser must give: accept or reject."""
    if vector.id in SHORT_BODY_ORIGINALS:
        return "reject"
    if vector.parser == "either":
        return EITHER_CHOICES[vector.id]
    return vector.parser


# Vectors that cannot be framed on a stream transport (see conformance/README.md).
STREAM_FRAMING_ERRORS = frozenset({"rfc4475/ncl", "rfc4475/mcl01", "rfc4475/inv2543"})
STREAM_WAITS = frozenset({"rfc4475/clerr"} | SHORT_BODY_ORIGINALS)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "vector" in metafunc.fixturenames:
        metafunc.parametrize("vector", ALL_VECTORS, ids=[v.id for v in ALL_VECTORS])
    if "valid_vector" in metafunc.fixturenames:
        valid = [v for v in ALL_VECTORS if parser_verdict(v) == "accept"]
        metafunc.parametrize("valid_vector", valid, ids=[v.id for v in valid])
