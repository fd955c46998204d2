"""The per-call fast paths of the SIP core keep their meaning: Headers.set, Content-Length, tags."""

from __future__ import annotations

import os

from switch.sip.core import _new_tag, _random_hex, _restamp_owned
from switch.sip.headers import Headers
from switch.sip.message import parse_message, serialize


def test_set_replaces_the_first_field_and_drops_later_ones() -> None:
    headers = Headers([("Via", "a"), ("To", "x"), ("Route", "r1"), ("to", "y"), ("Route", "r2")])
    headers.set("t", "z")  # compact form of To
    assert headers.items() == [("Via", "a"), ("To", "z"), ("Route", "r1"), ("Route", "r2")]
    headers.set("Route", "r")
    assert headers.items() == [("Via", "a"), ("To", "z"), ("Route", "r")]
    headers.set("Server", "s")
    assert headers.items()[-1] == ("Server", "s")


def test_set_after_a_copy_leaves_the_original_alone() -> None:
    original = Headers([("To", "x"), ("From", "f")])
    copy = original.copy()
    copy.set("To", "y")
    assert original.get("To") == "x"
    assert copy.get("To") == "y"


def _request(length_line: str, body: bytes) -> bytes:
    return (
        "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1\r\n"
        "From: <sip:b@127.0.0.1>;tag=1\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n"
        f"{length_line}\r\n\r\n"
    ).encode() + body


def test_content_length_is_the_body_size_however_it_was_written() -> None:
    cases = [
        ("Content-Length: 4", b"abcd", "4"),
        ("Content-Length: 0004", b"abcd", "4"),
        ("l: 2", b"abcd", "2"),
        ("Content-Length: 3\r\nContent-Length: 3", b"abc", "3"),
        ("Max-Forwards: 70", b"abcd", "4"),
    ]
    for line, body, expected in cases:
        msg = parse_message(_request(line, body))
        assert msg.headers.get_all("Content-Length") == [expected]
        assert len(msg.body) == int(expected)
        assert f"\r\nContent-Length: {expected}\r\n".encode() in serialize(msg)


def test_tags_and_branches_are_random_hex_and_distinct() -> None:
    tags = {_new_tag() for _ in range(5000)}  # spans several refills of the pool
    assert len(tags) == 5000
    assert all(len(tag) == 10 and int(tag, 16) >= 0 for tag in tags)
    branches = {_random_hex(8) for _ in range(1000)}
    assert len(branches) == 1000 and all(len(b) == 16 for b in branches)


def test_a_forked_child_does_not_repeat_the_parents_tags() -> None:
    _new_tag()  # the pool holds unread octets now
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.write(write_fd, _new_tag().encode())
        os._exit(0)
    os.close(write_fd)
    child_tag = os.read(read_fd, 64).decode()
    os.close(read_fd)
    os.waitpid(pid, 0)
    assert len(child_tag) == 10
    assert child_tag != _new_tag()


def test_restamp_changes_owned_headers_in_place_and_splits_a_via_list() -> None:
    alone = Headers([("Via", "SIP/2.0/UDP a;branch=z9hG4bK1"), ("Via", "SIP/2.0/UDP b"), ("To", "t")])
    alone.parsed["Via"] = []
    stamped = "SIP/2.0/UDP a;branch=z9hG4bK1;received=127.0.0.2"
    assert _restamp_owned(alone, stamped) is alone
    assert alone.items() == [("Via", stamped), ("Via", "SIP/2.0/UDP b"), ("To", "t")]
    assert alone.parsed == {}  # the parsed views are forgotten
    listed = Headers([("To", "t"), ("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b")])
    out = _restamp_owned(listed, stamped)
    assert out.items() == [("To", "t"), ("Via", stamped), ("Via", "SIP/2.0/UDP b")]
    same = Headers([("Via", stamped)])
    assert _restamp_owned(same, stamped) is same and same.items() == [("Via", stamped)]
