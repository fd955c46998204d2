"""Shared start-up for the atheris targets: quiet logging, then libFuzzer with the target's callback."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import atheris  # type: ignore[import-untyped]  # no stubs published


def run(test_one_input: Callable[[bytes], None]) -> None:
    logging.disable(logging.CRITICAL)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
