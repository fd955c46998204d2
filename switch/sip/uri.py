"""SIP, SIPS and absolute URIs (RFC 3261 section 19.1, RFC 3966 tel:, RFC 5118 IPv6 references).

Fields of :class:`SipURI` hold *unescaped* values (``sip:%75ser@host`` has ``user == "user"``), with
parameter names lower-cased for lookup. ``str(uri)`` re-serialises each component in the raw form it
was parsed from, as long as that component has not been changed; changed or new components are
escaped as RFC 3261 requires. IPv6 hosts are kept with their brackets: ``host == "[2001:db8::1]"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TypeVar

from switch.sip.errors import SipParseError

__all__ = ["AbsoluteURI", "SipURI", "escape", "parse_uri", "unescape"]

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*\Z")
_ESCAPES_RE = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9_\-.]+\Z")
_IPV6_RE = re.compile(r"\[[0-9A-Fa-f:.]+\]\Z")
_DIGITS_RE = re.compile(r"[0-9]{1,5}\Z")
# Octets never allowed raw inside a URI: controls, space, and the delimiters of the enclosing grammar.
_FORBIDDEN_RE = re.compile(r'[\x00-\x20\x7f<>"]')

_UNRESERVED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()")
_USER_SAFE = _UNRESERVED | frozenset("&=+$,;?/")
_PASSWORD_SAFE = _UNRESERVED | frozenset("&=+$,")
_PARAM_SAFE = _UNRESERVED | frozenset("[]/:&+$")
_HEADER_SAFE = _UNRESERVED | frozenset("[]/?:+$")


def _unescape_match(match: re.Match[str]) -> str:
    return bytes.fromhex(match.group(0).replace("%", "")).decode("utf-8", "surrogateescape")


def unescape(text: str) -> str:
    """Decode %HH escapes (as UTF-8); a '%' not followed by two hex digits is kept literally."""
    if "%" not in text:
        return text
    return _ESCAPES_RE.sub(_unescape_match, text)


def escape(text: str, safe: frozenset[str] = _UNRESERVED) -> str:
    """Escape every character of ``text`` not in ``safe`` as %HH of its UTF-8 octets."""
    if all(c in safe for c in text):
        return text
    out: list[str] = []
    for c in text:
        if c in safe:
            out.append(c)
        else:
            out.extend(f"%{b:02X}" for b in c.encode("utf-8", "surrogateescape"))
    return "".join(out)


@dataclass
class AbsoluteURI:
    """A URI of any scheme other than sip/sips (tel:, http:, urn:...), kept opaque."""

    scheme: str
    opaque: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"


@dataclass
class SipURI:
    """A sip: or sips: URI. Values are unescaped; see the module docstring."""

    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    # component key -> (unescaped value it was parsed as, raw text): lets str() keep raw escapes.
    _raw: dict[str, tuple[str | None, str]] = field(default_factory=dict, compare=False, repr=False)

    def _part(self, key: str, value: str | None, fresh: str) -> str:
        cached = self._raw.get(key)
        if cached is not None and cached[0] == value:
            return cached[1]
        return fresh

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self._part("user", self.user, escape(self.user, _USER_SAFE)))
            if self.password is not None:
                out.append(":")
                out.append(self._part("password", self.password, escape(self.password, _PASSWORD_SAFE)))
            out.append("@")
        host = self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        out.append(host)
        if self.port is not None:
            out.append(f":{self.port}")
        for name, value in self.params.items():
            fresh = escape(name, _PARAM_SAFE)
            if value is not None:
                fresh += "=" + escape(value, _PARAM_SAFE)
            out.append(";")
            out.append(self._part("p:" + name, value, fresh))
        sep = "?"
        for name, hvalue in self.headers.items():
            out.append(sep)
            out.append(
                self._part(
                    "h:" + name, hvalue, escape(name, _HEADER_SAFE) + "=" + escape(hvalue, _HEADER_SAFE)
                )
            )
            sep = "&"
        return "".join(out)

    @property
    def transport(self) -> str | None:
        """The transport parameter, lower-cased."""
        value = self.params.get("transport")
        return value.lower() if value else None


def _parse_hostport(text: str, whole: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError(f"unterminated IPv6 reference in URI {whole!r}")
        host, rest = text[: end + 1], text[end + 1 :]
        if not _IPV6_RE.match(host) or host.count(":") < 2:
            raise SipParseError(f"bad IPv6 reference in URI {whole!r}")
    else:
        host, colon, rest = text.partition(":")
        rest = colon + rest
        if not host or not _HOSTNAME_RE.match(host):
            raise SipParseError(f"bad host in URI {whole!r}")
    if not rest:
        return host, None
    if not rest.startswith(":") or not _DIGITS_RE.match(rest[1:]):
        raise SipParseError(f"bad port in URI {whole!r}")
    port = int(rest[1:])
    if port > 65535:
        raise SipParseError(f"port out of range in URI {whole!r}")
    return host, port


def _parse_sip(scheme: str, rest: str, whole: str) -> SipURI:
    raw: dict[str, tuple[str | None, str]] = {}
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        raw_user, colon, raw_password = userinfo.partition(":")
        if not raw_user:
            raise SipParseError(f"empty user part in URI {whole!r}")
        user = unescape(raw_user)
        raw["user"] = (user, raw_user)
        if colon:
            password = unescape(raw_password)
            raw["password"] = (password, raw_password)
    rest, qmark, headers_text = rest.partition("?")
    hostport, *param_parts = rest.split(";")
    host, port = _parse_hostport(hostport, whole)
    params: dict[str, str | None] = {}
    for part in param_parts:
        raw_name, eq, raw_value = part.partition("=")
        if not raw_name:
            raise SipParseError(f"empty parameter in URI {whole!r}")
        name = unescape(raw_name).lower()
        value = unescape(raw_value) if eq else None
        if name not in params:
            params[name] = value
            raw["p:" + name] = (value, part)
    headers: dict[str, str] = {}
    if qmark:
        for part in headers_text.split("&"):
            raw_name, eq, raw_value = part.partition("=")
            if not raw_name or not eq:
                raise SipParseError(f"bad header in URI {whole!r}")
            name = unescape(raw_name)
            value = unescape(raw_value)
            if name not in headers:
                headers[name] = value
                raw["h:" + name] = (value, part)
    return SipURI(scheme, user, password, host, port, params, headers, raw)


PARSE_CACHE_LIMIT = 4096
"""Values kept by ``parse_uri`` (and ``parse_name_addr``); a cache is emptied when it holds this many."""
PARSE_CACHE_TEXT = 256
"""Only texts up to this long are kept (a phone's From/To/Contact is well under it)."""

_T = TypeVar("_T")


def remember(cache: dict[str, _T], text: str, parsed: _T) -> _T:
    """Keep ``parsed`` as the parse of ``text`` in ``cache``, with memory bounded whatever a peer sends."""
    if len(text) <= PARSE_CACHE_TEXT:
        if len(cache) >= PARSE_CACHE_LIMIT:
            cache.clear()
        cache[text] = parsed
    return parsed


_URIS: dict[str, SipURI | AbsoluteURI] = {}


def parse_uri(text: str) -> SipURI | AbsoluteURI:
    """Parse a SIP/SIPS URI or an absolute URI of another scheme; raises SipParseError.

    The same text gives the same object (a dialog's URIs recur in every message): the result is shared,
    treat it as read-only."""
    found = _URIS.get(text)
    if found is not None:
        return found
    return remember(_URIS, text, _parse_uri(text))


def _parse_uri(text: str) -> SipURI | AbsoluteURI:
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME_RE.match(scheme):
        raise SipParseError(f"bad URI scheme in {text!r}", 400)
    if not rest:
        raise SipParseError(f"empty URI {text!r}", 400)
    if _FORBIDDEN_RE.search(text):
        raise SipParseError(f"illegal character in URI {text!r}", 400)
    lowered = scheme.lower()
    if lowered in ("sip", "sips"):
        return _parse_sip(lowered, rest, text)
    return AbsoluteURI(lowered, rest)
