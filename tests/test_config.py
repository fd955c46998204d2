"""Settings: defaults, TOML file, SWITCH_* environment and flags, in that order of precedence."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from switch.cli import build_parser
from switch.config import ConfigError, Settings, load_settings


def test_defaults_match_the_readme() -> None:
    settings = load_settings({}, environ={})
    assert settings == Settings()
    assert (settings.host, settings.sip_port, settings.http_port) == ("127.0.0.1", 5060, 8080)
    assert settings.rtp_ports == (20000, 29999)
    assert settings.twiml_url is None


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "switch.toml"
    config.write_text('sip-port = 5070\nhttp_port = 9000\nt1 = 0.1\negress-allow = ["127.0.0.0/8"]\n')
    settings = load_settings(
        {"config": str(config), "http_port": "9100"},
        environ={"SWITCH_SIP_PORT": "5080", "SWITCH_FORCE_RPORT": "true"},
    )
    assert settings.sip_port == 5080  # environment beats the file
    assert settings.http_port == 9100  # the flag beats the file
    assert settings.t1 == 0.1
    assert settings.force_rport is True
    assert settings.egress_allow == (ipaddress.ip_network("127.0.0.0/8"),)


def test_flags_parse_through_the_cli() -> None:
    namespace = build_parser().parse_args(
        [
            "serve",
            "--sip-port",
            "5999",
            "--rtp-ports",
            "30000-30100",
            "--force-rport",
            "--egress-allow",
            "127.0.0.0/8,::1/128",
        ]
    )
    flags = {k: v for k, v in vars(namespace).items() if k != "command"}
    settings = load_settings(flags, environ={})
    assert settings.sip_port == 5999
    assert settings.rtp_ports == (30000, 30100)
    assert settings.force_rport is True
    assert settings.egress_allowed("127.0.0.66")
    assert settings.egress_allowed("::1")
    assert not settings.egress_allowed("192.0.2.1")
    assert not settings.egress_allowed("example.com")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"sip_port": "70000"}, "sip-port"),
        ({"rtp_ports": "3000"}, "rtp-ports"),
        ({"rtp_ports": "30000-20000"}, "rtp-ports"),
        ({"t1": "-1"}, "t1"),
        ({"egress_allow": "not-a-network"}, "egress-allow"),
        ({"log_level": "LOUD"}, "log-level"),
    ],
)
def test_bad_values_name_the_setting(flags: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(flags, environ={})


def test_bad_config_file_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("sip-port = = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({"config": str(broken)}, environ={})
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings({"config": str(tmp_path / "missing.toml")}, environ={})
