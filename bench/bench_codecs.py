"""Codec benchmarks: batched G.711 against audioop per frame, DTMF detection and G.722 per tick.

Run from the repository root: ``python bench/bench_codecs.py``. Prints one JSON object. Each number is
the best of several repetitions (least disturbed by other work on the machine). Takes ~1 s.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "codecs"))

from voicecodecs.dtmf_detect import DtmfDetector  # noqa: E402
from voicecodecs.g711 import ulaw_decode, ulaw_encode  # noqa: E402
from voicecodecs.g722 import G722Decoder, G722Encoder  # noqa: E402
from voicecodecs.plc import Concealer  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

FRAMES, FRAME = 4000, 160


def best_of(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    rng = np.random.default_rng(0)
    pcm = rng.normal(0, 4000, (FRAMES, FRAME)).clip(-32768, 32767).astype(np.int16)
    samples = pcm.size

    encoded = np.empty((FRAMES, FRAME), np.uint8)
    decoded = np.empty((FRAMES, FRAME), np.int16)

    def numpy_batch() -> None:
        ulaw_encode(pcm, out=encoded)
        ulaw_decode(encoded, out=decoded)

    frames_bytes = [row.tobytes() for row in pcm]

    def audioop_frames() -> None:
        for frame in frames_bytes:
            audioop.ulaw2lin(audioop.lin2ulaw(frame, 2), 2)

    numpy_batch()
    assert bytes(encoded[7]) == audioop.lin2ulaw(frames_bytes[7], 2)  # same codec, same answer
    t_numpy = best_of(numpy_batch, 10)
    t_audioop = best_of(audioop_frames, 5)

    # DTMF: one 20 ms tick of 1000 channels.
    channels = 1000
    detector = DtmfDetector(channels)
    block = rng.normal(0, 3000, (channels, FRAME)).astype(np.int16)
    t_dtmf = best_of(lambda: detector.process(block), 20)
    # The same with nine rows in ten silent (listeners, pauses): they skip the matrix product.
    quiet = block.copy()
    quiet[np.arange(channels) % 10 != 0] = 0
    t_dtmf_quiet = best_of(lambda: detector.process(quiet), 20)

    # PLC: a tick where 10 % of 1000 channels start a loss (the pitch search runs for those).
    concealer = Concealer(channels)
    lost = np.zeros(channels, bool)
    lost[::10] = True

    def plc_tick() -> None:
        concealer.process(block, np.zeros(channels, bool))
        concealer.process(block, lost)

    t_plc = best_of(plc_tick, 10) / 2

    # G.722: one 20 ms tick (320 samples at 16 kHz) for 1 and for 100 channels.
    g722 = {}
    for n in (1, 100):
        enc, dec = G722Encoder(n), G722Decoder(n)
        wide = rng.normal(0, 3000, (n, 320)).astype(np.int16)
        octets = enc.encode(wide)
        g722[n] = (
            best_of(partial(enc.encode, wide), 5),
            best_of(partial(dec.decode, octets), 5),
        )

    result = {
        "g711_msamples_per_s": round(samples / t_numpy / 1e6, 1),
        "audioop_msamples_per_s": round(samples / t_audioop / 1e6, 1),
        "ratio": round(t_audioop / t_numpy, 2),
        "g711_batch": f"ulaw encode+decode of a ({FRAMES}, {FRAME}) array",
        "dtmf_us_per_channel_frame": round(t_dtmf / channels * 1e6, 2),
        "dtmf_ms_per_tick_1000_channels": round(t_dtmf * 1e3, 2),
        "dtmf_ms_per_tick_1000_channels_900_silent": round(t_dtmf_quiet * 1e3, 2),
        "plc_ms_per_tick_1000_channels_100_losing": round(t_plc * 1e3, 2),
        "g722_encode_ms_per_tick_1ch": round(g722[1][0] * 1e3, 2),
        "g722_decode_ms_per_tick_1ch": round(g722[1][1] * 1e3, 2),
        "g722_encode_ms_per_tick_100ch": round(g722[100][0] * 1e3, 2),
        "g722_decode_ms_per_tick_100ch": round(g722[100][1] * 1e3, 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
