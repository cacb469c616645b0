"""Namespaced key-value state: committed values, per-block and per-transaction overlays."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from chain.encoding import canonical, canonical_value
from chain.errors import ContractError
from chain.smt import StateProof, Tree
from chain.suites.base import Hasher

MAX_KEY_CHARS = 256
MAX_VALUE_BYTES = 64 * 1024
StateKey = tuple[str, str]
_DELETED = object()
# A written key as the block store keeps it: its canonical value text and value hash, None where
# it is deleted; a block's, by key
StoredValue = tuple[str, str] | None
Stored = dict[StateKey, StoredValue]
# The C hashing of a block's state keys under SHA-256 (smartcity_native._hashes, the GIL released
# while it hashes); the loop in apply_block is the reference and the sm2-sm3 suite's
_native_hashes: (
    Callable[
        [list[StateKey], list[bytes | None]],
        tuple[list[tuple[bytes, bytes | None]], Stored] | None,
    ]
    | None
) = None
with contextlib.suppress(ImportError):
    from smartcity_native._hashes import state_hashes as _native_hashes


def key_hash(namespace: str, key: str, hasher: Hasher = hashlib.sha256) -> bytes:
    """Path of a state key in the tree: H(namespace || 0x00 || key), H the chain's suite's."""
    return hasher(namespace.encode() + b"\x00" + key.encode()).digest()


def value_hash(value: Any, hasher: Hasher = hashlib.sha256) -> bytes:
    """H of a value's canonical JSON (SHA-256, or the chain's suite's)."""
    return hasher(canonical(value)).digest()


def stored_value(value: Any, hasher: Hasher = hashlib.sha256) -> tuple[str, str]:
    """A state value as the store keeps it: canonical JSON text and its value hash."""
    text = canonical(value)
    return text.decode(), hasher(text).hexdigest()


@dataclass
class CommittedState:
    """The state after the last committed block: values and their tree, hashed with `hasher`
    (the chain's suite's; its tree must be of the same suite, chain.suites.hashing)."""

    values: dict[StateKey, Any]
    tree: Tree
    hasher: Hasher = hashlib.sha256

    @classmethod
    def empty(cls) -> CommittedState:
        return cls(values={}, tree=Tree())

    @property
    def root(self) -> bytes:
        return self.tree.root_hash

    def get(self, namespace: str, key: str) -> Any:
        return self.values.get((namespace, key))

    def prove(self, namespace: str, key: str) -> StateProof:
        return self.tree.prove(key_hash(namespace, key, self.hasher))

    def apply_block(
        self, changes: Mapping[StateKey, Any], encoded: Mapping[StateKey, bytes]
    ) -> tuple[Tree, Stored]:
        """The tree after a block's `changes` (None deletes), without mutating this state, and
        each written key as the store keeps it (canonical text and value hash, None where
        deleted), in one pass. `encoded` holds canonical encodings already made (by
        StateView.put) so they are not redone."""
        hasher = self.hasher
        if hasher is hashlib.sha256 and _native_hashes is not None:
            keys = list(changes)
            texts = [
                None if (v := changes[skey]) is None else encoded.get(skey) or canonical(v)
                for skey in keys
            ]
            done = _native_hashes(keys, texts)
            if done is not None:  # None: a key not a pair of str (the loop below says why)
                return self.tree.update(done[0]), done[1]
        hashed: list[tuple[bytes, bytes | None]] = []
        stored: Stored = {}
        for skey, v in changes.items():
            path = key_hash(*skey, hasher)
            if v is None:
                hashed.append((path, None))
                stored[skey] = None
                continue
            text = encoded.get(skey) or canonical(v)
            digest = hasher(text).digest()
            hashed.append((path, digest))
            stored[skey] = (text.decode(), digest.hex())
        return self.tree.update(hashed), stored

    def commit(self, changes: Mapping[StateKey, Any], tree: Tree) -> None:
        for skey, value in changes.items():
            if value is None:
                self.values.pop(skey, None)
            else:
                self.values[skey] = value
        self.tree = tree


class Overlay:
    """Writes buffered on top of a parent; `merge` pushes them down, dropping discards them.

    Beside each written value it keeps the value's canonical encoding when the writer made
    one: the state root hashes it and the block store keeps it, so a value is encoded once."""

    def __init__(self, parent: CommittedState | Overlay) -> None:
        self.parent = parent
        self.writes: dict[StateKey, Any] = {}
        self.encoded: dict[StateKey, bytes] = {}

    def get(self, namespace: str, key: str) -> Any:
        value = self.writes.get((namespace, key), _DELETED)
        if value is not _DELETED:
            return value
        return self.parent.get(namespace, key)

    def set(self, namespace: str, key: str, value: Any, encoded: bytes | None = None) -> None:
        skey = (namespace, key)
        self.writes[skey] = value
        if encoded is None:
            self.encoded.pop(skey, None)
        else:
            self.encoded[skey] = encoded

    def merge(self) -> None:
        if isinstance(self.parent, Overlay):
            parent = self.parent
            parent.writes.update(self.writes)
            for skey in self.writes:
                if skey in self.encoded:
                    parent.encoded[skey] = self.encoded[skey]
                else:
                    parent.encoded.pop(skey, None)
        else:
            raise TypeError("the committed state is changed through commit(), not merge()")

    def items(self) -> Iterator[tuple[StateKey, Any]]:
        return iter(self.writes.items())


class StateView:
    """What a contract sees: its own namespace to write, every namespace to read."""

    def __init__(self, overlay: Overlay, namespace: str, *, privileged: bool = False) -> None:
        self._overlay = overlay
        self.namespace = namespace
        self._privileged = privileged

    def get(self, key: str, default: Any = None) -> Any:
        value = self._overlay.get(self.namespace, key)
        return default if value is None else value

    def put(self, key: str, value: Any, *, encoded: bytes | None = None) -> None:
        """Write a JSON value; it is encoded now, so the caller must not change it afterwards.
        `encoded`: the value's canonical bytes where the contract wrote them itself (they must
        be exactly canonical(value), and the value what they decode to; None encodes here).
        Taken from the chain's own (system) contracts only: bytes that differ from the value
        would have the state root commit to one value and memory hold another."""
        # Verify the key and value stay within the bounds every node enforces
        if not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
            raise ContractError("bad_key", f"state key must be 1-{MAX_KEY_CHARS} printable chars")
        if value is None:
            raise ContractError("bad_value", "use delete() to remove a key")
        if encoded is None:
            encoded, value = canonical_value(value)
        elif not self._privileged:
            raise ContractError(
                "bad_value", f"contract {self.namespace} may not give a value's encoding itself"
            )
        if len(encoded) > MAX_VALUE_BYTES:
            raise ContractError("value_too_large", f"state value over {MAX_VALUE_BYTES} bytes")
        self._overlay.set(self.namespace, key, value, encoded)

    def delete(self, key: str) -> None:
        self._overlay.set(self.namespace, key, None)

    def read(self, namespace: str, key: str, default: Any = None) -> Any:
        value = self._overlay.get(namespace, key)
        return default if value is None else value

    def for_contract(self, namespace: str) -> StateView:
        """An unprivileged view of another namespace, for a contract that governance invokes."""
        if not self._privileged:
            raise ContractError(
                "forbidden", f"contract {self.namespace} may not invoke {namespace}"
            )
        return StateView(self._overlay, namespace)

    def other(self, namespace: str) -> StateView:
        """A writable view of another namespace: system contracts only (governance actions)."""
        if not self._privileged:
            raise ContractError("forbidden", f"contract {self.namespace} may not write {namespace}")
        return StateView(self._overlay, namespace, privileged=True)
