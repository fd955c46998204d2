"""DTMF carried in SIP INFO bodies: application/dtmf-relay (as most phones send it) and application/dtmf."""

from __future__ import annotations

DTMF_DIGITS = frozenset("0123456789*#ABCD")
INFO_CONTENT_TYPES = frozenset({"application/dtmf-relay", "application/dtmf"})


def digits_from_info(content_type: str | None, body: bytes) -> str | None:
    """The digit(s) an INFO request carries; None when the body is not DTMF we understand.

    ``application/dtmf-relay``: ``Signal=5\\r\\nDuration=160``; ``application/dtmf``: the digit itself.
    An INFO without a body (a keep-alive some phones send) carries no digit: "".
    """
    if not body:
        return ""
    if content_type not in INFO_CONTENT_TYPES:
        return None
    try:
        text = body.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    if content_type == "application/dtmf":
        value = text
    else:
        value = ""
        for line in text.splitlines():
            name, _, rest = line.partition("=")
            if name.strip().lower() == "signal":
                value = rest.strip()
                break
    if value == "10":  # some phones send the event code for * and #
        value = "*"
    elif value == "11":
        value = "#"
    value = value.upper()
    if len(value) != 1 or value not in DTMF_DIGITS:
        return None
    return value
