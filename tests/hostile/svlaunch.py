"""Run a SIPVicious tool from one loopback address: ``python3 svlaunch.py 127.0.0.66 svcrack ARGS...``.

SIPVicious 0.3.3 reads ``-b/--bindingip`` but svwar and svcrack never pass it to their scanners, whose
sockets then bind to every address and leave from 127.0.0.1 (the address the switch tests trust).  This
launcher makes every wildcard bind of the tool use the given address instead, then runs the tool's own
entry script.  It runs under the system Python that SIPVicious is installed for, so it imports nothing
from the project.
"""

from __future__ import annotations

import os
import runpy
import shutil
import socket
import sys
from typing import Any


def main() -> None:
    address, tool, *args = sys.argv[1:]
    plain_bind = socket.socket.bind

    def bind(self: socket.socket, where: Any) -> None:
        if isinstance(where, tuple) and where[0] in ("", "0.0.0.0"):
            where = (address, *where[1:])
        plain_bind(self, where)

    socket.socket.bind = bind  # type: ignore[method-assign, assignment]
    path = shutil.which(tool)
    if path is None:
        raise SystemExit(f"{tool} not found")
    path = os.path.realpath(path)  # /usr/bin/svcrack links to the folder holding the package's metadata
    sys.path[0] = os.path.dirname(path)
    sys.argv = [tool, *args]
    runpy.run_path(path, run_name="__main__")


if __name__ == "__main__":
    main()
