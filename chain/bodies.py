"""Request bodies read with a bound: a route's own limit, and a ceiling for a whole app.

`await request.body()` buffers whatever a client sends and only then can its size be checked,
so one request could make a process hold gigabytes. Here a body is refused with 413 as soon as
it is known to be too large: at once when its Content-Length says so, else when the bytes
counted so far pass the limit (a chunked body has no Content-Length; a lying one is not
trusted). A route reads its body with `read_body` (or the `BoundedBody` dependency) and keeps
its own error; `BodyCeiling`, a pure ASGI middleware, bounds every other read of an app (the
bodies FastAPI parses into models), answering `{"error": {"code", "message"}}` as the node and
every service do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
TooLarge = Callable[[], Exception]  # the route's own refusal of a body over its limit

BODY_TOO_LARGE = "body_too_large"


class BodyTooLarge(Exception):
    """A body passed an app's ceiling while the app read it (BodyCeiling answers 413)."""


def declared_length(headers: Mapping[str, str]) -> int | None:
    """The body's size as its Content-Length declares it, or None (absent or not a number:
    the server refuses a malformed one before the app sees it)."""
    value = headers.get("content-length", "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


async def read_body(request: Request, max_bytes: int, too_large: TooLarge) -> bytes:
    """The request's body, or `too_large()` raised once it is known to pass `max_bytes`:
    before reading when its Content-Length says so, else after at most one chunk more."""
    # Verify the declared size before reading anything
    declared = declared_length(request.headers)
    if declared is not None and declared > max_bytes:
        raise too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        # Verify the bytes read so far: a chunked body declares no size, a lying one a smaller
        if len(body) > max_bytes:
            raise too_large()
    whole = bytes(body)
    # Kept where Starlette keeps a body it read itself, so a later `request.body()` (another
    # dependency, FastAPI's own parsing) finds it instead of a consumed stream
    request._body = whole
    return whole


@dataclass(frozen=True)
class BoundedBody:
    """A FastAPI dependency giving a route its raw body, bounded by the route's own limit and
    refused with the route's own error (`Annotated[bytes, Depends(BoundedBody(...))]`)."""

    max_bytes: int
    too_large: TooLarge

    async def __call__(self, request: Request) -> bytes:
        return await read_body(request, self.max_bytes, self.too_large)


class BodyCeiling:
    """Pure ASGI middleware refusing any HTTP request body over `max_bytes` with 413: at once
    on its Content-Length, else when the bytes the app has read pass it. The app's own answer
    to the body cut short is dropped and the 413 sent instead, with `Connection: close` since
    the rest of the body is never read. A route's own 413 before the whole body was read (its
    `read_body` limit) gets `Connection: close` added for the same reason: the server would
    otherwise read and drop the rest of the body to keep the connection. Other responses,
    streaming ones too, pass through untouched; websockets and lifespan events are not looked
    at. `refusals` gives a path (as the app routes it, below any mount) its own code and
    message, so a route whose limit is the ceiling answers as it always did."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        code: str = BODY_TOO_LARGE,
        refusals: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.refusal = (code, f"the request body is over {max_bytes} bytes")
        self.refusals = dict(refusals or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        declared = declared_length(headers)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, send)
            return
        read = 0
        refused = started = whole = False

        async def bounded() -> Message:
            nonlocal read, refused, whole
            message = await receive()
            if message["type"] == "http.request":
                whole = not message.get("more_body", False)
                read += len(message.get("body", b""))
                if read > self.max_bytes:
                    refused = not started  # a response under way cannot be replaced
                    raise BodyTooLarge(f"request body over {self.max_bytes} bytes")
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the app's answer to a body cut short: the 413 replaces it
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                if message["status"] == 413 and not whole and _CLOSE not in headers:
                    # A route refused a body it stopped reading: close rather than drain it
                    message = {**message, "headers": [*headers, _CLOSE]}
            await send(message)

        try:
            await self.app(scope, bounded, guarded)
        except Exception:
            # Once refused, whatever the app made of the body cut short (BodyTooLarge itself,
            # or what it raised instead) is answered by the 413
            if not refused:
                raise
        if refused:
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        code, message = self.refusals.get(_route_path(scope), self.refusal)
        body = orjson.dumps({"error": {"code": code, "message": message}})
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            _CLOSE,
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


_CLOSE = (b"connection", b"close")


def _route_path(scope: Scope) -> str:
    """The request's path as the app routes it: below the mount it is served under, if any."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
