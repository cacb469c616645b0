"""Zero-knowledge predicates, free of the service: no database, no chain, no HTTP.

    bn254  G1 arithmetic of the BN254 curve: independent generators, encoding, fixed-base tables
    zkp    Pedersen commitments and the predicates "age is at least N", "resident of this city"

Only the package's errors (services.identity.errors) come from outside it; the import contract
identity-pure in pyproject.toml keeps it that way. Nothing is imported here, so naming one
module does not load py_ecc.
"""
