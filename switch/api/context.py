"""What every handler needs: the account, the call service, the store; and request parsing helpers."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from switch.api.answer import AnswerActions
from switch.api.errors import ApiError
from switch.api.records import CallRecords, ConferenceRecords
from switch.calls.service import CallService
from switch.store.base import Store


@dataclass(slots=True)
class ApiContext:
    account_sid: str
    auth_token: str
    service: CallService
    store: Store
    records: CallRecords
    data_dir: Path
    clock: Callable[[], float] = time.time
    hangup_wait: float = 5.0
    """How long an update with Status=completed|canceled waits for the call to end before answering."""
    public_recordings: bool = True
    """Recording media without credentials, as on Twilio (``--recordings-auth`` turns it off)."""
    conferences: ConferenceRecords = field(init=False)
    answers: AnswerActions = field(init=False)
    """Record=true and SendDigits of created calls, done when they are answered."""

    def __post_init__(self) -> None:
        self.conferences = ConferenceRecords(self.store, self.account_sid)
        self.answers = AnswerActions(
            self.store, self.account_sid, self.auth_token, self.data_dir / "recordings"
        )


CONTEXT = web.AppKey("context", ApiContext)


def context_of(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]


def account_of(request: web.Request) -> str:
    """The AccountSid in the path; another account's resources are not found."""
    account_sid = request.match_info["account_sid"]
    if account_sid != context_of(request).account_sid:
        raise ApiError(20404, f"The requested resource {request.path} was not found", 404)
    return account_sid


async def form_of(request: web.Request) -> MultiDictProxy[str]:
    """The form body as a multidict: repeated keys and blank values kept (``Body=`` matters)."""
    raw = await request.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(20001, "The request body is not UTF-8") from None
    return MultiDictProxy(MultiDict(parse_qsl(text, keep_blank_values=True)))
