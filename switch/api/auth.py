"""Credentials of the REST API: the AccountSid and auth token, and the HTTP Basic check.

The auth token comes from ``--auth-token`` / ``SWITCH_AUTH_TOKEN``; without one, a token is generated on
first start, logged once, and kept in ``auth_token`` in the data directory (mode 0600) for later starts.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger("switch.api")


def auth_token_for(configured: str | None, data_dir: Path) -> str:
    """The configured auth token, or the one kept in the data directory, or a new one (logged once)."""
    if configured:
        return configured
    path = data_dir / "auth_token"
    try:
        existing = path.read_text().strip()
        if len(existing) >= 16:
            return existing
    except OSError:
        pass
    token = secrets.token_hex(16)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")
    log.warning("generated the REST API auth token %s (kept in %s; shown only this once)", token, path)
    return token


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) from an ``Authorization: Basic ...`` header, or None."""
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, separator, password = decoded.partition(":")
    return (user, password) if separator else None


def credentials_match(header: str | None, account_sid: str, auth_token: str) -> bool:
    credentials = basic_credentials(header)
    if credentials is None:
        return False
    user_ok = hmac.compare_digest(credentials[0].encode(), account_sid.encode())
    password_ok = hmac.compare_digest(credentials[1].encode(), auth_token.encode())
    return user_ok and password_ok
