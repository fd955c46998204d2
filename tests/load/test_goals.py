"""The load harness says, for each of issue 8's targets a run measures, whether it is met and by how much."""

from __future__ import annotations

from bench.load.goals import check, format_goals


def test_a_signalling_run_at_four_times_the_budget_is_short_by_four() -> None:
    run = {"label": "signalling file udp", "cpu_ms_per_call": 2.0, "wall_s": 10.0, "clean": True,
           "achieved_cps": 200.0}  # fmt: skip
    cpu, rate = check("rate", {"results": [run]})
    assert cpu.target == 0.5 and not cpu.met and cpu.factor == 4.0
    assert rate.measured is None and "too short" in rate.note  # 10 s cannot show a 30 s rate
    text = format_goals([cpu, rate])
    assert "NOT MET: 4.00x short" in text and "not measured" in text


def test_a_webhook_run_is_held_to_one_millisecond_and_can_meet_it() -> None:
    run = {"label": "signalling webhook udp", "cpu_ms_per_call": 0.9, "wall_s": 40.0, "clean": True}
    [cpu] = check("rate", {"results": [run]})
    assert cpu.target == 1.0 and cpu.met and "MET" in format_goals([cpu])


def test_an_unclean_30_second_run_counts_as_rate_zero() -> None:
    run = {"label": "signalling file udp", "cpu_ms_per_call": 0.4, "wall_s": 31.0, "clean": False,
           "achieved_cps": 1200.0}  # fmt: skip
    cpu, rate = check("rate", {"results": [run]})
    assert cpu.met and rate.measured == 0.0 and not rate.met


def test_peer_ratio_and_media_goals() -> None:
    [peer] = check("peer", {"cpu_ratio_sippy_over_switch": 2.5})
    assert not peer.met and peer.factor == 4.0
    media = {"calls": 1000, "seconds": 60, "switch_us_per_packet": 2.4, "loss_ratio": 0.0,
             "jitter_p99_ms_median": 3.0}  # fmt: skip
    cost, loss, jitter = check("media", {"result": media})
    assert cost.measured == 4.8 and cost.met  # a received packet and its forwarded copy: 2 x 2.4
    assert loss.met and not jitter.met and jitter.factor == 1.5
    assert not loss.note  # the full 1,000-call, 60 s scale
    [_, lossy, _] = check("media", {"result": media | {"loss_ratio": 0.01, "calls": 200}})
    assert not lossy.met and "200 calls" in lossy.note
