"""A late tick (the clock skipped ticks) drops the frames a stream buffered during the stall instead of
playing them late: the receive delay stays what it was."""

from __future__ import annotations

from switch.media.channels import FRAME, ChannelTable
from switch.media.pipeline import Pipeline
from switch.media.recorder import WavWriter


def _stream_of(frames: int) -> tuple[Pipeline, int]:
    table = ChannelTable()
    slots: dict[int, int] = {}
    pipeline = Pipeline(table, slots.__getitem__, WavWriter())
    slot = table.add()
    pipeline.added(slot)
    table.configure(slot, codec="PCMU", payload_type=0, sending=True, expect_rx=True, marker=False)
    for k in range(frames):
        pipeline.jitter.put(slot, 1000 + k * FRAME, bytes([k]) * FRAME, k * 0.020)
    return pipeline, slot


def test_a_late_tick_skips_the_frames_of_the_stall() -> None:
    pipeline, slot = _stream_of(12)
    pipeline.run(1)
    delay = pipeline.jitter.delay(slot)
    pipeline.run(1)
    assert pipeline.jitter.delay(slot) == delay - FRAME
    pipeline.run(5)  # four ticks skipped: four frames dropped and one played
    assert pipeline.jitter.delay(slot) == delay - 6 * FRAME
    assert pipeline.jitter.stats(slot).concealed_frames == 0


def test_a_late_tick_keeps_the_newest_frame() -> None:
    pipeline, slot = _stream_of(4)
    pipeline.run(1)
    pipeline.run(20)
    assert pipeline.jitter.delay(slot) == 0  # the newest frame was played, not skipped
    assert pipeline.jitter.stats(slot).late == 0
    pipeline.jitter.put(slot, 1000 + 4 * FRAME, bytes(FRAME), 0.1)
    assert pipeline.jitter.stats(slot).late == 0  # the next packet is on time
