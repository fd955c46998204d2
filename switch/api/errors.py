"""Twilio's REST errors: ``{"code", "message", "more_info", "status"}`` with Twilio's codes.

The codes the switch uses (HTTP status in brackets):

- 20001 [400] a parameter has a value the resource cannot take
- 20003 [401] authentication failed (no credentials, wrong AccountSid or auth token)
- 20004 [405] method not allowed on this resource
- 20404 [404] no such resource
- 21201 [400] To is missing; 21211 [400] To cannot be called; 21213 [400] From is missing
- 21205 [400] Url (or Twiml) is missing or not a valid URL
- 21220 [400] the call is not in a state that allows this update
"""

from __future__ import annotations

from typing import Any

MORE_INFO = "https://www.twilio.com/docs/errors/{code}"


class ApiError(Exception):
    """An error the API reports to its client; raised by handlers, turned into JSON by the server."""

    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.status)


def error_body(code: int, message: str, status: int) -> dict[str, Any]:
    return {"code": code, "message": message, "more_info": MORE_INFO.format(code=code), "status": status}


def not_found(path: str) -> ApiError:
    return ApiError(20404, f"The requested resource {path} was not found", 404)


def invalid(parameter: str, detail: str) -> ApiError:
    return ApiError(20001, f"Invalid parameter {parameter}: {detail}")


AUTHENTICATION_FAILED = 20003
