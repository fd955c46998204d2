"""`switch serve`: the command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from switch.config import ConfigError, add_arguments, load_settings


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed, else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switch", description="A self-hosted programmable voice switch.")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the switch (the default command)")
    add_arguments(serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0].startswith("-") and args[0] not in ("-h", "--help"):
        args.insert(0, "serve")
    parser = build_parser()
    namespace = parser.parse_args(args)
    flags = {key: value for key, value in vars(namespace).items() if key != "command"}
    try:
        settings = load_settings(flags)
    except ConfigError as exc:
        parser.exit(2, f"switch: {exc}\n")
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from switch.app import Switch
    from switch.dialplan import DialplanError

    try:
        _run(Switch(settings).run())
    except (OSError, DialplanError) as exc:
        logging.getLogger("switch").error("cannot start: %s", exc)
        return 1
    return 0
