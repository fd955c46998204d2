"""Media soak: N bridged calls through the switch (`<Dial><Sip>` to a light UAS), RTP on every leg.

    python -m bench.load media --calls 1000 --seconds 60 [--media-workers 2] [--max-calls M --excess K]
                               [--rtp-shared-port]

1. A generator process is forked first (:mod:`bench.load.mediagen`) and binds its source sockets (64 by
   default, shared by all legs: stream ``i`` sends from socket ``i % sources``, each with its own SSRC).
2. The switch starts with `<Response><Dial><Sip>sip:uas@127.0.0.1:UAS</Sip></Dial></Response>` from a file.
3. The caller places `calls` calls at `setup_rate`/s, each INVITE's SDP naming the generator socket of its
   A leg; the callee answers each Dial leg with the generator socket of its B leg. Each leg's stream starts
   when the switch has taken its SDP (the caller's 200, the switch's ACK of the callee's 200). With
   ``--rtp-shared-port`` the switch tells streams from one address apart by SSRC, learned from a stream's
   first packets while no other new stream comes from that address: call ``k`` is placed only once the
   streams of call ``k - sources / 2`` (the same two sockets) came through the switch.
4. The generator sends one 20 ms PCMU packet per leg per tick for `seconds` (2 x calls streams, 50 packets/s
   each) and times every packet the switch sends back. With `excess` > 0 that many more calls are placed
   while the media runs (past `--max-calls`: they should get 503 with Retry-After).
5. The caller hangs every call up (BYE), the callee must see the switch's BYE of every B leg.

Reported: packets sent / received each way, loss inside the switch (the generator's packets that did not
come out of the partner leg, less what the kernel dropped on full socket buffers, read from
/proc/net/snmp), |send interval - 20 ms| p50/p99 per stream, the switch's CPU in µs per RTP packet
(received + sent), the generator's own CPU.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.load.mediagen import GeneratorReport, generator_main, percentiles_ms
from bench.load.proc import PeakSampler, cpu_seconds, rss_bytes
from bench.load.run import _workdir, start_switch
from bench.load.sipua import Callee, Caller, Leg

__all__ = ["MediaResult", "media_run", "udp_errors"]

MB = 1024 * 1024
CONFIGURED_DELAY = 0.04
"""Seconds between a leg's answer (or the switch's ACK) and its first packet."""


@dataclass
class MediaResult:
    label: str
    calls: int
    seconds: float
    media_workers: int | None
    established: int = 0
    setup_failed: int = 0
    setup_s: float = 0.0
    excess_tried: int = 0
    excess_refused_503: int = 0
    excess_with_retry_after: int = 0
    excess_admitted: int = 0
    packets_sent: int = 0  # generator -> switch, all legs
    packets_received: int = 0  # switch -> generator, all legs
    generator_packets_through: int = 0  # the generator's own packets that came out of the partner leg
    loss: int = 0  # generator packets sent to the switch that did not come back out of the partner leg
    loss_ratio: float = 0.0
    kernel_udp_drops: int = 0  # RcvbufErrors on the machine over the run (either side's sockets)
    legs_silent: int = 0  # legs of established calls that received nothing
    pairs_with_loss: int = 0
    loss_a_to_b: int = 0  # caller's packets that did not reach the callee
    loss_b_to_a: int = 0
    lost_per_pair_max: int = 0
    jitter_p50_ms_median: float | None = None  # per stream p50 of |interval - 20 ms|, median over streams
    jitter_p99_ms_median: float | None = None
    jitter_p99_ms_p99: float | None = None  # the 99th percentile, over streams, of the per-stream p99
    jitter_p99_ms_max: float | None = None
    streams_p99_over_2ms: int = 0
    switch_cpu_s: float = 0.0
    switch_us_per_packet: float | None = None
    switch_cores: float = 0.0
    generator_cpu_s: float = 0.0
    generator_cores: float = 0.0
    generator_late_ticks: int = 0
    generator_ticks: int = 0
    generator_unattributed: int = 0  # switch RTP packets the generator could give to no leg
    streams_unconfirmed: int = 0  # streams of established calls that never came through before the window
    generator_sources: int = 0
    switch_bursts: dict[str, float] = field(default_factory=dict)  # mediagen.burst_stats
    hangups_ok: int = 0
    callee_byes: int = 0
    rss_start_mb: float = 0.0
    peak_rss_mb: float = 0.0
    target_command: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return (
            self.established == self.calls
            and self.loss == 0
            and self.legs_silent == 0
            and self.hangups_ok == self.calls
            and self.callee_byes == self.calls
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["clean"] = self.clean
        return data


def udp_errors() -> int:
    """RcvbufErrors of the whole machine's UDP (IPv4), from /proc/net/snmp."""
    lines = [
        line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")
    ]
    names, values = lines[0], lines[1]
    return int(values[names.index("RcvbufErrors")])


class _Link:
    """The parent's end of the generator's pipe: a thread reads every message and hands it to the loop."""

    def __init__(self, conn: Any, streams: int) -> None:
        self.conn = conn
        self.confirmed = np.zeros(streams, np.bool_)
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._replies: asyncio.Queue[Any] = asyncio.Queue()
        self._thread = threading.Thread(target=self._read, name="generator-link", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                return
            self._loop.call_soon_threadsafe(self._dispatch, message)

    def _dispatch(self, message: Any) -> None:
        if message[0] == "confirmed":
            self.confirmed[message[1]] = True
            self._changed.set()
        else:
            self._replies.put_nowait(message)

    def start(self, streams: list[tuple[int, str, int]]) -> None:
        """The generator sends these streams ``(stream, switch host, switch port)`` from its next tick."""
        self.conn.send(("start", streams))

    async def confirmed_by(self, streams: list[int], deadline: float) -> bool:
        """Wait until every one of ``streams`` came through the switch (False at ``deadline``)."""
        while not self.confirmed[streams].all():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                return False
        return True

    async def reply(self, kind: str) -> Any:
        message = await asyncio.wait_for(self._replies.get(), 300)
        assert message[0] == kind, message
        return message


def _answered(on_answer: Callable[[Leg], None], leg: Leg, _: object) -> None:
    on_answer(leg)


async def _place(
    caller: Caller,
    first: int,
    count: int,
    rate: float,
    tag: str,
    *,
    on_answer: Callable[[Leg], None] | None = None,
    gate: Callable[[int, list[Leg]], Awaitable[None]] | None = None,
) -> list[Leg]:
    """Place ``count`` calls at ``rate``/s; ``on_answer(leg)`` when each is answered; ``await gate(k)``
    before placing call ``k``."""
    legs: list[Leg] = []
    started = time.monotonic()
    for k in range(count):
        if gate is not None:
            await gate(first + k, legs)
        delay = started + k / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        leg = caller.call(first + k, tag)
        if on_answer is not None and leg.answered is not None:
            leg.answered.add_done_callback(functools.partial(_answered, on_answer, leg))
        legs.append(leg)
    futures = [leg.answered for leg in legs if leg.answered is not None]
    await asyncio.wait_for(asyncio.gather(*futures), 60)
    return legs


async def _drive(
    result: MediaResult,
    conn: Any,
    sources: list[tuple[str, int]],
    switch_target: tuple[str, int],
    callee: Callee,
    *,
    calls: int,
    seconds: float,
    setup_rate: float,
    excess: int,
    switch_pid: int,
    window: int,
) -> GeneratorReport:
    caller = Caller(switch_target, lambda index: sources[2 * index])
    await caller.open()
    link = _Link(conn, len(sources))
    host = switch_target[0]
    tag = "media"
    loop = asyncio.get_running_loop()

    def started(stream: int, leg: Leg) -> None:
        """The switch answered call ``leg.index`` (its A leg, stream 2k) or acknowledged the callee's 200
        of its Dial leg (stream 2k + 1): it has configured that leg, whose stream starts after a short
        delay (the channel's configuration may still be on its way to a media worker)."""
        if leg.status == 200:
            loop.call_later(CONFIGURED_DELAY, link.start, [(stream, host, leg.switch_rtp_port)])

    callee.on_ack = lambda leg: started(2 * leg.index + 1, leg)

    async def gate(k: int, placed: list[Leg]) -> None:
        """Call ``k`` names the generator sockets of call ``k - window``: a shared switch port can only
        learn a stream's SSRC while no other new stream comes from the same address, so call ``k`` waits
        until the switch knows the streams of that call."""
        earlier = k - window
        if earlier < 0:
            return
        leg = placed[earlier]
        if leg.answered is not None and not leg.answered.done():
            await asyncio.wait_for(asyncio.shield(leg.answered), 60)
        if leg.status != 200:
            return
        deadline = time.monotonic() + 5
        while leg.index not in callee.by_index and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)  # the switch answers the caller first, then dials the callee
        if not await link.confirmed_by([2 * earlier, 2 * earlier + 1], deadline):
            result.notes.append(f"call {earlier}: its streams not known to the switch after 5 s")

    try:
        t0 = time.monotonic()
        legs = await _place(
            caller,
            0,
            calls,
            setup_rate,
            tag,
            on_answer=lambda leg: started(2 * leg.index, leg),
            gate=gate if window else None,
        )
        result.setup_s = round(time.monotonic() - t0, 2)
        await asyncio.sleep(0.5)  # the last calls' Dial legs are answered and bridged
        deadline = time.monotonic() + 10  # under load the switch may dial some callees later still
        while time.monotonic() < deadline and any(  # noqa: ASYNC110
            leg.status == 200 and leg.index not in callee.by_index for leg in legs
        ):
            await asyncio.sleep(0.1)
        up = [leg for leg in legs if leg.status == 200 and leg.index in callee.by_index]
        result.established = len(up)
        result.setup_failed = calls - len(up)
        streams = [s for leg in up for s in (2 * leg.index, 2 * leg.index + 1)]
        await link.confirmed_by(streams, time.monotonic() + 10)
        result.streams_unconfirmed = int((~link.confirmed[streams]).sum())
        drops0 = udp_errors()
        cpu0 = cpu_seconds(switch_pid)
        conn.send(("measure", seconds))
        await link.reply("started")
        run0 = time.monotonic()
        if excess:
            await asyncio.sleep(min(2.0, seconds / 4))
            extra = await _place(caller, calls, excess, setup_rate, "excess")
            result.excess_tried = excess
            result.excess_refused_503 = sum(1 for leg in extra if leg.status == 503)
            result.excess_with_retry_after = sum(1 for leg in extra if leg.status == 503 and leg.retry_after)
            result.excess_admitted = sum(1 for leg in extra if leg.status == 200)
            for leg in extra:
                if leg.status == 200:
                    caller.bye(leg)
        report: GeneratorReport = (await link.reply("report"))[1]
        cpu1 = cpu_seconds(switch_pid)
        elapsed = time.monotonic() - run0
        result.kernel_udp_drops = udp_errors() - drops0
        result.switch_cpu_s = round((cpu1 - cpu0).total, 3)
        result.switch_cores = round(result.switch_cpu_s / elapsed, 3)
        for leg in up:
            caller.bye(leg)
        byes = [leg.bye_done for leg in up if leg.bye_done is not None]
        if byes:  # a BYE no answer came for within its 7 retransmissions (63.5 s) counts as not ok
            await asyncio.wait(byes, timeout=70)
        result.hangups_ok = sum(1 for bye in byes if bye.done() and bye.result() == 200)
        deadline = time.monotonic() + 10
        while callee.byes < len(up) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        result.callee_byes = callee.byes
        return report
    finally:
        caller.close()
        callee.close()


def media_run(
    *,
    calls: int,
    seconds: float,
    setup_rate: float = 200.0,
    media_workers: int | None = None,
    max_calls: int = 0,
    excess: int = 0,
    sources: int = 64,
    shared_port: bool = False,
    base: Path | None = None,
) -> MediaResult:
    workdir = _workdir(base, f"media-{calls}-{seconds:g}")
    label = f"media {calls} bridged x {seconds:g}s"
    result = MediaResult(label, calls, seconds, media_workers)
    # On a shared switch port a new stream is learned by its address: calls naming the same generator
    # sockets are set up one after the other (see _drive's gate).
    window = sources // 2 if shared_port else 0
    result.generator_sources = sources
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe()
    generator = context.Process(
        target=generator_main, args=(child, 2 * (calls + excess), sources), daemon=True
    )
    generator.start()
    try:
        addresses: list[tuple[str, int]] = parent.recv()
        callee = Callee(lambda index: addresses[2 * index + 1])
        extra: list[str] = []
        if media_workers is not None:
            extra += ["--media-workers", str(media_workers)]
        if max_calls:
            extra += ["--max-calls", str(max_calls)]
        if shared_port:
            extra += ["--rtp-shared-port"]
        rtp_ports = max(2000, 4 * (calls + excess) + 200)
        report = asyncio.run(
            _with_switch(
                result,
                parent,
                addresses,
                callee,
                workdir,
                extra,
                rtp_ports,
                calls,
                seconds,
                setup_rate,
                excess,
                window,
            )  # fmt: skip
        )
        _summarise(result, report, calls)
    finally:
        try:
            parent.send("quit")
        except OSError:
            pass
        generator.join(10)
        if generator.is_alive():
            generator.kill()
    return result


async def _with_switch(
    result: MediaResult,
    conn: Any,
    addresses: list[tuple[str, int]],
    callee: Callee,
    workdir: Path,
    extra: list[str],
    rtp_ports: int,
    calls: int,
    seconds: float,
    setup_rate: float,
    excess: int,
    window: int,
) -> GeneratorReport:
    await callee.open()
    twiml = f"<Response><Dial><Sip>sip:uas@127.0.0.1:{callee.port}</Sip></Dial></Response>"
    loop = asyncio.get_running_loop()
    switch, _ = await loop.run_in_executor(
        None, lambda: start_switch(workdir, twiml=twiml, extra_args=tuple(extra), rtp_ports=rtp_ports)
    )
    result.target_command = " ".join(switch.command)
    try:
        result.rss_start_mb = round(rss_bytes(switch.pid) / MB, 1)
        with PeakSampler(switch.pid) as sampler:
            host, port = switch.target.split(":")
            report = await _drive(
                result, conn, addresses, (host, int(port)), callee,
                calls=calls, seconds=seconds, setup_rate=setup_rate, excess=excess, switch_pid=switch.pid,
                window=window,
            )  # fmt: skip
        result.peak_rss_mb = round(sampler.peak / MB, 1)
        return report
    finally:
        await loop.run_in_executor(None, switch.stop)
        tail = switch.log_tail(1500)
        if "Traceback" in tail or "ERROR" in tail:
            result.notes.append(tail)


def _summarise(result: MediaResult, report: GeneratorReport, calls: int) -> None:
    pairs = np.arange(calls)
    a, b = 2 * pairs, 2 * pairs + 1
    up = report.sent[a] > 0
    sent = report.sent[: 2 * calls]
    result.packets_sent = int(sent.sum())
    result.packets_received = int(report.received[: 2 * calls].sum())
    # The generator's packets sent on leg A come out of the switch on leg B, and the other way round.
    through_b = report.marked[b]
    through_a = report.marked[a]
    lost_ab = np.maximum(0, report.sent[a] - through_b)
    lost_ba = np.maximum(0, report.sent[b] - through_a)
    lost = lost_ab + lost_ba
    result.loss_a_to_b = int(lost_ab[up].sum())
    result.loss_b_to_a = int(lost_ba[up].sum())
    result.lost_per_pair_max = int(lost[up].max()) if up.any() else 0
    result.generator_packets_through = int((through_a + through_b)[up].sum())
    result.loss = int(lost[up].sum())
    result.loss_ratio = round(result.loss / max(1, result.packets_sent), 6)
    result.pairs_with_loss = int((lost[up] > 0).sum())
    legs_up = np.concatenate([a[up], b[up]])
    result.legs_silent = int((report.received[legs_up] == 0).sum())
    hist = report.histogram[legs_up]
    if len(hist) and hist.sum():
        p50 = percentiles_ms(hist, 50)
        p99 = percentiles_ms(hist, 99)
        result.jitter_p50_ms_median = round(float(np.nanmedian(p50)), 3)
        result.jitter_p99_ms_median = round(float(np.nanmedian(p99)), 3)
        result.jitter_p99_ms_p99 = round(float(np.nanpercentile(p99, 99)), 3)
        result.jitter_p99_ms_max = round(float(np.nanmax(p99)), 3)
        result.streams_p99_over_2ms = int((p99 > 2.0).sum())
    packets = result.packets_sent + result.packets_received
    if packets:
        result.switch_us_per_packet = round(1e6 * result.switch_cpu_s / packets, 3)
    result.generator_cpu_s = round(report.cpu_s, 3)
    result.generator_cores = round(report.cpu_s / max(report.wall_s, 1e-9), 3)
    result.generator_ticks = report.ticks
    result.generator_late_ticks = report.late_ticks
    result.generator_unattributed = report.unattributed
    result.switch_bursts = report.bursts or {}
