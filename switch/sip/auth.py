"""HTTP digest authentication primitives for SIP (RFC 7616, RFC 8760; RFC 2617 without qop).

No sockets, no clock: the caller passes ``now``. Covers the server side (challenges, parsing
Authorization headers, verifying responses against a stored HA1, stateless nonces) and the client
side (parsing a challenge, building an Authorization header).

Algorithms: MD5 and SHA-256 (not the ``-sess`` variants); qop: ``auth`` (not ``auth-int``). Nonce-count
replay tracking needs state and belongs to the caller.

Errors::

    AuthError     a malformed or unsupported header (status hint 400)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from switch.sip.headers import Headers

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "AuthError",
    "DigestChallenge",
    "DigestCredentials",
    "NonceManager",
    "NonceStatus",
    "build_authorization",
    "compute_ha1",
    "compute_response",
    "credentials_refused",
    "parse_authorization",
    "parse_digest_challenge",
    "verify_response",
]

Algorithm = Literal["MD5", "SHA-256"]
ALGORITHMS: tuple[Algorithm, ...] = ("MD5", "SHA-256")
NonceStatus = Literal["valid", "stale", "invalid"]

_HASHES: dict[str, Callable[[bytes], hashlib._Hash]] = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
_HEX_LENGTH = {"MD5": 32, "SHA-256": 64}


class AuthError(ValueError):
    """A malformed or unsupported digest header."""

    error_status_hint = 400


def _hash(algorithm: str, text: str) -> str:
    return _HASHES[algorithm](text.encode("utf-8")).hexdigest()


def _algorithm(value: str | None) -> Algorithm:
    if value is None:
        return "MD5"
    upper = value.upper()
    for algorithm in ALGORITHMS:
        if upper == algorithm:
            return algorithm
    raise AuthError(f"unsupported digest algorithm {value!r}")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}|[^\s,"]+))\s*(?:,|$)', re.DOTALL)
_SCHEME = re.compile(rf"\s*({_TOKEN})(?:\s+|$)")


def _parse_params(header: str) -> dict[str, str]:
    """Parse ``Digest name=value, name="quoted"`` into lower-cased names and unquoted values."""
    scheme = _SCHEME.match(header)
    if scheme is None or scheme.group(1).lower() != "digest":
        raise AuthError("not a Digest header")
    params: dict[str, str] = {}
    position = scheme.end()
    while position < len(header):
        match = _PARAM.match(header, position)
        if match is None or match.end() == position:
            raise AuthError(f"invalid digest parameter at {header[position : position + 30]!r}")
        name = match.group(1).lower()
        if name in params:
            raise AuthError(f"digest parameter {name!r} given twice")
        quoted = match.group(2)
        params[name] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else match.group(3)
        position = match.end()
    return params


@dataclass(frozen=True, slots=True)
class DigestChallenge:
    """A ``WWW-Authenticate`` / ``Proxy-Authenticate`` digest challenge.

    ``qop`` is ``"auth"`` or None (an RFC 2069 style challenge without qop).
    """

    realm: str
    nonce: str
    opaque: str | None = None
    algorithm: Algorithm = "MD5"
    qop: Literal["auth"] | None = "auth"
    stale: bool = False

    def to_header(self) -> str:
        """The header value, e.g. ``Digest realm="x", nonce="y", algorithm=SHA-256, qop="auth"``."""
        parts = [f"realm={_quote(self.realm)}", f"nonce={_quote(self.nonce)}"]
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        parts.append(f"algorithm={self.algorithm}")
        if self.qop is not None:
            parts.append(f'qop="{self.qop}"')
        if self.stale:
            parts.append("stale=TRUE")
        return "Digest " + ", ".join(parts)


def parse_digest_challenge(header: str) -> DigestChallenge:
    """Parse a challenge header value. Raises ``AuthError`` if malformed or unusable.

    A qop list that offers ``auth`` selects it; a list without ``auth`` is unusable.
    """
    params = _parse_params(header)
    if "realm" not in params or "nonce" not in params:
        raise AuthError("digest challenge needs realm and nonce")
    qop: Literal["auth"] | None = None
    if "qop" in params:
        options = {option.strip().lower() for option in params["qop"].split(",")}
        if "auth" not in options:
            raise AuthError(f"unsupported qop {params['qop']!r}")
        qop = "auth"
    return DigestChallenge(
        realm=params["realm"],
        nonce=params["nonce"],
        opaque=params.get("opaque"),
        algorithm=_algorithm(params.get("algorithm")),
        qop=qop,
        stale=params.get("stale", "").lower() == "true",
    )


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """An ``Authorization`` / ``Proxy-Authorization`` digest header."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: Algorithm = "MD5"
    qop: Literal["auth"] | None = None
    cnonce: str | None = None
    nc: str | None = None
    opaque: str | None = None


def parse_authorization(header: str) -> DigestCredentials:
    """Parse an Authorization header value. Raises ``AuthError`` on bad syntax or missing fields."""
    params = _parse_params(header)
    for name in ("username", "realm", "nonce", "uri", "response"):
        if name not in params:
            raise AuthError(f"digest credentials lack {name}")
    algorithm = _algorithm(params.get("algorithm"))
    response = params["response"].lower()
    if len(response) != _HEX_LENGTH[algorithm] or not all(c in "0123456789abcdef" for c in response):
        raise AuthError(f"digest response is not a {algorithm} hex digest")
    qop: Literal["auth"] | None = None
    cnonce = params.get("cnonce")
    nc = params.get("nc")
    if "qop" in params:
        if params["qop"].lower() != "auth":
            raise AuthError(f"unsupported qop {params['qop']!r}")
        qop = "auth"
        if cnonce is None or nc is None:
            raise AuthError("qop=auth needs cnonce and nc")
        if len(nc) != 8 or not all(c in "0123456789abcdefABCDEF" for c in nc):
            raise AuthError(f"nc must be 8 hex digits, got {nc!r}")
    return DigestCredentials(
        username=params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=response,
        algorithm=algorithm,
        qop=qop,
        cnonce=cnonce,
        nc=nc,
        opaque=params.get("opaque"),
    )


def compute_ha1(username: str, realm: str, password: str, algorithm: Algorithm = "MD5") -> str:
    """``H(username:realm:password)`` as lower-case hex: what a user store should keep."""
    return _hash(_algorithm(algorithm), f"{username}:{realm}:{password}")


def compute_response(
    ha1: str,
    *,
    method: str,
    uri: str,
    nonce: str,
    algorithm: Algorithm = "MD5",
    qop: Literal["auth"] | None = "auth",
    cnonce: str | None = None,
    nc: str | None = None,
) -> str:
    """The request-digest: ``H(HA1:nonce:nc:cnonce:qop:HA2)``, or ``H(HA1:nonce:HA2)`` without qop."""
    ha2 = _hash(algorithm, f"{method}:{uri}")
    if qop is None:
        return _hash(algorithm, f"{ha1}:{nonce}:{ha2}")
    if cnonce is None or nc is None:
        raise ValueError("qop=auth needs cnonce and nc")
    return _hash(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def verify_response(credentials: DigestCredentials, method: str, ha1: str) -> bool:
    """Whether ``credentials.response`` is right for ``method`` and the stored ``ha1``.

    ``ha1`` must have been computed with ``credentials.algorithm``. The comparison is constant-time.
    The caller checks the nonce (``NonceManager.check``), realm and username separately.
    """
    expected = compute_response(
        ha1.lower(),
        method=method,
        uri=credentials.uri,
        nonce=credentials.nonce,
        algorithm=credentials.algorithm,
        qop=credentials.qop,
        cnonce=credentials.cnonce,
        nc=credentials.nc,
    )
    return hmac.compare_digest(expected.encode("ascii"), credentials.response.lower().encode("ascii"))


def build_authorization(
    challenge: DigestChallenge,
    username: str,
    password: str,
    method: str,
    uri: str,
    cnonce: str,
    nc: int,
) -> str:
    """The client's Authorization header value answering ``challenge`` (nc counts from 1)."""
    if not 0 < nc <= 0xFFFFFFFF:
        raise ValueError(f"nc out of range: {nc}")
    nc_text = f"{nc:08x}"
    ha1 = compute_ha1(username, challenge.realm, password, challenge.algorithm)
    response = compute_response(
        ha1,
        method=method,
        uri=uri,
        nonce=challenge.nonce,
        algorithm=challenge.algorithm,
        qop=challenge.qop,
        cnonce=cnonce,
        nc=nc_text,
    )
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(challenge.realm)}",
        f"uri={_quote(uri)}",
        f"algorithm={challenge.algorithm}",
        f"nonce={_quote(challenge.nonce)}",
    ]
    if challenge.qop is not None:
        parts += [f"nc={nc_text}", f"cnonce={_quote(cnonce)}", f"qop={challenge.qop}"]
    parts.append(f"response={_quote(response)}")
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    return "Digest " + ", ".join(parts)


class NonceManager:
    """Stateless nonces: a timestamp and random bytes, signed with HMAC-SHA-256.

    ``issue(now)`` and ``check(nonce, now)`` take the same clock (seconds, for example ``time.time()``
    so nonces survive a restart). A nonce older than ``lifetime`` is ``"stale"`` (the client retries
    with ``stale=TRUE`` and no new password prompt); a forged, truncated or future nonce is ``"invalid"``.
    """

    _FORMAT = struct.Struct(">q8s")
    _SIGNATURE_BYTES = 16
    _FUTURE_TOLERANCE_MS = 1000

    def __init__(self, secret: bytes, lifetime: float) -> None:
        if len(secret) < 16:
            raise ValueError("the nonce secret must be at least 16 bytes")
        if lifetime <= 0:
            raise ValueError("lifetime must be positive")
        self._secret = secret
        self._lifetime_ms = round(lifetime * 1000)

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[: self._SIGNATURE_BYTES]

    def issue(self, now: float) -> str:
        payload = self._FORMAT.pack(round(now * 1000), os.urandom(8))
        return base64.urlsafe_b64encode(payload + self._sign(payload)).decode("ascii").rstrip("=")

    def check(self, nonce: str, now: float) -> NonceStatus:
        expected_length = self._FORMAT.size + self._SIGNATURE_BYTES
        if len(nonce) != (expected_length * 4 + 2) // 3:
            return "invalid"
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except ValueError:
            return "invalid"
        if len(raw) != expected_length:
            return "invalid"
        # Only the canonical spelling counts: a last character that differs in its unused low bits
        # decodes to the same bytes, and a nonce is compared as a string by clients.
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != nonce:
            return "invalid"
        payload, signature = raw[: self._FORMAT.size], raw[self._FORMAT.size :]
        if not hmac.compare_digest(signature, self._sign(payload)):
            return "invalid"
        issued_ms, _ = self._FORMAT.unpack(payload)
        age_ms = round(now * 1000) - issued_ms
        if age_ms < -self._FUTURE_TOLERANCE_MS:
            return "invalid"
        if age_ms > self._lifetime_ms:
            return "stale"
        return "valid"


def credentials_refused(request_headers: Headers, response_headers: Headers) -> bool:
    """Whether a 401/407 answers a request that carried credentials (a failed authentication), other than
    a challenge for a stale nonce (which only asks the client to compute again)."""
    if "Authorization" not in request_headers and "Proxy-Authorization" not in request_headers:
        return False
    challenges = response_headers.get_all("WWW-Authenticate") + response_headers.get_all("Proxy-Authenticate")
    return not any("stale=true" in value.lower().replace(" ", "").replace('"', "") for value in challenges)
