"""<Dial> parses into a DialRequest: nouns in order, attributes with Twilio's defaults, bad values warned."""

from __future__ import annotations

from switch.twiml.dial import Dial, DialRequest, DialTarget
from switch.twiml.parser import parse_twiml

BASE = "http://127.0.0.1:9/app/voice"


def dial(xml: str) -> Dial:
    [verb] = parse_twiml(f"<Response>{xml}</Response>".encode(), base_url=BASE).verbs
    assert isinstance(verb, Dial)
    return verb


def test_defaults_and_a_bare_number() -> None:
    verb = dial("<Dial>+15551234567</Dial>")
    assert verb.request == DialRequest(targets=(DialTarget("number", "+15551234567"),))
    assert (verb.request.timeout, verb.request.time_limit, verb.action) == (30, 14400, "")


def test_nouns_and_attributes() -> None:
    verb = dial(
        '<Dial action="done" method="GET" timeout="12" callerId="+1555" hangupOnStar="true" timeLimit="60"'
        ' answerOnBridge="true" record="record-from-answer-dual">'
        '<Sip username="u" password="p">sip:x@127.0.0.1:5090</Sip>'
        "<Client><Identity>alice</Identity></Client>"
        '<Number sendDigits="1w2" url="whisper">+1555000</Number>'
        "<Queue>support</Queue>"
        "</Dial>"
    )
    request = verb.request
    assert verb.action == "http://127.0.0.1:9/app/done" and verb.method == "GET"
    assert (request.timeout, request.caller_id, request.hangup_on_star, request.time_limit) == (
        12,
        "+1555",
        True,
        60,
    )
    assert request.answer_on_bridge and request.record == "record-from-answer-dual"
    assert request.targets == (
        DialTarget("sip", "sip:x@127.0.0.1:5090", username="u", password="p"),
        DialTarget("client", "alice"),
        DialTarget("number", "+1555000", send_digits="1w2", url="http://127.0.0.1:9/app/whisper"),
        DialTarget("queue", "support"),
    )


def test_bad_values_fall_back_to_defaults() -> None:
    verb = dial('<Dial timeout="soon" hangupOnStar="yes" record="always"><Bogus>x</Bogus><Sip/></Dial>')
    assert verb.request.timeout == 30 and not verb.request.hangup_on_star
    assert verb.request.record == "do-not-record"
    assert verb.request.targets == ()
