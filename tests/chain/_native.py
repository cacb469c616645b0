"""Whether this machine could build smartcity_native's C extensions: a test of an extension
skips only where it could not (no C compiler, or none that finds OpenSSL's headers for the two
that use them), and fails where it could have been built and was not (a broken build must not
pass as a skip)."""

from __future__ import annotations

import functools
import importlib
import shutil
import subprocess
import sysconfig
from types import ModuleType

import pytest


@functools.cache
def c_toolchain(*, openssl: bool) -> bool:
    """A C compiler (that finds OpenSSL's headers, with `openssl`): what `make install` needs."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return False
    if not openssl:
        return True
    probe = subprocess.run(
        [compiler, "-fsyntax-only", "-x", "c", "-"],
        input="#include <openssl/sha.h>\n#include <openssl/bn.h>\n",
        capture_output=True,
        text=True,
    )
    return probe.returncode == 0


def fail_if_buildable(built: bool, module: str, *, openssl: bool) -> None:
    """Raise (failing the test module) where `module` is missing but could have been built."""
    if not built and c_toolchain(openssl=openssl):
        raise ImportError(f"{module} is not installed although this machine could build it")


def needs_extension(
    built: bool, module: str, *, openssl: bool, tests: str, otherwise: str
) -> pytest.MarkDecorator:
    """The mark for the tests of `module` itself: it fails the test module where the extension
    could have been built and was not, and skips those tests only where this machine cannot
    build it, saying what they check (`tests`) and what covers the rest (`otherwise`)."""
    fail_if_buildable(built, module, openssl=openssl)
    needs = "C compiler with OpenSSL's headers" if openssl else "C compiler"
    install = "gcc and libssl-dev" if openssl else "gcc"
    return pytest.mark.skipif(
        not built,
        reason=f"{tests}, and this machine has no {needs} to build {module} (the module fails"
        f" instead where one exists); {otherwise}. Install {install} and run `make install`"
        " to test it",
    )


def native_module_or_skip(module: str, *, openssl: bool, tests: str, otherwise: str) -> ModuleType:
    """`module` imported for a test module that tests it alone: the test module fails where the
    extension could have been built and was not, and is skipped only where this machine cannot
    build it, saying what it checks (`tests`) and what covers the rest (`otherwise`)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        if c_toolchain(openssl=openssl):  # it could have been built: a broken build must not pass
            raise
    needs = "C compiler with OpenSSL's headers" if openssl else "C compiler"
    install = "gcc and libssl-dev" if openssl else "gcc"
    pytest.skip(
        f"{tests}, and this machine has no {needs} to build {module}; {otherwise}. Install"
        f" {install} and run `make install` to test it",
        allow_module_level=True,
    )
