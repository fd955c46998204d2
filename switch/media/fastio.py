"""Batched datagram I/O for RTP: many packets per system call, numpy arrays as the packet memory.

On Linux, :class:`BatchReceiver` reads up to ``capacity`` datagrams with one ``recvmmsg(2)`` and
:class:`BatchSender` sends a whole tick's packets with one ``sendmmsg(2)`` (a few when the socket buffer
fills), both through ctypes over arrays allocated once: the ``mmsghdr``, ``iovec`` and ``sockaddr_in``
arrays are viewed as numpy structured arrays, so lengths, source addresses and ports are columns that the
caller reads without a per-packet Python step. Elsewhere (or with ``native=False``) the same classes fall
back to a ``recvfrom_into``/``sendto`` loop with identical results.

:class:`BatchReader` drains a socket from ``loop.add_reader``: every wake-up reads up to ``limit``
datagrams and hands each batch to a callback as ``(receiver, count)``; the rows are valid until the
callback returns.

:class:`Demux` maps received packets to channel slots for one RTP port shared by many channels: by
(remote address, SSRC) once a stream is known, by remote address alone for a channel's first packets. All
lookups are ``searchsorted`` over sorted keys, checked against the exact values, so a hash collision can
only miss (the packet is then unclaimed), never route a packet to the wrong channel.

IPv4 only: addresses are ``(ip, port)`` pairs, ``ip`` as an int in host order in the arrays.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import itertools
import os
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "MAX_DATAGRAM",
    "NATIVE",
    "SOCKADDR_DTYPE",
    "BatchReader",
    "BatchReceiver",
    "BatchSender",
    "Demux",
    "send_batch",
    "sockaddrs",
]

MAX_DATAGRAM = 2048
"""Row size of receive buffers: an RTP packet of 60 ms G.711 with extensions fits with room to spare."""

SOCKADDR_DTYPE = np.dtype(
    {
        "names": ["family", "port", "ip", "zero"],
        "formats": ["<u2", ">u2", ">u4", "V8"],
        "offsets": [0, 2, 4, 8],
        "itemsize": 16,
    }
)
"""``struct sockaddr_in`` as numpy sees it: ``port`` and ``ip`` read in host order from network order."""

_MSG_DONTWAIT = 0x40
_AF_INET = socket.AF_INET


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.c_void_p),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", _MsgHdr), ("len", ctypes.c_uint32)]


def _view(struct: type[ctypes.Structure], fields: dict[str, str]) -> np.dtype[np.void]:
    """A numpy dtype over an array of ``struct`` exposing ``fields`` (name -> numpy format)."""
    names, formats, offsets = [], [], []
    for name, fmt in fields.items():
        if "." in name:
            outer, inner = name.split(".")
            offset = getattr(struct, outer).offset + getattr(_MsgHdr, inner).offset
        else:
            offset = getattr(struct, name).offset
        names.append(name.replace(".", "_"))
        formats.append(fmt)
        offsets.append(offset)
    return np.dtype(
        {"names": names, "formats": formats, "offsets": offsets, "itemsize": ctypes.sizeof(struct)}
    )


_IOVEC_DTYPE = _view(_IoVec, {"base": "<u8", "len": "<u8"})
_MMSG_DTYPE = _view(_MMsgHdr, {"hdr.name": "<u8", "hdr.namelen": "<u4", "hdr.iov": "<u8", "len": "<u4"})


def _load_libc() -> Any:
    if not sys.platform.startswith("linux") or ctypes.sizeof(ctypes.c_void_p) != 8:
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        recv, send = libc.recvmmsg, libc.sendmmsg
    except (OSError, AttributeError):
        return None
    recv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    recv.restype = ctypes.c_int
    send.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    send.restype = ctypes.c_int
    return libc


_LIBC = _load_libc()
NATIVE = _LIBC is not None
"""True when recvmmsg/sendmmsg are used (Linux, 64-bit); otherwise every class uses the Python loop."""


class _Messages:
    """``count`` mmsghdr/iovec/sockaddr_in entries, allocated once, with numpy views over each."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.c_msgs = (_MMsgHdr * count)()
        self.c_iov = (_IoVec * count)()
        self.c_names = (ctypes.c_uint8 * (16 * count))()
        self.msgs = np.frombuffer(memoryview(self.c_msgs).cast("B"), _MMSG_DTYPE)
        self.iov = np.frombuffer(memoryview(self.c_iov).cast("B"), _IOVEC_DTYPE)
        self.names = np.frombuffer(memoryview(self.c_names).cast("B"), SOCKADDR_DTYPE)
        self.msgs["hdr_name"] = ctypes.addressof(self.c_names) + 16 * np.arange(count, dtype=np.uint64)
        self.msgs["hdr_namelen"] = 16
        self.msgs["hdr_iov"] = ctypes.addressof(self.c_iov) + ctypes.sizeof(_IoVec) * np.arange(
            count, dtype=np.uint64
        )
        for msg in self.c_msgs:
            msg.hdr.iovlen = 1
        self.address = ctypes.addressof(self.c_msgs)
        self.entry = ctypes.sizeof(_MMsgHdr)


def _fd(sock: socket.socket | int) -> int:
    return sock if isinstance(sock, int) else sock.fileno()


class BatchReceiver:
    """Up to ``capacity`` datagrams per call into ``buffer`` rows; ``lengths``/``ips``/``ports`` say what
    arrived (the first ``count`` entries are valid after :meth:`recv` returned ``count``)."""

    def __init__(self, capacity: int = 64, size: int = MAX_DATAGRAM, *, native: bool = True) -> None:
        if capacity < 1 or size < 12:
            raise ValueError("capacity must be >= 1 and size >= 12")
        self.capacity = capacity
        self.size = size
        self.native = native and NATIVE
        self.buffer: NDArray[np.uint8] = np.zeros((capacity, size), np.uint8)
        self._m = _Messages(capacity)
        self._m.iov["base"] = self.buffer.ctypes.data + size * np.arange(capacity, dtype=np.uint64)
        self._m.iov["len"] = size
        self._lengths: NDArray[np.uint32] = self._m.msgs["len"]
        self._ips: NDArray[np.uint32] = self._m.names["ip"]
        self._ports: NDArray[np.uint16] = self._m.names["port"]
        self._rows = [memoryview(row) for row in self.buffer]  # for the Python loop only

    @property
    def lengths(self) -> NDArray[np.uint32]:
        return self._lengths

    @property
    def ips(self) -> NDArray[np.uint32]:
        """Source addresses as host-order ints (``127.0.0.1`` is ``0x7F000001``)."""
        return self._ips

    @property
    def ports(self) -> NDArray[np.uint16]:
        return self._ports

    def recv(self, sock: socket.socket | int) -> int:
        """Read what is waiting (up to ``capacity``) without blocking; 0 when nothing is."""
        if not self.native:
            return self._recv_python(sock)
        count = int(_LIBC.recvmmsg(_fd(sock), self._m.address, self.capacity, _MSG_DONTWAIT, None))
        if count >= 0:
            return count
        code = ctypes.get_errno()
        if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
            return 0
        if code == errno.ECONNREFUSED:  # an earlier send met ICMP port unreachable: not our problem here
            return 0
        raise OSError(code, os.strerror(code))

    def _recv_python(self, sock: socket.socket | int) -> int:
        owned = isinstance(sock, int)
        s = socket.socket(fileno=sock) if isinstance(sock, int) else sock
        count = 0
        try:
            while count < self.capacity:
                try:
                    size, addr = s.recvfrom_into(self._rows[count], self.size, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError, ConnectionRefusedError):
                    break
                self._lengths[count] = size
                self._ips[count] = int.from_bytes(socket.inet_aton(addr[0]), "big")
                self._ports[count] = addr[1]
                count += 1
        finally:
            if owned:
                s.detach()
        return count

    def datagram(self, index: int) -> bytes:
        """One received datagram as bytes (for the slow paths: unknown sources, events)."""
        return self.buffer[index, : int(self._lengths[index])].tobytes()

    def address(self, index: int) -> tuple[str, int]:
        return socket.inet_ntoa(int(self.ips[index]).to_bytes(4, "big")), int(self.ports[index])

    def ssrcs(self, count: int) -> NDArray[np.uint32]:
        """The SSRC field of the first ``count`` datagrams (bytes 8 to 11; meaningless for short ones)."""
        return self.buffer[:count, 8:12].view(">u4")[:, 0].astype(np.uint32)


def sockaddrs(addresses: Sequence[tuple[str, int]]) -> NDArray[np.void]:
    """``(host, port)`` pairs as an array of ``sockaddr_in`` (:data:`SOCKADDR_DTYPE`)."""
    out = np.zeros(len(addresses), SOCKADDR_DTYPE)
    out["family"] = _AF_INET
    out["ip"] = [int.from_bytes(socket.inet_aton(host), "big") for host, _ in addresses]
    out["port"] = [port for _, port in addresses]
    return out


class BatchSender:
    """Sends rows of a 2-D uint8 buffer to per-row addresses with as few system calls as possible."""

    def __init__(self, capacity: int = 1024, *, native: bool = True) -> None:
        self.native = native and NATIVE
        self._m = _Messages(max(1, capacity))
        self.calls = 0
        """System calls made (sendmmsg, or sendto in the Python loop)."""

    def _grow(self, count: int) -> None:
        if count > self._m.count:
            self._m = _Messages(max(count, 2 * self._m.count))

    def send(
        self,
        sock: socket.socket | int,
        buffer: NDArray[np.uint8],
        lengths: NDArray[np.integer[Any]],
        addresses: NDArray[np.void],
        *,
        rows: NDArray[np.intp] | None = None,
    ) -> int:
        """Send ``buffer[i, :lengths[i]]`` to ``addresses[i]`` for every row; return how many were sent.

        ``buffer`` must be C-contiguous along its rows; ``addresses`` an array of :data:`SOCKADDR_DTYPE`
        (see :func:`sockaddrs`). With ``rows``, the k-th message is ``buffer[rows[k], :lengths[k]]`` to
        ``addresses[rows[k]]`` (no copy of the rows). Stops early (returning fewer) when the socket buffer
        is full.
        """
        count = len(lengths)
        if count == 0:
            return 0
        if buffer.ndim != 2 or buffer.strides[1] != 1:
            raise ValueError("buffer must be 2-D with contiguous rows")
        if rows is not None:
            if len(rows) != count or (count and int(rows.max()) >= min(len(buffer), len(addresses))):
                raise ValueError("one row per length, each with a buffer row and an address")
            if not self.native:
                return self._send_python(sock, buffer[rows], lengths, addresses[rows])
        elif len(buffer) < count or len(addresses) < count:
            raise ValueError("one buffer row and address per length")
        if not self.native:
            return self._send_python(sock, buffer, lengths, addresses)
        self._grow(count)
        m = self._m
        index = np.arange(count, dtype=np.uint64) if rows is None else rows.astype(np.uint64)
        m.iov["base"][:count] = buffer.ctypes.data + np.uint64(buffer.strides[0]) * index
        m.iov["len"][:count] = lengths
        m.names[:count] = addresses[:count] if rows is None else addresses[rows]
        fd = _fd(sock)
        sent = 0
        while sent < count:
            done = int(_LIBC.sendmmsg(fd, m.address + sent * m.entry, count - sent, _MSG_DONTWAIT))
            self.calls += 1
            if done < 0:
                code = ctypes.get_errno()
                if code == errno.EINTR:
                    continue
                if code in (errno.EAGAIN, errno.EWOULDBLOCK):
                    break
                if code == errno.ECONNREFUSED:  # ICMP from an earlier datagram: skip the one that failed
                    sent += 1
                    continue
                raise OSError(code, os.strerror(code))
            sent += done
        return sent

    def _send_python(
        self,
        sock: socket.socket | int,
        buffer: NDArray[np.uint8],
        lengths: NDArray[np.integer[Any]],
        addresses: NDArray[np.void],
    ) -> int:
        owned = isinstance(sock, int)
        s = socket.socket(fileno=sock) if isinstance(sock, int) else sock
        ips = addresses["ip"].tolist()
        ports = addresses["port"].tolist()
        sent = 0
        try:
            for i, size in enumerate(lengths.tolist()):
                host = socket.inet_ntoa(int(ips[i]).to_bytes(4, "big"))
                try:
                    s.sendto(memoryview(buffer[i])[:size], socket.MSG_DONTWAIT, (host, ports[i]))
                except (BlockingIOError, InterruptedError):
                    break
                except ConnectionRefusedError:
                    pass
                self.calls += 1
                sent += 1
        finally:
            if owned:
                s.detach()
        return sent


_default_sender = BatchSender()


def send_batch(
    sock_fd: socket.socket | int,
    buffer: NDArray[np.uint8],
    lengths: NDArray[np.integer[Any]],
    addresses: NDArray[np.void],
) -> int:
    """A whole tick's packets in one or a few system calls (see :meth:`BatchSender.send`)."""
    return _default_sender.send(sock_fd, buffer, lengths, addresses)


class BatchReader:
    """Drains ``sock`` whenever it is readable: up to ``limit`` datagrams per wake-up, in batches handed
    to ``on_batch(receiver, count)``. The socket must be non-blocking; :meth:`close` stops reading.

    With ``watch=False`` nothing is registered with the loop: the owner calls :meth:`drain` itself, for
    example once at the start of every media tick, so each system call carries a full batch (the socket's
    receive buffer must then hold a tick of packets: see ``SO_RCVBUF``).
    """

    def __init__(
        self,
        sock: socket.socket,
        on_batch: Callable[[BatchReceiver, int], None],
        *,
        capacity: int = 64,
        limit: int = 1024,
        native: bool = True,
        watch: bool = True,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.sock = sock
        self.receiver = BatchReceiver(capacity, native=native)
        self._on_batch = on_batch
        self._rounds = max(1, limit // capacity)
        self._fd = sock.fileno()
        self._loop = (loop or asyncio.get_running_loop()) if watch else None
        self.wakeups = 0
        self.datagrams = 0
        if self._loop is not None:
            self._loop.add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        self.wakeups += 1
        self.drain(self._rounds)

    def drain(self, rounds: int | None = None) -> int:
        """Read until the socket is empty (or ``rounds`` full batches); return how many datagrams."""
        receiver = self.receiver
        total = 0
        for _ in itertools.repeat(None) if rounds is None else range(rounds):
            count = receiver.recv(self._fd)
            if count == 0:
                break
            total += count
            self._on_batch(receiver, count)
            if count < receiver.capacity:
                break
        self.datagrams += total
        return total

    def close(self) -> None:
        if self._fd >= 0 and self._loop is not None:
            self._loop.remove_reader(self._fd)
        self._fd = -1


_MIX = np.uint64(0x9E3779B97F4A7C15)


def _address_keys(ips: NDArray[Any], ports: NDArray[Any]) -> NDArray[np.uint64]:
    return (ips.astype(np.uint64) << np.uint64(16)) | ports.astype(np.uint64)


def _stream_keys(ips: NDArray[Any], ports: NDArray[Any], ssrcs: NDArray[Any]) -> NDArray[np.uint64]:
    return (_address_keys(ips, ports) * _MIX) ^ ssrcs.astype(np.uint64)  # wraps: a hash, checked later


class Demux:
    """Which channel slot each packet on a shared RTP port belongs to.

    A slot is registered with the remote address its SDP gave. Its first packet from that address
    teaches it the stream's SSRC (when no other slot expects the same address); from then on packets
    match on (address, SSRC), which lets several calls share one remote address (a gateway) once each has
    been learned by SSRC with :meth:`learn`. Unmatched packets get -1.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._ip = np.zeros(capacity, np.uint32)
        self._port = np.zeros(capacity, np.uint16)
        self._ssrc = np.zeros(capacity, np.uint32)
        self._known = np.zeros(capacity, bool)
        self._used = np.zeros(capacity, bool)
        self._dirty = True
        self._stream_sorted = np.zeros(0, np.uint64)
        self._stream_slots = np.zeros(0, np.int64)
        self._addr_sorted = np.zeros(0, np.uint64)
        self._addr_slots = np.zeros(0, np.int64)
        self.learned = 0

    def _ensure(self, slot: int) -> None:
        size = len(self._ip)
        if slot < size:
            return
        grow = max(slot + 1, 2 * size)
        for name in ("_ip", "_port", "_ssrc", "_known", "_used"):
            old = getattr(self, name)
            new = np.zeros(grow, old.dtype)
            new[:size] = old
            setattr(self, name, new)

    def register(self, slot: int, remote: tuple[str, int]) -> None:
        """Expect ``slot``'s media from ``remote`` (its SSRC is learned from the first packet)."""
        self._ensure(slot)
        self._ip[slot] = int.from_bytes(socket.inet_aton(remote[0]), "big")
        self._port[slot] = remote[1]
        self._known[slot] = False
        self._used[slot] = True
        self._dirty = True

    def learn(self, slot: int, ssrc: int) -> None:
        self._ssrc[slot] = ssrc
        self._known[slot] = True
        self._dirty = True

    def move(self, source: int, dest: int) -> None:
        """What ``source`` expected now belongs to ``dest``; ``source`` expects nothing (a swap-remove)."""
        self._ensure(max(source, dest))
        for name in ("_ip", "_port", "_ssrc", "_known", "_used"):
            arr = getattr(self, name)
            arr[dest] = arr[source]
        self._used[source] = False
        self._known[source] = False
        self._dirty = True

    def unregister(self, slot: int) -> None:
        if slot < len(self._used):
            self._used[slot] = False
            self._known[slot] = False
            self._dirty = True

    def _rebuild(self) -> None:
        used = np.flatnonzero(self._used)
        known = used[self._known[used]]
        keys = _stream_keys(self._ip[known], self._port[known], self._ssrc[known])
        order = np.argsort(keys, kind="stable")
        self._stream_sorted, self._stream_slots = keys[order], known[order]
        fresh = used[~self._known[used]]
        keys = _address_keys(self._ip[fresh], self._port[fresh])
        # An address expected by two fresh slots teaches neither: the SSRC must be learned otherwise.
        unique, counts = np.unique(keys, return_counts=True)
        single = np.isin(keys, unique[counts == 1])
        keys, fresh = keys[single], fresh[single]
        order = np.argsort(keys, kind="stable")
        self._addr_sorted, self._addr_slots = keys[order], fresh[order]
        self._dirty = False

    def lookup(
        self, ips: NDArray[np.uint32], ports: NDArray[np.uint16], ssrcs: NDArray[np.uint32]
    ) -> NDArray[np.int64]:
        """The slot of every packet (-1: nobody's); learns SSRCs of fresh slots on the way."""
        if self._dirty:
            self._rebuild()
        out = np.full(len(ips), -1, np.int64)
        if len(self._stream_sorted):
            keys = _stream_keys(ips, ports, ssrcs)
            at = np.minimum(np.searchsorted(self._stream_sorted, keys), len(self._stream_sorted) - 1)
            cand = self._stream_slots[at]
            hit = (
                (self._stream_sorted[at] == keys)
                & (self._ip[cand] == ips)
                & (self._port[cand] == ports)
                & (self._ssrc[cand] == ssrcs)
            )
            out[hit] = cand[hit]
        missing = np.flatnonzero(out < 0)
        if len(missing) and len(self._addr_sorted):
            keys = _address_keys(ips[missing], ports[missing])
            at = np.minimum(np.searchsorted(self._addr_sorted, keys), len(self._addr_sorted) - 1)
            hit = self._addr_sorted[at] == keys
            if hit.any():
                rows, slots = missing[hit], self._addr_slots[at[hit]]
                out[rows] = slots
                for row, slot in zip(rows.tolist(), slots.tolist(), strict=True):
                    if not self._known[slot]:  # the first packet of the batch from there wins
                        self.learn(slot, int(ssrcs[row]))
                        self.learned += 1
                    elif int(self._ssrc[slot]) != int(ssrcs[row]):
                        out[row] = -1
        return out
