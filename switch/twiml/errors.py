"""Errors of the TwiML layer, each carrying the Twilio error code it stands for.

    TwimlError(code, message)        the root; ``code`` is Twilio's numeric error code
    ├── FetchError                   fetching a document or audio failed
    │     11100 invalid URL, 11200 HTTP 4xx/5xx (or unreadable file),
    │     11205 connect failure or timeout, 12300 content type not acceptable
    └── (parse failures are TwimlError(12100, ...))

Warnings that do not stop a document (unknown attributes, bad values) are logged with code 12200.
"""

from __future__ import annotations

__all__ = [
    "APPLICATION_ERROR",
    "BAD_CONTENT_TYPE",
    "CONNECT_FAILURE",
    "FetchError",
    "HTTP_RETRIEVAL_FAILURE",
    "INVALID_URL",
    "PARSE_FAILURE",
    "SCHEMA_WARNING",
    "TwimlError",
]

INVALID_URL = 11100
HTTP_RETRIEVAL_FAILURE = 11200
CONNECT_FAILURE = 11205
PARSE_FAILURE = 12100
SCHEMA_WARNING = 12200
BAD_CONTENT_TYPE = 12300

APPLICATION_ERROR = "We are sorry, an application error has occurred. Goodbye."


class TwimlError(Exception):
    """A failure with a Twilio error code (see the module docstring for the tree)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class FetchError(TwimlError):
    """Fetching a TwiML document or a Play URL failed."""

    def __init__(self, code: int, message: str = "", *, url: str = "") -> None:
        super().__init__(code, message or f"fetch failed: {url}")
        self.url = url
