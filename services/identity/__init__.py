"""services/identity: DIDs, verifiable credentials, revocation, zero-knowledge predicates.

The service's skeleton is the other services' (docs/architecture.md): app, api, schemas,
models, service/ (one module per feature), contract, errors, chain (with block_feed, the
chain's committed blocks followed in one thread, and block_cache, its reads kept until the next
block), runtime (with vault, the personal fields' encryption at rest, and status_mirror, the
status lists kept current with the chain's blocks), verification/ (what a verifier checks).
Its pure code, free of the chain and the service, is in one subpackage per concern:

    credentials   VC-JOSE, VC-COSE, SD-JWT, the VC data model, compact JWS, disclosures,
                  public keys, base64url and status list bitstrings
    proofs        the BN254 group and the zero-knowledge predicates (age, residency)

The names below are the package's public helpers for tests, benches and tools that build or
take apart credentials by hand: the credential formats (`sd_jwt`, `vc_jose`, `vc_cose`,
`status_list`), the proofs (`zkp`, and `bn254`, the group they work in), compact JWS,
base64url, the VC data model's envelope and SD-JWT disclosures. Import them from here. They
load on first use (PEP 562), so importing any module of the package (e.g. its CLI for
`--help`) does not load jwcrypto.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.common.lazy import lazy_exports

if TYPE_CHECKING:
    from services.identity.credentials import sd_jwt as sd_jwt
    from services.identity.credentials import status_list as status_list
    from services.identity.credentials import vc_cose as vc_cose
    from services.identity.credentials import vc_jose as vc_jose
    from services.identity.credentials.b64 import b64url_decode, b64url_encode
    from services.identity.credentials.disclosures import (
        digest_of,
        make_disclosable,
        make_disclosure,
    )
    from services.identity.credentials.jose import parse_compact, parse_json_object, sign_compact
    from services.identity.credentials.vcdm import VC_CONTEXT_V2, envelope
    from services.identity.proofs import bn254 as bn254
    from services.identity.proofs import zkp as zkp

_CREDENTIALS = "services.identity.credentials"
_PROOFS = "services.identity.proofs"
# public name -> (module, its name there); a name of None is the module itself
_EXPORTS: dict[str, tuple[str, str | None]] = {
    "VC_CONTEXT_V2": (f"{_CREDENTIALS}.vcdm", "VC_CONTEXT_V2"),
    "b64url_decode": (f"{_CREDENTIALS}.b64", "b64url_decode"),
    "b64url_encode": (f"{_CREDENTIALS}.b64", "b64url_encode"),
    "bn254": (f"{_PROOFS}.bn254", None),
    "digest_of": (f"{_CREDENTIALS}.disclosures", "digest_of"),
    "envelope": (f"{_CREDENTIALS}.vcdm", "envelope"),
    "make_disclosable": (f"{_CREDENTIALS}.disclosures", "make_disclosable"),
    "make_disclosure": (f"{_CREDENTIALS}.disclosures", "make_disclosure"),
    "parse_compact": (f"{_CREDENTIALS}.jose", "parse_compact"),
    "parse_json_object": (f"{_CREDENTIALS}.jose", "parse_json_object"),
    "sd_jwt": (f"{_CREDENTIALS}.sd_jwt", None),
    "sign_compact": (f"{_CREDENTIALS}.jose", "sign_compact"),
    "status_list": (f"{_CREDENTIALS}.status_list", None),
    "vc_cose": (f"{_CREDENTIALS}.vc_cose", None),
    "vc_jose": (f"{_CREDENTIALS}.vc_jose", None),
    "zkp": (f"{_PROOFS}.zkp", None),
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
    "sd_jwt",
    "sign_compact",
    "status_list",
    "vc_cose",
    "vc_jose",
    "zkp",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
