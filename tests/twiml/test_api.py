"""The package's public names."""

from __future__ import annotations

import switch.twiml


def test_all_is_complete_and_importable() -> None:
    public = {n for n in vars(switch.twiml) if not n.startswith("_")}
    modules = {
        "audio",
        "callbacks",
        "errors",
        "fetch",
        "gather",
        "interpreter",
        "parser",
        "record",
        "session",
    }
    modules |= {"dial", "http_client", "queues", "tones", "urls", "verbs"}
    assert set(switch.twiml.__all__) == public - modules
    assert all(getattr(switch.twiml, n) is not None for n in switch.twiml.__all__)
