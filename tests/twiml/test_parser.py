"""parse_twiml: every verb and attribute, as the official twilio library writes them; safety limits."""

from __future__ import annotations

import logging

import pytest
from twilio.twiml.voice_response import VoiceResponse

from switch.twiml.errors import PARSE_FAILURE, SCHEMA_WARNING, TwimlError
from switch.twiml.parser import MAX_DOCUMENT_BYTES, Document, parse_twiml
from switch.twiml.verbs import Hangup, Pause, Play, Redirect, Reject, Say, Unsupported

BASE = "http://127.0.0.1:8000/app/voice.xml"


def parse(response: VoiceResponse | str | bytes, base: str = BASE) -> Document:
    data = response if isinstance(response, bytes) else str(response).encode()
    return parse_twiml(data, base_url=base)


def codes(caplog: pytest.LogCaptureFixture) -> list[int]:
    return [getattr(r, "twilio_code", 0) for r in caplog.records if r.name == "switch.twiml"]


def test_say_with_every_attribute() -> None:
    r = VoiceResponse()
    r.say("Hello there", voice="Polly.Joanna", language="en-GB", loop=3)
    r.say("Default")
    doc = parse(r)
    assert doc.verbs == (
        Say("Hello there", voice="Polly.Joanna", language="en-GB", loop=3),
        Say("Default", voice=None, language=None, loop=1),
    )


def test_say_loop_zero_and_ssml_children_flattened() -> None:
    r = VoiceResponse()
    say = r.say("One", loop=0)
    say.break_(strength="weak", time="200ms")
    say.emphasis("two")
    say.prosody("three", rate="slow")
    doc = parse(r)
    assert doc[0] == Say("One two three", loop=0)


def test_play_url_loop_digits_and_relative_url() -> None:
    r = VoiceResponse()
    r.play("http://127.0.0.1:9/a.wav", loop=2)
    r.play("../sounds/b.mp3")
    r.play(digits="ww12#")
    doc = parse(r)
    assert doc.verbs == (
        Play("http://127.0.0.1:9/a.wav", loop=2),
        Play("http://127.0.0.1:8000/sounds/b.mp3", loop=1),
        Play("", loop=1, digits="ww12#"),
    )


def test_pause_hangup_reject_redirect() -> None:
    r = VoiceResponse()
    r.pause(length=4)
    r.pause()
    r.hangup()
    r.reject(reason="busy")
    r.reject(reason="rejected")
    r.reject()
    r.redirect("next.xml", method="GET")
    r.redirect("https://example.invalid/x")
    doc = parse(r)
    assert doc.verbs == (
        Pause(4),
        Pause(1),
        Hangup(),
        Reject("busy"),
        Reject("rejected"),
        Reject("rejected"),
        Redirect("http://127.0.0.1:8000/app/next.xml", "GET"),
        Redirect("https://example.invalid/x", "POST"),
    )
    assert [v.status for v in doc.verbs if isinstance(v, Reject)] == [486, 603, 603]


def test_unimplemented_verbs_parse_as_unsupported() -> None:
    r = VoiceResponse()
    r.pay()
    r.refer(action="/r").sip("sip:x@127.0.0.1")
    doc = parse(r)
    assert [type(v) for v in doc] == [Unsupported] * 2
    assert [v.tag for v in doc.verbs if isinstance(v, Unsupported)] == ["Pay", "Refer"]
    assert isinstance(doc[1], Unsupported) and doc[1].attributes == {"action": "/r"}


def test_unknown_attribute_warns_12200_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "switch.twiml")
    doc = parse(b'<Response><Say colour="blue" voice="man">Hi</Say><Pause length="x"/></Response>')
    assert doc.verbs == (Say("Hi", voice="man"), Pause(1))
    assert codes(caplog) == [SCHEMA_WARNING, SCHEMA_WARNING]
    assert "colour" in caplog.records[0].getMessage()


def test_bad_values_fall_back_to_defaults(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "switch.twiml")
    doc = parse(
        b'<Response><Reject reason="maybe"/><Redirect method="PUT">/x</Redirect>'
        b'<Say loop="-1">a</Say></Response>'
    )
    assert doc.verbs == (Reject("rejected"), Redirect("http://127.0.0.1:8000/x", "POST"), Say("a"))
    assert codes(caplog) == [SCHEMA_WARNING] * 3


def test_empty_response_and_document_sequence() -> None:
    doc = parse(b'<?xml version="1.0"?>\n<Response>\n</Response>')
    assert len(doc) == 0 and list(doc) == [] and doc.url == BASE and not doc.local
    assert parse(VoiceResponse(), "/srv/app.xml").local


@pytest.mark.parametrize(
    "data",
    [
        b"<Response><Foo/></Response>",
        b"<Response><say>lower case verb</say></Response>",
        b"<response><Say>hi</Say></response>",
        b"<Resp><Say>hi</Say></Resp>",
        b"<Response><Say>unclosed</Response>",
        b"",
        b"not xml at all",
        b"<Response></Response><Response></Response>",
    ],
)
def test_parse_failures_are_12100(data: bytes) -> None:
    with pytest.raises(TwimlError) as info:
        parse(data)
    assert info.value.code == PARSE_FAILURE


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Response><Say>&lol3;</Say></Response>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Response><Say>&xxe;</Say></Response>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE Response SYSTEM "http://127.0.0.1:9/evil.dtd">
<Response><Say>hi</Say></Response>"""

UNDECLARED_ENTITY = b"<Response><Say>&nbsp;</Say></Response>"


@pytest.mark.parametrize("data", [BILLION_LAUGHS, XXE, EXTERNAL_DTD, UNDECLARED_ENTITY])
def test_dtds_and_entities_rejected(data: bytes) -> None:
    with pytest.raises(TwimlError) as info:
        parse(data)
    assert info.value.code == PARSE_FAILURE


def test_predefined_entities_and_cdata_still_work() -> None:
    doc = parse(b"<Response><Say>Tom &amp; Jerry &lt;3 <![CDATA[a<b]]></Say></Response>")
    assert doc[0] == Say("Tom & Jerry <3 a<b")


def test_size_limit() -> None:
    head, tail = b"<Response><Say>", b"</Say></Response>"
    exact = head + b"a" * (MAX_DOCUMENT_BYTES - len(head) - len(tail)) + tail
    assert len(exact) == MAX_DOCUMENT_BYTES
    assert isinstance(parse(exact)[0], Say)
    with pytest.raises(TwimlError) as info:
        parse(exact + b" ")
    assert info.value.code == 11750  # Twilio's "TwiML response body too large"
    assert "65536" in info.value.message


def test_utf8_text_survives() -> None:
    r = VoiceResponse()
    r.say("Grüße, ça va? 日本", language="de-DE")
    assert parse(r)[0] == Say("Grüße, ça va? 日本", language="de-DE")


def test_relative_urls_against_file_and_package_documents() -> None:
    data = b"<Response><Play>sounds/x.wav</Play><Redirect>../b.xml</Redirect></Response>"
    doc = parse_twiml(data, base_url="/srv/apps/main.xml")
    assert doc.verbs == (Play("/srv/apps/sounds/x.wav"), Redirect("/srv/b.xml"))
    doc = parse_twiml(data, base_url="resource://switch/dialplans/demo.xml")
    assert doc.verbs == (
        Play("resource://switch/dialplans/sounds/x.wav"),
        Redirect("resource://switch/b.xml"),
    )
    doc = parse_twiml(data, base_url="file:///srv/apps/main.xml")
    assert doc.verbs == (Play("file:///srv/apps/sounds/x.wav"), Redirect("file:///srv/b.xml"))


@pytest.mark.parametrize("data", [BILLION_LAUGHS, XXE, EXTERNAL_DTD])
def test_expat_handlers_refuse_dtds_even_without_the_byte_scan(data: bytes) -> None:
    from switch.twiml.parser import _parse_xml

    with pytest.raises(TwimlError) as info:
        _parse_xml(data)
    assert info.value.code == PARSE_FAILURE and "not allowed" in info.value.message
