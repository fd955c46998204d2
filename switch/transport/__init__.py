"""switch.transport."""
