"""SD-JWT disclosures (RFC 9901): make claims disclosable, and rebuild claims from disclosures."""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chain.json_types import JsonObject
from services.identity.credentials.jose import (
    b64url_decode,
    b64url_encode,
    json_bytes,
    load_json,
)
from services.identity.errors import (
    DuplicateDigest,
    DuplicateDisclosure,
    InvalidDisclosure,
    MalformedToken,
    UndisclosableClaim,
    UnreferencedDisclosure,
)

SD_ALG = "sha-256"
PathPart = str | int
_PATH_PART = re.compile(r"([^.\[\]]+)((?:\[\d+\])*)")


@dataclass(frozen=True)
class Disclosure:
    """One salted disclosure: `[salt, name, value]` for a property, `[salt, value]` for an item."""

    salt: str
    name: str | None
    value: Any
    encoded: str

    @property
    def digest(self) -> str:
        """base64url(sha-256(ASCII of the encoded disclosure)), the value placed in `_sd`."""
        return digest_of(self.encoded)


def digest_of(encoded: str) -> str:
    """The sha-256 digest of an encoded disclosure as SD-JWT writes it."""
    return b64url_encode(hashlib.sha256(encoded.encode("ascii")).digest())


def make_disclosure(name: str | None, value: Any, salt: str | None = None) -> Disclosure:
    """Create a disclosure with a fresh 128-bit salt."""
    salt = b64url_encode(secrets.token_bytes(16)) if salt is None else salt
    array = [salt, value] if name is None else [salt, name, value]
    return Disclosure(salt=salt, name=name, value=value, encoded=b64url_encode(json_bytes(array)))


def decode_disclosure(encoded: str) -> Disclosure:
    """Parse an encoded disclosure, rejecting anything that is not a well-formed array."""
    try:
        array = load_json(b64url_decode(encoded), "a disclosure")
    except MalformedToken as exc:
        raise InvalidDisclosure(f"a disclosure is not base64url JSON: {exc}") from exc
    if not isinstance(array, list) or len(array) not in (2, 3) or not isinstance(array[0], str):
        raise InvalidDisclosure("a disclosure must be [salt, value] or [salt, name, value]")
    if len(array) == 2:
        return Disclosure(salt=array[0], name=None, value=array[1], encoded=encoded)
    if not isinstance(array[1], str) or array[1] in ("_sd", "..."):
        raise InvalidDisclosure("a disclosure's claim name must be a string other than _sd/...")
    return Disclosure(salt=array[0], name=array[1], value=array[2], encoded=encoded)


def parse_path(path: str) -> list[PathPart]:
    """Parse `a.b[0].c` into ['a', 'b', 0, 'c']."""
    return list(_parsed(path))


@functools.lru_cache(maxsize=1024)
def _parsed(path: str) -> tuple[PathPart, ...]:
    """parse_path, kept: an issuer discloses the same few paths in every credential (the
    parse was a quarter of making four disclosures)."""
    parts: list[PathPart] = []
    for segment in path.split("."):
        match = _PATH_PART.fullmatch(segment)
        if match is None:
            raise InvalidDisclosure(f"bad disclosure path {path!r}")
        parts.append(match.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    return tuple(parts)


def _decoy() -> str:
    return b64url_encode(hashlib.sha256(secrets.token_bytes(32)).digest())


def make_disclosable(
    claims: Mapping[str, Any],
    paths: Iterable[str],
    *,
    reserved: frozenset[str] = frozenset(),
    decoys: int = 0,
) -> tuple[JsonObject, list[Disclosure]]:
    """Replace each claim at `paths` by a digest; deepest first so nesting works."""
    payload: JsonObject = {name: _copy(value) for name, value in claims.items()}
    parsed = sorted((_parsed(p) for p in set(paths)), key=len, reverse=True)
    disclosures: list[Disclosure] = []
    for parts in parsed:
        if len(parts) == 1 and parts[0] in reserved:
            raise UndisclosableClaim(f"{parts[0]} must stay visible")
        parent = _walk(payload, parts[:-1])
        disclosures.append(_replace(parent, parts[-1], decoys))
    return payload, disclosures


def _copy(value: Any) -> Any:
    """A copy of a JSON value's objects and arrays (2x cheaper than copy.deepcopy)."""
    if isinstance(value, dict):
        return {name: _copy(member) for name, member in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _walk(node: Any, parts: Sequence[PathPart]) -> Any:
    for part in parts:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError) as exc:
            raise InvalidDisclosure(f"no claim at {part!r}") from exc
    return node


def _replace(parent: Any, last: PathPart, decoys: int) -> Disclosure:
    # Deepest paths come first, so an object's `_sd` is complete before an outer disclosure
    # captures it; sorting hides the original claim order.
    if isinstance(last, int):
        if not isinstance(parent, list) or not 0 <= last < len(parent):
            raise InvalidDisclosure(f"no array element {last}")
        disclosure = make_disclosure(None, parent[last])
        parent[last] = {"...": disclosure.digest}
        return disclosure
    if not isinstance(parent, dict) or last not in parent:
        raise InvalidDisclosure(f"no claim {last!r}")
    if last in ("_sd", "...", "_sd_alg"):
        raise UndisclosableClaim(f"{last} cannot be disclosed")
    disclosure = make_disclosure(last, parent.pop(last))
    if "_sd" not in parent:
        parent["_sd"] = [_decoy() for _ in range(decoys)]
    parent["_sd"] = sorted([*parent["_sd"], disclosure.digest])
    return disclosure


@dataclass
class _Rebuild:
    by_digest: dict[str, Disclosure]
    seen: set[str]
    used: dict[str, tuple[PathPart, ...]]


def _seen(state: _Rebuild, digest: Any) -> Disclosure | None:
    if not isinstance(digest, str):
        raise InvalidDisclosure("a digest must be a string")
    # Verify no digest appears twice in the payload (or in disclosed values)
    if digest in state.seen:
        raise DuplicateDigest(f"digest {digest} appears more than once")
    state.seen.add(digest)
    return state.by_digest.get(digest)


def _rebuild(node: Any, state: _Rebuild, path: tuple[PathPart, ...]) -> Any:
    if isinstance(node, list):
        return _rebuild_list(node, state, path)
    if not isinstance(node, dict):
        return node
    out = {k: _rebuild(v, state, (*path, k)) for k, v in node.items() if k != "_sd"}
    digests = node.get("_sd", [])
    if not isinstance(digests, list):
        raise InvalidDisclosure("_sd must be an array")
    for digest in digests:
        disclosure = _seen(state, digest)
        if disclosure is None:
            continue  # withheld or decoy
        if disclosure.name is None or disclosure.name in out:
            raise InvalidDisclosure("a disclosure does not fit the object its digest is in")
        state.used[digest] = (*path, disclosure.name)
        out[disclosure.name] = _rebuild(disclosure.value, state, (*path, disclosure.name))
    return out


def _rebuild_list(node: list[Any], state: _Rebuild, path: tuple[PathPart, ...]) -> list[Any]:
    out: list[Any] = []
    for index, item in enumerate(node):
        if isinstance(item, dict) and list(item) == ["..."]:
            disclosure = _seen(state, item["..."])
            if disclosure is None:
                continue
            if disclosure.name is not None:
                raise InvalidDisclosure("an object-property disclosure sits in an array")
            state.used[item["..."]] = (*path, index)
            out.append(_rebuild(disclosure.value, state, (*path, index)))
        else:
            out.append(_rebuild(item, state, (*path, index)))
    return out


def apply_disclosures(
    payload: Mapping[str, Any], disclosures: Iterable[Disclosure]
) -> tuple[JsonObject, dict[str, tuple[PathPart, ...]]]:
    """Rebuild the claims; every disclosure must be referenced exactly once.

    Returns the claims and, per used digest, the path of the claim it disclosed.
    """
    alg = payload.get("_sd_alg", SD_ALG)
    if alg != SD_ALG:
        raise InvalidDisclosure(f"unsupported _sd_alg {alg!r}")
    by_digest: dict[str, Disclosure] = {}
    for disclosure in disclosures:
        # Verify the same disclosure is not presented twice
        if disclosure.digest in by_digest:
            raise DuplicateDisclosure("a disclosure is presented twice")
        by_digest[disclosure.digest] = disclosure
    state = _Rebuild(by_digest=by_digest, seen=set(), used={})
    body = {k: v for k, v in payload.items() if k != "_sd_alg"}
    try:
        claims = _rebuild(body, state, ())
    except RecursionError as exc:
        raise InvalidDisclosure("disclosures nest inside each other too deeply") from exc
    unused = set(by_digest) - set(state.used)
    if unused:
        raise UnreferencedDisclosure(f"{len(unused)} disclosure(s) not referenced by the payload")
    return claims, state.used


def format_path(parts: Iterable[PathPart]) -> str:
    """Inverse of parse_path."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text
