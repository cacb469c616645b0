"""SM2 signatures with SM3 through the system OpenSSL 3 (`libcrypto.so.3`), by ctypes.

`cryptography` has no SM2 (pyca/cryptography#6857), so this binds the ~20 EVP calls it takes
(docs/sm-suite-evaluation.md). ctypes releases the GIL during each call, so a thread pool
verifies on every core; OpenSSL's error queue is per thread and is emptied around each call.
Callers (sm2_sm3.py) hand over only checked values: a private scalar in [1, n-2] always with
its public key, a public key on the curve, a strict DER signature. Every OpenSSL failure is a
CryptoSuiteError carrying OpenSSL's own messages.

SMARTCITY_LIBCRYPTO may name the library file (default `libcrypto.so.3`, then
`libcrypto.3.dylib`).
"""

from __future__ import annotations

import ctypes
import os
import threading
from types import SimpleNamespace
from typing import Any

from chain.suites.errors import CryptoSuiteError, SuiteUnavailable
from chain.suites.sm2_curve import (
    DEFAULT_ID,
    GX,
    GY,
    PUBLIC_KEY_BYTES,
    SCALAR_BYTES,
    encode_public,
)

_LIBRARY_NAMES = ("libcrypto.so.3", "libcrypto.3.dylib")
_INSTALL_HINT = (
    "the sm2-sm3 suite needs the system OpenSSL 3 library with SM2 enabled "
    "(Debian/Ubuntu: apt-get install libssl3; RHEL/Fedora builds leave SM2 out); "
    "SMARTCITY_LIBCRYPTO may name the library file"
)
# DER prefixes: SubjectPublicKeyInfo and SEC1 ECPrivateKey, both naming the SM2 curve
_SM2_OID = bytes.fromhex("06082a811ccf5501822d")
_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d0201") + _SM2_OID + bytes.fromhex("034200")
_SEC1_PREFIX = bytes.fromhex("307702010104") + bytes([SCALAR_BYTES])
_SIGNATURE_DER_MAX = 72

_void_p, _size_t, _int, _char_p = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_char_p
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "OpenSSL_version_num": (ctypes.c_ulong, []),
    "ERR_clear_error": (None, []),
    "ERR_get_error": (ctypes.c_ulong, []),
    "ERR_error_string_n": (None, [ctypes.c_ulong, _char_p, _size_t]),
    "EVP_MD_fetch": (_void_p, [_void_p, _char_p, _char_p]),
    "d2i_PUBKEY": (_void_p, [_void_p, ctypes.POINTER(_char_p), ctypes.c_long]),
    "d2i_AutoPrivateKey": (_void_p, [_void_p, ctypes.POINTER(_char_p), ctypes.c_long]),
    "EVP_PKEY_is_a": (_int, [_void_p, _char_p]),
    "EVP_PKEY_free": (None, [_void_p]),
    "EVP_MD_CTX_new": (_void_p, []),
    "EVP_MD_CTX_free": (None, [_void_p]),
    "EVP_MD_CTX_set_pkey_ctx": (None, [_void_p, _void_p]),
    "EVP_PKEY_CTX_new": (_void_p, [_void_p, _void_p]),
    "EVP_PKEY_CTX_free": (None, [_void_p]),
    "EVP_PKEY_CTX_set1_id": (_int, [_void_p, _char_p, _int]),
    "EVP_DigestSignInit": (_int, [_void_p, _void_p, _void_p, _void_p, _void_p]),
    "EVP_DigestVerifyInit": (_int, [_void_p, _void_p, _void_p, _void_p, _void_p]),
    "EVP_DigestSign": (_int, [_void_p, _char_p, ctypes.POINTER(_size_t), _char_p, _size_t]),
    "EVP_DigestVerify": (_int, [_void_p, _char_p, _size_t, _char_p, _size_t]),
}


class _Lib:
    """The bound functions of one loaded libcrypto, and its SM3 digest fetched once."""

    def __init__(self, cdll: ctypes.CDLL) -> None:
        functions = {}
        for name, (restype, argtypes) in _SIGNATURES.items():
            try:
                function = getattr(cdll, name)
            except AttributeError as exc:
                raise SuiteUnavailable(f"{_INSTALL_HINT} ({cdll._name} lacks {name})") from exc
            function.restype, function.argtypes = restype, argtypes
            functions[name] = function
        self.fn: Any = SimpleNamespace(**functions)
        # Verify it is OpenSSL 3 and offers SM3 (distributions may build without SM)
        if self.fn.OpenSSL_version_num() < 0x30000000:
            raise SuiteUnavailable(f"{_INSTALL_HINT} (found an OpenSSL before 3.0)")
        self.sm3: int = self.fn.EVP_MD_fetch(None, b"SM3", None)
        self.fn.ERR_clear_error()
        if not self.sm3:
            raise SuiteUnavailable(f"{_INSTALL_HINT} (this OpenSSL has no SM3)")


_lock = threading.Lock()
_loaded: _Lib | None = None


def load() -> _Lib:
    """The library, loaded once (SuiteUnavailable naming what to install when it cannot be)."""
    global _loaded
    with _lock:
        if _loaded is None:
            lib = _Lib(_open_cdll())
            # Verify this build knows SM2 keys (some distributions leave SM2 out)
            try:
                public_handle(lib, encode_public((GX, GY)))
            except CryptoSuiteError as exc:
                raise SuiteUnavailable(f"{_INSTALL_HINT} (cannot load an SM2 key: {exc})") from exc
            _loaded = lib
        return _loaded


def _open_cdll() -> ctypes.CDLL:
    override = os.environ.get("SMARTCITY_LIBCRYPTO")
    names = (override,) if override else _LIBRARY_NAMES
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise SuiteUnavailable(f"{_INSTALL_HINT} (tried {', '.join(names)})")


def _failure(lib: _Lib, what: str) -> CryptoSuiteError:
    """OpenSSL's queued errors of this thread as one CryptoSuiteError (the queue is emptied)."""
    messages = []
    while code := lib.fn.ERR_get_error():
        text = ctypes.create_string_buffer(256)
        lib.fn.ERR_error_string_n(code, text, len(text))
        messages.append(text.value.decode("ascii", "replace"))
    return CryptoSuiteError(f"OpenSSL {what} failed: {'; '.join(messages) or 'no reason given'}")


class Sm2Handle:
    """An OpenSSL EVP_PKEY of the SM2 curve, freed when the last reference goes."""

    __slots__ = ("lib", "pointer")

    def __init__(self, lib: _Lib, pointer: int) -> None:
        self.lib, self.pointer = lib, pointer

    def __del__(self) -> None:
        self.lib.fn.EVP_PKEY_free(self.pointer)


def _decode(lib: _Lib, der: bytes, decoder: str) -> Sm2Handle:
    lib.fn.ERR_clear_error()
    cursor = _char_p(der)
    pointer = getattr(lib.fn, decoder)(None, ctypes.byref(cursor), len(der))
    if not pointer:
        raise _failure(lib, f"{decoder} of an SM2 key")
    handle = Sm2Handle(lib, pointer)
    # Verify OpenSSL sees an SM2 key, not a generic EC key that would sign ECDSA
    if lib.fn.EVP_PKEY_is_a(pointer, b"SM2") != 1:
        raise CryptoSuiteError("OpenSSL decoded the key as another type than SM2")
    return handle


def public_handle(lib: _Lib, public: bytes) -> Sm2Handle:
    """A public key (65 bytes, checked on the curve by the caller)."""
    if len(public) != PUBLIC_KEY_BYTES:
        raise CryptoSuiteError(f"an SM2 public key is {PUBLIC_KEY_BYTES} bytes")
    return _decode(lib, _SPKI_PREFIX + public, "d2i_PUBKEY")


def private_handle(lib: _Lib, scalar: bytes, public: bytes) -> Sm2Handle:
    """A private key with its public part (OpenSSL 3.0 crashes signing without it)."""
    if len(scalar) != SCALAR_BYTES or len(public) != PUBLIC_KEY_BYTES:
        raise CryptoSuiteError(f"an SM2 key is {SCALAR_BYTES} + {PUBLIC_KEY_BYTES} bytes")
    der = _SEC1_PREFIX + scalar + b"\xa0\x0a" + _SM2_OID + b"\xa1\x44\x03\x42\x00" + public
    return _decode(lib, der, "d2i_AutoPrivateKey")


def _digest_context(key: Sm2Handle, *, signing: bool) -> tuple[int, int]:
    """An EVP_MD_CTX and its EVP_PKEY_CTX set up for SM2-with-SM3 under the default ID."""
    lib = key.lib
    md_ctx, pkey_ctx = lib.fn.EVP_MD_CTX_new(), lib.fn.EVP_PKEY_CTX_new(key.pointer, None)
    if not md_ctx or not pkey_ctx:
        lib.fn.EVP_MD_CTX_free(md_ctx)
        lib.fn.EVP_PKEY_CTX_free(pkey_ctx)
        raise _failure(lib, "context allocation")
    # The ID is always set: OpenSSL 3.0's default is empty, which no other implementation uses
    ok = lib.fn.EVP_PKEY_CTX_set1_id(pkey_ctx, DEFAULT_ID, len(DEFAULT_ID)) > 0
    lib.fn.EVP_MD_CTX_set_pkey_ctx(md_ctx, pkey_ctx)  # md_ctx does not take ownership
    init = lib.fn.EVP_DigestSignInit if signing else lib.fn.EVP_DigestVerifyInit
    if not ok or init(md_ctx, None, lib.sm3, None, key.pointer) != 1:
        lib.fn.EVP_MD_CTX_free(md_ctx)
        lib.fn.EVP_PKEY_CTX_free(pkey_ctx)
        raise _failure(lib, "SM2 signature set-up")
    return md_ctx, pkey_ctx


def sign_der(key: Sm2Handle, message: bytes) -> bytes:
    """OpenSSL's DER signature of `message` (SM3 over Z || message, random nonce)."""
    lib = key.lib
    lib.fn.ERR_clear_error()
    md_ctx, pkey_ctx = _digest_context(key, signing=True)
    try:
        out = ctypes.create_string_buffer(_SIGNATURE_DER_MAX)
        size = _size_t(_SIGNATURE_DER_MAX)
        if lib.fn.EVP_DigestSign(md_ctx, out, ctypes.byref(size), message, len(message)) != 1:
            raise _failure(lib, "SM2 signing")
        return out.raw[: size.value]
    finally:
        lib.fn.EVP_MD_CTX_free(md_ctx)
        lib.fn.EVP_PKEY_CTX_free(pkey_ctx)


def verify_der(key: Sm2Handle, message: bytes, der: bytes) -> bool:
    """True when OpenSSL accepts the DER signature; a refusal is False, never an error."""
    lib = key.lib
    lib.fn.ERR_clear_error()
    md_ctx, pkey_ctx = _digest_context(key, signing=False)
    try:
        return bool(lib.fn.EVP_DigestVerify(md_ctx, der, len(der), message, len(message)) == 1)
    finally:
        lib.fn.ERR_clear_error()
        lib.fn.EVP_MD_CTX_free(md_ctx)
        lib.fn.EVP_PKEY_CTX_free(pkey_ctx)
