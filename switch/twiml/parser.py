"""Safe TwiML parsing: bytes in, a Document of typed verbs out, or TwimlError(12100).

The XML is read with expat directly, not through ElementTree's parser, so that DTDs, entity declarations and
external references can be refused by handlers before anything is expanded: no billion laughs, no XXE.
"""

from __future__ import annotations

import logging
import xml.parsers.expat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NoReturn, overload
from xml.etree.ElementTree import Element, TreeBuilder

from switch.twiml.dial import Dial
from switch.twiml.errors import PARSE_FAILURE, RESPONSE_TOO_LARGE, TwimlError
from switch.twiml.gather import Gather
from switch.twiml.queues import Enqueue, Leave
from switch.twiml.record import Record
from switch.twiml.urls import is_local
from switch.twiml.verbs import UNSUPPORTED_VERBS, VERB_CLASSES, Unsupported, Verb, warn

__all__ = ["MAX_DOCUMENT_BYTES", "VERBS", "Document", "parse_twiml"]

VERBS: dict[str, type[Verb]] = {**VERB_CLASSES, Gather.TAG: Gather, Record.TAG: Record}
VERBS |= {Dial.TAG: Dial, Enqueue.TAG: Enqueue, Leave.TAG: Leave}
"""Every verb this switch runs, by tag."""

MAX_DOCUMENT_BYTES = 64 * 1024
log = logging.getLogger("switch.twiml")

_FORBIDDEN = (b"<!DOCTYPE", b"<!ENTITY")


@dataclass(frozen=True, slots=True)
class Document(Sequence[Verb]):
    """A parsed TwiML document: its verbs in order, and the URL it came from."""

    verbs: tuple[Verb, ...]
    url: str

    @property
    def local(self) -> bool:
        """True when the document came from a file or package data."""
        return is_local(self.url)

    @overload
    def __getitem__(self, index: int) -> Verb: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Verb]: ...
    def __getitem__(self, index: int | slice) -> Verb | Sequence[Verb]:
        return self.verbs[index]

    def __len__(self) -> int:
        return len(self.verbs)

    def __iter__(self) -> Iterator[Verb]:
        return iter(self.verbs)


def _refuse(what: str) -> NoReturn:
    raise TwimlError(PARSE_FAILURE, f"{what} not allowed in TwiML")


def _parse_xml(data: bytes) -> Element:
    builder = TreeBuilder()
    parser = xml.parsers.expat.ParserCreate()
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def on_doctype(*_args: object) -> None:
        _refuse("DOCTYPE")

    def on_entity(*_args: object) -> None:
        _refuse("entity declaration")

    def on_external(*_args: object) -> int:
        _refuse("external reference")

    def on_start(tag: str, attrs: dict[str, str]) -> None:
        builder.start(tag, attrs)

    def on_end(tag: str) -> None:
        builder.end(tag)

    parser.StartDoctypeDeclHandler = on_doctype
    parser.EntityDeclHandler = on_entity
    parser.UnparsedEntityDeclHandler = on_entity
    parser.NotationDeclHandler = on_entity
    parser.ExternalEntityRefHandler = on_external
    parser.StartElementHandler = on_start
    parser.EndElementHandler = on_end
    parser.CharacterDataHandler = builder.data
    parser.buffer_text = True
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as exc:
        raise TwimlError(PARSE_FAILURE, f"malformed XML: {exc}") from exc
    except (LookupError, ValueError) as exc:  # an encoding expat cannot read: unknown, or UTF-7 (fuzzing)
        raise TwimlError(PARSE_FAILURE, f"unreadable XML encoding: {exc}") from exc
    root = builder.close()
    return root


def parse_twiml(data: bytes, *, base_url: str) -> Document:
    """Parse a TwiML document; relative URLs inside resolve against ``base_url``.

    Raises TwimlError(12100) for anything that is not a safe, well-formed ``<Response>`` of known verbs, and
    TwimlError(11750) for a document over 64 KiB (Twilio's "TwiML response body too large").
    Unknown attributes and bad attribute values are logged as warning 12200 and ignored.
    """
    if len(data) > MAX_DOCUMENT_BYTES:
        raise TwimlError(RESPONSE_TOO_LARGE, f"document larger than {MAX_DOCUMENT_BYTES} bytes")
    for marker in _FORBIDDEN:
        if marker in data:
            _refuse(marker[2:].decode())
    root = _parse_xml(data)
    if root.tag != "Response":
        raise TwimlError(PARSE_FAILURE, f"root element must be <Response>, not <{root.tag}>")
    for name in root.attrib:
        warn(f"<Response> has unknown attribute {name!r}")
    if root.text and root.text.strip():
        warn("text directly inside <Response> ignored")
    verbs: list[Verb] = []
    for element in root:
        cls = VERBS.get(element.tag)
        if cls is not None:
            verbs.append(cls.from_element(element, base_url))
        elif element.tag in UNSUPPORTED_VERBS:
            verbs.append(Unsupported.from_element(element, base_url))
        else:
            raise TwimlError(PARSE_FAILURE, f"unknown verb <{element.tag}>")
        if element.tail and element.tail.strip():
            warn("text directly inside <Response> ignored")
    return Document(tuple(verbs), base_url)
