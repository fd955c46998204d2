"""Registrar and location service (RFC 3261 §10), with digest authentication (RFC 7616, RFC 8760). Sans-IO.

``Authenticator`` challenges and checks requests: every challenge offers SHA-256 and MD5 together (only the
algorithms whose secret is known for a configured user; both for an unknown one, so that a stranger cannot
tell users from non-users), nonces are stateless (``NonceManager``) and an expired one is answered with
``stale=true``. A nonce count is accepted once (replays are refused).

``Registrar`` keeps each user's bindings: several contacts, each with its expiry and where its REGISTER came
from (source address, port, transport, TCP connection), so a request for the contact goes back through the
same NAT binding or connection. ``Expires: 0`` removes one contact, ``Contact: *`` with ``Expires: 0`` all.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from switch.dialplan import User
from switch.sip.auth import (
    AuthError,
    DigestChallenge,
    DigestCredentials,
    NonceManager,
    parse_authorization,
    verify_response,
)
from switch.sip.errors import SipParseError
from switch.sip.headers import NameAddr, parse_name_addr, split_list
from switch.sip.message import Request, Response, make_response
from switch.sip.uri import SipURI

__all__ = ["AuthResult", "Authenticator", "Binding", "Registrar"]

Address = tuple[str, int]
_ALL_ALGORITHMS = ("SHA-256", "MD5")
_EXPIRES = re.compile(r"^\s*(\d{1,10})\s*$")


@dataclass(frozen=True, slots=True)
class AuthResult:
    """``user`` when the request carries valid credentials; otherwise the challenge to send (stale or not)."""

    user: str | None
    stale: bool = False


class Authenticator:
    """Digest challenges (401/407) and checks against the dialplan's users."""

    def __init__(
        self,
        users: Mapping[str, User],
        realm: str,
        nonces: NonceManager,
        *,
        algorithms: tuple[str, ...] = _ALL_ALGORITHMS,
        max_nonces: int = 10000,
    ):
        self.users = users
        self.algorithms = algorithms
        self.realm = realm
        self.nonces = nonces
        self._counts: OrderedDict[str, int] = OrderedDict()  # nonce -> highest nc seen
        self._max_nonces = max_nonces

    def check(self, request: Request, now: float, *, proxy: bool = False) -> AuthResult:
        """Verify the (Proxy-)Authorization for our realm; ``AuthResult(None)`` when absent or wrong."""
        stale = False
        for value in request.headers.get_all("Proxy-Authorization" if proxy else "Authorization"):
            try:
                credentials = parse_authorization(value)
            except AuthError:
                continue
            if credentials.realm != self.realm:
                continue
            user = self.users.get(credentials.username)
            ha1 = user.ha1.get(credentials.algorithm) if user is not None else None
            if ha1 is None or not verify_response(credentials, request.method, ha1):
                return AuthResult(None)  # a wrong answer is never "stale": the password is asked again
            status = self.nonces.check(credentials.nonce, now)
            if status == "stale":
                stale = True
                continue
            if status != "valid" or not self._fresh_count(credentials):
                return AuthResult(None)
            return AuthResult(credentials.username)
        return AuthResult(None, stale=stale)

    def _fresh_count(self, credentials: DigestCredentials) -> bool:
        """Refuse a replayed nonce count (qop=auth); without qop a nonce is usable until it expires."""
        if credentials.nc is None:
            return True
        count = int(credentials.nc, 16)
        last = self._counts.get(credentials.nonce, 0)
        if count <= last:
            return False
        self._counts[credentials.nonce] = count
        self._counts.move_to_end(credentials.nonce)
        while len(self._counts) > self._max_nonces:
            self._counts.popitem(last=False)
        return True

    def challenge(
        self,
        request: Request,
        status: Literal[401, 407],
        now: float,
        *,
        user: str | None,
        stale: bool = False,
    ) -> Response:
        """A 401 (WWW-Authenticate) or 407 (Proxy-Authenticate) with one challenge per algorithm."""
        response = make_response(request, status)
        header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
        known = self.users.get(user or "")
        offered = known.algorithms if known is not None else _ALL_ALGORITHMS
        algorithms = [a for a in offered if a in self.algorithms] or list(offered)
        nonce = self.nonces.issue(now)
        for algorithm in algorithms:
            challenge = DigestChallenge(self.realm, nonce, algorithm=algorithm, qop="auth", stale=stale)  # type: ignore[arg-type]
            response.headers.add(header, challenge.to_header())
        return response


@dataclass(slots=True)
class Binding:
    """One registered contact of a user, and where to send requests for it."""

    user: str
    contact: str
    """The Contact URI as registered (the Request-URI of requests to it)."""
    source: Address
    transport: str
    connection: object | None
    expires_at: float
    call_id: str
    cseq: int


def _expires(text: str | None) -> int | None:
    if text is None:
        return None
    match = _EXPIRES.match(text)
    return int(match.group(1)) if match else None


class Registrar:
    """REGISTER handling and the location table (user -> bindings)."""

    def __init__(
        self,
        auth: Authenticator,
        *,
        min_expires: int = 60,
        max_expires: int = 3600,
        default_expires: int = 3600,
        max_bindings: int = 10,
    ) -> None:
        self.auth = auth
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = default_expires
        self.max_bindings = max_bindings
        self._bindings: dict[str, dict[str, Binding]] = {}

    def contacts(self, user: str, now: float) -> list[Binding]:
        """The live bindings of ``user`` (expired ones are dropped), newest first."""
        table = self._bindings.get(user)
        if not table:
            return []
        for key in [k for k, b in table.items() if b.expires_at <= now]:
            del table[key]
        if not table:
            del self._bindings[user]
        return sorted(table.values(), key=lambda b: b.expires_at, reverse=True)

    def users(self) -> list[str]:
        return sorted(self._bindings)

    def handle_register(
        self,
        request: Request,
        source: Address,
        transport: str,
        connection: object | None,
        now: float,
    ) -> Response:
        """Authenticate a REGISTER and apply it; the response to send (401, 200, 400, 403, 423)."""
        to_uri = request.to.uri
        if not isinstance(to_uri, SipURI):
            # RFC 4475 §3.3.4: an address-of-record must be a SIP or SIPS URI; nothing to challenge for.
            return make_response(request, 400, "Bad Request (the To URI is not a SIP or SIPS URI)")
        aor_user = to_uri.user
        result = self.auth.check(request, now)
        if result.user is None:
            return self.auth.challenge(request, 401, now, user=aor_user, stale=result.stale)
        if aor_user != result.user:
            return make_response(request, 403, "Forbidden (To is not the authenticated user)")
        try:
            contacts = self._parse_contacts(request)
        except SipParseError as exc:
            return make_response(request, 400, f"Bad Contact: {exc}"[:100])
        header_expires = _expires(request.headers.get("Expires"))
        call_id = request.call_id
        cseq = request.cseq.seq
        table = self._bindings.setdefault(result.user, {})
        if contacts is None:  # Contact: *
            if header_expires != 0:
                return make_response(request, 400, "Contact * needs Expires: 0")
            table.clear()
        else:
            for contact in contacts:
                expires = _expires(contact.params.get("expires"))
                if expires is None:
                    expires = header_expires if header_expires is not None else self.default_expires
                if 0 < expires < self.min_expires:
                    response = make_response(request, 423)
                    response.headers.add("Min-Expires", str(self.min_expires))
                    return response
            for contact in contacts:
                key = str(contact.uri)
                expires = _expires(contact.params.get("expires"))
                if expires is None:
                    expires = header_expires if header_expires is not None else self.default_expires
                existing = table.get(key)
                if existing is not None and existing.call_id == call_id and existing.cseq >= cseq:
                    continue  # an old or repeated REGISTER (§10.3 step 7)
                if expires == 0:
                    table.pop(key, None)
                    continue
                if existing is None and len(table) >= self.max_bindings:
                    oldest = min(table.values(), key=lambda b: b.expires_at)
                    del table[oldest.contact]
                table[key] = Binding(
                    result.user,
                    key,
                    source,
                    transport.upper(),
                    connection,
                    now + min(expires, self.max_expires),
                    call_id,
                    cseq,
                )
        response = make_response(request, 200)
        for binding in self.contacts(result.user, now):
            remaining = max(0, int(binding.expires_at - now + 0.5))
            response.headers.add("Contact", f"<{binding.contact}>;expires={remaining}")
        response.headers.add("Date", _http_date(now))
        return response

    @staticmethod
    def _parse_contacts(request: Request) -> list[NameAddr] | None:
        """The Contact values (comma lists split); None for ``Contact: *``; [] for a query."""
        values = request.headers.get_all("Contact")
        if [v.strip() for v in values] == ["*"]:
            return None
        contacts: list[NameAddr] = []
        for value in values:
            for item in split_list(value):
                if item.strip() == "*":
                    raise SipParseError("* mixed with other contacts")
                contacts.append(parse_name_addr(item))
        return contacts


def _http_date(now: float) -> str:
    import email.utils

    return email.utils.formatdate(now, usegmt=True)
