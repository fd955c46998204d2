"""Where a TwiML document or a Play file comes from: http(s), a file, or package data.

Package data is named ``resource://PACKAGE/PATH`` (read with ``importlib.resources``), so the built-in demo
works from a wheel as well as from a checkout.
"""

from __future__ import annotations

import enum
import functools
import posixpath
from urllib.parse import unquote, urljoin, urlsplit

__all__ = ["DEMO_URL", "UrlKind", "is_local", "local_path", "resolve_url", "resource_parts", "url_kind"]

DEMO_URL = "resource://switch/dialplans/demo.xml"


class UrlKind(enum.Enum):
    HTTP = "http"
    FILE = "file"
    RESOURCE = "resource"
    INVALID = "invalid"


@functools.lru_cache(maxsize=1024)
def url_kind(url: str) -> UrlKind:
    """Classify a URL; a string with no scheme is a file path."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return UrlKind.HTTP
    if scheme == "file" or scheme == "":
        return UrlKind.FILE if url else UrlKind.INVALID
    if scheme == "resource":
        return UrlKind.RESOURCE
    return UrlKind.INVALID


def is_local(url: str) -> bool:
    """True for files and package data (documents that may Play files)."""
    return url_kind(url) in (UrlKind.FILE, UrlKind.RESOURCE)


def local_path(url: str) -> str:
    """The filesystem path of a ``file://`` URL or a plain path."""
    if urlsplit(url).scheme.lower() == "file":
        return unquote(urlsplit(url).path)
    return url


def resource_parts(url: str) -> tuple[str, str]:
    """``resource://pkg/a/b.xml`` -> ``("pkg", "a/b.xml")``."""
    parts = urlsplit(url)
    return parts.netloc, parts.path.lstrip("/")


def resolve_url(base: str, ref: str) -> str:
    """Resolve ``ref`` (as written in a document) against the document's own URL."""
    ref = ref.strip()
    if urlsplit(ref).scheme:
        return ref
    kind = url_kind(base)
    if kind is UrlKind.HTTP:
        return urljoin(base, ref)
    if kind is UrlKind.RESOURCE:
        package, path = resource_parts(base)
        if not ref:
            return base
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), ref))
        return f"resource://{package}/{joined.lstrip('/')}"
    if kind is UrlKind.FILE and urlsplit(base).scheme.lower() == "file":
        return urljoin(base, ref)
    if not ref:
        return base
    return posixpath.normpath(posixpath.join(posixpath.dirname(base), ref))
