"""Send the conformance corpora to a live switch and print the outcomes as JSON (stdout).

Run it inside a private network namespace that has only loopback, so the hosts these messages name
(192.0.2.x, example.com, PROTOS mutations) can never be reached::

    unshare -n sh -c 'ip link set lo up && exec python -m tests.hostile.run_corpus conformance'
    unshare -n sh -c 'ip link set lo up && exec python -m tests.hostile.run_corpus protos --every 1'

``conformance``: every RFC 4475 message and every RFC 5118 ``crlf/`` message over UDP and over TCP.
Each vector gets its own socket; a valid OPTIONS (fresh Call-ID and branch) follows it on the same
socket, and the responses that came before the OPTIONS' answer (or, for an INVITE that got only 1xx,
until its final response) are the vector's.  ``protos``: see :func:`run_protos`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.helpers.switch_process import REPO_ROOT, SwitchProcess
from tests.hostile.sipwire import Reply, StreamReader, ack_for, options, parse_reply, recv_udp

CORPORA = (REPO_ROOT / ".." / "shared" / "conformance").resolve()
REJECT = '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Reject/></Response>\n'
FRAME_TIMEOUT = 1.0
T1 = 0.005  # the corpora reuse branch values; a short T1 ends each server transaction (64*T1) quickly
_BRANCH = re.compile(rb"branch=([^;,\s]+)", re.I)


def _transaction_key(data: bytes) -> bytes:
    branch = _BRANCH.search(data)
    method = data.lstrip(b"\r\n").split(b" ", 1)[0]
    return (branch.group(1).lower() if branch else b"") + b" " + method


def reject_app(directory: Path) -> str:
    path = directory / "reject.xml"
    path.write_text(REJECT)
    return str(path)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _vectors() -> list[tuple[str, str, Path]]:
    """All vectors, ordered round-robin over their (branch, method) so that reuses are far apart."""
    groups: dict[bytes, list[tuple[str, str, Path]]] = {}
    for corpus, folder in (("rfc4475", CORPORA / "rfc4475"), ("rfc5118", CORPORA / "rfc5118" / "crlf")):
        for path in sorted(folder.glob("*.dat")):
            groups.setdefault(_transaction_key(path.read_bytes()), []).append((corpus, path.stem, path))
    out = []
    queues = sorted(groups.values(), key=len, reverse=True)
    while any(queues):
        for queue in queues:
            if queue:
                out.append(queue.pop(0))
    return out


PIPELINE_GRACE = 0.5
"""Seconds to wait for a TCP vector's answer once the probe behind it was answered."""


def _finals_pending(codes: list[int], is_invite: bool) -> bool:
    return is_invite and bool(codes) and all(code < 200 for code in codes)


def _send_udp(target: tuple[str, int], data: bytes) -> dict[str, Any]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        local = sock.getsockname()
        sock.sendto(data, target)
        probe, probe_id = options(target, local)
        sock.sendto(probe, target)
        codes: list[int] = []
        probe_status = None
        deadline = time.monotonic() + 5.0
        is_invite = data.lstrip(b"\r\n").upper().startswith(b"INVITE")
        while time.monotonic() < deadline:
            reply = recv_udp(sock, 0.5 if probe_status is None else 3.0)
            if reply is None:
                if probe_status is not None:
                    break
                continue
            if reply.call_id == probe_id:
                probe_status = reply.status
            else:
                codes.append(reply.status)
                _ack(sock, target, reply)
            if probe_status is not None and not _finals_pending(codes, is_invite):
                break
        return {"codes": codes, "probe": probe_status, "closed": False}


def _ack(sock: socket.socket, target: tuple[str, int], reply: Reply) -> None:
    if reply.status >= 300:
        ack = ack_for(reply, f"sip:x@{target[0]}:{target[1]}")
        if ack is not None:
            sock.sendto(ack, target)


def _send_tcp(target: tuple[str, int], data: bytes) -> dict[str, Any]:
    with socket.create_connection(target, timeout=5) as sock:
        local = sock.getsockname()
        reader = StreamReader(sock)
        sock.sendall(data)
        probe, probe_id = options(target, local, "TCP")
        try:
            sock.sendall(probe)
        except OSError:
            pass
        codes: list[int] = []
        probe_status = None
        is_invite = data.lstrip(b"\r\n").upper().startswith(b"INVITE")
        deadline = time.monotonic() + FRAME_TIMEOUT + 1.5  # a vector may swallow the probe (baddn)
        while time.monotonic() < deadline:
            reply = reader.next(0.5)
            if reply is None:
                if reader.closed or (probe_status is not None and not _finals_pending(codes, is_invite)):
                    break
                continue
            if reply.call_id == probe_id:
                probe_status = reply.status
                # Pipelined on one connection, the probe's automatic 200 can overtake the vector's answer
                # from the application (a registrar's 401): give it a moment to follow.
                deadline = min(deadline, time.monotonic() + PIPELINE_GRACE)
            else:
                codes.append(reply.status)
            if probe_status is not None and codes and not _finals_pending(codes, is_invite):
                break
        return {"codes": codes, "probe": probe_status, "closed": reader.closed}


def _udp_alive(target: tuple[str, int]) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        for _ in range(3):
            probe, probe_id = options(target, sock.getsockname())
            sock.sendto(probe, target)
            deadline = time.monotonic() + 2.0
            while (reply := recv_udp(sock, max(0.0, deadline - time.monotonic()))) is not None:
                if reply.call_id == probe_id:
                    return reply.status == 200
    return False


def run_conformance() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        switch = SwitchProcess(
            reject_app(Path(tmp)),
            rtp_ports=40,
            extra_args=[
                "--tcp-frame-timeout",
                str(FRAME_TIMEOUT),
                "--sip-rate",
                "0",
                "--t1",
                str(T1),
                "--t4",
                "0.05",
            ],
            log_level="INFO",
        )
        with switch:
            target = (switch.host, switch.sip_port)
            results = []
            last_use: dict[bytes, float] = {}
            for transport, send in (("UDP", _send_udp), ("TCP", _send_tcp)):
                for corpus, name, path in _vectors():
                    data = path.read_bytes()
                    # A request reusing a live transaction's branch is (rightly) a retransmission of it.
                    branches = [_transaction_key(data)]
                    for branch in branches:
                        wait = last_use.get(branch, -1e9) + 70 * T1 - time.monotonic()
                        if wait > 0:
                            time.sleep(wait)
                    began = time.monotonic()
                    outcome = send(target, data)
                    outcome["seconds"] = round(time.monotonic() - began, 2)
                    for branch in branches:
                        last_use[branch] = time.monotonic()
                    outcome.update(corpus=corpus, name=name, transport=transport)
                    results.append(outcome)
            alive = _udp_alive(target) and switch.returncode is None
            log_tail = switch.log[-4000:]
        code = switch.returncode
    return {"results": results, "alive_after": alive, "exit_code": code, "log_tail": log_tail}


# ------------------------------------------------------------------------------------------- PROTOS

_RENDERED_CALL_ID = re.compile(rb"^(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$", re.I | re.M)


def _render(out: Path, port: int) -> None:
    subprocess.run(
        [
            sys.executable,
            str(CORPORA / "protos-c07-sip" / "render_protos.py"),
            "--cases",
            str(CORPORA / "protos-c07-sip" / "testcases"),
            "--out",
            str(out),
            "--local-port",
            str(port),
            "--to",
            "uas@127.0.0.1",
            "--from",
            "user@127.0.0.1",
            "--max-pdu",
            "65507",
            "--teardown",
            "none",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _groups() -> list[tuple[str, int, int]]:
    rows = (CORPORA / "protos-c07-sip" / "GROUPS.tsv").read_text().splitlines()[1:]
    return [(r.split("\t")[0], int(r.split("\t")[1]), int(r.split("\t")[2])) for r in rows if r.strip()]


def run_protos(every: int = 1, limit: int | None = None, passes: int = 1) -> dict[str, Any]:
    """Every case from one UDP socket bound to the rendered local port; after every ``every`` cases a
    valid OPTIONS from a second socket must be answered (a missing answer is retried once, then the run
    stops as hung).  Responses are matched to cases by Call-ID (then by arrival, for mangled Call-IDs);
    each non-2xx final INVITE response is ACKed."""
    with tempfile.TemporaryDirectory(prefix="protos-") as tmp:
        case_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        case_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        case_sock.bind(("127.0.0.1", 0))
        port = case_sock.getsockname()[1]
        rendered = Path(tmp) / "cases"
        _render(rendered, port)
        files = sorted(rendered.glob("*.sip"))[:limit]
        switch = SwitchProcess(
            reject_app(Path(tmp)), rtp_ports=1000, extra_args=["--sip-rate", "0"], log_level="INFO"
        )
        switch.start()
        pid = switch._process.pid if switch._process else 0  # noqa: SLF001
        target = (switch.host, switch.sip_port)
        probe_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe_sock.bind(("127.0.0.1", 0))
        codes: dict[int, list[int]] = {}
        by_call_id: dict[str, int] = {}
        current = 0
        hung_at: int | None = None
        probes = 0
        rss_start = rss_after_warmup = 0

        def drain() -> None:
            case_sock.setblocking(False)
            while True:
                try:
                    data = case_sock.recv(70000)
                except (BlockingIOError, ConnectionRefusedError):
                    break
                reply = parse_reply(data)
                if reply is None:
                    continue
                index = by_call_id.get(reply.call_id, current)
                codes.setdefault(index, []).append(reply.status)
                if reply.status >= 300:
                    ack = ack_for(reply, "sip:uas@127.0.0.1")
                    if ack is not None:
                        case_sock.sendto(ack, target)

        def probe() -> bool:
            for wait in (2.0, 5.0):
                message, probe_id = options(target, probe_sock.getsockname())
                probe_sock.sendto(message, target)
                deadline = time.monotonic() + wait
                while (reply := recv_udp(probe_sock, max(0.0, deadline - time.monotonic()))) is not None:
                    if reply.call_id == probe_id and reply.status == 200:
                        return True
            return False

        def one_pass() -> int | None:
            """Send every case once; the index of the case after which the switch stopped answering."""
            nonlocal current, probes, rss_after_warmup
            for position, path in enumerate(files):
                index = int(path.name.split(".")[0])
                data = path.read_bytes()
                match = _RENDERED_CALL_ID.search(data)
                if match:
                    by_call_id[match.group(1).decode("latin-1")] = index
                current = index
                case_sock.sendto(data, target)
                if (position + 1) % every == 0 or position == len(files) - 1:
                    probes += 1
                    ok = probe()
                    drain()
                    if not ok:
                        return index
                if position == 200 and not rss_after_warmup:
                    rss_after_warmup = rss_kib(pid)
            return None

        rss_start = rss_kib(pid)
        started = time.monotonic()
        rss_passes: list[int] = []
        for _ in range(passes):
            hung_at = one_pass()
            time.sleep(1.0)
            drain()
            time.sleep(3.5)  # transactions (64*T1 = 3.2 s) and rejected calls end before memory is read
            drain()
            rss_passes.append(rss_kib(pid))
            if hung_at is not None:
                break
        elapsed = time.monotonic() - started
        alive = switch.returncode is None and probe()
        exit_code = switch.stop()
        case_sock.close()
        probe_sock.close()
    return {
        "cases_sent": len(files) if hung_at is None else files.index(rendered / f"{hung_at:07d}.sip") + 1,
        "codes": {str(k): v for k, v in sorted(codes.items())},
        "groups": _groups(),
        "hung_at": hung_at,
        "probes": probes,
        "alive_after": alive,
        "exit_code": exit_code,
        "rss_kib": {"start": rss_start, "after_200_cases": rss_after_warmup, "after_each_pass": rss_passes},
        "seconds": round(elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["conformance", "protos"])
    parser.add_argument("--every", type=int, default=1, help="PROTOS: probe after every N cases")
    parser.add_argument("--limit", type=int, default=None, help="PROTOS: only the first N cases")
    parser.add_argument("--passes", type=int, default=1, help="PROTOS: send the whole corpus N times")
    args = parser.parse_args()
    os.chdir(REPO_ROOT)
    result = (
        run_conformance() if args.what == "conformance" else run_protos(args.every, args.limit, args.passes)
    )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
