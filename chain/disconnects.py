"""A client that leaves before its request body has arrived.

Reading the body then raises Starlette's ClientDisconnect. Left alone it escapes the app and
the server logs "Exception in ASGI application" with a traceback, as for a bug; it is not one
(a dropped connection, a client's timeout, a scanner), and there is nobody left to answer. The
node and every service map it to 499 (nginx's "client closed request", seen only in the access
log) and one line at INFO.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response
from starlette.requests import ClientDisconnect

log = logging.getLogger("smartcity.http")

CLIENT_CLOSED_REQUEST = 499


def install_disconnect_handler(app: FastAPI) -> None:
    @app.exception_handler(ClientDisconnect)
    async def gone(request: Request, _exc: ClientDisconnect) -> Response:
        return client_left(request)


def client_left(request: Request) -> Response:
    """What a request whose client has gone gets: one line at INFO, 499 in the access log."""
    log.info("%s %s: the client left before its body arrived", request.method, request.url.path)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


def left_before_body(exc: BaseException) -> bool:
    """FastAPI reads a route's declared body itself and turns the disconnect into a 400 ("There
    was an error parsing the body") raised from it: the cause tells the two apart."""
    return isinstance(exc.__cause__, ClientDisconnect)
