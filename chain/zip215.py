"""Ed25519 signatures under ZIP-215's rules: one answer whether checked alone or in a batch.

The chain's rule for an Ed25519 signature (R, S) of a message M by a key A (docs/protocol.md
section 14 item 1): S is below the group order L; A and R decode as points of the curve, as ZIP-215
decodes them (a y of p or more is taken mod p, the sign of an x of 0 is ignored); and

    [8][S]B = [8]R + [8][k]A,    k = SHA-512(R || A || M) mod L.

This is the cofactored equation, which a random linear combination of many signatures checks
exactly: a batch holds if and only if each of its signatures does, except with a probability
of about 2^-128 over the weights, drawn afresh for each batch. libsodium's single check
(cofactorless, canonical encodings only, no point of small order) accepts a subset of it, so
`chain.crypto` asks libsodium first and this module only for what libsodium refuses, and
checks whole batches here: validators that check one way and validators that check the other
agree on every signature, a forged one included.

The arithmetic of a batch is one multi-scalar multiplication, in C (`smartcity_native._ed25519`)
where that extension is built. The functions below in Python ints are its reference: the tests
compare the two, and a node without the extension uses them (slowly, and only for signatures
libsodium refuses, since `batches_in_c` is False there).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import Any

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493  # the prime order of the base point
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
BASE = bytes.fromhex("58" + "66" * 31)
WEIGHT_BYTES = 16  # a batch's random weights are 128-bit

Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T)
IDENTITY: Point = (0, 1, 1, 0)


def decode(s: bytes) -> Point | None:
    """The point `s` encodes as ZIP-215 reads it, or None where it encodes none."""
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little") & ((1 << 255) - 1)
    sign = s[31] >> 7
    y %= P  # a non-canonical y (p or more) stands for y - p
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    if v * x * x % P != u:
        if v * x * x % P != -u % P:
            return None
        x = x * SQRT_M1 % P
    if x & 1 != sign:
        x = -x % P  # of x = 0, 0 again: that encoding is taken
    return (x, y, 1, x * y % P)


def point_add(p: Point, q: Point) -> Point:
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * D * t1 * t2 % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def scalar_multiply(k: int, p: Point) -> Point:
    out = IDENTITY
    while k:
        if k & 1:
            out = point_add(out, p)
        p = point_add(p, p)
        k >>= 1
    return out


def _negate(p: Point) -> Point:
    x, y, z, t = p
    return (-x % P, y, z, -t % P)


def _is_identity(p: Point) -> bool:
    x, y, z, _ = p
    return x % P == 0 and (y - z) % P == 0


def _base_point() -> Point:
    point = decode(BASE)
    if point is None:  # a fault in decode itself: nothing here could be checked
        raise ImportError("the Ed25519 base point does not decode")
    return point


_BASE_POINT = _base_point()  # decoded once: every reference check multiplies it


def cofactored_zero_reference(b: int, points: Sequence[bytes], scalars: Sequence[int]) -> bool:
    """Whether [8]([b]B - sum [s_j]P_j) is the identity; False where a point does not decode."""
    total = scalar_multiply(b, _BASE_POINT)
    for encoded, scalar in zip(points, scalars, strict=True):
        point = decode(encoded)
        if point is None:
            return False
        total = point_add(total, _negate(scalar_multiply(scalar, point)))
    return _is_identity(scalar_multiply(8, total))


def _native() -> Any:
    try:
        from smartcity_native import _ed25519
    except ImportError:  # not built: the reference answers, slowly
        return None
    return _ed25519


_c = _native()
batches_in_c = _c is not None


def challenge(r: bytes, key: bytes, message: bytes) -> int:
    """k = SHA-512(R || A || M) mod L, as RFC 8032 defines it."""
    return int.from_bytes(hashlib.sha512(r + key + message).digest(), "little") % L


def holds(key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether `signature` (64 bytes) of `message` by `key` (32 bytes) meets the rule."""
    return batch_holds([(key, message, signature)], weights=bytes(WEIGHT_BYTES))


def batch_holds(
    items: Sequence[tuple[bytes, bytes, bytes]], *, weights: bytes | None = None
) -> bool:
    """Whether every (key, message, signature) meets the rule, in one multiplication:

        [8]( [sum z_i S_i]B - sum_i [z_i]R_i - sum_A [sum_{i by A} z_i k_i]A ) = 0

    with z_i = 1 + a random 128-bit weight (one term per distinct key, so the few keys that
    sign most transactions cost one term each). False says some item fails, not which, or
    that an item is not plain bytes of the right lengths; an empty batch holds. `weights` (16
    bytes an item, little-endian) are drawn here unless given: only tests give them, since
    weights an attacker knows let forgeries cancel out; all zeros make z = 1, the single check
    of one item."""
    if weights is None:
        weights = secrets.token_bytes(WEIGHT_BYTES * len(items))
    elif len(weights) != WEIGHT_BYTES * len(items):
        raise ValueError(f"{len(items)} items need {WEIGHT_BYTES * len(items)} bytes of weights")
    if not all(
        type(key) is bytes
        and type(message) is bytes
        and type(signature) is bytes
        and len(key) == 32
        and len(signature) == 64
        for key, message, signature in items
    ):
        return False
    if _c is not None:
        keys = [key for key, _, _ in items]
        messages = [message for _, message, _ in items]
        signatures = [signature for _, _, signature in items]
        return bool(_c.batch_holds(keys, messages, signatures, weights))
    return batch_holds_reference(items, weights)


def batch_holds_reference(items: Sequence[tuple[bytes, bytes, bytes]], weights: bytes) -> bool:
    """`batch_holds` in Python ints: the C's reference."""
    b = 0
    points: list[bytes] = []
    scalars: list[int] = []
    per_key: dict[bytes, int] = {}
    for i, (key, message, signature) in enumerate(items):
        r, s = signature[:32], int.from_bytes(signature[32:], "little")
        if s >= L:
            return False
        z = 1 + int.from_bytes(weights[WEIGHT_BYTES * i : WEIGHT_BYTES * (i + 1)], "little")
        b += z * s
        per_key[key] = per_key.get(key, 0) + z * challenge(r, key, message)
        points.append(r)
        scalars.append(z)
    points += per_key
    scalars += [s % L for s in per_key.values()]
    return cofactored_zero_reference(b % L, points, scalars)
