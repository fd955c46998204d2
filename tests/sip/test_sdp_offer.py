"""The switch's own SDP offer (a late-offer INVITE is answered with it) and the ptime of its answers.

Sans-IO: bytes in, bytes and AudioAnswer out (RFC 3264 §5 offers, §6.1 answers; RFC 3261 §13.2.1).
"""

from __future__ import annotations

import pytest

from switch.calls.manager import LATE_OFFER_CODECS
from switch.sip.sdp import NoCommonCodec, create_offer, negotiate, parse_answer, parse_sdp


def _late_offer() -> bytes:
    return create_offer("127.0.0.1", 30000, LATE_OFFER_CODECS, 42, 1)


def _peer_answer(m_line: str, *attributes: str, ptime: int = 20) -> bytes:
    lines = ["v=0", "o=peer 1 1 IN IP4 127.0.0.9", "s=-", "c=IN IP4 127.0.0.9", "t=0 0", m_line]
    lines += [f"a={a}" for a in attributes] + [f"a=ptime:{ptime}", "a=sendrecv"]
    return ("\r\n".join(lines) + "\r\n").encode()


def _offer_with_ptime(ptime: int | None, m_line: str = "m=audio 6000 RTP/AVP 0 101") -> bytes:
    lines = ["v=0", "o=peer 1 1 IN IP4 127.0.0.9", "s=-", "c=IN IP4 127.0.0.9", "t=0 0", m_line]
    lines += ["a=rtpmap:101 telephone-event/8000", "a=rtpmap:111 opus/48000/2"]
    if ptime is not None:
        lines.append(f"a=ptime:{ptime}")
    return ("\r\n".join(lines) + "\r\n").encode()


def test_the_late_offer_lists_every_engine_codec_with_telephone_event() -> None:
    offer = _late_offer()
    description = parse_sdp(offer)
    assert description.connection is not None and description.connection.address == "127.0.0.1"
    (audio,) = description.media
    assert (audio.media, audio.port, audio.proto) == ("audio", 30000, "RTP/AVP")
    assert audio.formats == ("0", "8", "9", "96", "101")
    assert b"a=rtpmap:0 PCMU/8000\r\n" in offer and b"a=rtpmap:8 PCMA/8000\r\n" in offer
    assert b"a=rtpmap:9 G722/8000\r\n" in offer and b"a=rtpmap:96 opus/48000/2\r\n" in offer
    assert b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n" in offer
    assert audio.ptime == 20 and description.direction_for(audio) == "sendrecv"


@pytest.mark.parametrize(
    ("m_line", "attributes", "codec", "pt", "clock", "channels"),
    [
        ("m=audio 7000 RTP/AVP 8 101", ("rtpmap:101 telephone-event/8000",), "PCMA", 8, 8000, 1),
        ("m=audio 7000 RTP/AVP 9 101", ("rtpmap:101 telephone-event/8000",), "G722", 9, 8000, 1),
        (
            "m=audio 7000 RTP/AVP 96 101",
            ("rtpmap:96 opus/48000/2", "rtpmap:101 telephone-event/8000"),
            "opus",
            96,
            48000,
            2,
        ),
    ],
)
def test_the_answer_in_the_ack_picks_the_codec_and_address(
    m_line: str, attributes: tuple[str, ...], codec: str, pt: int, clock: int, channels: int
) -> None:
    answer = parse_answer(_peer_answer(m_line, *attributes), LATE_OFFER_CODECS)
    assert (answer.codec, answer.payload_type, answer.clock_rate, answer.channels) == (
        codec,
        pt,
        clock,
        channels,
    )
    assert (answer.remote_address, answer.remote_port) == ("127.0.0.9", 7000)
    assert answer.remote_direction == "sendrecv" and not answer.on_hold
    # telephone-event is only taken at the codec's RTP clock rate (opus runs at 48000)
    assert answer.telephone_event_pt == (None if codec == "opus" else 101)


@pytest.mark.parametrize(
    "body",
    [
        _peer_answer("m=audio 7000 RTP/AVP 18", "rtpmap:18 G729/8000"),  # a codec we did not offer
        _peer_answer("m=audio 0 RTP/AVP 0"),  # the stream rejected
        _peer_answer("m=video 7000 RTP/AVP 96", "rtpmap:96 H264/90000"),  # no audio at all
    ],
    ids=["no-common-codec", "port-zero", "no-audio"],
)
def test_an_unusable_answer_in_the_ack_is_no_common_codec(body: bytes) -> None:
    with pytest.raises(NoCommonCodec):
        parse_answer(body, LATE_OFFER_CODECS)


def test_another_switch_answers_our_late_offer_with_its_first_codec() -> None:
    answer = negotiate(
        parse_sdp(_late_offer()),
        local_address="127.0.0.2",
        local_port=40000,
        supported=("PCMA", "PCMU", "telephone-event"),
        session_id=9,
        session_version=1,
    )
    assert (answer.codec, answer.telephone_event_pt, answer.remote_port) == ("PCMU", 101, 30000)
    back = parse_answer(answer.sdp, LATE_OFFER_CODECS)
    assert (back.codec, back.remote_address, back.remote_port) == ("PCMU", "127.0.0.2", 40000)


@pytest.mark.parametrize(
    ("offered", "answered"), [(10, 10), (30, 30), (40, 40), (60, 60), (None, 20), (25, 20), (80, 20)]
)
def test_the_answer_says_the_ptime_the_offer_asked_for_when_the_engine_sends_it(
    offered: int | None, answered: int
) -> None:
    answer = negotiate(
        parse_sdp(_offer_with_ptime(offered)),
        local_address="127.0.0.1",
        local_port=20000,
        session_id=7,
        session_version=1,
    )
    (audio,) = parse_sdp(answer.sdp).media
    assert audio.ptime == answered
    assert answer.sdp.count(b"a=ptime:") == 1
    assert answer.ptime == (offered or 20)  # what the peer asked to receive, as configure_media reads it


def test_an_opus_answer_says_20_ms_whatever_the_offer_asked() -> None:
    answer = negotiate(
        parse_sdp(_offer_with_ptime(40, "m=audio 6000 RTP/AVP 111 101")),
        local_address="127.0.0.1",
        local_port=20000,
        supported=("opus", "telephone-event"),
        session_id=7,
        session_version=1,
    )
    assert answer.codec == "opus"
    assert parse_sdp(answer.sdp).media[0].ptime == 20
