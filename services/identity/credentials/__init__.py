"""Verifiable credentials, free of the service: no database, chain or HTTP (the service calls it).

    b64          base64url as JOSE and SD-JWT use it: no padding, strict alphabet
    keys         full validation of public JWKs, and the verifier for each key type
    jose         JWS compact signing and verification, errors translated at the boundary
    vcdm         the W3C VC Data Model 2.0 checks shared by the securing formats
    disclosures  SD-JWT disclosures: make claims disclosable, rebuild claims from them
    vc_jose      VCDM 2.0 credentials and presentations as JWS compact (vc+jwt, vp+jwt)
    sd_jwt       selective disclosure JWTs (RFC 9901) and key binding
    vc_cose      VCDM 2.0 credentials and presentations as COSE_Sign1 (vc+cose)
    status_list  W3C Bitstring Status List bitstrings (revocation, suspension)

Only the package's errors (services.identity.errors) and the JSON type (chain.json_types) come
from outside it; the import contract identity-pure in pyproject.toml keeps it that way. Nothing
is imported here, so naming one module loads neither jwcrypto nor cbor2.
"""
