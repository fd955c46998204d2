"""Decoded Play audio, cached per URL and shared by all calls (read-only arrays, bounded in bytes)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import numpy as np
from numpy.typing import NDArray

__all__ = ["AudioCache"]


class AudioCache:
    """An LRU of decoded audio keyed by URL; concurrent loads of one URL are done once."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, NDArray[np.int16]] = OrderedDict()
        self._size = 0
        self._locks: dict[str, asyncio.Lock] = {}
        self.loads = 0
        """How many times a loader actually ran (for tests and metrics)."""

    def __contains__(self, url: str) -> bool:
        return url in self._items

    def __len__(self) -> int:
        return len(self._items)

    async def get(self, url: str, load: Callable[[], Awaitable[NDArray[np.int16]]]) -> NDArray[np.int16]:
        """The cached audio for ``url``, running ``load`` the first time."""
        hit = self._lookup(url)
        if hit is not None:
            return hit
        lock = self._locks.setdefault(url, asyncio.Lock())
        try:
            async with lock:
                hit = self._lookup(url)
                if hit is not None:
                    return hit
                self.loads += 1
                pcm = np.ascontiguousarray(await load(), dtype=np.int16)
                pcm.flags.writeable = False  # shared between calls
                self._store(url, pcm)
                return pcm
        finally:
            if not lock.locked() and self._locks.get(url) is lock:
                del self._locks[url]

    def _lookup(self, url: str) -> NDArray[np.int16] | None:
        pcm = self._items.get(url)
        if pcm is not None:
            self._items.move_to_end(url)
        return pcm

    def _store(self, url: str, pcm: NDArray[np.int16]) -> None:
        if pcm.nbytes > self.max_bytes:
            return
        self._items[url] = pcm
        self._size += pcm.nbytes
        while self._size > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self._size -= old.nbytes
