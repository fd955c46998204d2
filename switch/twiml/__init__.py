"""switch.twiml: parse TwiML into typed verbs and run them for a call (webhooks, Redirect, errors)."""

from switch.twiml.audio import AudioCache
from switch.twiml.callbacks import StatusCallbacks
from switch.twiml.errors import APPLICATION_ERROR, FetchError, TwimlError
from switch.twiml.fetch import FetchedDocument, WebhookClient, signature
from switch.twiml.gather import Gather
from switch.twiml.interpreter import Interpreter
from switch.twiml.parser import Document, parse_twiml
from switch.twiml.record import Record
from switch.twiml.session import CallControl, InterpreterSettings, Outcome, RecordingInfo
from switch.twiml.urls import DEMO_URL
from switch.twiml.verbs import Hangup, Pause, Play, Redirect, Reject, Say, Unsupported, Verb

__all__ = [
    "APPLICATION_ERROR",
    "DEMO_URL",
    "AudioCache",
    "CallControl",
    "Document",
    "FetchError",
    "FetchedDocument",
    "Gather",
    "Hangup",
    "Interpreter",
    "InterpreterSettings",
    "Outcome",
    "Pause",
    "Play",
    "Record",
    "RecordingInfo",
    "Redirect",
    "Reject",
    "Say",
    "StatusCallbacks",
    "TwimlError",
    "Unsupported",
    "Verb",
    "WebhookClient",
    "parse_twiml",
    "signature",
]
