"""The C extension, optional: without a C compiler or OpenSSL's headers the package installs
without it and chain.smt runs its Python tree (same roots, slower)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "smartcity_native._smt",
            sources=["src/smartcity_native/_smt.c"],
            libraries=["crypto"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
