"""Queues: callers wait in line hearing the waitUrl with their position; an agent's <Dial><Queue> takes
them in order and bridges; each caller's action gets QueueResult."""

from __future__ import annotations

import threading

import pytest

from tests.e2e.test_first_call import why
from tests.helpers.ports import free_tcp_port
from tests.helpers.sipp import SippResult, run_sipp
from tests.helpers.switch_process import SwitchProcess
from tests.helpers.twiml_server import RecordedRequest, TwimlServer

pytestmark = pytest.mark.e2e


def wait_document(request: RecordedRequest) -> str:
    position = request.params.get("QueuePosition", "?")
    return f'<Response><Say>You are number {position} in line.</Say><Pause length="1"/></Response>'


def start_waiting_caller(
    switch: SwitchProcess, user: str, results: list[SippResult], *, timeout: float = 40
) -> threading.Thread:
    """A SIPp caller as ``user`` in a thread (it hears the wait document until bridged or hung up);
    its result is appended to ``results`` when it ends."""
    thread = threading.Thread(
        target=lambda: results.append(
            run_sipp(
                "uac-invite-say-expect-bye.xml",
                switch.target,
                "udp",
                service=user,
                keys={"rtp_port": free_tcp_port()},
                timeout=timeout,
            )  # fmt: skip
        )
    )
    thread.start()
    return thread


def test_three_callers_are_taken_in_order_and_bridged(
    switch: SwitchProcess, twiml_server: TwimlServer
) -> None:
    queue = "support-e2e"
    twiml_server.route("/q-wait", wait_document)
    twiml_server.route("/q-done", "<Response><Hangup/></Response>")
    twiml_server.route("/agent-done", "<Response><Hangup/></Response>")
    callers = [f"q-caller-{n}" for n in range(3)]
    for user in callers:
        twiml_server.on_user(
            user, f'<Response><Enqueue action="/q-done" waitUrl="/q-wait">{queue}</Enqueue></Response>'
        )
    results: list[SippResult] = []
    threads = []
    for n, user in enumerate(callers):
        threads.append(start_waiting_caller(switch, user, results))
        # The next caller starts once this one waits in line (its first waitUrl request arrived).
        waits = twiml_server.wait_for_requests(n + 1, path="/q-wait", timeout=10)
        assert len(waits) >= n + 1, switch.log[-3000:]
        assert waits[n].params["QueuePosition"] == str(n + 1)
        assert waits[n].params["CurrentQueueSize"] == str(n + 1)
        assert waits[n].params["QueueSid"].startswith("QU")
    sids = [twiml_server.requests(path="/voice", user=user)[0].params["CallSid"] for user in callers]
    twiml_server.on_user(
        "q-agent", f'<Response><Dial action="/agent-done"><Queue>{queue}</Queue></Dial></Response>'
    )
    for _ in callers:
        agent = run_sipp(
            "uac-invite-hangup-expect-200.xml", switch.target, "udp", service="q-agent",
            keys={"rtp_port": free_tcp_port()}, extra_args=["-d", "1500"], timeout=15,
        )  # fmt: skip
        assert agent.ok, why(agent, switch)
    for thread in threads:
        thread.join(30)
    assert len(results) == 3 and all(r.ok for r in results), "\n".join(why(r, switch) for r in results)
    taken = [
        r.params["DialCallSid"] for r in twiml_server.wait_for_requests(3, path="/agent-done", timeout=10)
    ]
    assert taken == sids  # first in, first out
    done = twiml_server.wait_for_requests(3, path="/q-done", timeout=10)
    assert [r.params["QueueResult"] for r in done] == ["bridged"] * 3
    assert {r.params["CallSid"] for r in done} == set(sids)
    # The last caller moved up the line as the others were taken: 3 first, 1 at the end, never back.
    positions = [int(r.params["QueuePosition"]) for r in twiml_server.requests(path="/q-wait")
                 if r.params["CallSid"] == sids[2]]  # fmt: skip
    assert positions[0] == 3 and positions[-1] == 1 and positions == sorted(positions, reverse=True)


def test_dial_queue_with_nobody_waiting_reports_no_answer(
    switch: SwitchProcess, twiml_server: TwimlServer
) -> None:
    twiml_server.on_user(
        "q-lonely-agent", '<Response><Dial action="/lonely-done"><Queue>empty-queue</Queue></Dial></Response>'
    )
    twiml_server.route("/lonely-done", "<Response><Hangup/></Response>")
    result = run_sipp("uac-invite-say-expect-bye.xml", switch.target, "udp", service="q-lonely-agent",
                      keys={"rtp_port": free_tcp_port()}, timeout=10)  # fmt: skip
    assert result.ok, why(result, switch)
    [done] = twiml_server.wait_for_requests(1, path="/lonely-done", timeout=5)
    assert done.params["DialCallStatus"] == "no-answer"


def test_a_caller_who_presses_a_key_leaves_the_queue(
    switch: SwitchProcess, twiml_server: TwimlServer
) -> None:
    """The waitUrl offers a key to leave: the Gather's action answers <Leave/>; QueueResult=leave."""
    twiml_server.on_user(
        "q-leaver", '<Response><Enqueue action="/q-left" waitUrl="/q-wait-leave">leavers</Enqueue></Response>'
    )
    twiml_server.route(
        "/q-wait-leave",
        '<Response><Gather numDigits="1" action="/q-leave-key"><Pause length="5"/></Gather></Response>',
    )
    twiml_server.route("/q-leave-key", "<Response><Leave/></Response>")
    twiml_server.route("/q-left", "<Response><Hangup/></Response>")
    result = run_sipp(
        "uac-invite-info-dtmf-expect-bye.xml", switch.target, "udp", service="q-leaver",
        keys={"rtp_port": free_tcp_port(), "digit": "1"}, extra_args=["-d", "1000"], timeout=15,
    )  # fmt: skip
    assert result.ok, why(result, switch)
    [key] = twiml_server.wait_for_requests(1, path="/q-leave-key", timeout=5)
    assert key.params["Digits"] == "1"
    [left] = twiml_server.wait_for_requests(1, path="/q-left", timeout=5)
    assert left.params["QueueResult"] == "leave"
    assert left.params["QueueSid"].startswith("QU")


AC = "AC" + "5e" * 16
TOKEN = "connect-queue-token-0123456789"


def test_a_redirected_caller_leaves_the_queue_and_the_others_move_up(twiml_server: TwimlServer) -> None:
    """REST update Url= on an enqueued call (how the REST side dequeues to a URL): its Enqueue stops, its
    entry is gone, the caller behind is now first, and an agent takes that one."""
    from twilio.rest import Client

    from tests.e2e.conftest import start_switch

    queue = "redirect-q"
    twiml_server.route("/rq-wait", wait_document)
    twiml_server.route("/rq-out", "<Response><Say>Moved.</Say><Hangup/></Response>")
    twiml_server.route("/rq-done", "<Response><Hangup/></Response>")
    twiml_server.route("/rq-agent-done", "<Response><Hangup/></Response>")
    callers = ["rq-first", "rq-second"]
    for user in callers:
        twiml_server.on_user(
            user, f'<Response><Enqueue action="/rq-done" waitUrl="/rq-wait">{queue}</Enqueue></Response>'
        )
    twiml_server.on_user(
        "rq-agent", f'<Response><Dial action="/rq-agent-done"><Queue>{queue}</Queue></Dial></Response>'
    )
    switch = start_switch(twiml_server.url("/voice"), ["--account-sid", AC, "--auth-token", TOKEN])
    results: list[SippResult] = []
    threads = []
    try:
        for n, user in enumerate(callers):
            threads.append(start_waiting_caller(switch, user, results))
            assert len(twiml_server.wait_for_requests(n + 1, path="/rq-wait", timeout=10)) >= n + 1
        first, second = (
            twiml_server.requests(path="/voice", user=user)[-1].params["CallSid"] for user in callers
        )
        client = Client(AC, TOKEN)
        client.api.base_url = f"http://127.0.0.1:{switch.http_port}"
        client.calls(first).update(url=twiml_server.url("/rq-out"), method="POST")
        [moved] = twiml_server.wait_for_requests(1, path="/rq-out", timeout=10)
        assert moved.params["CallSid"] == first
        # The second caller's next wait request sees a queue of one, with itself first.
        deadline = len(twiml_server.requests(path="/rq-wait"))
        later = twiml_server.wait_for_requests(deadline + 2, path="/rq-wait", timeout=10)[deadline:]
        assert later and all(r.params["CallSid"] == second for r in later), switch.log[-3000:]
        assert later[-1].params["QueuePosition"] == "1" and later[-1].params["CurrentQueueSize"] == "1"
        agent = run_sipp(
            "uac-invite-hangup-expect-200.xml", switch.target, "udp", service="rq-agent",
            keys={"rtp_port": free_tcp_port()}, extra_args=["-d", "1000"], timeout=15,
        )  # fmt: skip
        assert agent.ok, why(agent, switch)
        [taken] = twiml_server.wait_for_requests(1, path="/rq-agent-done", timeout=10)
        assert taken.params["DialCallSid"] == second and taken.params["DialCallStatus"] == "completed"
        for thread in threads:
            thread.join(30)
        assert len(results) == 2 and all(r.ok for r in results), "\n".join(why(r, switch) for r in results)
        done = twiml_server.wait_for_requests(1, path="/rq-done", timeout=10)
        # Only the caller that stayed in line reaches the Enqueue action; the redirected one never does.
        assert [(r.params["CallSid"], r.params["QueueResult"]) for r in done] == [(second, "bridged")]
    finally:
        switch.stop()


@pytest.mark.parametrize(
    ("document", "bridged"),
    [("<Response><Say>An agent is here.</Say></Response>", True), ("<Response><Hangup/></Response>", False)],
    ids=["played", "hangs-up"],
)
def test_the_queue_nouns_url_is_played_to_the_dequeued_caller(
    switch: SwitchProcess, twiml_server: TwimlServer, document: str, bridged: bool
) -> None:
    tag = "played" if bridged else "hangs-up"
    queue, caller_user, agent_user = f"url-q-{tag}", f"url-q-caller-{tag}", f"url-q-agent-{tag}"
    twiml_server.route(f"/uq-wait/{tag}", '<Response><Pause length="5"/></Response>')
    twiml_server.route(f"/uq-url/{tag}", document)
    twiml_server.route(f"/uq-done/{tag}", "<Response><Hangup/></Response>")
    twiml_server.route(f"/uq-agent-done/{tag}", "<Response><Hangup/></Response>")
    twiml_server.on_user(
        caller_user,
        f'<Response><Enqueue action="/uq-done/{tag}" waitUrl="/uq-wait/{tag}">{queue}</Enqueue></Response>',
    )
    twiml_server.on_user(
        agent_user,
        f'<Response><Dial action="/uq-agent-done/{tag}"><Queue url="/uq-url/{tag}">{queue}</Queue></Dial>'
        "</Response>",
    )
    results: list[SippResult] = []
    waiting = start_waiting_caller(switch, caller_user, results, timeout=30)
    twiml_server.wait_for_requests(1, path=f"/uq-wait/{tag}", timeout=10)
    scenario = "uac-invite-hangup-expect-200.xml" if bridged else "uac-invite-say-expect-bye.xml"
    agent = run_sipp(scenario, switch.target, "udp", service=agent_user, keys={"rtp_port": free_tcp_port()},
                     extra_args=["-d", "3000"], timeout=20)  # fmt: skip
    waiting.join(30)
    assert agent.ok, why(agent, switch)
    assert results and results[0].ok, why(results[0], switch)
    caller_sid = twiml_server.requests(path="/voice", user=caller_user)[-1].params["CallSid"]
    agent_sid = twiml_server.requests(path="/voice", user=agent_user)[-1].params["CallSid"]
    [played] = twiml_server.wait_for_requests(1, path=f"/uq-url/{tag}", timeout=5)
    assert played.params["CallSid"] == caller_sid and played.params["DequeingCallSid"] == agent_sid
    assert played.params["QueueSid"].startswith("QU") and int(played.params["QueueTime"]) >= 0
    [done] = twiml_server.wait_for_requests(1, path=f"/uq-agent-done/{tag}", timeout=10)
    assert done.params["DialCallSid"] == caller_sid
    assert done.params["DialBridged"] == ("true" if bridged else "false")
    if bridged:
        [left] = twiml_server.wait_for_requests(1, path=f"/uq-done/{tag}", timeout=10)
        assert left.params["QueueResult"] == "bridged"
    else:  # the url's document hung up on the caller: its Enqueue ends the call, no action
        assert twiml_server.requests(path=f"/uq-done/{tag}") == []


def test_a_caller_waiting_without_a_wait_url_hears_the_shipped_music(
    switch: SwitchProcess, twiml_server: TwimlServer
) -> None:
    """No waitUrl: the caller hears hold.wav (its opening seconds, as sent by the switch)."""
    from pathlib import Path

    from tests.e2e.test_connect_conference import ToneLeg
    from tests.helpers.audio import normalized_correlation, read_wav

    twiml_server.on_user("q-music", "<Response><Enqueue>music-q</Enqueue></Response>")
    leg = ToneLeg(300.0)
    result = run_sipp("uac-invite-hangup-expect-200.xml", switch.target, "udp", service="q-music",
                      keys={"rtp_port": leg.port}, extra_args=["-d", "4000"], timeout=15)  # fmt: skip
    heard = leg.stop()
    assert result.ok, why(result, switch)
    _, music = read_wav(Path(__file__).parents[2] / "dialplans" / "music" / "hold.wav")
    assert heard.size > 2 * 8000
    # The music starts with the first packets the switch sends: find it in what was heard.
    best = max(
        normalized_correlation(music[:8000], heard[offset : offset + 8000]) for offset in range(0, 4000, 8)
    )
    assert best > 0.8, best
