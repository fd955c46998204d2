"""SIP messages: the Request/Response model, the datagram and stream parsers, the serializer.

``parse_message`` returns a message or raises :class:`SipParseError`; no other exception escapes.
It is liberal where RFC 4475 allows (folding, LWS around ':' '/' ';' '=', compact names, extra SP in
the Request-Line, bare LF line ends) and strict where it requires rejection (bad Content-Length,
duplicated single-valued headers, malformed Via/From/To/Contact/CSeq, CSeq method mismatch, unknown
SIP version with a 505 hint). ``Content-Length`` in a parsed message always equals ``len(body)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import cast

from switch.sip.errors import SipFramingError, SipParseError
from switch.sip.headers import (
    CSeq,
    Headers,
    NameAddr,
    Via,
    is_token,
    parse_cseq,
    parse_name_addr,
    parse_via,
)
from switch.sip.uri import AbsoluteURI, SipURI, parse_uri

__all__ = [
    "MAX_HEADERS",
    "MAX_MESSAGE_SIZE",
    "REASON_PHRASES",
    "Request",
    "Response",
    "StreamParser",
    "error_response_for",
    "make_response",
    "parse_message",
    "reason_phrase",
    "serialize",
]

MAX_MESSAGE_SIZE = 65536
MAX_HEADERS = 256
SIP_VERSION = "SIP/2.0"

REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}

_CLASS_REASONS = {
    1: "Trying",
    2: "OK",
    3: "Redirection",
    4: "Client Error",
    5: "Server Error",
    6: "Global Failure",
}


def reason_phrase(status: int) -> str:
    """The RFC 3261 reason phrase for a status (a generic one for its class when unknown)."""
    return REASON_PHRASES.get(status) or _CLASS_REASONS.get(status // 100, "Unknown")


_SINGLETONS = ("Call-ID", "From", "To", "CSeq", "Max-Forwards", "Content-Type")
_SINGLETON_KEYS = tuple((name.lower(), name) for name in _SINGLETONS)
_DIGITS_RE = re.compile(r"[0-9]+\Z")
_SPACE_RE = re.compile(r"\s")
_CONTENT_TYPE_RE = re.compile(
    r"\s*([A-Za-z0-9\-.!%*_+`'~]+)\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s*(?:;.*)?\Z", re.S
)
_LINE_SPLIT_RE = re.compile(r"\r?\n")
_REQUEST_LINE_SPLIT_RE = re.compile(r"[ \t]+")
_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+\Z", re.I)
_STATUS_RE = re.compile(r"[1-6][0-9][0-9]\Z")


class _Accessors:
    """Parsed views of the common headers, shared by Request and Response.

    Each view is parsed on first access and kept in ``headers.parsed`` until the fields change (any
    ``add``/``set``/``remove`` forgets them); list views are returned as new lists. A malformed value
    raises :class:`SipParseError` on every access.
    """

    headers: Headers

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipParseError(f"missing {name} header")
        return value

    @property
    def vias(self) -> list[Via]:
        parsed = self.headers.parsed
        vias = parsed.get("Via")
        if vias is None:
            vias = parsed["Via"] = [parse_via(value) for value in self.headers.get_all("Via")]
        return list(cast("list[Via]", vias))

    @property
    def call_id(self) -> str:
        parsed = self.headers.parsed
        call_id = parsed.get("Call-ID")
        if call_id is None:
            value = self._required("Call-ID").strip()
            if not value or _SPACE_RE.search(value) is not None:
                raise SipParseError(f"malformed Call-ID {value!r}")
            call_id = parsed["Call-ID"] = value
        return cast(str, call_id)

    @property
    def cseq(self) -> CSeq:
        parsed = self.headers.parsed
        cseq = parsed.get("CSeq")
        if cseq is None:
            cseq = parsed["CSeq"] = parse_cseq(self._required("CSeq"))
        return cast(CSeq, cseq)

    @property
    def from_(self) -> NameAddr:
        parsed = self.headers.parsed
        from_ = parsed.get("From")
        if from_ is None:
            from_ = parsed["From"] = parse_name_addr(self._required("From"))
        return cast(NameAddr, from_)

    @property
    def to(self) -> NameAddr:
        parsed = self.headers.parsed
        to = parsed.get("To")
        if to is None:
            to = parsed["To"] = parse_name_addr(self._required("To"))
        return cast(NameAddr, to)

    @property
    def contacts(self) -> list[NameAddr]:
        """The Contact values; a wildcard ``Contact: *`` gives an empty list (see ``contact_is_star``)."""
        parsed = self.headers.parsed
        contacts = parsed.get("Contact")
        if contacts is None:
            values = self.headers.get_all("Contact")
            contacts = parsed["Contact"] = [] if values == ["*"] else [parse_name_addr(v) for v in values]
        return list(cast("list[NameAddr]", contacts))

    @property
    def contact_is_star(self) -> bool:
        return self.headers.get_all("Contact") == ["*"]

    @property
    def content_type(self) -> str | None:
        parsed = self.headers.parsed
        if "Content-Type" in parsed:
            return cast("str | None", parsed["Content-Type"])
        value = self.headers.get("Content-Type")
        content_type: str | None = None
        if value is not None:
            match = _CONTENT_TYPE_RE.match(value)
            if match is None:
                raise SipParseError(f"malformed Content-Type {value!r}")
            content_type = f"{match.group(1)}/{match.group(2)}".lower()
        parsed["Content-Type"] = content_type
        return content_type

    @property
    def max_forwards(self) -> int | None:
        parsed = self.headers.parsed
        if "Max-Forwards" in parsed:
            return cast("int | None", parsed["Max-Forwards"])
        value = self.headers.get("Max-Forwards")
        max_forwards: int | None = None
        if value is not None:
            value = value.strip()
            if not _DIGITS_RE.match(value) or len(value) > 10:
                raise SipParseError(f"malformed Max-Forwards {value!r}")
            max_forwards = int(value)
        parsed["Max-Forwards"] = max_forwards
        return max_forwards


@dataclass(eq=True)
class Request(_Accessors):
    method: str
    uri: SipURI | AbsoluteURI
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = SIP_VERSION


@dataclass(eq=True)
class Response(_Accessors):
    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = SIP_VERSION


def _split_head(data: bytes | bytearray, start: int) -> tuple[int, int] | None:
    """(end of the header section, start of the body) or None when no empty line is found."""
    crlf = data.find(b"\r\n\r\n", start)
    lf = data.find(b"\n\n", start)
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, crlf + 4
    if lf >= 0:
        return lf, lf + 2
    return None


def _skip_crlf(data: bytes | bytearray, start: int = 0) -> int:
    n = len(data)
    while start < n and data[start] in (13, 10):
        start += 1
    return start


_VALID_NAMES: set[str] = set()  # header names already checked to be tokens (bounded)
_VALID_NAMES_LIMIT = 1024


def _header_lines(head: str) -> tuple[str, list[tuple[str, str]]]:
    """Split a header section into the start line and unfolded (name, value) pairs."""
    lines = _LINE_SPLIT_RE.split(head)
    fields: list[tuple[str, str]] = []
    valid = _VALID_NAMES
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t":
            if not fields:
                raise SipParseError("continuation line before any header")
            name, value = fields[-1]
            fields[-1] = (name, (value + " " + line.strip(" \t")).strip(" \t"))
            continue
        name, colon, value = line.partition(":")
        if name not in valid:
            stripped = name.rstrip(" \t")
            if not colon or not is_token(stripped):
                raise SipParseError(f"malformed header line {line[:60]!r}")
            if stripped == name and len(valid) < _VALID_NAMES_LIMIT:
                valid.add(name)
            name = stripped
        elif not colon:  # a known name alone on its line
            raise SipParseError(f"malformed header line {line[:60]!r}")
        fields.append((name, value.strip(" \t")))
        if len(fields) > MAX_HEADERS:
            raise SipParseError("too many header fields", 513)
    return lines[0], fields


def _parse_start_line(line: str) -> Request | Response:
    if line.startswith("SIP/") or line.startswith("sip/"):
        version, _, rest = line.partition(" ")
        status_text, _, reason = rest.partition(" ")
        if version.upper() != SIP_VERSION:
            raise SipParseError(f"unsupported SIP version in response {version!r}", None)
        if not _STATUS_RE.match(status_text):
            raise SipParseError(f"bad status code {status_text[:20]!r}", None)
        return Response(int(status_text), reason.strip(" \t"), Headers(), b"", SIP_VERSION)
    parts = _REQUEST_LINE_SPLIT_RE.split(line.strip(" \t"))
    if len(parts) != 3:
        raise SipParseError(f"malformed Request-Line {line[:80]!r}")
    method, uri_text, version = parts
    if not is_token(method):
        raise SipParseError(f"bad method {method[:40]!r}")
    if not _VERSION_RE.match(version):
        raise SipParseError(f"bad SIP version {version[:20]!r}")
    if version.upper() != SIP_VERSION:
        raise SipParseError(f"SIP version {version} not supported", 505)
    return Request(method, parse_uri(uri_text), Headers(), b"", SIP_VERSION)


def _content_length(values: list[str]) -> int | None:
    if not values:
        return None
    lengths = {value.strip() for value in values}
    if len(lengths) > 1:
        raise SipParseError(f"conflicting Content-Length values {sorted(lengths)}")
    text = lengths.pop()
    if not _DIGITS_RE.match(text) or len(text) > 9:
        raise SipParseError(f"malformed Content-Length {text[:20]!r}")
    return int(text)


def _validate(msg: Request | Response) -> None:
    counts = msg.headers.counts()
    for key, name in _SINGLETON_KEYS:
        if counts.get(key, 0) > 1:
            raise SipParseError(f"more than one {name} header")
    vias = msg.vias
    if not vias:
        raise SipParseError("missing Via header")
    msg.from_  # noqa: B018 - parsed for validation
    msg.to  # noqa: B018
    msg.call_id  # noqa: B018
    cseq = msg.cseq
    if isinstance(msg, Request) and cseq.method != msg.method:
        raise SipParseError(f"CSeq method {cseq.method!r} does not match {msg.method!r}")
    msg.contacts  # noqa: B018
    msg.max_forwards  # noqa: B018
    msg.content_type  # noqa: B018


def parse_message(data: bytes) -> Request | Response:
    """Parse one datagram. The body is framed by Content-Length (trailing octets ignored), or is the
    rest of the datagram when there is none. Raises SipParseError (status_hint None for responses)."""
    is_response = data[:4].upper() == b"SIP/"
    try:
        return _parse(data)
    except SipParseError as exc:
        if is_response or data[_skip_crlf(data) :][:4].upper() == b"SIP/":
            exc.status_hint = None
        raise


def _parse(data: bytes) -> Request | Response:
    if len(data) > MAX_MESSAGE_SIZE:
        raise SipParseError(f"message of {len(data)} octets is too large", 513)
    start = _skip_crlf(data)
    if start >= len(data):
        raise SipParseError("empty message", None)
    bounds = _split_head(data, start)
    head_end, body_start = bounds if bounds is not None else (len(data), len(data))
    head = data[start:head_end].decode("utf-8", "surrogateescape")
    start_line, fields = _header_lines(head)
    msg = _parse_start_line(start_line)
    headers = msg.headers
    headers.extend(fields)
    lengths = headers.get_all("Content-Length")
    length = _content_length(lengths)
    available = len(data) - body_start
    if length is None:
        msg.body = data[body_start:]
    elif length > available:
        raise SipParseError(f"Content-Length {length} exceeds the {available} octets received")
    else:
        msg.body = data[body_start : body_start + length]
    size = str(len(msg.body))
    if len(lengths) != 1 or lengths[0] != size:  # one field, its value the body's size
        headers.set("Content-Length", size)
    _validate(msg)
    return msg


def serialize(msg: Request | Response) -> bytes:
    """Serialise a message; Content-Length is always written and always equals len(body)."""
    if isinstance(msg, Request):
        lines = [f"{msg.method} {msg.uri} {msg.version}"]
    else:
        lines = [f"{msg.version} {msg.status} {msg.reason}"]
    wrote_length = False
    for name, value in msg.headers.items():
        if name == "Content-Length":
            if wrote_length:
                continue
            value = str(len(msg.body))
            wrote_length = True
        lines.append(f"{name}: {value}")
    if not wrote_length:
        lines.append(f"Content-Length: {len(msg.body)}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + msg.body


def make_response(
    request: Request, status: int, reason: str | None = None, *, to_tag: str | None = None
) -> Response:
    """A response to ``request`` (RFC 3261 8.2.6.2): Vias in order, From, To (+tag), Call-ID, CSeq."""
    src = request.headers
    fields = [("Via", via) for via in src.get_all("Via")]
    from_ = src.get("From")
    if from_ is not None:
        fields.append(("From", from_))
    to = src.get("To")
    if to is not None:
        if to_tag is not None and status != 100:
            try:
                has_tag = request.to.tag is not None
            except SipParseError:
                has_tag = True
            if not has_tag:
                to = f"{to};tag={to_tag}"
        fields.append(("To", to))
    for name in ("Call-ID", "CSeq"):
        value = src.get(name)
        if value is not None:
            fields.append((name, value))
    if status == 100:
        timestamp = src.get("Timestamp")
        if timestamp is not None:
            fields.append(("Timestamp", timestamp))
    headers = Headers()
    headers.extend(fields)
    return Response(status, reason if reason is not None else reason_phrase(status), headers)


def error_response_for(data: bytes, error: SipParseError) -> Response | None:
    """Best-effort response to a request that failed to parse, or None (response, garbage, no Via)."""
    if error.status_hint is None:
        return None
    try:
        start = _skip_crlf(data)
        if data[start : start + 4].upper() == b"SIP/":
            return None
        bounds = _split_head(data, start)
        head_end = bounds[0] if bounds is not None else len(data)
        head = data[start : min(head_end, start + MAX_MESSAGE_SIZE)].decode("utf-8", "surrogateescape")
        lines = _LINE_SPLIT_RE.split(head)
        fields: list[list[str]] = []
        for line in lines[1 : MAX_HEADERS * 4]:
            if line[:1] in (" ", "\t") and fields:
                fields[-1][1] += " " + line.strip(" \t")
            elif ":" in line:
                name, _, value = line.partition(":")
                fields.append([name.strip(" \t"), value.strip(" \t")])
        src = Headers((name, value) for name, value in fields if is_token(name))
        vias = src.get_all("Via")
        if not vias:
            return None
        parse_via(vias[0], strict=False)
        headers = Headers()
        for via in vias:
            headers.add("Via", via)
        for name in ("From", "To", "Call-ID", "CSeq"):
            value = src.get(name)
            if value is not None:
                headers.add(name, value)
    except SipParseError:
        return None
    status = error.status_hint
    return Response(status, reason_phrase(status), headers)


_CL_RE = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$", re.I | re.M)


class StreamParser:
    """Frames SIP messages on a byte stream (TCP/TLS) by Content-Length.

    ``feed`` returns the complete messages received so far. It raises :class:`SipFramingError` when the
    stream cannot be framed (no, negative, conflicting or oversized Content-Length, header section too
    large): the connection must then be closed, and every later call raises the same error. A message
    that is framed but malformed raises a plain :class:`SipParseError` carrying the message's bytes in
    ``raw`` (for :func:`error_response_for`); the stream stays usable, and the messages after it are
    returned by the next ``feed`` (``feed(b"")`` is fine). Messages parsed before a malformed one in
    the same call are returned first and the error is raised by the next call.
    """

    def __init__(self, max_message_size: int = MAX_MESSAGE_SIZE) -> None:
        self._buf = bytearray()
        self._max = max_message_size
        self._pending: SipParseError | None = None
        self._dead: SipFramingError | None = None

    @property
    def buffered(self) -> int:
        """Octets received but not yet part of a complete message."""
        return len(self._buf)

    def _fail(self, message: str, status_hint: int | None, raw: bytes) -> SipFramingError:
        self._dead = SipFramingError(message, status_hint, raw=raw)
        return self._dead

    def feed(self, data: bytes) -> list[Request | Response]:
        if self._dead is not None:
            raise self._dead
        self._buf += data
        if self._pending is not None:
            pending, self._pending = self._pending, None
            raise pending
        messages: list[Request | Response] = []
        try:
            self._frame(messages)
        except SipParseError as exc:
            if not messages:
                raise
            if not isinstance(exc, SipFramingError):
                self._pending = exc
        return messages

    def _frame(self, messages: list[Request | Response]) -> None:
        buf = self._buf
        while True:
            start = _skip_crlf(buf)
            if start:
                del buf[:start]
            if not buf:
                return
            bounds = _split_head(buf, 0)
            if bounds is None:
                if len(buf) > self._max:
                    raise self._fail("header section too large", 513, bytes(buf[:4096]))
                return
            head_end, body_start = bounds
            head = bytes(buf[:head_end])
            is_response = head[:4].upper() == b"SIP/"
            hint = None if is_response else 400
            values = [m.decode("latin-1") for m in _CL_RE.findall(head)]
            if not values:
                raise self._fail("no Content-Length on a stream transport", hint, head)
            try:
                length = _content_length(values)
            except SipParseError as exc:
                raise self._fail(exc.message, hint, head) from None
            assert length is not None
            if body_start + length > self._max:
                raise self._fail(f"message of {body_start + length} octets is too large", 513, head)
            if len(buf) < body_start + length:
                return
            raw = bytes(buf[: body_start + length])
            del buf[: body_start + length]
            try:
                messages.append(parse_message(raw))
            except SipParseError as exc:
                exc.raw = raw
                raise
                raise
        return messages
