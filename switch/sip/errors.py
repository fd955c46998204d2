"""Errors raised by the SIP layer.

Tree::

    SipError                      root of everything switch.sip raises on purpose
    └── SipParseError             the bytes are not an acceptable SIP message
        └── SipFramingError       a stream cannot be framed any more: close the connection

``SipParseError.status_hint`` is the status a UAS should answer with (400, 505, 413, 513...),
or ``None`` when the message must be dropped silently (a malformed response, garbage).
The parser's contract: return a message or raise ``SipParseError``; any other exception is a bug.
"""

from __future__ import annotations

__all__ = ["SipError", "SipFramingError", "SipParseError"]


class SipError(Exception):
    """Root of the SIP layer's errors."""


class SipParseError(SipError):
    """A message (or part of one) could not be parsed.

    ``status_hint``: the response status to send (None = drop silently).
    ``raw``: the offending message's bytes when known (set by StreamParser, so a transport
    can call :func:`switch.sip.message.error_response_for` on them).
    """

    def __init__(self, message: str, status_hint: int | None = 400, *, raw: bytes | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_hint = status_hint
        self.raw = raw

    def __str__(self) -> str:
        return self.message


class SipFramingError(SipParseError):
    """The byte stream cannot be split into messages any more; the connection must be closed."""
