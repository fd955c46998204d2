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


def test_recording_attributes_ring_tone_and_answers_later() -> None:
    verb = dial(
        '<Dial record="record-from-answer" recordingStatusCallback="rec" recordingStatusCallbackMethod="GET"'
        ' recordingStatusCallbackEvent="in-progress, completed" trim="trim-silence" ringTone="uk"'
        ' answerOnBridge="true"><Sip>sip:x@127.0.0.1</Sip></Dial>'
    )
    request = verb.request
    assert request.recording_status_callback == "http://127.0.0.1:9/app/rec"
    assert request.recording_status_callback_method == "GET"
    assert request.recording_status_callback_events == ("in-progress", "completed")
    assert (request.trim, request.ring_tone, verb.answers_later) == ("trim-silence", "uk", True)
    assert not dial("<Dial><Sip>sip:x@127.0.0.1</Sip></Dial>").answers_later


def test_conference_urls_resolve_against_the_document() -> None:
    verb = dial(
        '<Dial><Conference waitUrl="wait" statusCallback="/events" statusCallbackEvent="start join"'
        ' recordingStatusCallback="rec" record="record-from-start" beep="onEnter">room</Conference></Dial>'
    )
    [room] = verb.request.targets
    assert room.option("waitUrl") == "http://127.0.0.1:9/app/wait"
    assert room.option("statusCallback") == "http://127.0.0.1:9/events"
    assert room.option("recordingStatusCallback") == "http://127.0.0.1:9/app/rec"
    assert (room.option("record"), room.option("beep"), room.option("statusCallbackEvent")) == (
        "record-from-start",
        "onEnter",
        "start join",
    )


def test_conference_event_names() -> None:
    from switch.calls.conference_events import parse_events

    assert parse_events("") == {"conference-start", "conference-end"}
    assert parse_events("join leave mute, hold") == {
        "participant-join",
        "participant-leave",
        "participant-mute",
        "participant-unmute",
        "participant-hold",
        "participant-unhold",
    }
    assert parse_events("start speaker") == {"conference-start"}  # speaker is not sent (no talk detection)
