"""The load harness's readers: SIPp's stat and rtt files, /proc CPU and RSS of a process tree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.load.proc import cpu_seconds, descendants, rss_bytes
from bench.load.run import RunResult
from bench.load.sipp import SippCounters, SippLoad, _last_stats, _rtt, percentile_ms

STATS = (
    "StartTime;OutgoingCall(C);SuccessfulCall(C);FailedCall(C);Retransmissions(C);DeadCallMsgs(C);"
    "refused(P);refused(C)\n"
    "x;10;9;1;0;0;0;0\n"
    "y;2000;1990;10;3;4000;5;521\n"
)


def test_last_stats_row_and_counters(tmp_path: Path) -> None:
    path = tmp_path / "stats.csv"
    path.write_text(STATS)
    counters = SippCounters(_last_stats(path))
    assert counters.attempted == 2000
    assert counters.succeeded == 1990
    assert counters.failed == 10
    assert counters.retransmissions == 3
    assert counters.late_messages == 4000
    assert counters.generic("refused") == 521
    assert counters.generic("admitted") == 0


def test_rtt_rows_sorted_by_completion_and_rate(tmp_path: Path) -> None:
    # Date_ms;response_time_ms;rtd_no, as SIPp writes with -trace_rtt -rtt_freq 1 (rtd 2 is ignored).
    (tmp_path / "load_123_rtt.csv").write_text(
        "Date_ms;response_time_ms;rtd_no\n3000.0;9;1\n1000.0;1;1\n2000.0;4;1\n2500.0;77;2\nbad;line\n"
    )
    setup, done = _rtt(tmp_path)
    assert setup == (1.0, 4.0, 9.0)
    assert done == (1000.0, 2000.0, 3000.0)
    assert SippCounters({}, setup, done).achieved_rate() == 1.0  # 2 intervals over 2 seconds
    assert percentile_ms(setup, 50) == 4.0
    assert percentile_ms((), 99) is None


def test_caller_command_carries_the_load_flags(tmp_path: Path) -> None:
    load = SippLoad(
        "load-uac-invite-expect-bye.xml", tmp_path, 40000, 40002, 40004, 300, target="127.0.0.1:5999", rate=99
    )
    command = load.command
    assert command[1] == "127.0.0.1:5999"
    for flag, value in (("-r", "99"), ("-rp", "1000"), ("-m", "300"), ("-buff_size", "4194304")):
        assert command[command.index(flag) + 1] == value
    assert "-trace_rtt" in command and "-timeout_error" in command
    with pytest.raises(FileNotFoundError):
        SippLoad("no-such-scenario.xml", tmp_path, 1, 2, 3, 1)


def test_clean_means_every_call_ok_and_no_retransmission() -> None:
    result = RunResult("x", 100.0, 10, attempted=10, succeeded=10)
    assert result.clean
    result.retransmissions = 1
    assert not result.clean
    assert result.as_dict()["clean"] is False


BURN = """
import sys, time
end = time.process_time() + 0.3
while time.process_time() < end:
    pass
print("burnt", flush=True)
sys.stdin.read()
"""


def test_proc_reads_a_child_that_burns_cpu() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", BURN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "burnt"  # blocks until the child has used 0.3 s of CPU
        assert child.pid in descendants(os.getpid())
        burnt = cpu_seconds(child.pid)
        assert burnt.total >= 0.29
        assert cpu_seconds(os.getpid()).total >= burnt.total  # the tree includes the child
        assert rss_bytes(child.pid) > 1_000_000
    finally:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.close()
        child.wait(10)
        child.stdout.close()
