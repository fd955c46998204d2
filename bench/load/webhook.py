"""A voice application over HTTP for load runs: answers every webhook with one fixed TwiML document.

    python -m bench.load.webhook PORT [TWIML]
    python -m bench.load.webhook bench [--requests 4000] [--concurrency 4] [--repeat 3]

Runs in its own process, so its CPU is not counted as the switch's. ``bench`` measures the switch's side of
a webhook alone: the CPU the ``WebhookClient`` of the ``switch`` package on ``sys.path`` spends per signed
POST (a call's usual parameters) against this application in a child process, under uvloop as the switch
runs. For an A/B, point ``PYTHONPATH`` at another tree (a ``git worktree``) and run the same command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time

from aiohttp import web

HANGUP = "<Response><Hangup/></Response>"


def make_app(twiml: str) -> web.Application:
    body = twiml.encode()

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="text/xml")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


def call_params(n: int) -> dict[str, str]:
    """What a call's first webhook carries (switch.twiml.interpreter's standard parameters)."""
    return {
        "CallSid": f"CA{n:032x}",
        "AccountSid": "AC" + "cd" * 16,
        "From": "sip:sipp@127.0.0.1:5061",
        "To": "sip:service@127.0.0.1:5060",
        "Caller": "sip:sipp@127.0.0.1:5061",
        "Called": "sip:service@127.0.0.1:5060",
        "CallStatus": "ringing",
        "ApiVersion": "2010-04-01",
        "Direction": "inbound",
        "CallerName": "sipp",
        "SipCallId": f"{n}-4242@127.0.0.1",
        "SipSourceIp": "127.0.0.1",
        "CallToken": "",
    }


async def _client_bench(url: str, requests: int, concurrency: int) -> float:
    """CPU seconds of this process per fetch, over ``requests`` fetches by ``concurrency`` workers."""
    from switch.twiml.fetch import WebhookClient
    from switch.twiml.session import InterpreterSettings

    settings = InterpreterSettings(
        account_sid="AC" + "cd" * 16,
        auth_token="0123456789abcdef0123456789abcdef",
        egress_allowed=lambda ip: ip.startswith("127."),
    )
    async with WebhookClient(settings) as client:

        async def worker(first: int, count: int) -> None:
            for n in range(first, first + count):
                fetched = await client.fetch(url, "POST", call_params(n))
                if fetched.body != HANGUP.encode():
                    raise RuntimeError(f"unexpected answer {fetched.body[:80]!r}")

        each = max(1, requests // concurrency)
        await asyncio.gather(*(worker(i * each, 200 // concurrency + 1) for i in range(concurrency)))
        started = time.process_time()
        await asyncio.gather(*(worker(i * each, each) for i in range(concurrency)))
        return (time.process_time() - started) / (each * concurrency)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def bench(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load.webhook bench")
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    import uvloop

    import switch

    port = _free_port()
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": here}
    app = subprocess.Popen([sys.executable, "-m", "bench.load.webhook", str(port)], env=env)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/voice"
        runs = [
            uvloop.run(_client_bench(url, args.requests, args.concurrency)) * 1e6 for _ in range(args.repeat)
        ]
    finally:
        app.terminate()
        app.wait(10)
    result = {
        "switch": os.path.dirname(switch.__file__),
        "requests": args.requests,
        "concurrency": args.concurrency,
        "cpu_us_per_fetch": [round(r, 1) for r in runs],
        "best_cpu_us_per_fetch": round(min(runs), 1),
        "load_average": os.getloadavg()[0],
    }
    print(json.dumps(result))


def main(argv: list[str]) -> None:
    if argv and argv[0] == "bench":
        bench(argv[1:])
        return
    port = int(argv[0])
    twiml = argv[1] if len(argv) > 1 else HANGUP
    web.run_app(make_app(twiml), host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main(sys.argv[1:])
