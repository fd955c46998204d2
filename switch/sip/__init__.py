"""switch.sip."""
