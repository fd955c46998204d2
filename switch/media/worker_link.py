"""The pipe between the switch process and a media worker: framed pickles over the pipe's socket, written
and read without ever blocking the event loop (``multiprocessing.Connection`` cannot be used from the loop:
uvloop makes a watched fd non-blocking and its ``send`` then fails with EAGAIN on a full pipe).

Every write system call on one end is a wake-up of the other end's loop, so messages that need not arrive
at once are *posted*: queued behind what is already queued and written together, at the end of the loop
iteration or within a given delay, or with the next message that is *sent* (written at once). One queue
keeps every message in order whichever way it went."""

from __future__ import annotations

import asyncio
import os
import pickle
import select
import socket
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["Link"]

_LENGTH = 4
_READ = 1 << 20


class Link:
    """One end of a worker pipe: ``send`` queues and writes what the socket takes (the rest when it is
    writable again); complete messages read go to ``on_message``, the end of the stream to ``on_eof``."""

    def __init__(
        self,
        conn: Connection,
        loop: asyncio.AbstractEventLoop,
        on_message: Callable[[tuple[Any, ...]], None],
        on_eof: Callable[[], None],
    ) -> None:
        self.sock = socket.socket(fileno=os.dup(conn.fileno()))
        conn.close()
        self.sock.setblocking(False)
        self.fd = self.sock.fileno()
        self._loop = loop
        self._on_message = on_message
        self._on_eof = on_eof
        self._out = bytearray()
        self._in = bytearray()
        self._chunk = memoryview(bytearray(_READ))
        """Where reads land (a fresh 1 MB object per read cost an mmap, an mremap and a munmap)."""
        self._writing = False
        self._soon: asyncio.Handle | None = None
        self._later: asyncio.TimerHandle | None = None
        self.writes = 0
        """Write system calls made (for tests and benchmarks)."""
        self.open = True
        loop.add_reader(self.fd, self._readable)

    def send(self, message: tuple[Any, ...]) -> None:
        """Write ``message`` now (what the socket does not take waits for it to be writable). Writing at
        once, not on the next loop iteration, puts a command in the worker's pipe before anything the
        caller does next: a ``configure`` precedes the SDP answer, so the peer's first RTP (and a
        re-INVITE's new source) finds the channel configured. The worker's loop sees the pipe readable
        before the RTP socket, so it applies the command first."""
        self._queue(message)
        self.flush()

    def post(self, message: tuple[Any, ...], within: float = 0.0) -> None:
        """Queue ``message``; it is written at the end of this loop iteration (``within`` seconds at the
        latest when that is more than 0), or earlier with the next :meth:`send`."""
        self._queue(message)
        if self._soon is not None:
            return
        if within <= 0.0:
            if self._later is not None:
                self._later.cancel()
                self._later = None
            self._soon = self._loop.call_soon(self.flush)
        elif self._later is None:
            self._later = self._loop.call_later(within, self.flush)

    def _queue(self, message: tuple[Any, ...]) -> None:
        data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        self._out += len(data).to_bytes(_LENGTH, "big")
        self._out += data

    def flush(self) -> None:
        """Write what is queued now (what the socket does not take waits for it to be writable)."""
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        if self._later is not None:
            self._later.cancel()
            self._later = None
        if self.open and not self._writing:
            self._writable()
            if self._out:
                self._writing = True
                self._loop.add_writer(self.fd, self._writable)

    @property
    def queued(self) -> int:
        """Bytes queued and not yet written."""
        return len(self._out)

    def _writable(self) -> None:
        if not self._out:
            return
        self.writes += 1
        try:
            sent = self.sock.send(self._out)
        except BlockingIOError:
            return
        except OSError:
            sent = len(self._out)  # the other end is gone: the reader sees the EOF
        del self._out[:sent]
        if not self._out and self._writing:
            self._writing = False
            self._loop.remove_writer(self.fd)

    def _readable(self) -> None:
        try:
            size = self.sock.recv_into(self._chunk)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            size = 0
        if not size:
            self.close()
            self._on_eof()
            return
        buffer = self._in
        buffer += self._chunk[:size]
        start = 0
        while len(buffer) - start >= _LENGTH:
            size = int.from_bytes(buffer[start : start + _LENGTH], "big")
            end = start + _LENGTH + size
            if len(buffer) < end:
                break
            message = pickle.loads(buffer[start + _LENGTH : end])
            start = end
            self._on_message(message)
            if not self.open:
                return
        del buffer[:start]

    def wait(self, done: Callable[[], bool]) -> None:
        """Block (outside the loop's reader) until ``done()``: flush what is queued, then read."""
        while self.open and not done():
            writing = [self.fd] if self._out else []
            readable, writable, _ = select.select([self.fd], writing, [], 1.0)
            if writable:
                self._writable()
            if readable:
                self._readable()

    def close(self) -> None:
        if self.open:
            self.open = False
            for handle in (self._soon, self._later):
                if handle is not None:
                    handle.cancel()
            self._soon = self._later = None
            self._loop.remove_reader(self.fd)
            if self._writing:
                self._loop.remove_writer(self.fd)
            self.sock.close()
