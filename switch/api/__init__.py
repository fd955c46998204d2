"""The Twilio-compatible REST API (2010-04-01) and the call records behind it."""

from switch.api.auth import auth_token_for
from switch.api.errors import ApiError
from switch.api.records import CallRecords, record_of
from switch.api.server import ApiServer, create_app

__all__ = ["ApiError", "ApiServer", "CallRecords", "auth_token_for", "create_app", "record_of"]
