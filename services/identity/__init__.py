"""services/identity: DIDs, verifiable credentials, revocation, zero-knowledge predicates.

The names below are the package's public helpers for tests, benches and tools that build or
take apart tokens by hand: compact JWS (`_jose`), base64url (`_b64`), the VC data model's
envelope (`_vcdm`), SD-JWT disclosures (`_disclosures`) and the BN254 group the
zero-knowledge proofs work in (`bn254`, the module `_bn254`). Import them from here, never from
the private modules. They load on first use (PEP 562), so importing any module of the package
(e.g. its CLI for `--help`) does not load jwcrypto.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.identity import _bn254 as bn254
    from services.identity._b64 import b64url_decode, b64url_encode
    from services.identity._disclosures import digest_of, make_disclosable, make_disclosure
    from services.identity._jose import parse_compact, parse_json_object, sign_compact
    from services.identity._vcdm import VC_CONTEXT_V2, envelope

# public name -> the private module that defines it ("bn254" is that module itself)
_EXPORTS = {
    "VC_CONTEXT_V2": "services.identity._vcdm",
    "bn254": "services.identity._bn254",
    "b64url_decode": "services.identity._b64",
    "b64url_encode": "services.identity._b64",
    "digest_of": "services.identity._disclosures",
    "envelope": "services.identity._vcdm",
    "make_disclosable": "services.identity._disclosures",
    "make_disclosure": "services.identity._disclosures",
    "parse_compact": "services.identity._jose",
    "parse_json_object": "services.identity._jose",
    "sign_compact": "services.identity._jose",
}

__all__ = [
    "VC_CONTEXT_V2",
    "b64url_decode",
    "b64url_encode",
    "bn254",
    "digest_of",
    "envelope",
    "make_disclosable",
    "make_disclosure",
    "parse_compact",
    "parse_json_object",
    "sign_compact",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    found = importlib.import_module(module)
    value = found if name == "bn254" else getattr(found, name)
    globals()[name] = value  # resolved once
    return value
