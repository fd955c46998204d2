"""SDP (RFC 4566) parsing and serialisation, and RFC 3264 offer/answer for one audio stream.

No sockets and no clock: bytes in, objects out. The parser's contract is that it returns a
``SessionDescription`` or raises ``SdpError``; any other exception is a bug.

Errors::

    SdpError                  malformed SDP (status hint 400)
    └── NoCommonCodec         well-formed, but no audio stream we can accept (status hint 488)
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "ANSWER_PTIMES",
    "AudioAnswer",
    "Attribute",
    "Connection",
    "Direction",
    "MediaDescription",
    "NoCommonCodec",
    "Origin",
    "RtpMap",
    "SdpError",
    "SessionDescription",
    "STATIC_PAYLOAD_TYPES",
    "create_offer",
    "negotiate",
    "parse_answer",
    "parse_sdp",
]

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
DIRECTIONS: tuple[Direction, ...] = ("sendrecv", "sendonly", "recvonly", "inactive")
_REVERSE: dict[Direction, Direction] = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}
RTP_PROTOS = frozenset({"RTP/AVP", "RTP/AVPF"})
"""Transport protocols we answer (plain RTP; no SRTP)."""
_UNDER_HOLD: dict[Direction, Direction] = {  # the peer's direction when its c= address is 0.0.0.0
    "sendrecv": "sendonly",
    "sendonly": "sendonly",
    "recvonly": "inactive",
    "inactive": "inactive",
}
_HOLD_ADDRESSES = frozenset({"0.0.0.0", "::"})


class SdpError(ValueError):
    """Malformed SDP."""

    error_status_hint = 400


class NoCommonCodec(SdpError):
    """No offered audio stream can be accepted: the caller answers 488 Not Acceptable Here."""

    error_status_hint = 488


@dataclass(frozen=True, slots=True)
class RtpMap:
    """``a=rtpmap:<pt> <encoding>/<clock_rate>[/<channels>]``, or a static payload type."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    def to_value(self) -> str:
        tail = f"/{self.channels}" if self.channels is not None else ""
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{tail}"


STATIC_PAYLOAD_TYPES: dict[int, RtpMap] = {
    0: RtpMap(0, "PCMU", 8000),
    3: RtpMap(3, "GSM", 8000),
    4: RtpMap(4, "G723", 8000),
    8: RtpMap(8, "PCMA", 8000),
    9: RtpMap(9, "G722", 8000),
    13: RtpMap(13, "CN", 8000),
    18: RtpMap(18, "G729", 8000),
}
"""RFC 3551 static audio payload types, recognised without an rtpmap."""

_KNOWN_CODECS: dict[str, tuple[int, int | None, int | None]] = {
    # name (upper case): (RTP clock rate, channels in rtpmap, static payload type)
    "PCMU": (8000, None, 0),
    "PCMA": (8000, None, 8),
    "G722": (8000, None, 9),
    "OPUS": (48000, 2, None),
    "TELEPHONE-EVENT": (8000, None, None),
}
_CANONICAL_NAMES = {"OPUS": "opus", "TELEPHONE-EVENT": "telephone-event"}
TELEPHONE_EVENT = "telephone-event"


@dataclass(frozen=True, slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>``."""

    username: str
    session_id: str
    session_version: str
    nettype: str
    addrtype: str
    address: str

    def to_value(self) -> str:
        return " ".join(
            (self.username, self.session_id, self.session_version, self.nettype, self.addrtype, self.address)
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=<nettype> <addrtype> <address>[/<ttl>][/<count>]``; the suffix is kept verbatim."""

    nettype: str
    addrtype: str
    address: str
    suffix: str = ""

    @property
    def is_hold(self) -> bool:
        """RFC 2543 hold: the connection address is 0.0.0.0 (or :: for IP6)."""
        return self.address in _HOLD_ADDRESSES

    def to_value(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}{self.suffix}"


@dataclass(frozen=True, slots=True)
class Attribute:
    """``a=<name>[:<value>]``; ``value`` is None for property attributes such as ``a=sendonly``."""

    name: str
    value: str | None = None

    def to_value(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


def _attribute_values(attributes: Sequence[Attribute], name: str) -> Iterator[str]:
    for attribute in attributes:
        if attribute.name == name and attribute.value is not None:
            yield attribute.value


def _direction_of(attributes: Sequence[Attribute]) -> Direction | None:
    for attribute in attributes:
        if attribute.value is None:
            for direction in DIRECTIONS:
                if attribute.name == direction:
                    return direction
    return None


@dataclass(frozen=True, slots=True)
class MediaDescription:
    """One ``m=`` section with its own lines."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int | None = None
    title: str | None = None
    connection: Connection | None = None
    bandwidths: tuple[str, ...] = ()
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()

    @property
    def is_rtp(self) -> bool:
        return self.proto.upper().startswith("RTP/") or "/RTP/" in self.proto.upper()

    @property
    def payload_types(self) -> tuple[int, ...]:
        """The formats as RTP payload types, in the order listed (only meaningful for RTP)."""
        return tuple(int(f) for f in self.formats)

    def rtpmap(self, payload_type: int) -> RtpMap | None:
        """The rtpmap for ``payload_type``, falling back to the static table.

        An rtpmap line that does not parse (RFC 4475's ``a=rtpmap:31 LPC`` has no clock rate) is ignored,
        as RFC 4566 §5.13 asks of attributes a receiver does not understand.
        """
        for value in _attribute_values(self.attributes, "rtpmap"):
            try:
                mapping = _parse_rtpmap(value)
            except SdpError:
                continue
            if mapping.payload_type == payload_type:
                return mapping
        return STATIC_PAYLOAD_TYPES.get(payload_type)

    def fmtp(self, payload_type: int) -> str | None:
        for value in _attribute_values(self.attributes, "fmtp"):
            pt, _, params = value.partition(" ")
            if pt.strip() == str(payload_type):
                return params.strip()
        return None

    @property
    def ptime(self) -> int | None:
        return _milliseconds(self.attributes, "ptime")

    @property
    def maxptime(self) -> int | None:
        return _milliseconds(self.attributes, "maxptime")

    @property
    def direction(self) -> Direction | None:
        """The direction attribute written in this section, if any."""
        return _direction_of(self.attributes)


def _milliseconds(attributes: Sequence[Attribute], name: str) -> int | None:
    for value in _attribute_values(attributes, name):
        try:
            number = float(value.strip())
        except ValueError:
            raise SdpError(f"invalid a={name} value {value!r}") from None
        if not 0 < number <= 10000:
            raise SdpError(f"a={name} out of range: {value!r}")
        return max(1, round(number))
    return None


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A parsed SDP body. ``to_bytes()`` writes it back in RFC 4566 line order with CRLF endings."""

    origin: Origin
    session_name: str
    media: tuple[MediaDescription, ...] = ()
    connection: Connection | None = None
    version: int = 0
    info: str | None = None
    uri: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    bandwidths: tuple[str, ...] = ()
    timing: tuple[tuple[str, str], ...] = (("t", "0 0"),)
    zone: str | None = None
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()

    def connection_for(self, media: MediaDescription) -> Connection | None:
        """The media-level c= if present, else the session-level one."""
        return media.connection if media.connection is not None else self.connection

    def direction_for(self, media: MediaDescription) -> Direction:
        """The media-level direction, else the session-level one, else sendrecv."""
        return media.direction or _direction_of(self.attributes) or "sendrecv"

    def to_bytes(self) -> bytes:
        lines = [f"v={self.version}", f"o={self.origin.to_value()}", f"s={self.session_name}"]
        lines += _optional("i", self.info) + _optional("u", self.uri)
        lines += [f"e={e}" for e in self.emails] + [f"p={p}" for p in self.phones]
        if self.connection is not None:
            lines.append(f"c={self.connection.to_value()}")
        lines += [f"b={b}" for b in self.bandwidths]
        lines += [f"{kind}={value}" for kind, value in self.timing]
        lines += _optional("z", self.zone) + _optional("k", self.key)
        lines += [f"a={a.to_value()}" for a in self.attributes]
        for m in self.media:
            port = f"{m.port}/{m.port_count}" if m.port_count is not None else str(m.port)
            lines.append(f"m={' '.join((m.media, port, m.proto, *m.formats))}")
            lines += _optional("i", m.title)
            if m.connection is not None:
                lines.append(f"c={m.connection.to_value()}")
            lines += [f"b={b}" for b in m.bandwidths]
            lines += _optional("k", m.key)
            lines += [f"a={a.to_value()}" for a in m.attributes]
        return ("\r\n".join(lines) + "\r\n").encode()


def _optional(kind: str, value: str | None) -> list[str]:
    return [] if value is None else [f"{kind}={value}"]


# ---------------------------------------------------------------------------------------------
# Parsing


def _parse_rtpmap(value: str) -> RtpMap:
    """An ``a=rtpmap`` value; short ones are kept by text (the same few recur in every offer, and the
    answer reads them more than once), long ones are not (bounded memory whatever a peer sends)."""
    return _parse_rtpmap_kept(value) if len(value) <= 64 else _parse_rtpmap_text(value)


@functools.lru_cache(maxsize=1024)
def _parse_rtpmap_kept(value: str) -> RtpMap:
    return _parse_rtpmap_text(value)


def _parse_rtpmap_text(value: str) -> RtpMap:
    pt_text, _, encoding = value.strip().partition(" ")
    parts = encoding.strip().split("/")
    try:
        payload_type = int(pt_text)
        if not 0 <= payload_type <= 127 or len(parts) not in (2, 3) or not parts[0]:
            raise ValueError
        clock_rate = int(parts[1])
        channels = int(parts[2]) if len(parts) == 3 else None
        if clock_rate <= 0 or (channels is not None and channels <= 0):
            raise ValueError
    except ValueError:
        raise SdpError(f"invalid a=rtpmap value {value!r}") from None
    return RtpMap(payload_type, parts[0], clock_rate, channels)


def _parse_connection(value: str) -> Connection:
    parts = value.split()
    if len(parts) != 3 or not parts[2]:
        raise SdpError(f"invalid c= line {value!r}")
    nettype, addrtype, address = parts
    base, slash, suffix = address.partition("/")
    if not base:
        raise SdpError(f"invalid c= address {address!r}")
    return Connection(nettype, addrtype, base, slash + suffix)


def _parse_origin(value: str) -> Origin:
    parts = value.split()
    if len(parts) != 6:
        raise SdpError(f"invalid o= line {value!r}")
    return Origin(*parts)


def _parse_media_line(value: str) -> tuple[str, int, int | None, str, tuple[str, ...]]:
    parts = value.split()
    if len(parts) < 4:
        raise SdpError(f"invalid m= line {value!r}")
    media, port_text, proto, *formats = parts
    port_part, slash, count_part = port_text.partition("/")
    try:
        port = int(port_part)
        count = int(count_part) if slash else None
    except ValueError:
        raise SdpError(f"invalid m= port {port_text!r}") from None
    if not 0 <= port <= 65535 or (count is not None and count <= 0):
        raise SdpError(f"m= port out of range: {port_text!r}")
    upper = proto.upper()
    if upper.startswith("RTP/") or "/RTP/" in upper:
        for fmt in formats:
            if not fmt.isdigit() or not 0 <= int(fmt) <= 127:
                raise SdpError(f"invalid RTP payload type {fmt!r} in m= line")
    return media, port, count, proto, tuple(formats)


def _parse_attribute(value: str) -> Attribute:
    name, colon, rest = value.partition(":")
    if not name or " " in name:
        raise SdpError(f"invalid a= line {value!r}")
    return Attribute(name, rest if colon else None)


def _lines(data: bytes) -> Iterator[tuple[str, str]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SdpError("SDP is not valid UTF-8") from exc
    for raw in text.split("\n"):
        line = raw.removesuffix("\r")
        if not line.strip():
            continue
        if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
            raise SdpError(f"invalid SDP line {line[:60]!r}")
        yield line[0], line[2:]


@dataclass(slots=True)
class _MediaBuilder:
    media: str
    port: int
    port_count: int | None
    proto: str
    formats: tuple[str, ...]
    title: str | None = None
    connection: Connection | None = None
    key: str | None = None
    bandwidths: list[str] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)

    def add(self, kind: str, value: str) -> None:
        if kind == "a":
            self.attributes.append(_parse_attribute(value))
        elif kind == "c":
            if self.connection is not None:
                raise SdpError("more than one c= line in a media section")
            self.connection = _parse_connection(value)
        elif kind == "b":
            self.bandwidths.append(value)
        elif kind == "i":
            self.title = value
        elif kind == "k":
            self.key = value
        elif kind in "vostrzuep":
            raise SdpError(f"{kind}= line inside a media section")
        # other letters: unknown types are ignored (RFC 4566 section 5)

    def build(self) -> MediaDescription:
        return MediaDescription(
            media=self.media,
            port=self.port,
            port_count=self.port_count,
            proto=self.proto,
            formats=self.formats,
            title=self.title,
            connection=self.connection,
            bandwidths=tuple(self.bandwidths),
            key=self.key,
            attributes=tuple(self.attributes),
        )


def parse_sdp(data: bytes) -> SessionDescription:
    """Parse an SDP body, or raise ``SdpError``."""
    lines = list(_lines(data))
    if not lines or lines[0] != ("v", "0"):
        raise SdpError("SDP must start with v=0")
    origin: Origin | None = None
    connection: Connection | None = None
    texts: dict[str, str] = {}
    lists: dict[str, list[str]] = {"e": [], "p": [], "b": []}
    timing: list[tuple[str, str]] = []
    attributes: list[Attribute] = []
    media: list[MediaDescription] = []
    current: _MediaBuilder | None = None

    for kind, value in lines[1:]:
        if kind == "m":
            if current is not None:
                media.append(current.build())
            current = _MediaBuilder(*_parse_media_line(value))
        elif current is not None:
            current.add(kind, value)
        elif kind == "o":
            if origin is not None:
                raise SdpError("more than one o= line")
            origin = _parse_origin(value)
        elif kind == "c":
            if connection is not None:
                raise SdpError("more than one session-level c= line")
            connection = _parse_connection(value)
        elif kind in ("t", "r"):
            if kind == "r" and not timing:
                raise SdpError("r= line before any t= line")
            timing.append((kind, value))
        elif kind == "a":
            attributes.append(_parse_attribute(value))
        elif kind in lists:
            lists[kind].append(value)
        elif kind in ("s", "i", "u", "z", "k"):
            if kind in texts:
                raise SdpError(f"more than one {kind}= line")
            texts[kind] = value
        elif kind == "v":
            raise SdpError("more than one v= line")
    if current is not None:
        media.append(current.build())

    if origin is None:
        raise SdpError("SDP has no o= line")
    if "s" not in texts:
        raise SdpError("SDP has no s= line")
    description = SessionDescription(
        origin=origin,
        session_name=texts["s"],
        media=tuple(media),
        connection=connection,
        info=texts.get("i"),
        uri=texts.get("u"),
        emails=tuple(lists["e"]),
        phones=tuple(lists["p"]),
        bandwidths=tuple(lists["b"]),
        timing=tuple(timing),
        zone=texts.get("z"),
        key=texts.get("k"),
        attributes=tuple(attributes),
    )
    _validate_attributes(description)
    return description


def _validate_attributes(description: SessionDescription) -> None:
    """Check the attributes negotiation reads, so later property reads cannot fail."""
    for m in description.media:
        _ = m.ptime, m.maxptime


# ---------------------------------------------------------------------------------------------
# Offer/answer (RFC 3264) for one audio stream

DEFAULT_PTIME = 20
"""Packet time in ms when the peer states none; also the packet time the switch offers."""
ANSWER_PTIMES = frozenset({10, 20, 30, 40, 50, 60})
"""Packet times the media engine sends (``switch.media.engine.PTIMES``): an answer echoes the offer's
a=ptime when it is one of these, else says ``DEFAULT_PTIME``, the packet time the engine falls back to."""


@dataclass(frozen=True, slots=True)
class AudioAnswer:
    """The outcome of offer/answer for the audio stream: what to send, where, and how.

    ``ptime`` is the packet time the peer asked to receive (its a=ptime), ``DEFAULT_PTIME`` when it
    gave none. ``local_direction`` is the switch's direction (the one written in the answer when the
    switch answers). ``sdp`` is the answer body: built by ``negotiate``, or as received by
    ``parse_answer``.
    """

    codec: str
    payload_type: int
    clock_rate: int
    telephone_event_pt: int | None
    remote_address: str
    remote_port: int
    remote_direction: Direction
    local_direction: Direction
    on_hold: bool
    sdp: bytes
    ptime: int = DEFAULT_PTIME
    channels: int = 1
    fmtp: str | None = None
    media_index: int = 0


@dataclass(frozen=True, slots=True)
class _Selection:
    codec: str
    mapping: RtpMap
    telephone_event: RtpMap | None
    connection: Connection
    remote_direction: Direction
    local_direction: Direction
    on_hold: bool


def _canonical(name: str) -> str:
    upper = name.upper()
    return _CANONICAL_NAMES.get(upper, upper)


def _codec_matches(mapping: RtpMap, wanted: set[str]) -> bool:
    upper = mapping.encoding.upper()
    if upper not in wanted:
        return False
    known = _KNOWN_CODECS.get(upper)
    return known is None or known[0] == mapping.clock_rate


def _select(description: SessionDescription, m: MediaDescription, wanted: set[str]) -> _Selection | None:
    """Pick the first wanted voice codec in ``m``'s order, and telephone-event at its clock rate."""
    codec: RtpMap | None = None
    events: list[RtpMap] = []
    for pt in m.payload_types:
        mapping = m.rtpmap(pt)
        if mapping is None:
            continue
        if mapping.encoding.upper() == "TELEPHONE-EVENT":
            events.append(mapping)
        elif codec is None and _codec_matches(mapping, wanted):
            codec = mapping
    if codec is None:
        return None
    telephone_event = None
    if "TELEPHONE-EVENT" in wanted:
        telephone_event = next((e for e in events if e.clock_rate == codec.clock_rate), None)
    connection = description.connection_for(m)
    if connection is None:
        raise SdpError("the audio stream has no c= line at session or media level")
    remote = description.direction_for(m)
    effective = remote
    if connection.is_hold:  # RFC 2543 hold: the peer cannot receive
        effective = _UNDER_HOLD[remote]
    return _Selection(
        codec=_canonical(codec.encoding),
        mapping=codec,
        telephone_event=telephone_event,
        connection=connection,
        remote_direction=remote,
        local_direction=_REVERSE[effective],
        on_hold=connection.is_hold or remote in ("sendonly", "inactive"),
    )


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _session(
    local_address: str, session_id: int, session_version: int, media: Sequence[MediaDescription]
) -> SessionDescription:
    addrtype = _addrtype(local_address)
    return SessionDescription(
        origin=Origin("switch", str(session_id), str(session_version), "IN", addrtype, local_address),
        session_name="switch",
        connection=Connection("IN", addrtype, local_address),
        timing=(("t", "0 0"),),
        media=tuple(media),
    )


def _audio_attributes(
    codecs: Sequence[tuple[RtpMap, str | None]], direction: Direction, ptime: int = DEFAULT_PTIME
) -> tuple[Attribute, ...]:
    attributes: list[Attribute] = []
    for mapping, fmtp in codecs:
        attributes.append(Attribute("rtpmap", mapping.to_value()))
        if fmtp:
            attributes.append(Attribute("fmtp", f"{mapping.payload_type} {fmtp}"))
    attributes.append(Attribute("ptime", str(ptime)))
    attributes.append(Attribute(direction))
    return tuple(attributes)


def negotiate(
    offer: SessionDescription,
    *,
    local_address: str,
    local_port: int,
    supported: Sequence[str] = ("PCMU", "PCMA", "G722", "telephone-event"),
    session_id: int,
    session_version: int,
) -> AudioAnswer:
    """Answer ``offer``: accept its first usable audio stream, reject every other m= line (port 0).

    The codec is the first one in the offerer's order that is in ``supported`` (names compared
    without case; known codecs must also have their standard clock rate). telephone-event is
    accepted with the offerer's payload type when ``supported`` lists it. Raises ``NoCommonCodec``
    when no audio stream can be accepted, ``SdpError`` when the chosen stream has no address.
    """
    wanted = {name.upper() for name in supported}
    chosen: tuple[int, _Selection, MediaDescription] | None = None
    answer_media: list[MediaDescription] = []
    for index, m in enumerate(offer.media):
        selection = None
        if chosen is None and m.media == "audio" and m.port != 0 and m.proto.upper() in RTP_PROTOS:
            selection = _select(offer, m, wanted)
        if selection is None:
            answer_media.append(MediaDescription(m.media, 0, m.proto, m.formats[:1] or ("0",)))
            continue
        chosen = (index, selection, m)
        codecs = [(selection.mapping, m.fmtp(selection.mapping.payload_type))]
        if selection.telephone_event is not None:
            te = selection.telephone_event
            codecs.append((te, m.fmtp(te.payload_type) or "0-16"))
        formats = tuple(str(mapping.payload_type) for mapping, _ in codecs)
        attributes = _audio_attributes(codecs, selection.local_direction, _answer_ptime(m, selection.codec))
        answer_media.append(MediaDescription("audio", local_port, m.proto, formats, attributes=attributes))
    if chosen is None:
        raise NoCommonCodec("no acceptable audio stream in the offer")
    index, selection, m = chosen
    sdp = _session(local_address, session_id, session_version, answer_media).to_bytes()
    return _answer(selection, index, m, sdp)


def _answer_ptime(m: MediaDescription, codec: str) -> int:
    """The a=ptime of our answer: the packet time the switch will send, which is the offer's when the
    engine can send it (Opus goes in 20 ms frames only), as RFC 3264 §6.1 lets the answerer choose."""
    ptime = m.ptime
    return ptime if ptime in ANSWER_PTIMES and codec != "opus" else DEFAULT_PTIME


def _answer(selection: _Selection, index: int, m: MediaDescription, sdp: bytes) -> AudioAnswer:
    te = selection.telephone_event
    return AudioAnswer(
        codec=selection.codec,
        payload_type=selection.mapping.payload_type,
        clock_rate=selection.mapping.clock_rate,
        channels=selection.mapping.channels or 1,
        fmtp=m.fmtp(selection.mapping.payload_type),
        telephone_event_pt=te.payload_type if te is not None else None,
        ptime=m.ptime or DEFAULT_PTIME,
        remote_address=selection.connection.address,
        remote_port=m.port,
        remote_direction=selection.remote_direction,
        local_direction=selection.local_direction,
        on_hold=selection.on_hold,
        sdp=sdp,
        media_index=index,
    )


def _offer_mappings(codecs: Sequence[str]) -> list[RtpMap]:
    names = [_canonical(name) for name in codecs]
    if len({name.upper() for name in names}) != len(names):
        raise ValueError(f"a codec is listed twice in {list(codecs)!r}")
    used = {known[2] for name in names if (known := _KNOWN_CODECS.get(name.upper())) and known[2] is not None}
    used.add(101)  # kept for telephone-event
    dynamic = (pt for pt in range(96, 128) if pt not in used)
    mappings: list[RtpMap] = []
    for name in names:
        known = _KNOWN_CODECS.get(name.upper())
        if known is None:
            raise ValueError(f"cannot offer unknown codec {name!r}")
        rate, channels, static = known
        if static is not None:
            pt = static
        elif name == TELEPHONE_EVENT:
            pt = 101
        else:
            pt = next(dynamic)
        mappings.append(RtpMap(pt, name, rate, channels))
    return mappings


def create_offer(
    local_address: str,
    local_port: int,
    codecs: Sequence[str],
    session_id: int,
    session_version: int,
    direction: Direction = "sendrecv",
) -> bytes:
    """An SDP offer with one audio stream listing ``codecs`` in preference order.

    Static payload types for PCMU (0), PCMA (8) and G722 (9); telephone-event gets 101, other dynamic
    codecs 96 upwards. Every codec gets an rtpmap line. Raises ``ValueError`` for unknown codecs.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"invalid direction {direction!r}")
    if not codecs:
        raise ValueError("an offer needs at least one codec")
    mappings = _offer_mappings(codecs)
    with_fmtp = [(m, "0-16" if m.encoding == TELEPHONE_EVENT else None) for m in mappings]
    formats = tuple(str(m.payload_type) for m in mappings)
    audio = MediaDescription(
        "audio", local_port, "RTP/AVP", formats, attributes=_audio_attributes(with_fmtp, direction)
    )
    return _session(local_address, session_id, session_version, [audio]).to_bytes()


def parse_answer(answer: bytes | SessionDescription, offer_codecs: Sequence[str]) -> AudioAnswer:
    """Read the answer to an offer made with ``create_offer(..., offer_codecs)``.

    The codec is the first one in the answerer's order that was offered. Raises ``SdpError`` for a
    malformed answer and ``NoCommonCodec`` when the audio stream was rejected (port 0) or carries no
    offered codec.
    """
    if isinstance(answer, SessionDescription):
        description, sdp = answer, answer.to_bytes()
    else:
        description, sdp = parse_sdp(answer), answer
    wanted = {name.upper() for name in offer_codecs}
    for index, m in enumerate(description.media):
        if m.media != "audio":
            continue
        if m.port == 0:
            raise NoCommonCodec("the answer rejected the audio stream")
        if m.proto.upper() not in RTP_PROTOS:
            raise NoCommonCodec(f"the answer uses transport {m.proto!r}")
        selection = _select(description, m, wanted)
        if selection is None:
            raise NoCommonCodec("the answer has no offered codec")
        return _answer(selection, index, m, sdp)
    raise NoCommonCodec("the answer has no audio stream")
