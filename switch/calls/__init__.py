"""switch.calls."""
