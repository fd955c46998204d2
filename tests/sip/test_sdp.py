"""SDP parsing, serialisation and RFC 3264 offer/answer for audio."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.sip.sdp import (
    AudioAnswer,
    Connection,
    NoCommonCodec,
    RtpMap,
    SdpError,
    create_offer,
    negotiate,
    parse_answer,
    parse_sdp,
)

BARESIP_OFFER = (
    b"v=0\r\n"
    b"o=- 1391402532 2749402157 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 10000 RTP/AVP 9 0 8 101\r\n"
    b"b=AS:64\r\n"
    b"a=rtpmap:9 G722/8000\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
    b"a=rtcp-rsize\r\n"
)

# SIPp style: static payload types with no rtpmap for them, LF line endings, telephone-event at 96.
SIPP_OFFER = (
    b"v=0\n"
    b"o=user1 53655765 2353687637 IN IP4 127.0.0.1\n"
    b"s=-\n"
    b"c=IN IP4 127.0.0.1\n"
    b"t=0 0\n"
    b"m=audio 6000 RTP/AVP 8 96\n"
    b"a=rtpmap:96 telephone-event/8000\n"
    b"a=ptime:30\n"
)


def _neg(
    offer: bytes, supported: tuple[str, ...] = ("PCMU", "PCMA", "G722", "telephone-event")
) -> AudioAnswer:
    return negotiate(
        parse_sdp(offer),
        local_address="127.0.0.1",
        local_port=20000,
        supported=supported,
        session_id=7,
        session_version=8,
    )


# --- parsing ---------------------------------------------------------------------------------


def test_parse_baresip_offer_fields() -> None:
    sdp = parse_sdp(BARESIP_OFFER)
    assert sdp.origin.username == "-"
    assert sdp.origin.session_id == "1391402532"
    assert sdp.origin.address == "127.0.0.1"
    assert sdp.connection == Connection("IN", "IP4", "127.0.0.1")
    assert len(sdp.media) == 1
    audio = sdp.media[0]
    assert (audio.media, audio.port, audio.proto) == ("audio", 10000, "RTP/AVP")
    assert audio.formats == ("9", "0", "8", "101")
    assert audio.payload_types == (9, 0, 8, 101)
    assert audio.bandwidths == ("AS:64",)
    te = audio.rtpmap(101)
    assert te is not None and (te.encoding, te.clock_rate) == ("telephone-event", 8000)
    assert audio.fmtp(101) == "0-15"
    assert audio.fmtp(0) is None
    assert audio.ptime == 20
    assert audio.maxptime is None
    assert audio.direction == "sendrecv"


def test_static_payload_types_without_rtpmap_are_known() -> None:
    audio = parse_sdp(SIPP_OFFER).media[0]
    pcma = audio.rtpmap(8)
    assert pcma is not None and (pcma.encoding, pcma.clock_rate) == ("PCMA", 8000)
    assert audio.rtpmap(97) is None
    assert audio.ptime == 30


def test_media_level_connection_ip6_and_multicast_suffix() -> None:
    sdp = parse_sdp(
        b"v=0\r\no=- 1 1 IN IP6 ::1\r\ns= \r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 0\r\nc=IN IP6 ::1\r\n"
        b"m=audio 4002 RTP/AVP 0\r\nc=IN IP4 224.2.1.1/127/3\r\n"
    )
    assert sdp.connection is None
    assert sdp.connection_for(sdp.media[0]) == Connection("IN", "IP6", "::1")
    second = sdp.connection_for(sdp.media[1])
    assert second == Connection("IN", "IP4", "224.2.1.1", "/127/3")


def test_session_level_direction_applies_unless_media_overrides() -> None:
    sdp = parse_sdp(
        b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\na=sendonly\r\n"
        b"m=audio 4000 RTP/AVP 0\r\nm=audio 4002 RTP/AVP 0\r\na=inactive\r\n"
    )
    assert sdp.direction_for(sdp.media[0]) == "sendonly"
    assert sdp.direction_for(sdp.media[1]) == "inactive"


@pytest.mark.parametrize("offer", [BARESIP_OFFER, SIPP_OFFER])
def test_serialise_round_trip(offer: bytes) -> None:
    parsed = parse_sdp(offer)
    written = parsed.to_bytes()
    assert written.endswith(b"\r\n") and b"\n" not in written.replace(b"\r\n", b"")
    assert parse_sdp(written) == parsed
    if offer == BARESIP_OFFER:
        assert written == offer


def test_full_session_lines_round_trip() -> None:
    text = (
        b"v=0\r\no=jdoe 2890844526 2890842807 IN IP4 10.47.16.5\r\ns=SDP Seminar\r\n"
        b"i=A Seminar on the session description protocol\r\nu=http://www.example.com/seminars/sdp.pdf\r\n"
        b"e=j.doe@example.com (Jane Doe)\r\np=+1 617 555-6011\r\nc=IN IP4 224.2.17.12/127\r\nb=CT:128\r\n"
        b"t=2873397496 2873404696\r\nr=7d 1h 0 25h\r\nz=2882844526 -1h\r\nk=prompt\r\na=recvonly\r\n"
        b"m=audio 49170 RTP/AVP 0\r\ni=voice\r\nb=AS:64\r\nk=prompt\r\n"
        b"m=video 51372/2 RTP/AVP 99\r\na=rtpmap:99 h263-1998/90000\r\n"
    )
    parsed = parse_sdp(text)
    assert parsed.to_bytes() == text
    assert parsed.info == "A Seminar on the session description protocol"
    assert parsed.timing == (("t", "2873397496 2873404696"), ("r", "7d 1h 0 25h"))
    assert parsed.media[1].port_count == 2
    assert parsed.media[0].title == "voice"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "v=0"),
        (b"o=- 1 1 IN IP4 1.2.3.4\r\n", "v=0"),
        (b"v=1\r\n", "v=0"),
        (b"v=0\r\ns=-\r\n", "no o="),
        (b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n", "no s="),
        (b"v=0\r\no=- 1 IN IP4\r\ns=-\r\n", "invalid o="),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nc=IN IP4\r\n", "invalid c="),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 70000 RTP/AVP 0\r\n", "port out of range"),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio x RTP/AVP 0\r\n", "invalid m= port"),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 1 RTP/AVP PCMU\r\n", "payload type"),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 1 RTP/AVP 200\r\n", "payload type"),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio\r\n", "invalid m="),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\na=ptime:abc\r\n", "ptime"),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\no=- 1 1 IN IP4 a\r\n", "inside a media"),
        (b"v=0\r\nhello\r\n", "invalid SDP line"),
        (b"v=0\r\no=- 1 1 IN IP4 \xff\r\ns=-\r\n", "UTF-8"),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\no=- 1 1 IN IP4 a\r\ns=-\r\n", "more than one o="),
    ],
)
def test_malformed_sdp_raises_sdp_error(data: bytes, message: str) -> None:
    with pytest.raises(SdpError, match=message) as info:
        parse_sdp(data)
    assert info.value.error_status_hint == 400


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parser_raises_only_sdp_error_on_random_bytes(data: bytes) -> None:
    try:
        parse_sdp(b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n" + data)
    except SdpError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(BARESIP_OFFER.split(b"\r\n")), max_size=20))
def test_parser_and_negotiation_on_shuffled_lines(lines: list[bytes]) -> None:
    try:
        sdp = parse_sdp(b"v=0\r\n" + b"\r\n".join(lines))
        negotiate(sdp, local_address="127.0.0.1", local_port=1, session_id=1, session_version=1)
    except SdpError:
        pass


# --- negotiation -----------------------------------------------------------------------------


def test_negotiate_picks_offerers_first_common_codec() -> None:
    answer = _neg(BARESIP_OFFER)
    assert (answer.codec, answer.payload_type, answer.clock_rate) == ("G722", 9, 8000)
    assert answer.telephone_event_pt == 101
    assert (answer.remote_address, answer.remote_port) == ("127.0.0.1", 10000)
    assert answer.ptime == 20
    assert (answer.remote_direction, answer.local_direction, answer.on_hold) == (
        "sendrecv",
        "sendrecv",
        False,
    )
    assert answer.sdp == (
        b"v=0\r\no=switch 7 8 IN IP4 127.0.0.1\r\ns=switch\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 20000 RTP/AVP 9 101\r\na=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
        b"a=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
    )


def test_supported_list_filters_but_offer_order_wins() -> None:
    answer = _neg(BARESIP_OFFER, supported=("PCMA", "PCMU"))
    assert (answer.codec, answer.payload_type) == ("PCMU", 0)
    assert answer.telephone_event_pt is None
    assert b"telephone-event" not in answer.sdp
    assert b"m=audio 20000 RTP/AVP 0\r\n" in answer.sdp


def test_sipp_static_pcma_with_telephone_event_96() -> None:
    answer = _neg(SIPP_OFFER)
    assert (answer.codec, answer.payload_type, answer.telephone_event_pt) == ("PCMA", 8, 96)
    assert answer.ptime == 30
    assert b"m=audio 20000 RTP/AVP 8 96\r\n" in answer.sdp
    assert b"a=fmtp:96 0-16\r\n" in answer.sdp


def test_no_common_codec_raises_488() -> None:
    offer = b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 5 RTP/AVP 18 3\r\n"
    with pytest.raises(NoCommonCodec) as info:
        _neg(offer)
    assert info.value.error_status_hint == 488


def test_codec_with_wrong_clock_rate_is_not_accepted() -> None:
    offer = (
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
        b"m=audio 5 RTP/AVP 97 0\r\na=rtpmap:97 PCMU/16000\r\n"
    )
    assert _neg(offer).payload_type == 0


def test_srtp_only_offer_is_refused_and_port_zero_streams_skipped() -> None:
    srtp = b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 5 RTP/SAVP 0\r\n"
    with pytest.raises(NoCommonCodec):
        _neg(srtp)
    disabled = b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n"
    with pytest.raises(NoCommonCodec):
        _neg(disabled)


def test_answer_keeps_every_m_line_and_rejects_the_others_with_port_zero() -> None:
    offer = (
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
        b"m=video 6000 RTP/AVP 99\r\na=rtpmap:99 H264/90000\r\n"
        b"m=audio 6002 RTP/SAVP 0\r\n"
        b"m=audio 6004 RTP/AVP 8 0\r\n"
        b"m=audio 6006 RTP/AVP 0\r\n"
    )
    answer = _neg(offer)
    assert (answer.media_index, answer.remote_port, answer.codec) == (3 - 1, 6004, "PCMA")
    media = parse_sdp(answer.sdp).media
    assert [(m.media, m.port, m.proto, m.formats) for m in media] == [
        ("video", 0, "RTP/AVP", ("99",)),
        ("audio", 0, "RTP/SAVP", ("0",)),
        ("audio", 20000, "RTP/AVP", ("8",)),
        ("audio", 0, "RTP/AVP", ("0",)),
    ]


@pytest.mark.parametrize(
    ("attribute", "remote", "local", "hold"),
    [
        (b"a=sendrecv\r\n", "sendrecv", "sendrecv", False),
        (b"", "sendrecv", "sendrecv", False),
        (b"a=sendonly\r\n", "sendonly", "recvonly", True),
        (b"a=recvonly\r\n", "recvonly", "sendonly", False),
        (b"a=inactive\r\n", "inactive", "inactive", True),
    ],
)
def test_direction_answers(attribute: bytes, remote: str, local: str, hold: bool) -> None:
    offer = b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 5 RTP/AVP 0\r\n"
    answer = _neg(offer + attribute)
    assert (answer.remote_direction, answer.local_direction, answer.on_hold) == (remote, local, hold)
    assert answer.sdp.endswith(f"a={local}\r\n".encode())


@pytest.mark.parametrize(("attribute", "local"), [(b"", "recvonly"), (b"a=recvonly\r\n", "inactive")])
def test_connection_zero_means_hold(attribute: bytes, local: str) -> None:
    offer = b"v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 5 RTP/AVP 0\r\n"
    answer = _neg(offer + attribute)
    assert answer.on_hold is True
    assert answer.remote_address == "0.0.0.0"
    assert answer.local_direction == local


def test_missing_connection_for_audio_is_an_sdp_error() -> None:
    offer = b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 5 RTP/AVP 0\r\n"
    with pytest.raises(SdpError, match="no c= line"):
        _neg(offer)


def test_ip6_offer_and_local_address() -> None:
    offer = b"v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio 5 RTP/AVP 0\r\n"
    answer = negotiate(parse_sdp(offer), local_address="::1", local_port=9, session_id=1, session_version=2)
    assert answer.remote_address == "::1"
    assert b"o=switch 1 2 IN IP6 ::1\r\n" in answer.sdp and b"c=IN IP6 ::1\r\n" in answer.sdp


def test_codec_fmtp_is_echoed() -> None:
    offer = (
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
        b"m=audio 5 RTP/AVP 111 0\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\n"
    )
    answer = _neg(offer, supported=("opus", "PCMU"))
    assert (answer.codec, answer.clock_rate, answer.channels, answer.fmtp) == (
        "opus",
        48000,
        2,
        "useinbandfec=1",
    )
    assert b"a=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\n" in answer.sdp


# --- outbound: offer and answer --------------------------------------------------------------


def test_create_offer_bytes() -> None:
    offer = create_offer("127.0.0.1", 20002, ["PCMU", "G722", "opus", "telephone-event"], 11, 12)
    assert offer == (
        b"v=0\r\no=switch 11 12 IN IP4 127.0.0.1\r\ns=switch\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 20002 RTP/AVP 0 9 96 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:9 G722/8000\r\n"
        b"a=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
        b"a=ptime:20\r\na=sendrecv\r\n"
    )


def test_create_offer_direction_and_errors() -> None:
    assert create_offer("127.0.0.1", 1, ["PCMA"], 1, 1, direction="sendonly").endswith(b"a=sendonly\r\n")
    with pytest.raises(ValueError, match="unknown codec"):
        create_offer("127.0.0.1", 1, ["iLBC"], 1, 1)
    with pytest.raises(ValueError, match="twice"):
        create_offer("127.0.0.1", 1, ["PCMA", "pcma"], 1, 1)


def test_offer_answer_loop_between_two_switches() -> None:
    codecs = ["PCMA", "PCMU", "telephone-event"]
    offer = create_offer("127.0.0.1", 20010, codecs, 1, 1, direction="sendonly")
    answered = negotiate(
        parse_sdp(offer), local_address="127.0.0.2", local_port=30010, session_id=2, session_version=1
    )
    assert (answered.codec, answered.local_direction, answered.on_hold) == ("PCMA", "recvonly", True)
    back = parse_answer(answered.sdp, codecs)
    assert (back.codec, back.payload_type, back.telephone_event_pt) == ("PCMA", 8, 101)
    assert (back.remote_address, back.remote_port) == ("127.0.0.2", 30010)
    assert (back.remote_direction, back.local_direction) == ("recvonly", "sendonly")
    assert back.sdp == answered.sdp


def test_parse_answer_uses_answerers_order_and_rejects() -> None:
    answer = b"v=0\r\no=- 1 1 IN IP4 9.9.9.9\r\ns=-\r\nc=IN IP4 9.9.9.9\r\nt=0 0\r\nm=audio 7 RTP/AVP 8 0\r\n"
    assert parse_answer(answer, ["PCMU", "PCMA"]).codec == "PCMA"
    assert parse_answer(parse_sdp(answer), ["PCMU"]).codec == "PCMU"
    with pytest.raises(NoCommonCodec, match="rejected"):
        parse_answer(answer.replace(b"audio 7", b"audio 0"), ["PCMU"])
    with pytest.raises(NoCommonCodec, match="no offered codec"):
        parse_answer(answer, ["G722"])
    with pytest.raises(SdpError):
        parse_answer(b"garbage", ["PCMU"])


def test_an_rtpmap_that_does_not_parse_is_ignored() -> None:
    """RFC 4475 esc01 and longreq carry ``a=rtpmap:31 LPC`` (no clock rate): the offer is still usable."""
    offer = parse_sdp(
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        b"m=audio 3456 RTP/AVP 0 1 3 99\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:31 LPC\r\na=rtpmap:0 PCMU\r\n"
    )
    media = offer.media[0]
    assert media.rtpmap(0) == RtpMap(0, "PCMU", 8000, None)
    assert media.rtpmap(31) is None
    answer = negotiate(offer, local_address="127.0.0.1", local_port=4000, session_id=1, session_version=1)
    assert answer.codec == "PCMU"
