"""Load harness: drive the switch (or Sippy B2BUA) with SIPp on loopback and report what it cost.

    python -m bench.load rate --rate 500 --calls 15000 [--webhook] [--transport tcp]
    python -m bench.load ramp --start 250 --step-seconds 10 --budget 240 [--webhook]
    python -m bench.load memory --rate 800 --checkpoints 10000,100000
    python -m bench.load capacity --rate 100 --calls 1000 --max-calls 100 --hold 2
    python -m bench.load peer --peer sippy --rate 100 --calls 3000 [--sippy-only]
    python -m bench.load full --rate 50 --calls 500
    python -m bench.load media --calls 1000 --seconds 60 [--media-workers N] [--max-calls M --excess K]
                             [--rtp-shared-port]

Prints a readable table on stderr and one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.load.goals import check, format_goals
from bench.load.media import media_run
from bench.load.run import RunResult, capacity_run, full_run, memory_run, peer_run, ramp, rate_run

COLUMNS = (
    ("label", "run", 26),
    ("rate", "rate/s", 7),
    ("attempted", "tried", 7),
    ("succeeded", "ok", 7),
    ("failed", "failed", 6),
    ("retransmissions", "retr", 5),
    ("late_messages", "late", 6),
    ("refused_503", "503", 5),
    ("achieved_cps", "cps", 7),
    ("setup_p50_ms", "p50ms", 6),
    ("setup_p99_ms", "p99ms", 6),
    ("cpu_ms_per_call", "cpu ms/call", 11),
    ("cpu_ms_per_call_net", "net ms/call", 11),
    ("peak_rss_mb", "peakMB", 7),
    ("rss_end_mb", "endMB", 7),
)


def table(results: Sequence[RunResult]) -> str:
    header = " ".join(title.rjust(width) if i else title.ljust(width) for i, (_, title, width) in
                      enumerate(COLUMNS))  # fmt: skip
    lines = [header, "-" * len(header)]
    for result in results:
        data = result.as_dict()
        cells = []
        for i, (key, _, width) in enumerate(COLUMNS):
            value = data[key]
            text = f"{value:.1f}" if isinstance(value, float) and key.endswith("mb") else str(value)
            cells.append(text.ljust(width) if i == 0 else text.rjust(width))
        lines.append(" ".join(cells) + ("" if result.clean else "  NOT CLEAN"))
    return "\n".join(lines)


def _progress(result: RunResult) -> None:
    print(table([result]).splitlines()[-1], file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs here (default: a temp dir)")
    modes = parser.add_subparsers(dest="mode", required=True)
    one = modes.add_parser("rate", help="one run at a fixed rate")
    one.add_argument("--rate", type=float, default=200.0)
    one.add_argument("--calls", type=int, default=2000)
    one.add_argument("--limit", type=int, default=5000, help="most calls up at once (SIPp -l)")
    one.add_argument("--webhook", action="store_true", help="the application is an HTTP webhook")
    one.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    up = modes.add_parser("ramp", help="find the highest clean rate (0 failed, 0 retransmissions)")
    up.add_argument("--start", type=float, default=250.0)
    up.add_argument("--step-seconds", type=float, default=10.0)
    up.add_argument("--budget", type=float, default=240.0, help="seconds for the whole ramp")
    up.add_argument("--max-rate", type=float, default=4000.0)
    up.add_argument("--webhook", action="store_true")
    mem = modes.add_parser("memory", help="RSS after cumulative call counts on one switch")
    mem.add_argument("--rate", type=float, default=500.0)
    mem.add_argument("--checkpoints", default="10000,100000")
    cap = modes.add_parser("capacity", help="drive past --max-calls: the excess must get 503")
    cap.add_argument("--rate", type=float, default=100.0)
    cap.add_argument("--calls", type=int, default=1000)
    cap.add_argument("--max-calls", type=int, default=100)
    cap.add_argument("--hold", type=float, default=2.0, help="seconds each admitted call lasts")
    peer = modes.add_parser("peer", help="Sippy B2BUA vs the switch's <Dial><Sip>, same caller and UAS")
    peer.add_argument("--peer", choices=("sippy",), default="sippy")
    peer.add_argument("--rate", type=float, default=100.0)
    peer.add_argument("--calls", type=int, default=3000)
    peer.add_argument("--hold-ms", type=int, default=0)
    peer.add_argument("--sippy-only", action="store_true", help="skip the switch side (no <Dial> yet)")
    full = modes.add_parser("full", help="full calls: webhook, <Say> of ~1 s, RTP both ways, switch hangs up")
    full.add_argument("--rate", type=float, default=50.0)
    full.add_argument("--calls", type=int, default=500)
    med = modes.add_parser("media", help="bridged calls (<Dial><Sip>) with RTP on every leg: loss, jitter")
    med.add_argument("--calls", type=int, default=100)
    med.add_argument("--seconds", type=float, default=10.0)
    med.add_argument("--setup-rate", type=float, default=200.0, help="calls placed per second")
    med.add_argument("--media-workers", type=int, default=None, help="the switch's flag (default: its own)")
    med.add_argument("--max-calls", type=int, default=0, help="the switch's --max-calls (0: none)")
    med.add_argument("--rtp-shared-port", action="store_true", help="the switch's flag (one RTP port)")
    med.add_argument(
        "--excess", type=int, default=0, help="calls placed while the media runs (past capacity)"
    )
    args = parser.parse_args(argv)
    if args.mode == "media":
        return _media(args, argv)

    document: dict[str, object] = {"mode": args.mode, "argv": list(sys.argv[1:] if argv is None else argv)}
    results: list[RunResult]
    if args.mode == "rate":
        results = [
            rate_run(
                rate=args.rate,
                calls=args.calls,
                webhook=args.webhook,
                limit=args.limit,
                transport=args.transport,
                base=args.workdir,
            )
        ]
    elif args.mode == "ramp":
        best, results = ramp(
            start=args.start,
            step_seconds=args.step_seconds,
            budget_seconds=args.budget,
            webhook=args.webhook,
            max_rate=args.max_rate,
            on_step=_progress,
            base=args.workdir,
        )
        document["best_clean_rate"] = best
    elif args.mode == "memory":
        checkpoints = tuple(int(x) for x in args.checkpoints.split(","))
        results = memory_run(rate=args.rate, checkpoints=checkpoints, base=args.workdir, on_step=_progress)
        document["rss_mb"] = {"start": results[0].rss_start_mb} | {
            str(c): r.rss_end_mb for c, r in zip(checkpoints, results, strict=True)
        }
    elif args.mode == "full":
        results = [full_run(rate=args.rate, calls=args.calls, base=args.workdir)]
    elif args.mode == "capacity":
        results = [
            capacity_run(
                rate=args.rate,
                calls=args.calls,
                max_calls=args.max_calls,
                hold_seconds=args.hold,
                base=args.workdir,
            )
        ]
    else:
        results = peer_run(
            rate=args.rate,
            calls=args.calls,
            hold_ms=args.hold_ms,
            base=args.workdir,
            switch_too=not args.sippy_only,
        )
        per_call = [r.cpu_ms_per_call for r in results]
        if len(per_call) == 2 and per_call[0] and per_call[1]:
            document["cpu_ratio_sippy_over_switch"] = round(per_call[0] / per_call[1], 2)
    document["results"] = [r.as_dict() for r in results]
    goals = check(args.mode, document)
    document["goals"] = [g.as_dict() for g in goals]
    print(table(results), file=sys.stderr)
    print(format_goals(goals), file=sys.stderr)
    print(json.dumps(document, indent=2))
    return 0 if all(r.clean for r in results) or args.mode == "ramp" else 1


def _media(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    result = media_run(
        calls=args.calls,
        seconds=args.seconds,
        setup_rate=args.setup_rate,
        media_workers=args.media_workers,
        max_calls=args.max_calls,
        excess=args.excess,
        shared_port=args.rtp_shared_port,
        base=args.workdir,
    )
    data = result.as_dict()
    for key, value in data.items():
        if key not in ("notes", "target_command"):
            print(f"{key:28} {value}", file=sys.stderr)
    document: dict[str, object] = {
        "mode": "media",
        "argv": list(sys.argv[1:] if argv is None else argv),
        "result": data,
    }
    goals = check("media", document)
    document["goals"] = [g.as_dict() for g in goals]
    print(format_goals(goals), file=sys.stderr)
    print(json.dumps(document, indent=2))
    return 0 if result.clean else 1


if __name__ == "__main__":
    sys.exit(main())
