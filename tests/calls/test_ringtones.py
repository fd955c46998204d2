"""<Dial ringTone>: each country's ringback has its own frequencies and cadence."""

from __future__ import annotations

import numpy as np
import pytest

from switch.calls.ringtones import ring_tone


def peaks(pcm: np.ndarray, count: int) -> list[int]:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    freqs = np.fft.rfftfreq(len(pcm), 1 / 8000)
    return sorted(int(round(freqs[i])) for i in np.argsort(spectrum)[-count:])


@pytest.mark.parametrize(
    ("country", "tones", "on_ms", "period_ms"),
    [("us", [440, 480], 2000, 6000), ("uk", [400, 450], 400, 3000), ("de", [425], 1000, 5000),
     ("fr", [440], 1500, 5000)],
)  # fmt: skip
def test_ring_tone_frequencies_and_cadence(
    country: str, tones: list[int], on_ms: int, period_ms: int
) -> None:
    pcm = ring_tone(country)
    assert pcm.dtype == np.int16 and len(pcm) == period_ms * 8
    burst = pcm[: on_ms * 8]
    assert peaks(burst, len(tones)) == tones
    assert np.abs(burst).max() > 1000
    assert not pcm[on_ms * 8 + 80 : on_ms * 8 + 800].any()  # silent after the first burst


def test_unknown_country_is_the_us_tone() -> None:
    assert ring_tone("xx") is ring_tone("us") and ring_tone(None) is ring_tone("US")
