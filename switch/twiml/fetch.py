"""Fetching TwiML documents and Play audio: http(s) with our own HTTP/1.1 client (``http_client``), files
and package data off the loop.

A local document (a file or package resource, never an HTTP answer) is a template, as a TwiML Bin is on
Twilio: each ``{{Name}}`` is replaced by the request's parameter ``Name`` (``{{Digits}}``, ``{{From}}``,
``{{QueuePosition}}`` ...), XML-escaped; an unknown name becomes empty. The raw bytes stay cached; the
substitution runs per request, and only on documents that hold ``{{``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import importlib.resources
import ipaddress
import logging
import os
import re
import stat
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import parse_qsl, quote_plus, urlencode, urljoin, urlsplit, urlunsplit

from switch import __version__
from switch.twiml.audio import AudioCache
from switch.twiml.errors import (
    BAD_CONTENT_TYPE,
    CONNECT_FAILURE,
    HTTP_RETRIEVAL_FAILURE,
    INVALID_URL,
    PROTOCOL_VIOLATION,
    FetchError,
)
from switch.twiml.http_client import (
    ConnectFailure,
    HttpClient,
    ProtocolViolation,
    ResponseTimeoutError,
    Target,
    parse_target,
)
from switch.twiml.parser import MAX_DOCUMENT_BYTES
from switch.twiml.session import InterpreterSettings
from switch.twiml.urls import UrlKind, local_path, resource_parts, url_kind

__all__ = ["FetchedDocument", "WebhookClient", "render_template", "signature"]

log = logging.getLogger("switch.twiml")

XML_TYPES = frozenset({"text/xml", "application/xml"})
AUDIO_TYPES = frozenset({"application/octet-stream"})
USER_AGENT = f"switch/{__version__} (TwiML)"
MAX_HTTP_REDIRECTS = 10
"""HTTP 3xx hops followed for one request (when no egress rules apply); aiohttp's default."""
REDIRECTS = frozenset({301, 302, 303, 307, 308})
QUERY_SAFE = "?/:@!$'()*,"
"""Left as they are in a query's names and values (as yarl writes them, which GETs were signed with)."""
CALLBACK_BODY_LIMIT = 65536
"""A callback's answer is read (so its connection can be reused) and dropped; a longer one closes it."""


@dataclass(frozen=True, slots=True)
class FetchedDocument:
    """A document's bytes and the URL they finally came from (after HTTP redirects)."""

    body: bytes
    url: str


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """Twilio's X-Twilio-Signature: base64(HMAC-SHA1(token, url + sorted name+value pairs))."""
    payload = url + "".join([k + params[k] for k in sorted(params)])
    digest = hmac.digest(auth_token.encode(), payload.encode(), "sha1")
    return base64.b64encode(digest).decode()


TEMPLATE_FIELD = re.compile(rb"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
"""``{{Name}}`` in a local document (spaces inside the braces allowed, as in TwiML Bins)."""
_XML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"})


def render_template(body: bytes, params: Mapping[str, str]) -> bytes:
    """``body`` with each ``{{Name}}`` replaced by ``params[Name]`` XML-escaped (fit for text and
    attributes alike), or by nothing when the request has no such parameter."""
    if b"{{" not in body:
        return body

    def value(match: re.Match[bytes]) -> bytes:
        text = params.get(match.group(1).decode("ascii"), "")
        return text.translate(_XML_ESCAPES).encode()

    return TEMPLATE_FIELD.sub(value, body)


def _read_limited(path: Path, limit: int) -> bytes:
    with path.open("rb") as f:
        return f.read(limit + 1)


_K = TypeVar("_K")
_V = TypeVar("_V")
LOCAL_CACHE_ENTRIES = 64
LOCAL_CACHE_MAX_BYTES = 1 << 20
RACY_SECONDS = 2.0
"""A file modified this recently is read again (its mtime may not change on a second quick write)."""


def _read_resource(url: str, limit: int) -> bytes:
    package, name = resource_parts(url)
    if not package or not name or ".." in name.split("/"):
        raise FetchError(INVALID_URL, f"invalid package resource {url!r}", url=url)
    try:
        resource = importlib.resources.files(package).joinpath(name)
        with resource.open("rb") as f:
            return f.read(limit + 1)
    except (ModuleNotFoundError, OSError) as exc:
        raise FetchError(HTTP_RETRIEVAL_FAILURE, f"cannot read {url}: {exc}", url=url) from exc


class WebhookClient:
    """One HTTP client (kept-alive connections per origin) for every webhook and Play fetch of the
    process; also owns the audio cache."""

    def __init__(self, settings: InterpreterSettings, *, audio_cache: AudioCache | None = None) -> None:
        self.settings = settings
        self.audio_cache = audio_cache if audio_cache is not None else AudioCache()
        self._client: HttpClient | None = None
        self._egress_ok: dict[str, bool] = {}
        """Hosts ``--egress-allow`` let through (its answer for an address does not change)."""
        self._fields = f"User-Agent: {USER_AGENT}\r\nAccept: */*\r\n"
        self._background: set[asyncio.Future[Any]] = set()
        # Local documents and audio: path -> ((mtime_ns, size, inode, limit), bytes); resources by URL.
        self._files: dict[str, tuple[tuple[int, int, int, int], bytes]] = {}
        self._resources: dict[tuple[str, int], bytes] = {}

    def _http(self) -> HttpClient:
        if self._client is None:
            self._client = HttpClient(
                connect_timeout=self.settings.connect_timeout,
                response_timeout=self.settings.response_timeout,
            )
        return self._client

    def background(self, coro: Coroutine[Any, Any, object]) -> None:
        """Run a request that must outlive its call's session (a callback after hangup), kept until done."""
        self.keep(asyncio.ensure_future(coro))

    def keep(self, task: asyncio.Future[Any]) -> None:
        """Hold ``task`` (a request running on its own) until it is done; ``drain`` and ``close`` wait
        for it."""
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for the background requests started so far (and those they start)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def close(self) -> None:
        await self.drain()
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def fetch(self, url: str, method: str, params: Mapping[str, str]) -> FetchedDocument:
        """Fetch a TwiML document. http(s): POST form-encoded ``params`` (or GET with them in the query)."""
        kind = url_kind(url)
        if kind is UrlKind.HTTP:
            return await self._fetch_http(url, method, params)
        body = await self._read_local(url, MAX_DOCUMENT_BYTES)
        return FetchedDocument(render_template(body, params), url)

    async def send(self, url: str, method: str, params: Mapping[str, str]) -> int:
        """A signed callback request whose answer is not TwiML (status and recording callbacks); returns
        the HTTP status. Raises FetchError (11200 for 4xx/5xx, 11205, 11206) like ``fetch``."""
        if url_kind(url) is not UrlKind.HTTP:
            raise FetchError(INVALID_URL, f"a callback must be http(s), not {url!r}", url=url)
        status, _, _ = await self._request(url, method, params, 0, audio=False, expect_body=False)
        return status

    async def fetch_audio(self, url: str) -> bytes:
        """The bytes of a Play file: GET over http(s) (kept in ``cache_dir`` when set), or a local read."""
        limit = self.settings.max_audio_bytes
        if url_kind(url) is not UrlKind.HTTP:
            return await self._read_local(url, limit)
        cached = self._disk_cache_path(url)
        if cached is not None:
            try:
                return await asyncio.to_thread(cached.read_bytes)
            except FileNotFoundError:
                pass
        _, data, _ = await self._request(url, "GET", {}, limit, audio=True)
        if len(data) > limit:
            raise FetchError(HTTP_RETRIEVAL_FAILURE, f"audio larger than {limit} bytes", url=url)
        if cached is not None:
            await asyncio.to_thread(self._write_cache, cached, data)
        return data

    def _disk_cache_path(self, url: str) -> Path | None:
        if self.settings.cache_dir is None:
            return None
        return self.settings.cache_dir / "play" / hashlib.sha256(url.encode()).hexdigest()

    @staticmethod
    def _write_cache(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)

    def _check_egress(self, target: Target, url: str) -> None:
        """Refuse a destination outside ``--egress-allow`` before anything is resolved or sent."""
        allowed = self.settings.egress_allowed
        if allowed is None:
            return
        if self._egress_ok.get(target.host):
            return
        host = target.host
        if host == "localhost":
            host = "127.0.0.1"
        if not _is_ip_literal(host):
            raise FetchError(
                CONNECT_FAILURE, f"{url}: host names are not resolved under --egress-allow", url=url
            )
        if not allowed(host):
            raise FetchError(CONNECT_FAILURE, f"{url}: {host} is outside --egress-allow", url=url)
        if len(self._egress_ok) >= LOCAL_CACHE_ENTRIES:
            self._egress_ok.clear()
        self._egress_ok[target.host] = True

    async def _fetch_http(self, url: str, method: str, params: Mapping[str, str]) -> FetchedDocument:
        _, body, final_url = await self._request(url, method, params, MAX_DOCUMENT_BYTES, audio=False)
        return FetchedDocument(body, final_url)

    async def _request(
        self,
        url: str,
        method: str,
        params: Mapping[str, str],
        limit: int,
        *,
        audio: bool,
        expect_body: bool = True,
    ) -> tuple[int, bytes, str]:
        """One webhook request, redirects followed (unless under egress rules); (status, body, final URL)."""
        method = method.upper()
        given = url  # what errors name: the URL as the document (or settings) gave it
        if method == "GET" and params:
            url = _with_query(url, params)
            params = {}
        follow = self.settings.egress_allowed is None
        for _ in range(MAX_HTTP_REDIRECTS + 1):
            try:
                target = parse_target(url)
            except ValueError as exc:
                raise FetchError(INVALID_URL, f"invalid URL {given!r}", url=given) from exc
            self._check_egress(target, given)
            body = _form(params) if method != "GET" else b""
            fields = self._fields
            if self.settings.auth_token and not audio:
                signed = signature(self.settings.auth_token, url, params)
                fields = f"{fields}X-Twilio-Signature: {signed}\r\n"
            try:
                response = await self._http().request(
                    method, target, fields, body, limit=limit if expect_body else CALLBACK_BODY_LIMIT
                )
            except ProtocolViolation as exc:
                raise FetchError(
                    PROTOCOL_VIOLATION, f"HTTP protocol violation by {given}: {exc!r}", url=given
                ) from exc
            except (ConnectFailure, ResponseTimeoutError) as exc:
                raise FetchError(CONNECT_FAILURE, f"cannot reach {given}: {exc!r}", url=given) from exc
            status = response.status
            if not follow and 300 <= status < 400:
                raise FetchError(
                    HTTP_RETRIEVAL_FAILURE,
                    f"HTTP {status} from {given}: redirects are not followed under --egress-allow",
                    url=given,
                )
            location = response.headers.get("location") if status in REDIRECTS else None
            if location is None:
                break
            url = urljoin(url, location)
            if url_kind(url) is not UrlKind.HTTP:
                raise FetchError(HTTP_RETRIEVAL_FAILURE, f"{given}: redirected to {url!r}", url=given)
            if status == 303 or (status in (301, 302) and method == "POST"):
                method, params = "GET", {}
        else:
            raise FetchError(
                PROTOCOL_VIOLATION, f"{given}: more than {MAX_HTTP_REDIRECTS} HTTP redirects", url=given
            )
        if status >= 400:
            raise FetchError(HTTP_RETRIEVAL_FAILURE, f"HTTP {status} from {given}", url=given)
        if not expect_body:
            return status, b"", url
        ctype = response.content_type
        ok = (ctype.startswith("audio/") or ctype in AUDIO_TYPES) if audio else _is_xml(ctype)
        if not ok:
            raise FetchError(BAD_CONTENT_TYPE, f"content type {ctype!r} from {given}", url=given)
        return status, response.body, url

    async def _read_local(self, url: str, limit: int) -> bytes:
        """A file or package resource. Files are cached and checked with one ``stat`` per fetch (no
        thread hop when unchanged); package resources do not change while the process runs."""
        kind = url_kind(url)
        if kind is UrlKind.RESOURCE:
            key = (url, limit)
            data = self._resources.get(key)
            if data is None:
                data = await asyncio.to_thread(_read_resource, url, limit)
                _remember(self._resources, key, data, len(data))
            return data
        if kind is not UrlKind.FILE:
            raise FetchError(INVALID_URL, f"unsupported URL {url!r}", url=url)
        name = local_path(url)
        try:
            st = os.stat(name)
            version = (st.st_mtime_ns, st.st_size, st.st_ino, limit)
            cached = self._files.get(name)
            if cached is not None and cached[0] == version:
                return cached[1]
            data = await asyncio.to_thread(_read_limited, Path(name), limit)
        except OSError as exc:
            raise FetchError(HTTP_RETRIEVAL_FAILURE, f"cannot read {name}: {exc}", url=url) from exc
        settled = time.time() - st.st_mtime_ns / 1e9 > RACY_SECONDS
        if stat.S_ISREG(st.st_mode) and settled and len(data) == st.st_size:
            _remember(self._files, name, (version, data), len(data))
        else:
            self._files.pop(name, None)
        return data


def _remember(cache: dict[_K, _V], key: _K, value: _V, size: int) -> None:
    """Keep ``value`` unless it is large; the oldest entry goes when the cache is full."""
    if size > LOCAL_CACHE_MAX_BYTES:
        return
    cache.pop(key, None)
    if len(cache) >= LOCAL_CACHE_ENTRIES:
        del cache[next(iter(cache))]
    cache[key] = value


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch
"""What ``quote_plus`` leaves as it is."""
_FORM_ASCII = {c: f"%{c:02X}" for c in range(128) if not _PLAIN(chr(c))} | {ord(" "): "+"}
"""``quote_plus`` of each ASCII character, for ``str.translate``."""
_QUOTED: dict[str, str] = {}
"""Names and values already escaped: most repeat from call to call (AccountSid, From, To, statuses)."""
QUOTED_ENTRIES = 4096


def _quote(text: str) -> str:
    quoted = _QUOTED.get(text)
    if quoted is None:
        if _PLAIN(text):
            quoted = text
        else:
            quoted = text.translate(_FORM_ASCII) if text.isascii() else quote_plus(text)
        if len(_QUOTED) >= QUOTED_ENTRIES:
            _QUOTED.clear()
        _QUOTED[text] = quoted
    return quoted


def _form(params: Mapping[str, str]) -> bytes:
    """application/x-www-form-urlencoded exactly as ``urlencode`` (and so aiohttp) writes it."""
    known = _QUOTED.get
    pairs = [f"{known(k) or _quote(k)}={known(v) or _quote(v)}" for k, v in params.items()]
    return "&".join(pairs).encode("ascii")


def _with_query(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` in its query (replacing fields of the same name), as Twilio sends a GET."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True)) if parts.query else {}
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query, safe=QUERY_SAFE)))


def _is_xml(ctype: str) -> bool:
    return ctype in XML_TYPES or ctype.endswith("+xml")
