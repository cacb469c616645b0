"""Canonical bytes and hashes: RFC 8785 JSON, SHA-256, strict lowercase hex."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import orjson
import rfc8785

from chain.errors import EncodingError
from chain.strict_json import unique_members

_HEX = re.compile(r"[0-9a-f]*")


SAFE_INT = 2**53 - 1
_dumps = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
).encode


def writes_plainly(value: Any) -> bool:
    """False for a number the C encoder writes otherwise than RFC 8785 (an integral float, one
    it writes with an exponent, NaN, an integer past 2^53 - 1); True for anything else."""
    if type(value) is float:
        return _plain_float(value) is value
    return type(value) is not int or -SAFE_INT <= value <= SAFE_INT


def canonical(value: Any) -> bytes:
    """RFC 8785 canonical JSON bytes of a JSON value (sorted keys, no whitespace, UTF-8)."""
    return _canonical(value)[0]


def canonical_value(value: Any) -> tuple[bytes, Any]:
    """The canonical bytes of a JSON value and the value as those bytes decode: the value
    itself when encoding normalised nothing in it, else the decoded bytes (an integral float
    such as 2.0 is written 2 and reads back as the integer, -0.0 as 0). What a node keeps in
    memory must be what it reads back after a restart."""
    encoded, unchanged = _canonical(value)
    return encoded, value if unchanged else json.loads(encoded)


def _canonical(value: Any) -> tuple[bytes, bool]:
    """The canonical bytes, and whether they decode to `value` unchanged."""
    if _native_encode is not None:
        # One pass in C for what the path below writes with orjson; what it declines (None)
        # goes that path, which writes or refuses it as it always has
        done = _native_encode(value)
        if done is not None:
            return done
    plain = _plain(value)
    if plain is not _NOT_PLAIN:
        # For values whose floats _plain made safe and whose keys sort the same by code point
        # as by UTF-16 unit, the C encoder writes exactly the RFC 8785 bytes (a property test
        # holds it to that); rfc8785 formats floats in Python, 20x slower on telemetry.
        # orjson writes them alike (every character, the plain floats: tests hold it to the C
        # encoder) 5-10x faster on a receipt's event or a transaction; what it refuses (a lone
        # surrogate, nesting past 254 levels) goes on as before. Its result is copied: orjson
        # shrinks a 1 KB buffer in place, and kept (state values, transactions) such buffers
        # cost the C heap 2.7 us each for a 64-character string, copied 0.2 us
        try:
            written = orjson.dumps(plain, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass
        else:
            return written.decode().encode(), plain is value
        try:
            return _dumps(plain).encode(), plain is value
        except UnicodeEncodeError:
            pass  # a lone surrogate: let rfc8785 refuse it with its own message
    try:
        return rfc8785.dumps(value), False
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise EncodingError(f"value cannot be canonicalised: {exc}") from exc


_NOT_PLAIN = object()

# The C writer (smartcity_native._canon); without a C compiler the Python path writes all
_native_encode: Callable[[Any], tuple[bytes, bool] | None] | None = None
with contextlib.suppress(ImportError):
    from smartcity_native._canon import encode as _native_encode
# Whether canonical() writes plain values in C: a caller's own writer for one fixed shape (a
# receipt's) is then slower than handing canonical() the whole value
NATIVE_WRITER = _native_encode is not None


def read_canonical_object(raw: bytes) -> dict[str, Any] | None:
    """The JSON object `raw` holds when `raw` is exactly its RFC 8785 bytes, read by orjson
    (several times faster than parsing and encoding again with json); None when it is not, or
    may not be: the caller then reads it the strict way, which names the fault.

    orjson's compact encoding with sorted keys equals RFC 8785's for a value that `_plain`
    leaves as it is (keys below U+D800 sort alike by code point and by UTF-16 unit; integers
    within 2^53; no integral float, no float outside the range where both write plain digits;
    strings escaped alike): such a value whose sorted encoding gives back `raw` has `raw` as
    its canonical form. A duplicate member, a lone surrogate or an integer past 2^64 never
    gives back `raw` or is refused by orjson."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:  # nesting past 1,024 levels included
        return None
    if _native_encode is not None and type(value) is dict:
        # The C writer declines what _plain would not leave as it is, and writes the rest as
        # orjson does: its bytes equal to `raw`, unchanged, is the same test in one pass
        done = _native_encode(value)
        return value if done is not None and done[1] and done[0] == raw else None
    if type(value) is not dict or _plain(value) is not value:
        return None
    try:
        if orjson.dumps(value, option=orjson.OPT_SORT_KEYS) != raw:
            return None
    except TypeError:  # orjson's JSONEncodeError: nothing orjson reads, but said for mypy
        return None
    return value


def _plain_float(value: float) -> Any:
    """A float as the C encoder writes it the RFC 8785 (ECMAScript) way, else _NOT_PLAIN.

    Both write the shortest round-trip digits; they differ only in that Python writes an
    integral float as `9.0` (ECMAScript `9`) and uses exponents outside 1e-4 <= |x| < 1e16
    (ECMAScript: outside 1e-6 <= |x| < 1e21).
    """
    if value.is_integer():
        # below 2^53 an integral float's shortest digits are the integer's own
        return int(value) if -SAFE_INT <= value <= SAFE_INT else _NOT_PLAIN
    return value if 1e-4 <= abs(value) < 1e16 else _NOT_PLAIN  # also NaN and infinities


def _plain(value: Any) -> Any:
    """The value with its floats made safe for the C encoder, or _NOT_PLAIN when some part
    (an unsafe int or float, a key beyond U+D7FF, a non-JSON type) needs rfc8785.

    The value itself comes back when nothing in it changes (no copy): most state values and
    receipts hold strings and small integers only, and are encoded on every node."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is dict:
        copy: dict[str, Any] | None = None
        for key, item in value.items():
            if type(key) is not str or not (key.isascii() or not key or max(key) < "\ud800"):
                return _NOT_PLAIN
            if type(item) is str or (type(item) is int and -SAFE_INT <= item <= SAFE_INT):
                continue
            plain = _plain(item)
            if plain is _NOT_PLAIN:
                return _NOT_PLAIN
            if plain is not item:
                if copy is None:
                    copy = dict(value)
                copy[key] = plain
        return value if copy is None else copy
    if kind is list:
        # The common case inline (a fractional float in range): telemetry has thousands
        items = [
            v
            if type(v) is str or (type(v) is float and 1e-4 <= abs(v) < 1e16 and not v.is_integer())
            else _plain(v)
            for v in value
        ]
        if any(v is _NOT_PLAIN for v in items):
            return _NOT_PLAIN
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if kind is int:
        return value if -SAFE_INT <= value <= SAFE_INT else _NOT_PLAIN
    if kind is float:
        return _plain_float(value)
    return _plain_subclass(value)


def _plain_subclass(value: Any) -> Any:
    """_plain for subclasses of the JSON types (enums, str and dict subclasses)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int):  # bool cannot be subclassed: these are int subclasses
        return value if -SAFE_INT <= value <= SAFE_INT else _NOT_PLAIN
    if isinstance(value, float):
        return _plain_float(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str) or (key and max(key) >= "\ud800"):
                return _NOT_PLAIN
            out[key] = plain = _plain(item)
            if plain is _NOT_PLAIN:
                return _NOT_PLAIN
        return out
    if isinstance(value, list):
        items = [_plain(v) for v in value]
        return _NOT_PLAIN if any(v is _NOT_PLAIN for v in items) else items
    return _NOT_PLAIN


def sha256(data: bytes) -> bytes:
    """SHA-256 digest."""
    return hashlib.sha256(data).digest()


def hash_json(value: Any) -> str:
    """Hex SHA-256 of the canonical JSON of a value."""
    return hashlib.sha256(canonical(value)).hexdigest()


def parse_json(data: bytes | str) -> Any:
    """Parse JSON, refusing duplicate keys and non-finite numbers."""

    def no_constants(name: str) -> Any:
        raise EncodingError(f"{name} is not valid JSON")

    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        if text.startswith("\ufeff"):
            raise EncodingError("JSON must be UTF-8 without a byte order mark")
        return json.loads(text, object_pairs_hook=unique_members, parse_constant=no_constants)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EncodingError(f"invalid JSON: {exc}") from exc
    except RecursionError as exc:
        raise EncodingError("invalid JSON: nested too deeply") from exc


def from_hex(value: object, size: int | None = None, *, field: str = "value") -> bytes:
    """Decode strict lowercase hex, optionally of an exact byte length."""
    if not isinstance(value, str) or len(value) % 2 or not _HEX.fullmatch(value):
        raise EncodingError(f"{field} must be lowercase hex")
    raw = bytes.fromhex(value)
    if size is not None and len(raw) != size:
        raise EncodingError(f"{field} must be {size} bytes, got {len(raw)}")
    return raw


def b64url(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_b64url(value: str, *, field: str = "value") -> bytes:
    """Decode unpadded base64url, refusing non-canonical input."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (ValueError, TypeError) as exc:
        raise EncodingError(f"{field} is not base64url") from exc
    if b64url(raw) != value:
        raise EncodingError(f"{field} is not canonical base64url")
    return raw
