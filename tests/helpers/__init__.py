"""Test utilities shared by the end-to-end suites: free ports, a switch subprocess, a TwiML server,
an RTP sink, SIPp and baresip runners, and audio comparison."""
