"""switch.media."""
