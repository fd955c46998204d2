"""switch.twiml."""
