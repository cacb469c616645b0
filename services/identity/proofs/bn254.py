"""BN254 G1 arithmetic for the ZK predicates: independent generators, encoding, fast fixed-base."""

from __future__ import annotations

import hashlib
import secrets
import sys
from functools import cache
from typing import Any, TypeAlias

from py_ecc.fields import optimized_bn128_FQ as FQ
from py_ecc.optimized_bn128.optimized_curve import (
    Z1,
    add,
    curve_order,
    eq,
    field_modulus,
    multiply,
    neg,
)
from py_ecc.optimized_bn128.optimized_curve import b as CURVE_B
from py_ecc.optimized_bn128.optimized_curve import is_on_curve as _is_on_curve
from py_ecc.optimized_bn128.optimized_curve import normalize as _normalize

from services.identity.errors import InvalidProof

# Importing py_ecc raises the interpreter's recursion limit to 100,000 for good, and at that
# limit a deeply nested request body (100,000 '[') runs CPython's JSON decoder off the C stack:
# the whole process died (SIGSEGV) before any route checked a token. Nothing here recurses
# deeply (py_ecc's multiply recurses once a bit: 254 frames), so it goes back to CPython's default.
_RECURSION_LIMIT = 1000  # CPython's default, which the suite's other processes run at
if sys.getrecursionlimit() > _RECURSION_LIMIT:
    sys.setrecursionlimit(_RECURSION_LIMIT)

Point: TypeAlias = tuple[Any, Any, Any]  # Jacobian coordinates over FQ (py_ecc "optimized")
Q = int(curve_order)  # the group order: scalars live mod Q
P = int(field_modulus)
DOMAIN = b"smartcity/identity/zkp/v1"
_WINDOW_BITS = 4
_WINDOWS = (Q.bit_length() + _WINDOW_BITS - 1) // _WINDOW_BITS
IDENTITY: Point = Z1


def hash_to_curve(label: bytes) -> Point:
    """Try-and-increment: x = SHA-256(domain, label, counter) until x^3 + 3 is a square.

    The discrete log of the result to any other point is unknown to everyone, so two such
    points make Pedersen commitments binding. BN254 G1 has cofactor 1: any curve point is in G1.
    """
    for counter in range(1 << 16):
        digest = hashlib.sha256(DOMAIN + b"/hash-to-curve/" + label + counter.to_bytes(4, "big"))
        x = int.from_bytes(digest.digest(), "big") % P
        rhs = (pow(x, 3, P) + int(CURVE_B.n)) % P
        y = pow(rhs, (P + 1) // 4, P)  # P = 3 mod 4, so this is the square root when one exists
        if y * y % P == rhs:
            y = y if y % 2 == 0 else P - y  # pick the even root: one canonical point per label
            return (FQ(x), FQ(y), FQ(1))
    raise RuntimeError("hash_to_curve found no point")  # pragma: no cover - probability ~2^-65536


G: Point = hash_to_curve(b"G")
H: Point = hash_to_curve(b"H")


@cache
def _table(label: str) -> tuple[tuple[Point, ...], ...]:
    """Per window w, the multiples d * 16^w * base for d in 0..15 (built once per generator)."""
    base = {"G": G, "H": H}[label]
    rows = []
    for _ in range(_WINDOWS):
        row = [IDENTITY, base]
        for _ in range(2, 1 << _WINDOW_BITS):
            row.append(add(row[-1], base))
        rows.append(tuple(row))
        base = add(row[-1], base)
    return tuple(rows)


def mul_g(scalar: int) -> Point:
    """scalar * G using the fixed-base table."""
    return _fixed_mul("G", scalar)


def mul_h(scalar: int) -> Point:
    """scalar * H using the fixed-base table."""
    return _fixed_mul("H", scalar)


def _fixed_mul(label: str, scalar: int) -> Point:
    scalar %= Q
    acc = IDENTITY
    mask = (1 << _WINDOW_BITS) - 1
    for row in _table(label):
        digit = scalar & mask
        if digit:
            acc = add(acc, row[digit])
        scalar >>= _WINDOW_BITS
    return acc


def mul(point: Point, scalar: int) -> Point:
    """Variable-base scalar multiplication."""
    result: Point = multiply(point, scalar % Q)
    return result


def plus(*points: Point) -> Point:
    """Sum of points."""
    acc = IDENTITY
    for point in points:
        acc = add(acc, point)
    return acc


def minus(left: Point, right: Point) -> Point:
    """left - right."""
    result: Point = add(left, neg(right))
    return result


def same(left: Point, right: Point) -> bool:
    """Point equality across Jacobian representations."""
    return bool(eq(left, right))


def commit(value: int, blinding: int) -> Point:
    """Pedersen commitment value*G + blinding*H."""
    return add(mul_g(value), mul_h(blinding))


def random_scalar() -> int:
    """A uniformly random non-zero scalar."""
    return secrets.randbelow(Q - 1) + 1


def encode_point(point: Point) -> str:
    """Affine x||y as 128 hex characters; the identity is all zeros."""
    if same(point, IDENTITY):
        return "00" * 64
    x, y = _normalize(point)
    return int(x.n).to_bytes(32, "big").hex() + int(y.n).to_bytes(32, "big").hex()


def decode_point(text: Any) -> Point:
    """Parse encode_point's output; anything not on the curve is an InvalidProof."""
    if not isinstance(text, str) or len(text) != 128:
        raise InvalidProof("a point must be 128 hex characters")
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise InvalidProof("a point is not hex") from exc
    x, y = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    if x == 0 and y == 0:
        return IDENTITY
    if x >= P or y >= P:
        raise InvalidProof("a point coordinate is out of range")
    point = (FQ(x), FQ(y), FQ(1))
    if not _is_on_curve(point, CURVE_B):
        raise InvalidProof("a point is not on BN254")
    return point


def encode_scalar(value: int) -> str:
    """A scalar as 64 hex characters."""
    return (value % Q).to_bytes(32, "big").hex()


def decode_scalar(text: Any) -> int:
    """Parse a scalar; values outside [0, Q) are rejected rather than reduced."""
    if not isinstance(text, str) or len(text) != 64:
        raise InvalidProof("a scalar must be 64 hex characters")
    try:
        value = int(text, 16)
    except ValueError as exc:
        raise InvalidProof("a scalar is not hex") from exc
    if value >= Q:
        raise InvalidProof("a scalar is not reduced mod the group order")
    return value


def challenge(*parts: bytes) -> int:
    """Fiat-Shamir: SHA-512 over length-prefixed parts, reduced mod Q (negligible bias)."""
    hasher = hashlib.sha512(DOMAIN + b"/challenge")
    for part in parts:
        hasher.update(len(part).to_bytes(8, "big") + part)
    return int.from_bytes(hasher.digest(), "big") % Q
