"""A caller that vanishes without BYE (no more RTP) is hung up after --rtp-timeout, and the callee it was
bridged to through <Dial><Sip> gets a BYE, while that callee streams audio the whole time (so its own leg
never times out: its BYE can only come from the bridge)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from tests.helpers.ports import free_tcp_port
from tests.helpers.sipp import SippUas, run_sipp
from tests.helpers.switch_process import SwitchProcess

RTP_TIMEOUT = 2.0

# A callee that answers, streams a mu-law tone without end (loops -1) and waits for the switch's BYE.
STREAMING_UAS = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="uas-answer-stream-expect-bye">
  <recv request="INVITE"/>
  <send><![CDATA[

      SIP/2.0 100 Trying
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
  <send retrans="500"><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]U[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:uas@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=uas 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=ptime:20
      a=sendrecv

  ]]></send>
  <recv request="ACK"/>
  <nop><action><exec rtp_stream="TONE_FILE,-1,0"/></action></nop>
  <recv request="BYE"/>
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
</scenario>
"""


def _mulaw_tone(path: Path, seconds: float = 1.0) -> None:
    """A 440 Hz tone as raw G.711 mu-law (what SIPp's rtp_stream sends as it is)."""
    t = np.arange(int(8000 * seconds)) / 8000
    x = 0.3 * np.sin(2 * np.pi * 440 * t)
    magnitude = np.log1p(255 * np.abs(x)) / np.log1p(255)
    code = np.clip((magnitude * 127).round(), 0, 127).astype(np.uint8)
    encoded = np.where(x >= 0, 0xFF - code, 0x7F - code).astype(np.uint8)
    path.write_bytes(encoded.tobytes())


def test_vanished_caller_hung_up_and_callee_gets_bye() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tone = folder / "tone.ul"
        _mulaw_tone(tone)
        scenario = folder / "uas-stream.xml"
        scenario.write_text(STREAMING_UAS.replace("TONE_FILE", str(tone)))
        callee = SippUas(str(scenario), timeout=25)
        app = folder / "dial.xml"
        app.write_text(f"<Response><Dial><Sip>sip:callee@{callee.target}</Sip></Dial></Response>")
        extra = ["--rtp-timeout", str(RTP_TIMEOUT)]
        try:
            with SwitchProcess(str(app), rtp_ports=20, extra_args=extra) as switch:
                # This caller sends no RTP at all after its ACK and waits for the switch's BYE.
                caller = run_sipp(
                    "uac-invite-say-expect-bye.xml", f"{switch.host}:{switch.sip_port}", "udp",
                    service="vanish", keys={"rtp_port": free_tcp_port()}, timeout=20,
                )  # fmt: skip
                callee_result = callee.finish()
                timeouts = switch.log_lines("RTP timeout")
                log = switch.log[-4000:]
        finally:
            callee.kill()
    assert caller.ok, caller.describe() + log
    assert callee_result.ok, callee_result.describe() + log
    assert "BYE sip:uas@" in callee_result.messages  # the switch ended the bridged leg
    assert len(timeouts) == 1, log  # the caller's leg only: the callee streamed all along
