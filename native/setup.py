"""The C extensions, each optional: without a C compiler or OpenSSL's headers the package installs
without them: chain.smt runs its Python tree (same roots, slower) and chain.crypto checks
signatures one PyNaCl call at a time (same answers, the GIL retaken per signature), with
chain.zip215's Python reference deciding what libsodium refuses (milliseconds a forgery: a node
warns of it at start), chain.encoding writes canonical JSON in Python (same bytes), and
chain.merkle and chain.state hash a block's leaves and state keys in Python (same hashes)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "smartcity_native._smt",
            sources=["src/smartcity_native/_smt.c"],
            libraries=["crypto"],
            extra_compile_args=["-O2", "-pthread"],
            extra_link_args=["-pthread"],
            optional=True,
        ),
        # Ed25519 batch verification (chain.zip215 is its reference); OpenSSL's SHA-512 and BIGNUM
        Extension(
            "smartcity_native._ed25519",
            sources=["src/smartcity_native/_ed25519.c"],
            libraries=["crypto"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
        # Links nothing: it calls the libsodium PyNaCl ships, whose address chain.crypto hands in
        Extension(
            "smartcity_native._sigs",
            sources=["src/smartcity_native/_sigs.c"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
        # A block's SHA-256 Merkle roots and state-key hashes with the GIL released (chain.merkle's
        # and chain.state's fast paths); OpenSSL's SHA-256
        Extension(
            "smartcity_native._hashes",
            sources=["src/smartcity_native/_hashes.c"],
            libraries=["crypto"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
        # RFC 8785 canonical JSON of plain values (chain.encoding's fast path); links nothing
        Extension(
            "smartcity_native._canon",
            sources=["src/smartcity_native/_canon.c"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
    ]
)
