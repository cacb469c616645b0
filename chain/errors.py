"""The chain's one exception root and its branches.

ChainError
├── EncodingError           a value cannot be canonicalised or parsed
├── TxRejected              refused at the door (has a stable `code`)
├── ContractError           a transaction failed during execution (recorded in its receipt)
├── ProofError              a proof bundle does not verify
├── StorageError            the block store failed or is inconsistent
├── GenesisError            the genesis file is invalid or does not match installed code
├── ClientError             the SDK could not complete a call (transport or API error)
├── AuthError               a bearer token is refused (chain.auth)
├── InvalidBlock            a proposed block breaks a rule every honest node enforces (chain.ledger)
├── NotReady                a readiness check failed (chain.observability)
├── SecretError             a password file is not named or cannot be read (chain.secretfile)
├── CryptoSuiteError        a crypto suite's operation failed (chain.suites.errors)
│   └── SuiteUnavailable    the named suite does not exist or cannot run here
└── LinkRefused             a peer's link certificate is not of the key expected
                            (chain.consensus.tls; a ConnectionError too)

Defined beside the code that raises them, they are all ChainErrors; the simulator's `Failure`
(chain.sim) is a test verdict, an AssertionError, not an error of the chain.
"""

from __future__ import annotations


class ChainError(Exception):
    """Root of every error the chain package raises."""


class EncodingError(ChainError):
    """A value cannot be canonicalised, or a hex/base64 field is malformed."""


class TxRejected(ChainError):
    """A transaction refused before it reaches a block; `code` is stable for clients."""

    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class ContractError(ChainError):
    """A contract refused a transaction; the message goes into the failed receipt."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ProofError(ChainError):
    """A proof bundle or one of its parts does not verify."""


class StorageError(ChainError):
    """The block store cannot be read or written consistently."""


class GenesisError(ChainError):
    """The genesis document is invalid, or the installed contract code does not match it."""


class ClientError(ChainError):
    """The SDK could not complete a call; `status` and `code` are the node's when it answered."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
