"""switch: a self-hosted programmable voice switch."""

__version__ = "0.1.0"
