"""The OpenAPI 3.1 description of the REST API, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

ACCOUNT = "/2010-04-01/Accounts/{AccountSid}"

# (path, method, summary, form or query parameters, success status)
OPERATIONS: tuple[tuple[str, str, str, tuple[str, ...], int], ...] = (
    (
        "/Calls.json",
        "post",
        "Create an outbound call",
        (
            "To*",
            "From*",
            "Url",
            "Twiml",
            "Method",
            "FallbackUrl",
            "StatusCallback",
            "StatusCallbackEvent",
            "StatusCallbackMethod",
            "Timeout",
            "Record",
            "RecordingStatusCallback",
            "RecordingStatusCallbackMethod",
            "RecordingStatusCallbackEvent",
            "SendDigits",
        ),
        201,
    ),
    (
        "/Calls.json",
        "get",
        "List calls, newest first",
        (
            "To",
            "From",
            "Status",
            "ParentCallSid",
            "StartTime",
            "StartTime<",
            "StartTime>",
            "PageSize",
            "Page",
        ),
        200,
    ),
    ("/Calls/{Sid}.json", "get", "Fetch a call", (), 200),
    ("/Calls/{Sid}.json", "post", "Update a live call", ("Url", "Twiml", "Method", "Status"), 200),
    ("/Calls/{Sid}.json", "delete", "Delete the record of an ended call", (), 204),
    ("/Calls/{Sid}/Recordings.json", "get", "List a call's recordings", ("PageSize", "Page"), 200),
    (
        "/Calls/{Sid}/Notifications.json",
        "get",
        "List a call's webhook errors and warnings",
        ("Log", "PageSize", "Page"),
        200,
    ),
    ("/Calls/{Sid}/Notifications/{NotificationSid}.json", "get", "Fetch a call's notification", (), 200),
    (
        "/Notifications.json",
        "get",
        "List webhook errors (Log 0) and warnings (Log 1) of every call",
        ("Log", "PageSize", "Page"),
        200,
    ),
    ("/Notifications/{Sid}.json", "get", "Fetch a notification", (), 200),
    ("/Recordings.json", "get", "List recordings", ("CallSid", "PageSize", "Page"), 200),
    ("/Recordings/{Sid}.json", "get", "Fetch a recording", (), 200),
    ("/Recordings/{Sid}.json", "delete", "Delete a recording and its media", (), 204),
    ("/Recordings/{Sid}.wav", "get", "Recording media, WAV (no authentication)", (), 200),
    ("/Recordings/{Sid}.mp3", "get", "Recording media, MP3 (no authentication)", (), 200),
    ("/Queues.json", "post", "Create a queue", ("FriendlyName*", "MaxSize"), 201),
    ("/Queues.json", "get", "List queues", ("PageSize", "Page"), 200),
    ("/Queues/{Sid}.json", "get", "Fetch a queue", (), 200),
    ("/Queues/{Sid}.json", "post", "Update a queue", ("FriendlyName", "MaxSize"), 200),
    ("/Queues/{Sid}.json", "delete", "Delete an empty queue", (), 204),
    ("/Queues/{Sid}/Members.json", "get", "List the calls waiting in a queue", ("PageSize", "Page"), 200),
    ("/Queues/{Sid}/Members/{CallSid}.json", "get", "Fetch a member (CallSid or Front)", (), 200),
    (
        "/Queues/{Sid}/Members/{CallSid}.json",
        "post",
        "Dequeue a member (CallSid or Front) to the document at Url",
        ("Url*", "Method"),
        200,
    ),
    ("/Conferences.json", "get", "List conferences", ("Status", "FriendlyName", "PageSize", "Page"), 200),
    ("/Conferences/{Sid}.json", "get", "Fetch a conference", (), 200),
    ("/Conferences/{Sid}.json", "post", "End a conference (Status=completed)", ("Status",), 200),
    (
        "/Conferences/{Sid}/Participants.json",
        "get",
        "List a conference's participants",
        ("Muted", "Hold", "PageSize", "Page"),
        200,
    ),
    (
        "/Conferences/{Sid}/Participants.json",
        "post",
        "Dial someone into the conference (Sid, or a friendly name)",
        (
            "From*",
            "To*",
            "StatusCallback",
            "StatusCallbackMethod",
            "StatusCallbackEvent",
            "Timeout",
            "Muted",
            "Beep",
            "StartConferenceOnEnter",
            "EndConferenceOnExit",
            "WaitUrl",
            "WaitMethod",
            "MaxParticipants",
            "ConferenceStatusCallback",
            "ConferenceStatusCallbackMethod",
            "ConferenceStatusCallbackEvent",
            "Label",
        ),
        201,
    ),
    ("/Conferences/{Sid}/Participants/{CallSid}.json", "get", "Fetch a participant", (), 200),
    (
        "/Conferences/{Sid}/Participants/{CallSid}.json",
        "post",
        "Mute or hold a participant",
        ("Muted", "Hold", "HoldUrl"),
        200,
    ),
    ("/Conferences/{Sid}/Participants/{CallSid}.json", "delete", "Remove a participant", (), 204),
)

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message", "more_info", "status"],
    "properties": {
        "code": {"type": "integer"},
        "message": {"type": "string"},
        "more_info": {"type": "string"},
        "status": {"type": "integer"},
    },
}


def _path_parameters(path: str) -> list[dict[str, Any]]:
    names = ["AccountSid"] + [
        part[1:-1] for part in path.replace(".", "/").split("/") if part.startswith("{")
    ]
    return [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names]


def _operation(
    path: str, method: str, summary: str, parameters: tuple[str, ...], status: int
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": _path_parameters(path),
        "responses": {
            str(status): {"description": "OK" if status != 204 else "Deleted"},
            "default": {
                "description": "A Twilio error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
    }
    if ".wav" in path or ".mp3" in path:
        operation["security"] = []
    fields = {name.rstrip("*"): {"type": "string"} for name in parameters}
    required = [name.rstrip("*") for name in parameters if name.endswith("*")]
    if method == "get":
        operation["parameters"] += [
            {"name": name, "in": "query", "required": False, "schema": schema}
            for name, schema in fields.items()
        ]
    elif fields:
        schema: dict[str, Any] = {"type": "object", "properties": fields}
        if required:
            schema["required"] = required
        operation["requestBody"] = {"content": {"application/x-www-form-urlencoded": {"schema": schema}}}
    return operation


def openapi_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for path, method, summary, parameters, status in OPERATIONS:
        paths.setdefault(ACCOUNT + path, {})[method] = _operation(path, method, summary, parameters, status)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "switch REST API",
            "version": "2010-04-01",
            "description": "The part of Twilio's 2010-04-01 REST API a self-hosted voice switch answers.",
        },
        "components": {
            "securitySchemes": {"accountSidAuthToken": {"type": "http", "scheme": "basic"}},
            "schemas": {"Error": ERROR_SCHEMA},
        },
        "security": [{"accountSidAuthToken": []}],
        "paths": paths,
    }
