"""Locate the external programs the end-to-end tests drive."""

from __future__ import annotations

import shutil

__all__ = ["ToolMissingError", "require_tool"]

_INSTALL_HINT = {
    "sipp": "apt-get install sip-tester",
    "baresip": "apt-get install baresip-core",
    "tshark": "apt-get install tshark",
    "sox": "apt-get install sox",
}


class ToolMissingError(RuntimeError):
    """A program the tests need is not on PATH."""


def require_tool(name: str) -> str:
    """The absolute path of `name`, or ToolMissingError saying how to install it."""
    path = shutil.which(name)
    if path is None:
        hint = _INSTALL_HINT.get(name, "install it")
        raise ToolMissingError(f"required tool {name!r} not found on PATH ({hint})")
    return path
