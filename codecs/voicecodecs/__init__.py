"""voicecodecs: pure numpy voice codecs (arrays in, arrays out; no asyncio, no sockets)."""
