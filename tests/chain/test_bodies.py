"""A request body is refused with 413 as soon as it is known to pass its limit (chain.bodies).

A route's own limit (`read_body`, `BoundedBody`) and an app's ceiling (`BodyCeiling`) each
refuse at once on a Content-Length over the limit, else after at most one chunk past it: a
chunked body and one whose Content-Length lies are counted, not trusted. The generators below
count the chunks the app pulled, so a reader that buffered the whole body fails here.
(No `from __future__ import annotations`: FastAPI reads the routes' local annotations.)
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from chain.bodies import BodyCeiling, BoundedBody, read_body

ROUTE_LIMIT = 600  # the raw route's own limit, below the ceiling
CEILING = 1000


class Refused(Exception):
    pass


class Item(BaseModel):
    text: str


def make_app() -> FastAPI:
    app = FastAPI()

    @app.exception_handler(Refused)
    async def refused(_r: Request, _exc: Refused) -> JSONResponse:
        return JSONResponse({"error": {"code": "own_too_large", "message": "x"}}, 413)

    raw = BoundedBody(ROUTE_LIMIT, Refused)

    @app.post("/raw")
    async def take_raw(body: Annotated[bytes, Depends(raw)]) -> dict[str, int]:
        return {"read": len(body)}

    @app.post("/again")
    async def read_twice(request: Request) -> dict[str, int]:
        first = await read_body(request, ROUTE_LIMIT, Refused)
        return {"read": len(first), "again": len(await request.body())}

    @app.post("/whole")
    async def read_then_refuse(request: Request) -> dict[str, int]:
        await request.body()  # read to its end, then refused: nothing is left to drain
        raise Refused()

    @app.post("/model")
    def take_model(item: Item) -> dict[str, int]:
        return {"read": len(item.text)}

    @app.get("/stream")
    def stream() -> StreamingResponse:
        return StreamingResponse(iter([b"a" * 5000, b"b" * 5000]), media_type="text/plain")

    @app.websocket("/ws")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(await ws.receive_text())
        await ws.close()

    app.add_middleware(BodyCeiling, max_bytes=CEILING, refusals={"/raw": ("raw_code", "raw")})
    return app


APP = make_app()


def model_body(size: int) -> bytes:
    """A JSON body of exactly `size` bytes (at least 12) that the /model route accepts."""
    return b'{"text":"' + b"x" * (size - 11) + b'"}'


async def post(
    path: str, body: bytes, *, chunk: int, declare: int | None
) -> tuple[httpx.Response, int]:
    """POST `body` in chunks of `chunk` bytes; with `declare`, a Content-Length of that (a lie
    when it differs). Returns the answer and how many chunks the app pulled."""
    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal pulled
        for start in range(0, len(body), chunk):
            pulled += 1
            yield body[start : start + chunk]

    headers = {"content-type": "application/json"}
    if declare is not None:
        headers["content-length"] = str(declare)
    transport = httpx.ASGITransport(app=APP)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.post(path, content=chunks(), headers=headers)
    return answer, pulled


def call(path: str, body: bytes, *, chunk: int = 64, declare: int | None = None) -> Any:
    return asyncio.run(post(path, body, chunk=chunk, declare=declare))


def code_of(answer: httpx.Response) -> str:
    return str(answer.json()["error"]["code"])


def around(limit: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Bodies of a few bytes either side of `limit`, read in chunks of any size, with and
    without a Content-Length."""

    def drawn(test: Callable[..., None]) -> Callable[..., None]:
        bodies = given(
            size=st.integers(min_value=limit - 3, max_value=limit + 3),
            chunk=st.integers(min_value=1, max_value=400),
            declared=st.booleans(),
        )
        return settings(max_examples=60, deadline=None)(bodies(test))

    return drawn


@around(CEILING)
def test_a_model_body_around_the_ceiling_is_refused_only_past_it(
    size: int, chunk: int, declared: bool
) -> None:
    answer, pulled = call(
        "/model", model_body(size), chunk=chunk, declare=size if declared else None
    )
    if size <= CEILING:
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"read": size - 11}
    else:
        assert answer.status_code == 413, answer.text
        assert code_of(answer) == "body_too_large"
        assert answer.headers["connection"] == "close"
        # Declared: refused before a byte is read; else after at most one chunk past the limit
        assert pulled == 0 if declared else pulled == -(-(CEILING + 1) // chunk)


@around(ROUTE_LIMIT)
def test_a_raw_body_around_its_route_limit_gets_the_routes_own_error(
    size: int, chunk: int, declared: bool
) -> None:
    answer, pulled = call("/raw", b"r" * size, chunk=chunk, declare=size if declared else None)
    if size <= ROUTE_LIMIT:
        assert answer.json() == {"read": size}
    else:
        assert (answer.status_code, code_of(answer)) == (413, "own_too_large")
        assert pulled == 0 if declared else pulled == -(-(ROUTE_LIMIT + 1) // chunk)
        # The rest of the body is not read: the server closes instead of draining it
        assert answer.headers["connection"] == "close"


def test_a_routes_413_after_reading_the_whole_body_keeps_the_connection() -> None:
    answer, _ = call("/whole", b"w" * 100)
    assert (answer.status_code, code_of(answer)) == (413, "own_too_large")
    assert "connection" not in answer.headers


def test_ten_times_the_limit_is_read_to_at_most_one_chunk_past_it() -> None:
    chunk = 100
    for path, limit, code in (
        ("/model", CEILING, "body_too_large"),
        ("/raw", ROUTE_LIMIT, "own_too_large"),
    ):
        for declare in (None, 10):  # chunked, and a Content-Length lying low
            answer, pulled = call(path, b"z" * (10 * limit), chunk=chunk, declare=declare)
            assert (answer.status_code, code_of(answer)) == (413, code), (path, declare)
            assert pulled * chunk <= limit + chunk, (path, declare, pulled)


def test_a_declared_length_over_the_ceiling_gets_the_paths_own_refusal() -> None:
    # /raw's own limit is lower, but the ceiling looks first at a Content-Length past it
    answer, pulled = call("/raw", b"r" * 10, declare=CEILING + 1)
    assert (answer.status_code, code_of(answer), pulled) == (413, "raw_code", 0)
    assert answer.json()["error"]["message"] == "raw"


def test_a_body_read_bounded_is_still_there_for_a_later_read() -> None:
    answer, _ = call("/again", b"q" * 100)
    assert answer.json() == {"read": 100, "again": 100}


def test_responses_streams_and_websockets_pass_through() -> None:
    with TestClient(APP) as client:
        streamed = client.get("/stream")
        assert streamed.status_code == 200 and streamed.text == "a" * 5000 + "b" * 5000
        assert client.post("/model", json={"text": "ok"}).json() == {"read": 2}
        with client.websocket_connect("/ws") as ws:
            ws.send_text("x" * 5000)  # a websocket message is not a request body
            assert ws.receive_text() == "x" * 5000


def test_a_mounted_app_refuses_by_its_own_paths() -> None:
    outer = FastAPI()
    outer.mount("/sub", make_app())
    with TestClient(outer) as client:
        big = b"r" * (CEILING + 1)
        answer = client.post("/sub/raw", content=big, headers={"content-type": "text/plain"})
        assert (answer.status_code, code_of(answer)) == (413, "raw_code")
        answer = client.post("/sub/model", content=big, headers={"content-type": "text/plain"})
        assert (answer.status_code, code_of(answer)) == (413, "body_too_large")
