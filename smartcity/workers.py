"""`smartcity service NAME --workers N`: one service served by N processes on one port.

Each worker opens its own listening socket on the port (SO_REUSEPORT), so the kernel spreads
new connections over the workers. One socket shared by all (uvicorn's own `workers`) let the
first worker to wake accept every connection of a client that opens them together: under wrk's
8 keep-alive connections one worker served all and the other idled. The workers share nothing
but the database and the chain. If one exits, the others are stopped and the command exits
with its code, for the supervisor (compose's `restart`, systemd) to start them again.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import sys
from collections.abc import Callable
from multiprocessing.connection import wait
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

STOP_GRACE_S = 20.0


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) that other workers may bind too (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def serve_workers(
    build: Callable[..., FastAPI], args: tuple[Any, ...], *, host: str, port: int, workers: int
) -> int:
    """Run `build(*args)`'s app in `workers` spawned processes on one port until stopped;
    returns the exit code: 0 when stopped by a signal, else the first worker's to end (1 when it
    was killed or ended with 0)."""
    spawn = multiprocessing.get_context("spawn")
    children = [
        spawn.Process(target=_worker, args=(build, args, host, port), name=f"worker-{n}")
        for n in range(workers)
    ]
    stopping: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)
        for child in children:
            if child.is_alive():
                child.terminate()  # SIGTERM: uvicorn finishes the requests in flight

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for child in children:
            child.start()
        ready = wait([child.sentinel for child in children])
        first = next(c for c in children if c.sentinel in ready)
        first.join()  # its pipe closes a moment before its exit code can be read
        ended = first.exitcode
        code = 0 if stopping else (ended if ended and ended > 0 else 1)  # killed: < 0
        for child in children:
            if child.is_alive():
                child.terminate()
        for child in children:
            child.join(STOP_GRACE_S)
            if child.is_alive():
                child.kill()
                child.join()
        return code
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _worker(build: Callable[..., FastAPI], args: tuple[Any, ...], host: str, port: int) -> None:
    import uvicorn

    from smartcity.logs import uvicorn_options

    app = build(*args)
    sock = listening_socket(host, port)  # after the build: a worker takes connections when ready
    config = uvicorn.Config(app, host=host, port=port, **uvicorn_options())
    uvicorn.Server(config).run(sockets=[sock])
    sys.exit(0)
