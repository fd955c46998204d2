"""The dialplan file: users (password or HA1), routes (public or not), trunks; errors name the place."""

from __future__ import annotations

from pathlib import Path

import pytest

from switch.dialplan import DialplanError, load_dialplan, parse_dialplan
from switch.sip.auth import compute_ha1

DEMO = Path(__file__).resolve().parents[2] / "dialplans" / "demo.toml"


def test_password_gives_both_ha1() -> None:
    plan = parse_dialplan({"realm": "r", "users": {"bob": {"password": "pw"}}})
    bob = plan.users["bob"]
    assert bob.ha1["MD5"] == compute_ha1("bob", "r", "pw", "MD5")
    assert bob.ha1["SHA-256"] == compute_ha1("bob", "r", "pw", "SHA-256")
    assert bob.algorithms == ("SHA-256", "MD5")


def test_ha1_sha256_only() -> None:
    ha1 = compute_ha1("dan", "switch", "x", "SHA-256")
    plan = parse_dialplan({"users": {"dan": {"ha1_sha256": ha1.upper()}}})
    assert plan.users["dan"].ha1 == {"SHA-256": ha1}
    assert plan.users["dan"].algorithms == ("SHA-256",)


def test_routes_public_and_private(tmp_path: Path) -> None:
    plan = parse_dialplan(
        {
            "routes": [
                {"match": "^1\\d{3}$", "twiml": "ivr.xml"},
                {
                    "match": "^1",
                    "twiml": "http://127.0.0.1:9/public",
                    "public": True,
                    "status_callback": "http://x/s",
                    "fallback": "http://x/fallback",
                },
            ]
        },
        tmp_path,
    )
    private = plan.route_for("1234", authenticated=True)
    assert private is not None and private.twiml == str(tmp_path / "ivr.xml")
    public = plan.route_for("1234", authenticated=False)
    assert public is not None and public.twiml == "http://127.0.0.1:9/public"
    assert public.status_callback == "http://x/s"
    assert public.fallback == "http://x/fallback" and private.fallback is None
    assert plan.route_for("999", authenticated=True) is None


def test_trunk_selection_and_caller_id() -> None:
    plan = parse_dialplan(
        {
            "trunks": {
                "us": {"gateway": "sip:127.0.0.1:5090", "allow": ["^\\+1"], "caller_id": "+15550100"},
                "any": {"gateway": "sip:127.0.0.1:5092", "username": "u", "password": "p"},
            }
        }
    )
    us = plan.trunk_for("+12125550123")
    assert us is not None and us.name == "us" and us.caller_id_for("+44") == "+15550100"
    other = plan.trunk_for("+442071234567")
    assert other is not None and other.name == "any" and other.caller_id_for("+44") == "+44"
    assert (other.username, other.password) == ("u", "p")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"users": {"a": {}}}, "users.a: needs password"),
        ({"users": {"a": {"ha1_md5": "xyz"}}}, "users.a: ha1_md5 must be 32 hex digits"),
        ({"users": {"a": {"pasword": "x"}}}, "users.a: unknown keys ['pasword']"),
        ({"routes": [{"match": "1"}]}, "routes[0]: twiml is required"),
        ({"routes": [{"match": "(", "twiml": "x"}]}, "routes[0]: invalid regular expression"),
        (
            {"routes": [{"match": "1", "twiml": "x", "public": "yes"}]},
            "routes[0]: public must be true or false",
        ),
        ({"trunks": {"t": {"gateway": "http://x"}}}, "trunks.t: gateway must be a SIP URI"),
        ({"route": []}, "unknown top-level keys ['route']"),
    ],
)
def test_errors_name_the_place(document: dict[str, object], message: str) -> None:
    with pytest.raises(DialplanError) as info:
        parse_dialplan(document)
    assert message in str(info.value)


def test_bad_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text("[users.alice\n")
    with pytest.raises(DialplanError, match="not valid TOML"):
        load_dialplan(path)


def test_demo_dialplan_loads() -> None:
    plan = load_dialplan(DEMO)
    assert set(plan.users) >= {"alice", "bob"}
    route = plan.route_for("anything", authenticated=False)
    assert route is not None and route.public and route.twiml.endswith("demo.xml")
    assert Path(route.twiml).is_file()
    for extension, document in [("1", "echo"), ("2", "voicemail"), ("3", "queue"), ("4", "conference"),
                                ("5", "agent")]:  # fmt: skip
        found = plan.route_for(extension, authenticated=False)
        assert found is not None and found.twiml.endswith(f"demo-{document}.xml")
        assert Path(found.twiml).is_file()


def test_dial_policy_deny_wins_and_allow_limits() -> None:
    from switch.dialplan import DialPolicy

    open_policy = DialPolicy.from_patterns()
    assert open_policy.refusal("anyone", "198.51.100.7") is None
    policy = DialPolicy.from_patterns(
        allow=["*.example.com", r"re:^alice@10\.0\.0\.[0-9]+$"], deny=["premium@*", "evil.example.com"]
    )
    assert policy.refusal("bob", "pbx.example.com") is None
    assert policy.refusal("bob", "PBX.Example.COM") is None  # host names are case-insensitive
    assert policy.refusal("alice", "10.0.0.12") is None
    assert policy.refusal("mallory", "10.0.0.12") == "not in --dial-allow"
    assert policy.refusal(None, "198.51.100.7") == "not in --dial-allow"
    assert policy.refusal("x", "evil.example.com") == "denied by --dial-deny 'evil.example.com'"
    assert policy.refusal("premium", "pbx.example.com") == "denied by --dial-deny 'premium@*'"
    with pytest.raises(DialplanError, match="not a regular expression"):
        DialPolicy.from_patterns(allow=["re:("])


@pytest.mark.parametrize(
    ("text", "number"),
    [("+1 (555) 010-0199", "+15550100199"), ("*72#", "*72#"), ("+1555@evil.example.com", None),
     ("+1555;maddr=203.0.113.9", None), ("sip:+1555", None), ("", None), ("1" * 33, None)],
)  # fmt: skip
def test_number_is_only_digits(text: str, number: str | None) -> None:
    from switch.dialplan import clean_number

    assert clean_number(text) == number
