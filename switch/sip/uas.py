"""Stateless UAS rules of RFC 3261 section 8.2: which requests to reject before any processing.

``check_request`` applies, in the RFC's order: version (505), method inspection (501 / 405),
the CSeq method (400), the Request-URI scheme (416), Require (420), the body's Content-Type (415)
and, for an INVITE offer, the Accept header (406). It returns the rejection or None.
"""

from __future__ import annotations

from switch.sip.errors import SipParseError
from switch.sip.message import SIP_VERSION, Request, Response, make_response
from switch.sip.uri import SipURI

__all__ = ["KNOWN_METHODS", "check_request", "options_response"]

# Methods defined by RFC 3261 and its extensions: a UAS answers 405 (not 501) when it does not allow them.
KNOWN_METHODS = frozenset(
    "INVITE ACK BYE CANCEL OPTIONS REGISTER PRACK SUBSCRIBE NOTIFY PUBLISH INFO REFER MESSAGE UPDATE".split()
)
_SDP = "application/sdp"


def _allow(allowed_methods: frozenset[str]) -> str:
    return ", ".join(sorted(allowed_methods))


def _media_type(entry: str) -> str:
    return entry.split(";", 1)[0].strip().lower()


def _accepts_sdp(accept_values: list[str]) -> bool:
    for entry in accept_values:
        media = _media_type(entry)
        if media in (_SDP, "application/*", "*/*"):
            return True
    return False


def check_request(
    request: Request,
    *,
    allowed_methods: frozenset[str],
    supported: frozenset[str],
    accepted_content_types: frozenset[str],
) -> Response | None:
    """The response rejecting ``request`` under RFC 3261 8.2, or None when it may be processed.

    An ACK is never answered, so it always gives None.
    """
    method = request.method
    if method == "ACK":
        return None
    if request.version.upper() != SIP_VERSION:
        return make_response(request, 505)
    if method not in allowed_methods:
        response = make_response(request, 405 if method in KNOWN_METHODS else 501)
        response.headers.add("Allow", _allow(allowed_methods))
        return response
    try:
        cseq = request.cseq
    except SipParseError:
        return make_response(request, 400, "Bad CSeq")
    if cseq.method != method:
        return make_response(request, 400, "CSeq Method Mismatch")
    if not isinstance(request.uri, SipURI):
        return make_response(request, 416)
    if method != "CANCEL":
        required = request.headers.get_all("Require")
        unsupported = [tag for tag in required if tag not in supported]
        if unsupported:
            response = make_response(request, 420)
            response.headers.add("Unsupported", ", ".join(unsupported))
            return response
    if request.body:
        try:
            content_type = request.content_type
        except SipParseError:
            content_type = ""
        if content_type is not None and content_type not in accepted_content_types:
            response = make_response(request, 415)
            response.headers.add("Accept", ", ".join(sorted(accepted_content_types)))
            return response
        if method == "INVITE":
            accept = request.headers.get_all("Accept")
            if accept and not _accepts_sdp(accept):
                response = make_response(request, 406)
                response.headers.add("Accept", _SDP)
                response.headers.add("Warning", '399 - "This UA only offers and answers application/sdp"')
                return response
    return None


def options_response(
    request: Request,
    *,
    allowed_methods: frozenset[str],
    supported: frozenset[str],
    accepted_content_types: frozenset[str],
    to_tag: str | None = None,
) -> Response:
    """200 OK to an OPTIONS request, advertising Allow, Accept and Supported (RFC 3261 11.2)."""
    response = make_response(request, 200, to_tag=to_tag)
    response.headers.add("Allow", _allow(allowed_methods))
    response.headers.add("Accept", ", ".join(sorted(accepted_content_types)))
    if supported:
        response.headers.add("Supported", ", ".join(sorted(supported)))
    return response
