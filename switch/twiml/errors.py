"""Errors of the TwiML layer, each carrying the Twilio error code it stands for.

    TwimlError(code, message)        the root; ``code`` is Twilio's numeric error code
    ├── FetchError                   fetching a document or audio failed
    │     11100 invalid URL, 11200 HTTP 4xx/5xx (or unreadable file),
    │     11205 connect failure or timeout, 11206 HTTP protocol violation,
    │     12300 content type not acceptable
    └── (parse failures are TwimlError(12100, ...); a document over 64 KiB, TwimlError(11750, ...))

Warnings that do not stop a document (unknown attributes, bad values) are logged with code 12200.
Every error and warning goes through ``report``: logged with the CallSid, and handed to the session's sink
(``error_sink`` and ``session_call_sid``, set by the interpreter for the task running a call's session, so
that a warning raised where no call is at hand, as while parsing, still names its call).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar

__all__ = [
    "APPLICATION_ERROR",
    "BAD_CONTENT_TYPE",
    "CONNECT_FAILURE",
    "FetchError",
    "HTTP_RETRIEVAL_FAILURE",
    "INVALID_URL",
    "PARSE_FAILURE",
    "PROTOCOL_VIOLATION",
    "RESPONSE_TOO_LARGE",
    "SCHEMA_WARNING",
    "ErrorSink",
    "TwimlError",
    "error_sink",
    "report",
    "session_call_sid",
]

INVALID_URL = 11100
HTTP_RETRIEVAL_FAILURE = 11200
CONNECT_FAILURE = 11205
PROTOCOL_VIOLATION = 11206
RESPONSE_TOO_LARGE = 11750
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


ErrorSink = Callable[[int, str, str], None]
"""``sink(code, message, url)``: where a session's errors go besides the log."""

error_sink: ContextVar[ErrorSink | None] = ContextVar("switch_twiml_error_sink", default=None)
session_call_sid: ContextVar[str] = ContextVar("switch_twiml_call_sid", default="")
log = logging.getLogger("switch.twiml")


def report(code: int, message: str, *, call_sid: str = "", url: str = "", level: int = logging.ERROR) -> None:
    """Log a Twilio error or warning (``twilio_code`` and ``call_sid`` in the record) and hand it to the
    current session's sink, if any. A failing sink is logged, never raised."""
    kind = "warning" if level < logging.ERROR else "error"
    call_sid = call_sid or session_call_sid.get()
    where = f" (call {call_sid})" if call_sid else ""
    log.log(
        level,
        "TwiML %s %d%s: %s",
        kind,
        code,
        where,
        message,
        extra={"twilio_code": code, "call_sid": call_sid, "twilio_url": url},
    )
    sink = error_sink.get()
    if sink is not None:
        try:
            sink(code, message, url)
        except Exception:
            log.exception("TwiML error sink failed")
