"""An RTP sink: a UDP socket on a free loopback port that records every packet with its arrival time.

The receiving thread only records (`time.monotonic()`, bytes, source); parsing and analysis happen afterwards
in the test thread: `packets()` parses RFC 3550 headers, `stream()` summarises one SSRC (count, sequence and
timestamp continuity, arrival spacing) and decodes G.711 payloads to PCM placed by RTP timestamp.
Optionally the sink answers each packet with one of silence, as a phone would (symmetric RTP).
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from dataclasses import dataclass
from types import TracebackType

import numpy as np
from numpy.typing import NDArray

from voicecodecs import g711

__all__ = ["RtpPacket", "RtpSink", "RtpStream", "parse_rtp"]

_HEADER = struct.Struct("!BBHII")
PCMU, PCMA = 0, 8


@dataclass(frozen=True, slots=True)
class RtpPacket:
    arrival: float
    source: tuple[str, int]
    version: int
    marker: bool
    payload_type: int
    seq: int
    timestamp: int
    ssrc: int
    payload: bytes


def parse_rtp(data: bytes, arrival: float = 0.0, source: tuple[str, int] = ("", 0)) -> RtpPacket:
    """Parse one RTP packet (CSRCs, extension and padding handled); raise ValueError if it is not RTP."""
    if len(data) < _HEADER.size:
        raise ValueError(f"RTP packet too short: {len(data)} bytes")
    b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
    version = b0 >> 6
    if version != 2:
        raise ValueError(f"RTP packet has invalid version {version}")
    offset = _HEADER.size + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        if len(data) < offset + 4:
            raise ValueError("RTP header extension truncated")
        (words,) = struct.unpack_from("!H", data, offset + 2)
        offset += 4 + 4 * words
    end = len(data)
    if b0 & 0x20 and end > offset:
        end -= data[-1]
    if end < offset:
        raise ValueError("RTP packet shorter than its header")
    return RtpPacket(arrival, source, version, bool(b1 & 0x80), b1 & 0x7F, seq, ts, ssrc, data[offset:end])


def decode_g711(payload_type: int, payload: bytes) -> NDArray[np.int16]:
    """PCM of a PCMU (0) or PCMA (8) payload."""
    codes = np.frombuffer(payload, dtype=np.uint8)
    if payload_type == PCMU:
        return g711.ulaw_decode(codes)
    if payload_type == PCMA:
        return g711.alaw_decode(codes)
    raise ValueError(f"payload type {payload_type} is not G.711")


@dataclass(frozen=True, slots=True)
class RtpStream:
    """The packets of one SSRC in arrival order, and what can be said about them."""

    packets: tuple[RtpPacket, ...]

    @property
    def count(self) -> int:
        return len(self.packets)

    @property
    def payload_types(self) -> set[int]:
        return {p.payload_type for p in self.packets}

    def seq_steps(self) -> NDArray[np.int64]:
        """Sequence number differences between consecutive arrivals (modulo 2**16): all 1 when continuous."""
        seqs = np.array([p.seq for p in self.packets], dtype=np.int64)
        return np.diff(seqs) % 65536

    def timestamp_steps(self) -> NDArray[np.int64]:
        """RTP timestamp differences between consecutive arrivals (modulo 2**32): 160 for 20 ms of 8 kHz."""
        stamps = np.array([p.timestamp for p in self.packets], dtype=np.int64)
        return np.diff(stamps) % (1 << 32)

    def arrival_steps_ms(self) -> NDArray[np.float64]:
        """Milliseconds between consecutive arrivals."""
        arrivals = np.array([p.arrival for p in self.packets], dtype=np.float64)
        return np.diff(arrivals) * 1000.0

    def duration_s(self) -> float:
        return self.packets[-1].arrival - self.packets[0].arrival if self.packets else 0.0

    def pcm(self) -> NDArray[np.int16]:
        """Decoded audio with each packet placed at its RTP timestamp (gaps stay silent)."""
        if not self.packets:
            return np.zeros(0, dtype=np.int16)
        first = self.packets[0].timestamp
        offsets = [(p.timestamp - first) % (1 << 32) for p in self.packets]
        total = max(o + len(p.payload) for o, p in zip(offsets, self.packets, strict=True))
        out = np.zeros(total, dtype=np.int16)
        for offset, packet in zip(offsets, self.packets, strict=True):
            samples = decode_g711(packet.payload_type, packet.payload)
            out[offset : offset + len(samples)] = samples
        return out


class RtpSink:
    """Record RTP arriving on a loopback UDP port, from a background thread; a context manager."""

    def __init__(self, host: str = "127.0.0.1", *, answer_with_silence: bool = False) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self._sock.bind((host, 0))
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        self._answer = answer_with_silence
        self._raw: list[tuple[float, bytes, tuple[str, int]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rtp-sink-{self.port}", daemon=True)
        self._started = False

    def start(self) -> RtpSink:
        self._thread.start()
        self._started = True
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._started:
            self._thread.join(5)
        self._sock.close()

    def __enter__(self) -> RtpSink:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def raw(self) -> list[tuple[float, bytes, tuple[str, int]]]:
        """(arrival, datagram, source) for everything received so far."""
        with self._lock:
            return list(self._raw)

    def packets(self) -> list[RtpPacket]:
        """Every datagram that parses as RTP (RTCP and junk are left out), in arrival order."""
        found = []
        for arrival, data, source in self.raw():
            if len(data) >= 2 and 200 <= data[1] <= 204:
                continue  # RTCP on the RTP port (rtcp-mux)
            try:
                found.append(parse_rtp(data, arrival, source))
            except ValueError:
                continue
        return found

    def stream(self) -> RtpStream:
        """The stream of the SSRC that sent the most packets (empty if nothing came)."""
        packets = self.packets()
        if not packets:
            return RtpStream(())
        counts: dict[int, int] = {}
        for p in packets:
            counts[p.ssrc] = counts.get(p.ssrc, 0) + 1
        main = max(counts, key=lambda s: counts[s])
        return RtpStream(tuple(p for p in packets if p.ssrc == main))

    def wait_quiet(self, quiet: float = 0.5, timeout: float = 30.0) -> int:
        """Block until nothing arrived for `quiet` seconds after at least one packet, or `timeout`;
        return the number of datagrams received."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                last = self._raw[-1][0] if self._raw else None
            if last is not None and time.monotonic() - last >= quiet:
                break
            self._stop.wait(0.05)
        return len(self.raw())

    def _run(self) -> None:
        silence_seq = 0
        while not self._stop.is_set():
            ready, _, _ = select.select([self._sock], [], [], 0.05)
            if not ready:
                continue
            try:
                data, source = self._sock.recvfrom(2048)
            except OSError:
                return
            arrival = time.monotonic()
            with self._lock:
                self._raw.append((arrival, data, source))
            if self._answer and len(data) >= 12 and data[1] & 0x7F in (PCMU, PCMA):
                silence_seq = (silence_seq + 1) & 0xFFFF
                header = _HEADER.pack(0x80, data[1] & 0x7F, silence_seq, silence_seq * 160, 0x5EED)
                fill = g711.ULAW_SILENCE if data[1] & 0x7F == PCMU else g711.ALAW_SILENCE
                try:
                    self._sock.sendto(header + bytes([fill]) * 160, source)
                except OSError:
                    pass
