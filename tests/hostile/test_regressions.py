"""Crashers found by fuzzing and the hostile runs, kept as exact vectors."""

from __future__ import annotations

import pytest

from switch.twiml.errors import TwimlError
from switch.twiml.parser import parse_twiml

UNKNOWN_ENCODING = b'<?xml version="1.0" encoding="UTF-1"?><Response><Say>x</Say></Response>'
MULTIBYTE_ENCODING = b'<?xml version="1.0" encoding="UTF-7"?><Response><Say>x</Say></Response>'


@pytest.mark.parametrize("document", [UNKNOWN_ENCODING, MULTIBYTE_ENCODING], ids=["UTF-1", "UTF-7"])
def test_twiml_unreadable_xml_encoding_is_a_twiml_error(document: bytes) -> None:
    with pytest.raises(TwimlError) as caught:
        parse_twiml(document, base_url="http://127.0.0.1/app.xml")
    assert caught.value.code == 12100
