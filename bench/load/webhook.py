"""A voice application over HTTP for load runs: answers every webhook with one fixed TwiML document.

    python -m bench.load.webhook PORT [TWIML]

Runs in its own process, so its CPU is not counted as the switch's.
"""

from __future__ import annotations

import sys

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


def main(argv: list[str]) -> None:
    port = int(argv[0])
    twiml = argv[1] if len(argv) > 1 else HANGUP
    web.run_app(make_app(twiml), host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main(sys.argv[1:])
