"""Reads of many state keys of one namespace at once, each batch at one committed height.

A service that needs thousands of keys (a status list: one per credential in it, up to 131,072)
read them one `GET /v1/state/{namespace}/{key}` at a time: an HTTP round trip and a proof per
key, minutes for a full list. `POST /v1/state/{namespace}/read` answers up to MAX_READ_KEYS of
them in one request (values only; the single-key GET still gives a key's proof). The node's
route and the embedded ledger port both read through `read_keys`, so they check keys alike and
answer alike (docs/protocol.md §16).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chain.encoding import parse_json
from chain.errors import EncodingError, TxRejected
from chain.light import NAMESPACE
from chain.state import MAX_KEY_CHARS

if TYPE_CHECKING:
    from chain.ledger import Ledger

MAX_READ_KEYS = 4096  # keys per request: a full status list in 32 requests
# A request of MAX_READ_KEYS keys of MAX_KEY_CHARS characters sent as UTF-8 (at most 4 bytes a
# character) fits: the client never has to split by size
MAX_READ_BODY_BYTES = 8 * 1024 * 1024
# The values one answer carries, encoded: an answer stops before the value that would pass it
# (at least one value is always answered; a value is at most 64 KiB), so that 4096 values of
# 64 KiB are never encoded at once; the client asks again for the keys it did not get
MAX_READ_VALUE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class StateRead:
    """Values of keys (None where absent), in the keys' order, at one committed height."""

    height: int
    values: list[Any]


def check_state_key(namespace: str, key: str) -> None:
    """Refuse a key no contract can write (docs/protocol.md §7): `smartcity verify-proof`
    refuses a bundle for one, so the node does not hand one out."""
    _check_namespace(namespace)
    if not _writable(key):
        raise TxRejected("bad_key", f"a state key is 1-{MAX_KEY_CHARS} printable characters")


def _check_namespace(namespace: str) -> None:
    if not NAMESPACE.match(namespace):
        raise TxRejected("bad_key", f"namespace is not a contract name ({NAMESPACE.pattern})")


def _writable(key: str) -> bool:
    return 1 <= len(key) <= MAX_KEY_CHARS and key.isprintable()


def read_keys(ledger: Ledger, namespace: str, keys: Sequence[str]) -> StateRead:
    """The values of `keys` at the committed height, every one at that same height. The keys
    are checked first: one no contract can write is refused (`bad_key`), whichever port asks."""
    check_keys(namespace, keys)
    # Under the lock a block's changes are applied whole: no key read before it, others after
    with ledger.lock:
        get = ledger.state.get
        return StateRead(ledger.height, [get(namespace, key) for key in keys])


def check_keys(namespace: str, keys: Sequence[str]) -> None:
    """Refuse a namespace or any key `check_state_key` refuses, naming the key's place."""
    _check_namespace(namespace)
    for place, key in enumerate(keys):
        if not _writable(key):
            raise TxRejected(
                "bad_key", f"keys[{place}]: a state key is 1-{MAX_KEY_CHARS} printable characters"
            )


def read_too_large() -> TxRejected:
    """The refusal of a read request's body over MAX_READ_BODY_BYTES."""
    return TxRejected(
        "read_too_large", f"a read request is at most {MAX_READ_BODY_BYTES} bytes", status=413
    )


def parse_read(raw: bytes) -> list[str]:
    """The keys of a read request's body, `{"keys": [1..MAX_READ_KEYS strings]}`."""
    # Verify the body is small enough to parse, then that it is the one shape a read takes
    if len(raw) > MAX_READ_BODY_BYTES:
        raise read_too_large()
    try:
        body = parse_json(raw)
    except EncodingError as exc:
        raise TxRejected("read_malformed", str(exc)) from exc
    shape = f'body must be {{"keys": [1..{MAX_READ_KEYS} state keys]}}'
    if not isinstance(body, dict) or set(body) != {"keys"} or not isinstance(body["keys"], list):
        raise TxRejected("read_malformed", shape)
    keys = body["keys"]
    if len(keys) > MAX_READ_KEYS:
        raise TxRejected("too_many_keys", f"{len(keys)} keys: a read takes at most {MAX_READ_KEYS}")
    if not keys or not all(isinstance(key, str) for key in keys):
        raise TxRejected("read_malformed", shape)
    return keys


def encode_read(read: StateRead) -> bytes:
    """The answer `{"height", "values"}`: the values of the first keys whose encodings fit in
    MAX_READ_VALUE_BYTES (at least one), in order; the client asks again for the rest."""
    parts: list[bytes] = []
    size = 0
    for value in read.values:
        part = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        size += len(part)
        if parts and size > MAX_READ_VALUE_BYTES:
            break
        parts.append(part)
    return b'{"height":%d,"values":[%b]}' % (read.height, b",".join(parts))
