"""The crypto suites' errors, a branch of the chain's tree (chain/errors.py).

ChainError
├── EncodingError           malformed key material: a key file, a key's bytes (chain/errors.py)
└── CryptoSuiteError        a suite cannot do what was asked: OpenSSL failed, a key of another
    │                       suite, a sealed value that does not open
    └── SuiteUnavailable    an unknown suite name, or a suite whose library is missing
"""

from __future__ import annotations

from chain.errors import ChainError


class CryptoSuiteError(ChainError):
    """A suite operation failed; a third-party library's error is its `__cause__` or message."""


class SuiteUnavailable(CryptoSuiteError):
    """The named suite does not exist, or cannot run here (says what to install)."""
