"""In-band DTMF detection at the ITU-T Q.24 limits, through mu-law, on 16 channels at once."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from voicecodecs.dtmf import dtmf_tone
from voicecodecs.dtmf_detect import MIN_LEVEL_DBM0, DtmfDetector, _analyse, analyse_windows
from voicecodecs.g711 import ulaw_decode, ulaw_encode
from voicecodecs.tones import DBM0_RMS, DTMF_FREQUENCIES, dual_tone

DIGITS_OF = "123A456B789C*0#D"  # analyse_windows indexes the keypad row by row

LEADS = (0, 37, 80, 123)  # where the tone starts inside the first 20 ms frame: every hop alignment


def detect(signal: NDArray[np.int16]) -> str:
    """Digits found in one channel's signal, fed as 20 ms frames followed by 100 ms of silence."""
    padded = np.concatenate([signal, np.zeros(-signal.size % 160 + 800, np.int16)])
    detector = DtmfDetector(1)
    return "".join(detector.process(padded[None, i : i + 160])[0] for i in range(0, padded.size, 160))


def tone(
    digit: str, ms: float, deviation: float = 0.0, level: float = -10.0, twist: float = 0.0, lead: int = 0
) -> NDArray[np.int16]:
    low, high = DTMF_FREQUENCIES[digit]
    n = int(ms * 8)
    x = dual_tone(low * (1 + deviation), high * (1 + deviation), n, level_dbm0=level, twist_db=twist)
    return ulaw_decode(ulaw_encode(np.concatenate([np.zeros(lead, np.int16), x])))


@pytest.mark.parametrize("digit", list("0123456789*#ABCD"))
def test_every_digit_at_40ms(digit: str) -> None:
    for lead in LEADS:
        assert detect(tone(digit, 40, lead=lead)) == digit


@pytest.mark.parametrize("digit", list("1#D*"))
def test_20ms_does_not_operate(digit: str) -> None:
    for lead in LEADS:
        assert detect(tone(digit, 20, lead=lead)) == ""


@pytest.mark.parametrize("deviation", [0.015, -0.015])
@pytest.mark.parametrize("digit", list("1#D*"))
def test_operates_within_1_5_percent(digit: str, deviation: float) -> None:
    for lead in LEADS:
        assert detect(tone(digit, 40, deviation=deviation, lead=lead)) == digit


@pytest.mark.parametrize("deviation", [0.035, -0.035, 0.05])
@pytest.mark.parametrize("digit", list("1#D*"))
def test_does_not_operate_beyond_3_5_percent(digit: str, deviation: float) -> None:
    assert detect(tone(digit, 200, deviation=deviation)) == ""


@pytest.mark.parametrize(("twist", "level"), [(4.0, -25.0), (-8.0, -17.0), (4.0, -4.0), (-8.0, 0.0)])
@pytest.mark.parametrize("digit", list("1#D"))
def test_twist_and_levels_inside_limits(digit: str, twist: float, level: float) -> None:
    """Corners: twist at its limit, weaker tone at -25 dBm0 or stronger at 0 dBm0, 1.5 % off."""
    for lead in LEADS:
        assert detect(tone(digit, 40, deviation=0.015, level=level, twist=twist, lead=lead)) == digit


@pytest.mark.parametrize(("twist", "level"), [(10.0, -10.0), (-14.0, -3.0)])
def test_twist_outside_limits(twist: float, level: float) -> None:
    assert detect(tone("5", 200, level=level, twist=twist)) == ""


def test_too_quiet() -> None:
    assert detect(tone("5", 200, level=-36.0)) == ""


def test_pause_of_40ms_separates_repeated_digits_and_10ms_gap_does_not() -> None:
    for lead in LEADS:
        paused = np.concatenate([tone("7", 50, lead=lead), np.zeros(320, np.int16), tone("7", 50)])
        assert detect(paused) == "77"
        interrupted = np.concatenate([tone("7", 60, lead=lead), np.zeros(80, np.int16), tone("7", 60)])
        assert detect(interrupted) == "7"
    assert detect(np.concatenate([tone("1", 60), tone("2", 60), tone("3", 60)])) == "123"


def test_no_false_digits_on_speechlike_signal_chirp_and_noise() -> None:
    rng = np.random.default_rng(5)
    t = np.arange(80000) / 8000
    pitch = 2 * np.pi * np.cumsum(120 + 40 * np.sin(2 * np.pi * 0.5 * t)) / 8000
    harmonics = sum(
        np.sin(k * pitch) / k * (1 + 0.8 * np.sin(2 * np.pi * (0.3 + 0.1 * k) * t + k)) for k in range(1, 25)
    )
    speech = 3000 * harmonics * (0.5 + 0.5 * np.sin(2 * np.pi * 2.7 * t)) + rng.normal(0, 500, t.size)
    assert detect(np.clip(speech, -32768, 32767).astype(np.int16)) == ""
    chirp = 10000 * np.sin(2 * np.pi * (300 * t + 155 * t**2))  # 300 Hz to 3400 Hz over 10 s
    assert detect(chirp.astype(np.int16)) == ""
    assert detect(rng.normal(0, 5000, 80000).astype(np.int16)) == ""


def test_sixteen_channels_each_with_its_own_digit() -> None:
    digits = "0123456789*#ABCD"
    block = np.zeros((16, 2400), np.int16)
    for ch, digit in enumerate(digits):
        start = 160 + 17 * ch
        block[ch, start : start + 480] = tone(digit, 60, level=-5.0 - ch, twist=(ch % 3) - 1.0)
    detector = DtmfDetector(16)
    found = [""] * 16
    for i in range(0, 2400, 160):
        for ch, new in enumerate(detector.process(block[:, i : i + 160])):
            found[ch] += new
    assert found == list(digits)


def test_analyse_windows_matches_row_by_row() -> None:
    rng = np.random.default_rng(1)
    windows = np.stack([dual_tone(697.0, 1209.0, 256), dual_tone(941.0, 1633.0, 256, start=99)]).astype(
        np.float32
    )
    windows = np.concatenate([windows, rng.normal(0, 3000, (2, 256)).astype(np.float32)])
    assert analyse_windows(windows).tolist() == [0, 15, -1, -1]
    assert [int(analyse_windows(w[None])[0]) for w in windows] == [0, 15, -1, -1]


def test_rejects_bad_frames_and_reset_forgets() -> None:
    detector = DtmfDetector(2)
    with pytest.raises(ValueError, match=r"\(2, k \* 80\)"):
        detector.process(np.zeros((2, 100), np.int16))
    first = tone("9", 40)
    block = np.zeros((2, 480), np.int16)
    block[:, : first.size] = first
    assert detector.process(block[:, :160]) == ["", ""]
    detector.reset(1)
    rest = detector.process(block[:, 160:])
    assert rest[0] == "9"
    assert rest[1] == ""


def test_signals_that_are_not_one_dtmf_digit_are_rejected() -> None:
    """(From the stateless detector this one replaced.) 100 ms of each, through mu-law."""
    rng = np.random.default_rng(0)
    t = np.arange(800) / 8000
    signals = {
        "noise": rng.normal(0, 3000, 800),
        "single tone (dial-tone-like)": 8000 * np.sin(2 * np.pi * 1000 * t),
        "one DTMF tone alone": 7000 * np.sin(2 * np.pi * 697 * t),
        "far too quiet": dtmf_tone("1", 800) * 0.005,
        "a loud third tone dominates": dtmf_tone("1", 800) + 12000 * np.sin(2 * np.pi * 2400 * t),
        "two low tones": 7000 * np.sin(2 * np.pi * 697 * t) + 7000 * np.sin(2 * np.pi * 770 * t),
        "twist far too large": 7000 * np.sin(2 * np.pi * 697 * t) + 500 * np.sin(2 * np.pi * 1209 * t),
    }
    found = {name: detect(ulaw_decode(ulaw_encode(x.astype(np.int16)))) for name, x in signals.items()}
    assert found == dict.fromkeys(signals, "")
    assert detect(ulaw_decode(ulaw_encode(dtmf_tone("1", 800)))) == "1"  # the same path finds a real one


def test_quiet_windows_skip_the_analysis_without_changing_any_answer() -> None:
    """The level gate of analyse_windows: rows around and below it get the answer of the full analysis."""
    rng = np.random.default_rng(5)
    levels = [-45.0, -36.0, -33.5, -32.0, -30.0, -28.0, -20.0]
    rows = [tone(d, 32, level=level)[:256] for d in "15#" for level in levels]
    rows += [np.zeros(256, np.int16), (rng.normal(0, 30, 256)).astype(np.int16)]
    windows = np.stack(rows).astype(np.float32)
    gated = analyse_windows(windows)
    total = np.mean(np.square(windows), axis=1) / DBM0_RMS**2
    full = _analyse(windows, total.astype(np.float32))  # every row through the matrix product
    assert gated.tolist() == full.tolist()
    skipped = total < 10 ** (MIN_LEVEL_DBM0 / 10) / 2
    assert skipped.sum() == 5  # the -45 dBm0 rows, zeros and the faint noise
    found = [DIGITS_OF[int(i)] if i >= 0 else "" for i in gated[: len(levels)]]
    assert found == ["", "", "", "", "1", "1", "1"]
