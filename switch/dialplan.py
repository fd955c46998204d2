"""The dialplan: who may register (users), which application answers a called user (routes), and the SIP
trunks ``<Dial><Number>`` goes out through. Loaded from the TOML file named by ``--dialplan``::

    realm = "switch"                       # digest realm (default "switch")
    algorithms = ["SHA-256", "MD5"]        # challenges offered (default both; baresip 1.0 wants MD5 only)

    [users.alice]
    password = "secret"                    # or ha1_md5 = "..." / ha1_sha256 = "..." (computed with the realm)

    [[routes]]
    match = "^(1\\d{3})$"                  # a regular expression on the called user part
    twiml = "demo.xml"                     # an http(s) URL, or a file (relative to the dialplan file)
    public = true                          # reachable by anonymous callers (default false)
    status_callback = "http://127.0.0.1:9000/status"

    [trunks.carrier]
    gateway = "sip:127.0.0.1:5090"
    username = "acct"
    password = "pw"
    caller_id = "+15550100"                # the caller ID policy: a fixed number, or "pass" (default)
    allow = ["^\\+1\\d{10}$"]              # numbers this trunk may call (default: any)
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from switch.sip.auth import Algorithm, compute_ha1

__all__ = [
    "DialPolicy",
    "Dialplan",
    "DialplanError",
    "Route",
    "Trunk",
    "User",
    "clean_number",
    "load_dialplan",
    "parse_dialplan",
    "with_dial_policy",
]

DEFAULT_REALM = "switch"
_HEX = re.compile(r"^[0-9a-fA-F]+$")


class DialplanError(Exception):
    """The dialplan file cannot be used; the message says where."""


@dataclass(frozen=True, slots=True)
class User:
    """A user who may register and place authenticated calls. Secrets as HA1 per algorithm."""

    name: str
    ha1: Mapping[Algorithm, str]

    @property
    def algorithms(self) -> tuple[Algorithm, ...]:
        """The algorithms this user can be challenged with, the strongest first (RFC 8760 §2.4)."""
        return tuple(a for a in ("SHA-256", "MD5") if a in self.ha1)


@dataclass(frozen=True, slots=True)
class Route:
    pattern: re.Pattern[str]
    twiml: str
    public: bool = False
    status_callback: str | None = None
    fallback: str | None = None
    """TwiML requested (with ErrorCode and ErrorUrl) when the route's application fails."""

    def matches(self, user: str) -> bool:
        return self.pattern.search(user) is not None


@dataclass(frozen=True, slots=True)
class Trunk:
    name: str
    gateway: str
    username: str | None = None
    password: str | None = None
    caller_id: str = "pass"
    allow: tuple[re.Pattern[str], ...] = ()

    def allows(self, number: str) -> bool:
        return not self.allow or any(p.search(number) for p in self.allow)

    def caller_id_for(self, requested: str) -> str:
        return requested if self.caller_id == "pass" else self.caller_id


@dataclass(frozen=True, slots=True)
class Dialplan:
    realm: str = DEFAULT_REALM
    users: Mapping[str, User] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    trunks: Mapping[str, Trunk] = field(default_factory=dict)
    algorithms: tuple[Algorithm, ...] = ("SHA-256", "MD5")
    dial_policy: DialPolicy = field(default_factory=lambda: DialPolicy())
    """Which SIP URIs ``<Dial><Sip>`` may call (``--dial-allow`` / ``--dial-deny``)."""

    def route_for(self, called_user: str, *, authenticated: bool) -> Route | None:
        """The first route matching ``called_user`` that this caller may reach (anonymous: public only)."""
        for route in self.routes:
            if (authenticated or route.public) and route.matches(called_user):
                return route
        return None

    def trunk_for(self, number: str) -> Trunk | None:
        """The first trunk (in file order) allowed to call ``number``."""
        for trunk in self.trunks.values():
            if trunk.allows(number):
                return trunk
        return None


NUMBER = re.compile(r"\+?[0-9*#]{1,32}")
"""What ``<Number>`` may hold once spaces, dashes, dots and parentheses are gone: nothing that could change
the Request-URI sent to the trunk (no ``@``, ``;`` or ``:``)."""


def clean_number(text: str) -> str | None:
    """``text`` as a dialable number (``+`` and digits, ``*``, ``#``), or None when it is not one."""
    number = re.sub(r"[\s().-]", "", text)
    return number if NUMBER.fullmatch(number) else None


def _policy_pattern(text: str) -> re.Pattern[str]:
    """``re:REGEX`` as it is; anything else is a glob (``*.example.com``, ``alice@10.0.0.*``)."""
    if text.startswith("re:"):
        try:
            return re.compile(text[3:], re.IGNORECASE)
        except re.error as exc:
            raise DialplanError(f"dial pattern {text!r} is not a regular expression: {exc}") from exc
    return re.compile(fnmatch.translate(text), re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class DialPolicy:
    """Toll-fraud guard for SIP URIs dialled from TwiML: deny wins; with an allow list, only what it names.

    A pattern is matched (whole) against the URI's host and against ``user@host``."""

    allow: tuple[tuple[str, re.Pattern[str]], ...] = ()
    """(as written, compiled) pairs."""
    deny: tuple[tuple[str, re.Pattern[str]], ...] = ()

    @classmethod
    def from_patterns(cls, allow: Sequence[str] = (), deny: Sequence[str] = ()) -> DialPolicy:
        return cls(
            tuple((p, _policy_pattern(p)) for p in allow), tuple((p, _policy_pattern(p)) for p in deny)
        )

    def refusal(self, user: str | None, host: str) -> str | None:
        """Why a call to ``user@host`` is refused, or None when it may go."""
        host = host.strip("[]").lower()
        subjects = (host, f"{user}@{host}") if user else (host,)
        for text, pattern in self.deny:
            if any(pattern.fullmatch(s) for s in subjects):
                return f"denied by --dial-deny {text!r}"
        if self.allow and not any(p.fullmatch(s) for _, p in self.allow for s in subjects):
            return "not in --dial-allow"
        return None


def with_dial_policy(dialplan: Dialplan, allow: Sequence[str], deny: Sequence[str]) -> Dialplan:
    """``dialplan`` with the ``--dial-allow`` / ``--dial-deny`` policy."""
    return dataclasses.replace(dialplan, dial_policy=DialPolicy.from_patterns(allow, deny))


def _text(table: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    value = table.get(key)
    if value is None:
        if required:
            raise DialplanError(f"{where}: {key} is required")
        return None
    if not isinstance(value, str) or (required and not value):
        raise DialplanError(f"{where}: {key} must be a non-empty string")
    return value


def _pattern(text: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise DialplanError(f"{where}: invalid regular expression {text!r}: {exc}") from exc


def _user(name: str, table: Any, realm: str) -> User:
    where = f"users.{name}"
    if not isinstance(table, Mapping):
        raise DialplanError(f"{where} must be a table")
    unknown = set(table) - {"password", "ha1_md5", "ha1_sha256"}
    if unknown:
        raise DialplanError(f"{where}: unknown keys {sorted(unknown)}")
    ha1: dict[Algorithm, str] = {}
    password = _text(table, "password", where)
    if password is not None:
        ha1["SHA-256"] = compute_ha1(name, realm, password, "SHA-256")
        ha1["MD5"] = compute_ha1(name, realm, password, "MD5")
    for key, algorithm, length in (("ha1_md5", "MD5", 32), ("ha1_sha256", "SHA-256", 64)):
        value = _text(table, key, where)
        if value is not None:
            if len(value) != length or not _HEX.match(value):
                raise DialplanError(f"{where}: {key} must be {length} hex digits")
            ha1[algorithm] = value.lower()  # type: ignore[index]
    if not ha1:
        raise DialplanError(f"{where}: needs password, ha1_md5 or ha1_sha256")
    return User(name, ha1)


def _twiml(value: str, base_dir: Path | None) -> str:
    if "://" in value or base_dir is None:
        return value
    return str((base_dir / value).expanduser().resolve())


def parse_dialplan(document: Mapping[str, Any], base_dir: Path | None = None) -> Dialplan:
    """Build a Dialplan from parsed TOML; relative ``twiml`` paths resolve against ``base_dir``."""
    unknown = set(document) - {"realm", "algorithms", "users", "routes", "trunks"}
    if unknown:
        raise DialplanError(f"unknown top-level keys {sorted(unknown)}")
    realm = _text(document, "realm", "realm") or DEFAULT_REALM
    users_table = document.get("users", {})
    if not isinstance(users_table, Mapping):
        raise DialplanError("users must be a table of tables")
    users = {name: _user(name, table, realm) for name, table in users_table.items()}
    routes: list[Route] = []
    raw_routes = document.get("routes", [])
    if not isinstance(raw_routes, list):
        raise DialplanError("routes must be an array of tables ([[routes]])")
    for index, table in enumerate(raw_routes):
        where = f"routes[{index}]"
        if not isinstance(table, Mapping):
            raise DialplanError(f"{where} must be a table")
        unknown = set(table) - {"match", "twiml", "public", "status_callback", "fallback"}
        if unknown:
            raise DialplanError(f"{where}: unknown keys {sorted(unknown)}")
        public = table.get("public", False)
        if not isinstance(public, bool):
            raise DialplanError(f"{where}: public must be true or false")
        routes.append(
            Route(
                pattern=_pattern(_text(table, "match", where, required=True) or "", where),
                twiml=_twiml(_text(table, "twiml", where, required=True) or "", base_dir),
                public=public,
                status_callback=_text(table, "status_callback", where),
                fallback=_text(table, "fallback", where),
            )
        )
    trunks: dict[str, Trunk] = {}
    raw_trunks = document.get("trunks", {})
    if not isinstance(raw_trunks, Mapping):
        raise DialplanError("trunks must be a table of tables")
    for name, table in raw_trunks.items():
        where = f"trunks.{name}"
        if not isinstance(table, Mapping):
            raise DialplanError(f"{where} must be a table")
        unknown = set(table) - {"gateway", "username", "password", "caller_id", "allow"}
        if unknown:
            raise DialplanError(f"{where}: unknown keys {sorted(unknown)}")
        gateway = _text(table, "gateway", where, required=True) or ""
        if not gateway.startswith(("sip:", "sips:")):
            raise DialplanError(f"{where}: gateway must be a SIP URI")
        allow = table.get("allow", [])
        if not isinstance(allow, list) or not all(isinstance(p, str) for p in allow):
            raise DialplanError(f"{where}: allow must be a list of regular expressions")
        trunks[name] = Trunk(
            name=name,
            gateway=gateway,
            username=_text(table, "username", where),
            password=_text(table, "password", where),
            caller_id=_text(table, "caller_id", where) or "pass",
            allow=tuple(_pattern(p, where) for p in allow),
        )
    raw_algorithms = document.get("algorithms", ["SHA-256", "MD5"])
    if (
        not isinstance(raw_algorithms, list)
        or not raw_algorithms
        or not all(a in ("SHA-256", "MD5") for a in raw_algorithms)
    ):
        raise DialplanError('algorithms must be a non-empty list of "SHA-256" and "MD5"')
    algorithms = tuple(a for a in ("SHA-256", "MD5") if a in raw_algorithms)
    return Dialplan(realm, users, tuple(routes), trunks, algorithms)  # type: ignore[arg-type]


def load_dialplan(path: str | Path) -> Dialplan:
    """Read and check a dialplan TOML file. Raises DialplanError naming the problem."""
    path = Path(path).expanduser()
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise DialplanError(f"cannot read dialplan {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise DialplanError(f"dialplan {path} is not valid TOML: {exc}") from exc
    try:
        return parse_dialplan(document, path.resolve().parent)
    except DialplanError as exc:
        raise DialplanError(f"dialplan {path}: {exc}") from exc
