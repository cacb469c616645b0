"""The C extensions, each optional: without a C compiler or OpenSSL's headers the package installs
without them: chain.smt runs its Python tree (same roots, slower) and chain.crypto checks
signatures one PyNaCl call at a time (same answers, the GIL retaken per signature), with
chain.zip215's Python reference deciding what libsodium refuses (milliseconds a forgery: a node
warns of it at start), chain.encoding writes canonical JSON in Python (same bytes), and
chain.merkle and chain.state hash a block's leaves and state keys in Python (same hashes)."""

from setuptools import Extension, setup


def _module(name: str, *, openssl: bool, threads: bool = False) -> Extension:
    """smartcity_native.NAME from src/smartcity_native/NAME.c, optional like every one here:
    linked with OpenSSL's libcrypto where it uses it, with pthreads where it starts threads."""
    return Extension(
        f"smartcity_native.{name}",
        sources=[f"src/smartcity_native/{name}.c"],
        libraries=["crypto"] if openssl else [],
        extra_compile_args=["-O2", *(["-pthread"] if threads else [])],
        extra_link_args=["-pthread"] if threads else [],
        optional=True,
    )


setup(
    ext_modules=[
        # The sparse Merkle tree under SHA-256 (chain.smt's hot path); a large update on 2 threads
        _module("_smt", openssl=True, threads=True),
        # Ed25519 batch verification (chain.zip215 is its reference); OpenSSL's SHA-512 and BIGNUM
        _module("_ed25519", openssl=True),
        # Links nothing: it calls the libsodium PyNaCl ships, whose address chain.crypto hands in
        _module("_sigs", openssl=False),
        # A block's SHA-256 Merkle roots and state-key hashes with the GIL released (chain.merkle's
        # and chain.state's fast paths); OpenSSL's SHA-256
        _module("_hashes", openssl=True),
        # RFC 8785 canonical JSON of plain values (chain.encoding's fast path); links nothing
        _module("_canon", openssl=False),
    ]
)
