"""The mixer without sockets: bridges swap, rooms subtract their own audio, mute and listen routes."""

from __future__ import annotations

import numpy as np
import pytest

from switch.media.mixer import Mixer

FRAME = 160


def _inputs(count: int) -> np.ndarray:
    return np.stack([np.full(FRAME, 100 * (i + 1), np.int16) for i in range(count)])


def _mix(mixer: Mixer, heard: np.ndarray) -> np.ndarray:
    mixer.compile(lambda channel: channel - 1)  # channel ids 1.. live in slots 0..
    out = np.zeros(heard.shape, np.int32)
    mixer.mix(heard, out)
    return out[:, 0]


def test_bridge_is_a_swap_and_echo_hears_itself() -> None:
    mixer = Mixer()
    mixer.bridge(1, 2)
    mixer.bridge(3, 3)
    assert _mix(mixer, _inputs(4)).tolist() == [200, 100, 300, 0]
    assert mixer.partner(1) == 2 and mixer.partner(3) == 3


def test_room_total_minus_own_with_mute_and_two_rooms() -> None:
    mixer = Mixer()
    for channel in (1, 2, 3):
        mixer.join_room(channel, "a")
    mixer.join_room(4, "b")
    mixer.join_room(5, "b", muted=True)
    assert _mix(mixer, _inputs(5)).tolist() == [500, 400, 300, 0, 400]
    mixer.set_muted(1, True)
    assert _mix(mixer, _inputs(5)).tolist() == [500, 300, 200, 0, 400]


def test_coach_route_reaches_one_member_only() -> None:
    mixer = Mixer()
    mixer.join_room(1, "call")  # customer
    mixer.join_room(2, "call")  # agent
    mixer.join_room(3, "call", muted=True)  # coach
    mixer.add_route(3, 2)
    assert _mix(mixer, _inputs(3)).tolist() == [200, 100 + 300, 300]
    mixer.leave_room(3)
    assert _mix(mixer, _inputs(3)).tolist() == [200, 100, 0]
    with pytest.raises(ValueError, match="a listen route joins two members of one room"):
        mixer.add_route(3, 2)


def test_joining_a_room_leaves_the_bridge() -> None:
    mixer = Mixer()
    mixer.bridge(1, 2)
    mixer.join_room(1, "r")
    mixer.join_room(3, "r")
    assert mixer.partner(2) is None
    assert _mix(mixer, _inputs(3)).tolist() == [300, 0, 100]
