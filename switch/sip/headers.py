"""SIP header fields: an ordered, case-insensitive multimap and parsers for structured values.

Header names are normalised on insertion: compact forms (``v``, ``f``, ``t``, ``i``, ``m``, ``l``...) and any
spelling of a known header become the canonical name (``Call-ID``, ``CSeq``, ``WWW-Authenticate``); unknown
names are kept as written and matched case-insensitively. Values are stored as unfolded text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from switch.sip.errors import SipParseError
from switch.sip.uri import AbsoluteURI, SipURI, parse_uri, remember

__all__ = [
    "LIST_HEADERS",
    "CSeq",
    "Headers",
    "NameAddr",
    "Via",
    "canonical_name",
    "is_token",
    "parse_cseq",
    "parse_name_addr",
    "parse_via",
    "split_list",
]

_COMPACT = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}
_KNOWN = (
    "Accept Accept-Encoding Accept-Language Alert-Info Allow Allow-Events Authentication-Info Authorization "
    "Call-ID Call-Info Contact Content-Disposition Content-Encoding Content-Language Content-Length "
    "Content-Type CSeq Date Error-Info Event Expires From In-Reply-To Max-Forwards MIME-Version "
    "Min-Expires Min-SE Organization Path Priority Privacy Proxy-Authenticate Proxy-Authorization "
    "Proxy-Require RAck Reason Record-Route Refer-To Referred-By Replaces Reply-To Require Retry-After "
    "Route RSeq Server Service-Route Session-Expires Subject Subscription-State Supported Timestamp To "
    "Unsupported User-Agent Via Warning WWW-Authenticate P-Asserted-Identity P-Preferred-Identity "
    "Identity Identity-Info Accept-Contact Reject-Contact Request-Disposition"
).split()
_CANONICAL: dict[str, str] = {name.lower(): name for name in _KNOWN}
_CANONICAL.update(_COMPACT)

LIST_HEADERS = frozenset(
    name.lower()
    for name in (
        "Via Contact Route Record-Route Path Service-Route Allow Supported Require Proxy-Require Unsupported "
        "Accept Accept-Encoding Accept-Language Content-Encoding Content-Language Allow-Events In-Reply-To "
        "Alert-Info Call-Info Error-Info Warning P-Asserted-Identity"
    ).split()
)

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_DIGITS_RE = re.compile(r"[0-9]+\Z")
_HOST_RE = re.compile(r"(?:[A-Za-z0-9_\-.]+|\[[0-9A-Fa-f:.]+\])\Z")
_VALUE_RE = re.compile(r"[^\s\";,]+\Z")


# lower-case spelling -> (lower-case canonical key, canonical name), filled as names are met
_KEYS: dict[str, tuple[str, str]] = {name: (canon.lower(), canon) for name, canon in _CANONICAL.items()}
_KEYS_LIMIT = 4096


def _key(name: str) -> tuple[str, str]:
    """(lookup key, canonical spelling) of a header name; one dict lookup for a name seen before."""
    entry = _KEYS.get(name)
    if entry is not None:
        return entry
    lower = name.lower()
    canon = _CANONICAL.get(lower, name)
    entry = (canon.lower(), canon)
    if len(_KEYS) < _KEYS_LIMIT:
        _KEYS[name] = entry
    return entry


def canonical_name(name: str) -> str:
    """The canonical spelling of a header name (compact forms expanded)."""
    return _CANONICAL.get(name.lower(), name)


def is_token(text: str) -> bool:
    """True when ``text`` is an RFC 3261 token."""
    return _TOKEN_RE.match(text) is not None


def split_list(value: str) -> list[str]:
    """Split a header value on commas outside quoted strings and <...>; empty elements are dropped."""
    if "," not in value:
        stripped = value.strip()
        return [stripped] if stripped else []
    if '"' not in value and "<" not in value:
        return [p for p in (part.strip() for part in value.split(",")) if p]
    parts: list[str] = []
    start = 0
    in_quotes = False
    in_angle = False
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if in_quotes:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quotes = False
        elif c == '"':
            in_quotes = True
        elif c == "<":
            in_angle = True
        elif c == ">":
            in_angle = False
        elif c == "," and not in_angle:
            parts.append(value[start:i])
            start = i + 1
        i += 1
    parts.append(value[start:])
    return [p for p in (part.strip() for part in parts) if p]


class Headers:
    """Ordered, case-insensitive multimap of header fields.

    Values are kept as text; the structured views a message offers (Via, From, CSeq...) are parsed on
    first access and kept in ``parsed`` until the next change to the fields (see ``Request.vias``).
    """

    __slots__ = ("_items", "parsed")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        # (lower-case canonical key, canonical name, value)
        self._items: list[tuple[str, str, str]] = []
        self.parsed: dict[str, object] = {}
        for name, value in items:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        """Append a header field."""
        key, canon = _key(name)
        self._items.append((key, canon, value))
        if self.parsed:
            self.parsed.clear()

    def extend(self, fields: Iterable[tuple[str, str]]) -> None:
        """Append header fields in order (``add`` for each, in one pass)."""
        items = self._items
        keys = _KEYS
        for name, value in fields:
            entry = keys.get(name)
            if entry is None:
                entry = _key(name)
            items.append((entry[0], entry[1], value))
        if self.parsed:
            self.parsed.clear()

    def replace_field(self, name: str, old: str, new: str) -> Headers | None:
        """A copy with the first field of ``name`` changed from ``old`` to ``new``; None when the first
        field of that name is not exactly ``old`` (a comma list, say)."""
        key = _key(name)[0]
        for i, item in enumerate(self._items):
            if item[0] == key:
                if item[2] != old:
                    return None
                copy = Headers()
                copy._items = items = list(self._items)
                items[i] = (key, item[1], new)
                return copy
        return None

    def replace_first(self, name: str, value: str) -> bool:
        """Change the value of the first field of ``name`` in place; False when there is none."""
        key = _key(name)[0]
        items = self._items
        for i, item in enumerate(items):
            if item[0] == key:
                items[i] = (key, item[1], value)
                if self.parsed:
                    self.parsed.clear()
                return True
        return False

    def set(self, name: str, value: str) -> None:
        """Replace every field of this name by one, at the position of the first (or at the end)."""
        key, canon = _key(name)
        if self.parsed:
            self.parsed.clear()
        items = self._items
        for i, item in enumerate(items):
            if item[0] == key:
                items[i] = (key, item[1], value)
                for later in items[i + 1 :]:
                    if later[0] == key:  # more fields of this name: drop them (rare)
                        self._items = items[: i + 1] + [it for it in items[i + 1 :] if it[0] != key]
                        break
                return
        items.append((key, canon, value))

    def remove(self, name: str) -> None:
        """Remove every field of this name."""
        key = _key(name)[0]
        self._items = [item for item in self._items if item[0] != key]
        if self.parsed:
            self.parsed.clear()

    def get(self, name: str) -> str | None:
        """The first value of this name, or None."""
        key = _key(name)[0]
        for item in self._items:
            if item[0] == key:
                return item[2]
        return None

    def get_all(self, name: str) -> list[str]:
        """Every value of this name; list headers are split into one entry per comma-separated value."""
        key = _key(name)[0]
        values = [item[2] for item in self._items if item[0] == key]
        if key in LIST_HEADERS:
            return [part for value in values for part in split_list(value)]
        return values

    def count(self, name: str) -> int:
        """How many header fields (lines) of this name there are."""
        key = _key(name)[0]
        return sum(1 for item in self._items if item[0] == key)

    def counts(self) -> dict[str, int]:
        """How many fields (lines) there are of each name, by lower-case canonical name."""
        counts: dict[str, int] = {}
        for item in self._items:
            counts[item[0]] = counts.get(item[0], 0) + 1
        return counts

    def items(self) -> list[tuple[str, str]]:
        """Every field in order as (canonical name, value)."""
        return [(item[1], item[2]) for item in self._items]

    def copy(self) -> Headers:
        new = Headers()
        new._items = list(self._items)
        return new

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = _key(name)[0]
        return any(item[0] == key for item in self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items())

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self.items() == other.items()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


def _split_params(text: str, what: str) -> list[str]:
    """Split ';'-separated parameters outside quoted strings."""
    if '"' not in text:
        return text.split(";")
    parts: list[str] = []
    start = 0
    in_quotes = False
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if in_quotes:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quotes = False
        elif c == '"':
            in_quotes = True
        elif c == ";":
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if in_quotes:
        raise SipParseError(f"unterminated quoted string in {what}")
    parts.append(text[start:])
    return parts


def _parse_params(text: str, what: str, *, strict: bool = True) -> dict[str, str | None]:
    """Parse ``;name[=value]`` parameters (``text`` starts after the first ';' or is empty)."""
    params: dict[str, str | None] = {}
    for part in _split_params(text, what):
        name, eq, value = part.partition("=")
        name = name.strip()
        value = value.strip()
        if not name:
            if strict:
                raise SipParseError(f"empty parameter in {what}")
            continue
        if not is_token(name):
            raise SipParseError(f"bad parameter name {name!r} in {what}")
        if eq:
            if not value or not (value.startswith('"') or _VALUE_RE.match(value)):
                raise SipParseError(f"bad value for parameter {name!r} in {what}")
            params.setdefault(name.lower(), value)
        else:
            params.setdefault(name.lower(), None)
    return params


def _format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


@dataclass
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=...``. Parameter names are lower-case."""

    protocol: str
    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        """The received parameter as written (an IPv6 address may carry brackets, RFC 5118 4.5)."""
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """The rport value (RFC 3581) when it has one; see ``rport_requested`` for a valueless rport."""
        value = self.params.get("rport")
        if value is None or not _DIGITS_RE.match(value) or len(value) > 5:
            return None
        return int(value)

    @property
    def rport_requested(self) -> bool:
        """True when the rport parameter is present (with or without a value)."""
        return "rport" in self.params

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.protocol}/{self.transport} {self.host}{port}{_format_params(self.params)}"


_VIA_RE = re.compile(r"\s*([^\s/]+)\s*/\s*([^\s/]+)\s*/\s*([^\s/;]+)\s+([^;]*)(?:;(.*))?\Z", re.S)


def parse_via(text: str, *, strict: bool = True) -> Via:
    """Parse one Via value (LWS allowed around '/', ':', ';', '='); ``strict=False`` skips empty params."""
    match = _VIA_RE.match(text)
    if match is None:
        raise SipParseError(f"malformed Via {text!r}")
    name, version, transport, sent_by, params_text = match.groups()
    if not is_token(name) or not is_token(version) or not is_token(transport):
        raise SipParseError(f"malformed Via protocol in {text!r}")
    sent_by = sent_by.strip()
    port: int | None = None
    if sent_by.startswith("["):
        end = sent_by.find("]")
        host, rest = sent_by[: end + 1], sent_by[end + 1 :].strip()
    else:
        host, _, rest = sent_by.partition(":")
        host = host.strip()
        rest = (":" + rest) if _ else ""
    if not host or not _HOST_RE.match(host):
        raise SipParseError(f"bad Via host in {text!r}")
    if rest:
        digits = rest[1:].strip()
        if not rest.startswith(":") or not _DIGITS_RE.match(digits) or len(digits) > 5 or int(digits) > 65535:
            raise SipParseError(f"bad Via port in {text!r}")
        port = int(digits)
    params = _parse_params(params_text, "Via", strict=strict) if params_text is not None else {}
    return Via(f"{name.upper()}/{version}", transport.upper(), host, port, params)


@dataclass
class NameAddr:
    """A name-addr or addr-spec with header parameters (From, To, Contact, Route...)."""

    display_name: str | None
    uri: SipURI | AbsoluteURI
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        display = ""
        if self.display_name is not None:
            escaped = self.display_name.replace("\\", "\\\\").replace('"', '\\"')
            display = f'"{escaped}" '
        return f"{display}<{self.uri}>{_format_params(self.params)}"


def _parse_quoted(text: str, start: int) -> tuple[str, int]:
    """Parse a quoted string starting at ``text[start] == '"'``; return (content, index after it)."""
    out: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 >= n:
                break
            out.append(text[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    raise SipParseError(f"unterminated quoted string in {text!r}")


_NAME_ADDRS: dict[str, NameAddr] = {}


def parse_name_addr(text: str) -> NameAddr:
    """Parse ``"Name" <uri>;params``, ``Name <uri>;params`` or ``uri;params`` (addr-spec).

    In the addr-spec form every ';' after the URI starts a header parameter (RFC 3261 20.10),
    and a URI carrying ',', '?' or ';' of its own must be written in <> (so it is rejected here).

    The same text gives the same object (a call's From, To and Contact come back in every message of its
    dialog): the result is shared, treat it as read-only (``dialog.with_tag`` makes a changed copy).
    """
    found = _NAME_ADDRS.get(text)
    if found is not None:
        return found
    return remember(_NAME_ADDRS, text, _parse_name_addr(text))


def _parse_name_addr(text: str) -> NameAddr:
    text = text.strip()
    display: str | None = None
    if text.startswith('"'):
        display, end = _parse_quoted(text, 0)
        rest = text[end:].lstrip()
        if not rest.startswith("<"):
            raise SipParseError(f"expected '<' after display name in {text!r}")
    else:
        lt = text.find("<")
        rest = text
        if lt >= 0:
            words = text[:lt].split()
            if any(not is_token(word) for word in words):
                raise SipParseError(f"display name is not a token list in {text!r}")
            display = " ".join(words) if words else None
            rest = text[lt:]
    if rest.startswith("<"):
        gt = rest.find(">")
        if gt < 0:
            raise SipParseError(f"missing '>' in {text!r}")
        uri = parse_uri(rest[1:gt].strip())
        tail = rest[gt + 1 :].strip()
        if tail and not tail.startswith(";"):
            raise SipParseError(f"unexpected text after '>' in {text!r}")
        params_text = tail[1:] if tail else None
    else:
        uri_text, semi, params_text_ = rest.partition(";")
        uri_text = uri_text.strip()
        if "?" in uri_text or "," in uri_text:
            raise SipParseError(f"URI with headers must be enclosed in <> in {text!r}")
        uri = parse_uri(uri_text)
        params_text = params_text_ if semi else None
    params = _parse_params(params_text, "name-addr") if params_text is not None else {}
    return NameAddr(display, uri, params)


@dataclass
class CSeq:
    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


_CSEQ_RE = re.compile(r"\s*([0-9]{1,10})\s+(\S+)\s*\Z")


def parse_cseq(text: str) -> CSeq:
    """Parse ``CSeq: 123 INVITE``; the number must be below 2**31 (RFC 3261 8.1.1.5)."""
    match = _CSEQ_RE.match(text)
    if match is None or not is_token(match.group(2)):
        raise SipParseError(f"malformed CSeq {text!r}")
    seq = int(match.group(1))
    if seq >= 2**31:
        raise SipParseError(f"CSeq number too large in {text!r}")
    return CSeq(seq, match.group(2))
