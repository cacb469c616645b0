"""The Python SDK for a node's API: submit, wait, batch, receipts, proofs, verified reads, events.

`ChainClient` (sync) and `AsyncChainClient` share every request and response rule; only the
transport call differs. httpx errors never leave this module: they become `ClientError`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from chain.auth import AUDIENCE_CHAIN, DEFAULT_TTL_S, mint_token
from chain.errors import ClientError
from chain.genesis import Genesis
from chain.light import Proven, verify_bundle
from chain.reads import MAX_READ_KEYS
from chain.suites import SuiteKey
from chain.tx import Tx

DEFAULT_TIMEOUT_S = 30.0
# A read token is minted once and sent again for a quarter of its lifetime, not minted per
# request (a signature and a JWS: ~0.2 ms, a fifth of a registry read): the node checks the
# key's roles on the chain at every request whatever the token's age, so reuse grants nothing
# a fresh token would not
TOKEN_REUSE_S = DEFAULT_TTL_S / 4
_tokens: dict[tuple[str, str], tuple[float, str]] = {}


@dataclass(frozen=True)
class Identity:
    """Who the client is: an organisation and one of its registered keys (mints read tokens)."""

    org: str
    key: SuiteKey


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, Any] | None = None
    body: bytes | None = None
    allow: tuple[int, ...] = ()
    timeout_s: float | None = None


def _headers(identity: Identity | None) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if identity is not None:
        headers["authorization"] = "Bearer " + _token(identity)
    return headers


def _token(identity: Identity) -> str:
    """The identity's read token: the one minted last while it is younger than TOKEN_REUSE_S
    by the wall clock its `iat` was read from (a clock set back or forward mints anew), else a
    new one. Threads racing past the reuse window each mint one; either is valid."""
    cache_key = (identity.org, identity.key.public_hex)
    now = time.time()
    held = _tokens.get(cache_key)
    if held is not None and 0 <= now - held[0] < TOKEN_REUSE_S:
        return held[1]
    token = mint_token(identity.key, org=identity.org, audience=AUDIENCE_CHAIN)
    _tokens[cache_key] = (now, token)
    return token


def _request(
    http: httpx.Client | httpx.AsyncClient, call: Call, identity: Identity | None
) -> httpx.Request:
    """The HTTP request of a call (building one does no I/O, so both clients share it)."""
    return http.build_request(
        call.method,
        call.path,
        params=call.params,
        content=call.body,
        headers=_headers(identity),
        timeout=call.timeout_s or httpx.USE_CLIENT_DEFAULT,
    )


def _unreachable(http: httpx.Client | httpx.AsyncClient, exc: httpx.HTTPError) -> ClientError:
    return ClientError(f"cannot reach the node at {http.base_url}: {exc}")


def _result(call: Call, response: httpx.Response) -> Any:
    """The JSON of a successful answer, or a ClientError carrying the node's code and message."""
    if response.status_code < 300 or response.status_code in call.allow:
        return response.json()
    try:
        error = response.json()["error"]
        code, message = error["code"], error["message"]
    except (ValueError, KeyError, TypeError):
        code, message = None, response.text[:200]
    raise ClientError(
        f"{call.method} {call.path}: {response.status_code} {code}: {message}",
        status=response.status_code,
        code=code,
    )


def _retry_after_s(response: httpx.Response) -> float:
    """Retry-After in seconds (RFC 9110 §10.2.3), capped; 1 s when absent or a date."""
    try:
        return min(5.0, max(0.05, float(response.headers.get("retry-after", "1"))))
    except ValueError:
        return 1.0


def _submit_call(tx: Tx, wait: bool, timeout_s: float) -> Call:
    params = {"wait": "true", "timeout_s": timeout_s} if wait else None
    return Call(
        "POST",
        "/v1/txs",
        params=params,
        body=json.dumps(tx.to_json()).encode(),
        timeout_s=timeout_s + 5 if wait else None,
    )


def _state_call(namespace: str, key: str) -> Call:
    # Percent-encode the key: `#` (as in `vm:<did>#<key id>`) or `?` would otherwise end the path
    return Call("GET", f"/v1/state/{quote(namespace, safe='')}/{quote(key, safe='')}")


def _read_call(namespace: str, keys: list[str]) -> Call:
    # UTF-8, not \u escapes: MAX_READ_KEYS keys of any characters then fit the node's body limit
    body = json.dumps({"keys": keys}, ensure_ascii=False).encode()
    return Call("POST", f"/v1/state/{quote(namespace, safe='')}/read", body=body)


def _read_values(keys: list[str], answer: Any) -> list[Any]:
    """The values a read answered for the first of `keys` (at least one, at most all)."""
    values = answer.get("values") if isinstance(answer, dict) else None
    if not isinstance(values, list) or not 1 <= len(values) <= len(keys):
        raise ClientError(f"the node answered a read of {len(keys)} keys with {answer!r:.200}")
    return values


def _batch_call(txs: list[Tx]) -> Call:
    return Call(
        "POST", "/v1/txs/batch", body=json.dumps({"txs": [t.to_json() for t in txs]}).encode()
    )


class ChainClient:
    """Synchronous client; tests may pass `transport=httpx.MockTransport(...)`."""

    def __init__(
        self,
        base_url: str,
        *,
        identity: Identity | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        busy_retry_s: float = 30.0,
    ) -> None:
        self.identity = identity
        # A node under load answers 429 (mempool full) with Retry-After: the SDK waits and
        # retries for up to this long, then raises the 429 (0: raise at once)
        self.busy_retry_s = busy_retry_s
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), transport=transport, timeout=timeout_s
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChainClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _do(self, call: Call) -> Any:
        deadline = time.monotonic() + self.busy_retry_s
        while True:
            response = self._send(call)
            if response.status_code != 429 or time.monotonic() >= deadline:
                return _result(call, response)
            time.sleep(min(_retry_after_s(response), max(0.0, deadline - time.monotonic())))

    def _send(self, call: Call) -> httpx.Response:
        try:
            return self._http.send(_request(self._http, call, self.identity))
        except httpx.HTTPError as exc:
            raise _unreachable(self._http, exc) from exc

    def status(self) -> dict[str, Any]:
        return dict(self._do(Call("GET", "/v1/status")))

    def wait_until_ready(self, timeout_s: float = 60) -> dict[str, Any]:
        """Poll until the node answers (it may still be starting); its status, or ClientError."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.status()
            except ClientError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def submit(self, tx: Tx) -> str:
        """Admit a transaction; returns its hash."""
        return str(self._do(_submit_call(tx, False, 0))["hash"])

    def submit_and_wait(self, tx: Tx, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
        """Admit and wait for the receipt; a retry of a committed tx returns the same receipt."""
        try:
            return dict(self._do(_submit_call(tx, True, timeout_s))["receipt"])
        except ClientError as exc:
            if exc.code != "tx_replayed":
                raise
        # Committed already: its receipt, once the block's write has landed (`pending` until then)
        deadline, pause = time.monotonic() + timeout_s, 0.005
        while (receipt := _committed_receipt(tx.hash, self.tx(tx.hash), deadline)) is None:
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
        return receipt

    def submit_batch(self, txs: list[Tx]) -> dict[str, Any]:
        return dict(self._do(_batch_call(txs)))

    def tx(self, tx_hash: str) -> dict[str, Any]:
        return dict(self._do(Call("GET", f"/v1/txs/{tx_hash}")))

    def proof(self, tx_hash: str) -> dict[str, Any]:
        return dict(self._do(Call("GET", f"/v1/txs/{tx_hash}/proof")))

    def block(self, height: int | str = "latest") -> dict[str, Any]:
        return dict(self._do(Call("GET", f"/v1/blocks/{height}")))

    def validators(self) -> dict[str, Any]:
        return dict(self._do(Call("GET", "/v1/validators")))

    def state(self, namespace: str, key: str, *, verify_with: Genesis | None = None) -> Any:
        """A state value (None when absent); with `verify_with`, checked against its proof first."""
        bundle = self.state_bundle(namespace, key)
        if verify_with is not None:
            verify_bundle(bundle, verify_with)
        return bundle["value"]

    def state_bundle(self, namespace: str, key: str) -> dict[str, Any]:
        return dict(self._do(_state_call(namespace, key)))

    def read_many(self, namespace: str, keys: list[str]) -> list[Any]:
        """The values of `keys` (None where absent), in order, without proofs: MAX_READ_KEYS
        a request, each request's values at one height (a later request's may be higher)."""
        values: list[Any] = []
        while len(values) < len(keys):
            pending = keys[len(values) : len(values) + MAX_READ_KEYS]
            values += _read_values(pending, self._do(_read_call(namespace, pending)))
        return values

    def verified_proof(self, tx_hash: str, genesis: Genesis) -> Proven:
        return verify_bundle(self.proof(tx_hash), genesis)

    def events(self, from_height: int | None = None) -> Iterator[dict[str, Any]]:
        """Committed blocks with their contract events, as they happen."""
        params = {"from_height": from_height} if from_height else None
        try:
            with self._http.stream(
                "GET", "/v1/events", params=params, headers=_headers(self.identity), timeout=None
            ) as response:
                if response.status_code >= 300:
                    response.read()
                    _result(Call("GET", "/v1/events"), response)
                yield from _sse(response.iter_lines())
        except httpx.HTTPError as exc:
            raise ClientError(f"event stream interrupted: {exc}") from exc


class AsyncChainClient:
    """Asynchronous twin of ChainClient."""

    def __init__(
        self,
        base_url: str,
        *,
        identity: Identity | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        busy_retry_s: float = 30.0,
    ) -> None:
        self.identity = identity
        self.busy_retry_s = busy_retry_s  # as ChainClient's
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), transport=transport, timeout=timeout_s
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncChainClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _do(self, call: Call) -> Any:
        deadline = time.monotonic() + self.busy_retry_s
        while True:
            response = await self._send(call)
            if response.status_code != 429 or time.monotonic() >= deadline:
                return _result(call, response)
            delay = min(_retry_after_s(response), max(0.0, deadline - time.monotonic()))
            await asyncio.sleep(delay)

    async def _send(self, call: Call) -> httpx.Response:
        try:
            return await self._http.send(_request(self._http, call, self.identity))
        except httpx.HTTPError as exc:
            raise _unreachable(self._http, exc) from exc

    async def status(self) -> dict[str, Any]:
        return dict(await self._do(Call("GET", "/v1/status")))

    async def submit(self, tx: Tx) -> str:
        return str((await self._do(_submit_call(tx, False, 0)))["hash"])

    async def submit_and_wait(self, tx: Tx, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
        try:
            return dict((await self._do(_submit_call(tx, True, timeout_s)))["receipt"])
        except ClientError as exc:
            if exc.code != "tx_replayed":
                raise
        deadline, pause = time.monotonic() + timeout_s, 0.005
        while (receipt := _committed_receipt(tx.hash, await self.tx(tx.hash), deadline)) is None:
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.1)
        return receipt

    async def submit_batch(self, txs: list[Tx]) -> dict[str, Any]:
        return dict(await self._do(_batch_call(txs)))

    async def tx(self, tx_hash: str) -> dict[str, Any]:
        return dict(await self._do(Call("GET", f"/v1/txs/{tx_hash}")))

    async def proof(self, tx_hash: str) -> dict[str, Any]:
        return dict(await self._do(Call("GET", f"/v1/txs/{tx_hash}/proof")))

    async def block(self, height: int | str = "latest") -> dict[str, Any]:
        return dict(await self._do(Call("GET", f"/v1/blocks/{height}")))

    async def state(self, namespace: str, key: str, *, verify_with: Genesis | None = None) -> Any:
        bundle = dict(await self._do(_state_call(namespace, key)))
        if verify_with is not None:
            verify_bundle(bundle, verify_with)
        return bundle["value"]

    async def read_many(self, namespace: str, keys: list[str]) -> list[Any]:
        values: list[Any] = []
        while len(values) < len(keys):
            pending = keys[len(values) : len(values) + MAX_READ_KEYS]
            values += _read_values(pending, await self._do(_read_call(namespace, pending)))
        return values

    async def events(self, from_height: int | None = None) -> AsyncIterator[dict[str, Any]]:
        params = {"from_height": from_height} if from_height else None
        try:
            async with self._http.stream(
                "GET", "/v1/events", params=params, headers=_headers(self.identity), timeout=None
            ) as response:
                if response.status_code >= 300:
                    await response.aread()
                    _result(Call("GET", "/v1/events"), response)
                event: dict[str, str] = {}
                async for line in response.aiter_lines():
                    message = _sse_line(event, line)
                    if message is not None:
                        yield message
        except httpx.HTTPError as exc:
            raise ClientError(f"event stream interrupted: {exc}") from exc


def _committed_receipt(
    tx_hash: str, info: dict[str, Any], deadline: float
) -> dict[str, Any] | None:
    """A replayed transaction's receipt, None while its block is being written (`pending`);
    past the deadline a ClientError `commit_timeout`, as a submission that waited that long."""
    receipt = info.get("receipt")
    if info.get("status") == "committed" and isinstance(receipt, dict):
        return dict(receipt)
    if time.monotonic() >= deadline:
        raise ClientError(
            f"{tx_hash} is committed but its receipt was not written in time; still pending",
            status=504,
            code="commit_timeout",
        )
    return None


def _sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    event: dict[str, str] = {}
    for line in lines:
        message = _sse_line(event, line)
        if message is not None:
            yield message


def _sse_line(event: dict[str, str], line: str) -> dict[str, Any] | None:
    """Accumulate one SSE line; return a block message when an event is complete."""
    if line.startswith(":"):
        return None
    if line:
        name, _, value = line.partition(":")
        event[name] = value.lstrip()
        return None
    kind, data = event.get("event", "message"), event.get("data")
    event.clear()
    if kind == "overflow":
        raise ClientError("event stream dropped us for being slow; resume with from_height")
    if kind != "block" or data is None:
        return None
    return dict(json.loads(data))
