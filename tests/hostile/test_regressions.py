"""Crashers found by fuzzing and the hostile runs, kept as exact vectors (strict xfail while unfixed)."""

from __future__ import annotations

import pytest

from switch.twiml.errors import TwimlError
from switch.twiml.parser import parse_twiml

UNKNOWN_ENCODING = b'<?xml version="1.0" encoding="UTF-1"?><Response><Say>x</Say></Response>'


@pytest.mark.xfail(strict=True, reason="switch/twiml/parser lets expat's LookupError escape (not TwimlError)")
def test_twiml_unknown_xml_encoding_is_a_twiml_error() -> None:
    with pytest.raises(TwimlError) as caught:
        parse_twiml(UNKNOWN_ENCODING, base_url="http://127.0.0.1/app.xml")
    assert caught.value.code == 12100
