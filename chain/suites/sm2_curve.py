"""The SM2 recommended curve (GB/T 32918.5, sm2p256v1) in integer arithmetic.

Only what the suite checks before OpenSSL sees a value, and what OpenSSL 3.0 is not trusted
to do: is a public key on the curve, which public key a private scalar has, is a private
scalar usable, Z = SM3(ENTL || ID || a || b || G || P) for documentation and tests. Signing and
verifying stay in OpenSSL (sm2_openssl.py); this is not constant-time and never sees a
signature nonce.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.hazmat.primitives import hashes

P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0
# GB/T 32918.2 / GM/T 0009's default distinguishing identifier: every signature uses it
DEFAULT_ID = b"1234567812345678"
SCALAR_BYTES = 32
PUBLIC_KEY_BYTES = 65  # 04 || X || Y

Point = tuple[int, int]
_Jacobian = tuple[int, int, int]


def is_usable_private(d: int) -> bool:
    """A private scalar in [1, n-2]: SM2 signs with 1/(1+d), and OpenSSL 3.0 loops on n-1."""
    return 1 <= d <= N - 2


def is_on_curve(point: Point) -> bool:
    """Affine coordinates in [0, p) satisfying y^2 = x^3 + ax + b (cofactor 1: in the group)."""
    x, y = point
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x + A * x + B)) % P == 0


def decode_public(raw: bytes) -> Point | None:
    """The point of an uncompressed 65-byte key `04 || X || Y`, or None if not a usable key."""
    if len(raw) != PUBLIC_KEY_BYTES or raw[0] != 0x04:
        return None
    point = (int.from_bytes(raw[1:33], "big"), int.from_bytes(raw[33:], "big"))
    return point if is_on_curve(point) else None


def encode_public(point: Point) -> bytes:
    return b"\x04" + point[0].to_bytes(SCALAR_BYTES, "big") + point[1].to_bytes(SCALAR_BYTES, "big")


def public_point(d: int) -> Point:
    """d*G, for a usable private scalar."""
    if not is_usable_private(d):
        raise ValueError("SM2 private scalar outside [1, n-2]")
    result: _Jacobian = (0, 1, 0)
    addend: _Jacobian = (GX, GY, 1)
    while d:
        if d & 1:
            result = _add(result, addend)
        addend = _double(addend)
        d >>= 1
    x, y, z = result
    z_inv = pow(z, -1, P)
    z_inv2 = z_inv * z_inv % P
    return x * z_inv2 % P, y * z_inv2 * z_inv % P


def _double(q: _Jacobian) -> _Jacobian:
    x, y, z = q
    if z == 0 or y == 0:
        return (0, 1, 0)
    yy = y * y % P
    s = 4 * x * yy % P
    zz = z * z % P
    m = (3 * x * x + A * zz * zz) % P
    x3 = (m * m - 2 * s) % P
    return x3, (m * (s - x3) - 8 * yy * yy) % P, 2 * y * z % P


def _add(q: _Jacobian, r: _Jacobian) -> _Jacobian:
    if q[2] == 0:
        return r
    if r[2] == 0:
        return q
    x1, y1, z1 = q
    x2, y2, z2 = r
    z1z1, z2z2 = z1 * z1 % P, z2 * z2 % P
    u1, u2 = x1 * z2z2 % P, x2 * z1z1 % P
    s1, s2 = y1 * z2 * z2z2 % P, y2 * z1 * z1z1 % P
    if u1 == u2:
        return _double(q) if s1 == s2 else (0, 1, 0)
    h, rr = (u2 - u1) % P, (s2 - s1) % P
    hh = h * h % P
    hhh = h * hh % P
    v = u1 * hh % P
    x3 = (rr * rr - hhh - 2 * v) % P
    return x3, (rr * (v - x3) - s1 * hhh) % P, h * z1 * z2 % P


def sm3_hasher(data: bytes = b"") -> Any:
    """SM3 as a hashlib constructor (`sm3_hasher(data).digest()`): the system OpenSSL's through
    hashlib where it has SM3, else `cryptography`'s behind the same two methods."""
    if _SM3_EMPTY is None:
        return _CryptographySm3(data)
    running = _SM3_EMPTY.copy()
    running.update(data)
    return running


class _CryptographySm3:
    def __init__(self, data: bytes) -> None:
        self._digest = sm3(data)

    def digest(self) -> bytes:
        return self._digest

    def hexdigest(self) -> str:
        return self._digest.hex()


def _hashlib_sm3() -> Any:
    try:
        return hashlib.new("sm3")
    except ValueError:  # an OpenSSL built without SM3
        return None


def sm3(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def z_value(public: Point, identifier: bytes = DEFAULT_ID) -> bytes:
    """Z_A = SM3(ENTL_A || ID_A || a || b || x_G || y_G || x_A || y_A) of GB/T 32918.2 5.5."""
    fields = (A, B, GX, GY, public[0], public[1])
    return sm3(
        (len(identifier) * 8).to_bytes(2, "big")
        + identifier
        + b"".join(v.to_bytes(SCALAR_BYTES, "big") for v in fields)
    )


_SM3_EMPTY = _hashlib_sm3()
