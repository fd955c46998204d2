"""Who hears whom: two-party bridges, N-party rooms with mute, and one-way listen routes (sans-IO).

The mixer is kept by channel id (what call control knows) and compiled into slot arrays when something
changed, so the tick does a handful of vectorised operations whatever the number of channels:

- a bridge is an index copy: ``out[a] = in[b]`` and ``out[b] = in[a]`` for every bridged pair at once
  (``bridge(a, a)`` is an echo);
- a room is its members' total minus each member's own contribution, in int32 (the caller clips once):
  members are sorted by room and summed with one ``np.add.reduceat``; a muted member contributes nothing
  but hears everyone;
- a listen route (coach, whisper) adds one member's audio to one other member's output only; routes are a
  list of (source, listener) pairs per room, never a matrix over all channels. A coach joins muted and
  adds a route to the agent.

A channel is in at most one bridge or one room: joining one leaves the other.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

__all__ = ["Mixer"]

_EMPTY = np.zeros(0, np.intp)


class Mixer:
    def __init__(self) -> None:
        self._partner: dict[int, int] = {}
        self._room_of: dict[int, str] = {}
        self._rooms: dict[str, dict[int, bool]] = {}
        """Room -> member channel -> muted."""
        self._routes: dict[str, set[tuple[int, int]]] = {}
        self.dirty = True
        self.bridge_dst = _EMPTY
        self.bridge_src = _EMPTY
        self.members = _EMPTY
        self.member_room = _EMPTY
        self.member_weight = np.zeros((0, 1), np.int32)
        self.room_starts = _EMPTY
        self.route_src = _EMPTY
        self.route_dst = _EMPTY
        self.route_member = _EMPTY
        """Per route: the listener's position in ``members``."""
        self.size_groups: list[tuple[int, int, int]] = []
        self.any_muted = False

    # -- commands ---------------------------------------------------------------------------------------
    def bridge(self, a: int, b: int) -> None:
        """``a`` hears ``b`` and ``b`` hears ``a`` (``a == b``: an echo)."""
        for channel in (a, b):
            self.detach(channel)
        self._partner[a] = b
        self._partner[b] = a
        self.dirty = True

    def unbridge(self, channel: int) -> None:
        partner = self._partner.pop(channel, None)
        if partner is not None:
            self._partner.pop(partner, None)
            self.dirty = True

    def join_room(self, channel: int, room: str, *, muted: bool = False) -> None:
        if self._room_of.get(channel) != room:
            self.detach(channel)
        self._room_of[channel] = room
        self._rooms.setdefault(room, {})[channel] = muted
        self.dirty = True

    def leave_room(self, channel: int) -> None:
        room = self._room_of.pop(channel, None)
        if room is None:
            return
        members = self._rooms[room]
        del members[channel]
        routes = self._routes.get(room)
        if routes:
            routes -= {r for r in routes if channel in r}
        if not members:
            del self._rooms[room]
            self._routes.pop(room, None)
        self.dirty = True

    def set_muted(self, channel: int, muted: bool) -> bool:
        """Mute a room member; False if the channel is in no room."""
        room = self._room_of.get(channel)
        if room is None:
            return False
        self._rooms[room][channel] = muted
        self.dirty = True
        return True

    def add_route(self, source: int, listener: int) -> None:
        """``listener`` also hears ``source`` (both members of the same room)."""
        room = self._room_of.get(source)
        if room is None or self._room_of.get(listener) != room:
            raise ValueError("a listen route joins two members of one room")
        if source == listener:
            raise ValueError("a channel cannot listen to itself")
        self._routes.setdefault(room, set()).add((source, listener))
        self.dirty = True

    def remove_route(self, source: int, listener: int) -> None:
        room = self._room_of.get(source)
        if room is not None:
            self._routes.get(room, set()).discard((source, listener))
            self.dirty = True

    def detach(self, channel: int) -> None:
        """Out of any bridge and any room (a channel closing)."""
        self.unbridge(channel)
        self.leave_room(channel)

    # -- queries ----------------------------------------------------------------------------------------
    def partner(self, channel: int) -> int | None:
        return self._partner.get(channel)

    def room(self, channel: int) -> str | None:
        return self._room_of.get(channel)

    def room_members(self, room: str) -> dict[int, bool]:
        return dict(self._rooms.get(room, {}))

    def is_mixed(self, channel: int) -> bool:
        """True when the channel hears or is heard by someone (so its audio must be decoded)."""
        return channel in self._partner or channel in self._room_of

    # -- compile and mix --------------------------------------------------------------------------------
    def compile(self, slot_of: Callable[[int], int]) -> None:
        """Turn the channel-id state into slot arrays (after any change, or after slots moved)."""
        pairs = [(slot_of(a), slot_of(b)) for a, b in self._partner.items()]
        self.bridge_dst = np.array([d for d, _ in pairs], np.intp)
        self.bridge_src = np.array([s for _, s in pairs], np.intp)
        members: list[int] = []
        room_index: list[int] = []
        weight: list[int] = []
        starts: list[int] = []
        route_src: list[int] = []
        route_dst: list[int] = []
        # Rooms by size: rooms of one size are consecutive and sum as one (rooms, size, FRAME) block.
        ordered = sorted(self._rooms.items(), key=lambda item: len(item[1]))
        groups: list[tuple[int, int, int]] = []
        for index, (room, roster) in enumerate(ordered):
            if groups and groups[-1][2] == len(roster):
                start, count, size = groups[-1]
                groups[-1] = (start, count + 1, size)
            else:
                groups.append((len(members), 1, len(roster)))
            starts.append(len(members))
            for channel, muted in roster.items():
                members.append(slot_of(channel))
                room_index.append(index)
                weight.append(0 if muted else 1)
            for source, listener in self._routes.get(room, ()):
                route_src.append(slot_of(source))
                route_dst.append(slot_of(listener))
        self.members = np.array(members, np.intp)
        self.size_groups = groups
        """(first member, rooms, members per room) of each run of rooms of one size."""
        self.any_muted = 0 in weight
        self.member_room = np.array(room_index, np.intp)
        self.member_weight = np.array(weight, np.int32)[:, None]
        self.room_starts = np.array(starts, np.intp)
        self.route_src = np.array(route_src, np.intp)
        self.route_dst = np.array(route_dst, np.intp)
        position = {slot: i for i, slot in enumerate(members)}
        self.route_member = np.array([position[d] for d in route_dst], np.intp)
        self.dirty = False

    def mix(self, heard: NDArray[np.int16], out: NDArray[np.int32]) -> None:
        """Write into ``out`` (zeroed by the caller) what every slot hears from the others."""
        if self.bridge_dst.size:
            out[self.bridge_dst] = heard[self.bridge_src]
        if self.members.size:
            contribution = heard[self.members].astype(np.int32)
            contribution *= self.member_weight
            totals = np.add.reduceat(contribution, self.room_starts, axis=0)
            out[self.members] = totals[self.member_room] - contribution
        if self.route_dst.size:
            np.add.at(out, self.route_dst, heard[self.route_src].astype(np.int32))

    def render(
        self,
        heard: NDArray[np.int16],
        players: NDArray[np.int16],
        playing: NDArray[np.bool_],
        audio: NDArray[np.int16],
    ) -> None:
        """Write into ``audio`` what every slot hears: its player plus whom it is mixed with, clipped.

        ``heard``, ``players`` and ``audio`` are ``(n, FRAME)``; ``playing`` says which player rows are not
        silence. Rows of a bridge whose player is silent are one row copy; int32 sums are made only for
        room members and for bridged rows with a prompt playing.
        """
        np.copyto(audio, players)
        dst, src = self.bridge_dst, self.bridge_src
        if dst.size:
            audio[dst] = heard[src]
            busy = playing[dst]
            if busy.any():
                rows = dst[busy]
                total = heard[src[busy]].astype(np.int32)
                total += players[rows]
                np.clip(total, -32768, 32767, out=total)
                audio[rows] = total
        members = self.members
        if members.size:
            contribution = heard[members].astype(np.int32)
            if self.any_muted:
                contribution *= self.member_weight
            out = np.empty_like(contribution)
            frame = contribution.shape[1]
            for start, rooms, size in self.size_groups:
                end = start + rooms * size
                block = contribution[start:end].reshape(rooms, size, frame)
                totals = block.sum(axis=1, dtype=np.int32)
                np.subtract(totals[:, None, :], block, out=out[start:end].reshape(rooms, size, frame))
            if self.route_dst.size:
                np.add.at(out, self.route_member, heard[self.route_src].astype(np.int32))
            busy = playing[members]
            if busy.any():
                out[busy] += players[members[busy]]
            np.clip(out, -32768, 32767, out=out)
            audio[members] = out
