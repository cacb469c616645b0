"""Zero-knowledge predicates on BN254: "age is at least N" and "is a resident of this city".

An issuer signs a Pedersen commitment C = v*G + r*H (G, H hashed to the curve, so nobody knows
log_G H) to the holder's birth date (days since 1970-01-01) or city code, and hands the opening
(v, r) to the holder. The holder then proves a predicate about v without revealing it:

- residency: C - code*G = r*H, shown by a Schnorr proof of knowledge of r to base H;
- age >= N: d = cutoff - v >= 0 where cutoff is the reference date minus N years. The verifier
  derives D = cutoff*G - C itself; the holder commits to each bit of d, proves each bit commitment
  opens to 0 or 1 (CDS OR-proofs) and the verifier checks sum 2^i * C_i = D, so d < 2^bits.

Every challenge is one Fiat-Shamir hash over the domain tag, the predicate, the statement, the
generators, the commitment, every first message, the verifier's nonce and context, so a proof
does not transfer to another statement, commitment or verifier challenge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import rfc8785

from services.identity.errors import (
    CommitmentMismatch,
    InvalidProof,
    PredicateNotSatisfied,
    ProofNonceMismatch,
    StatementMismatch,
)
from services.identity.proofs import bn254 as ec
from services.identity.proofs.bn254 import Point

EPOCH = date(1970, 1, 1)
AGE_BITS = 16  # d < 65,536 days (179 years): enough for any human age gap
AGE_PROOF = "AgeAtLeastProof"
RESIDENCY_PROOF = "ResidencyProof"


@dataclass(frozen=True)
class Opening:
    """The secret behind a commitment, kept by the holder."""

    value: int
    blinding: int


def commit(value: int, blinding: int | None = None) -> tuple[str, Opening]:
    """Commit to an integer; returns the encoded commitment (for the credential) and its opening."""
    opening = Opening(value=value, blinding=ec.random_scalar() if blinding is None else blinding)
    return ec.encode_point(ec.commit(opening.value, opening.blinding)), opening


def days_since_epoch(day: date) -> int:
    """A date as days since 1970-01-01 (negative before 1970), the committed birth date."""
    return (day - EPOCH).days


def age_cutoff(reference: date, min_age_years: int) -> date:
    """The latest birth date that is at least `min_age_years` old on `reference` (29 Feb -> 28)."""
    year = reference.year - min_age_years
    try:
        return reference.replace(year=year)
    except ValueError:
        return reference.replace(year=year, day=28)


def _context_bytes(nonce: str, context: str) -> list[bytes]:
    return [nonce.encode("utf-8"), context.encode("utf-8")]


def _statement_bytes(kind: str, statement: Mapping[str, Any]) -> bytes:
    return bytes(rfc8785.dumps({"predicate": kind, **statement}))


def _check_binding(
    proof: Mapping[str, Any],
    kind: str,
    statement: Mapping[str, Any],
    commitment: str,
    nonce: str,
    context: str,
) -> None:
    """Verify the proof claims this verifier's statement, commitment and challenge."""
    if proof.get("type") != kind:
        raise StatementMismatch(f"expected a {kind}, got {proof.get('type')!r}")
    if proof.get("statement") != dict(statement):
        raise StatementMismatch(f"the proof is for {proof.get('statement')}, not {statement}")
    if proof.get("commitment") != commitment:
        raise CommitmentMismatch("the proof is about another commitment than the signed one")
    if proof.get("nonce") != nonce or proof.get("context") != context:
        raise ProofNonceMismatch("the proof was made for another nonce or context (replay)")


# -- residency: the committed city code equals a public value ---------------------------------


def prove_residency(
    commitment: str, opening: Opening, *, city_code: int, nonce: str, context: str = ""
) -> dict[str, Any]:
    """Prove the commitment opens to `city_code`, revealing nothing else."""
    point = ec.decode_point(commitment)
    if opening.value != city_code or not ec.same(point, ec.commit(opening.value, opening.blinding)):
        raise PredicateNotSatisfied("the committed city code is not the one to prove")
    statement = {"city_code": city_code}
    k = ec.random_scalar()
    t = ec.mul_h(k)
    c = _residency_challenge(statement, point, t, nonce, context)
    s = (k + c * opening.blinding) % ec.Q
    return {
        "type": RESIDENCY_PROOF,
        "statement": statement,
        "commitment": commitment,
        "nonce": nonce,
        "context": context,
        "t": ec.encode_point(t),
        "s": ec.encode_scalar(s),
    }


def verify_residency(
    proof: Mapping[str, Any], *, commitment: str, city_code: int, nonce: str, context: str = ""
) -> None:
    """Raise a ProofError unless `proof` shows `commitment` opens to `city_code` for this nonce."""
    statement = {"city_code": city_code}
    _check_binding(proof, RESIDENCY_PROOF, statement, commitment, nonce, context)
    point = ec.decode_point(commitment)
    t, s = ec.decode_point(proof.get("t")), ec.decode_scalar(proof.get("s"))
    c = _residency_challenge(statement, point, t, nonce, context)
    target = ec.minus(point, ec.mul_g(city_code))  # = r*H exactly when the code matches
    # Verify s*H = T + c*(C - code*G)
    if not ec.same(ec.mul_h(s), ec.plus(t, ec.mul(target, c))):
        raise InvalidProof("the residency proof does not verify")


def _residency_challenge(
    statement: Mapping[str, Any], point: Point, t: Point, nonce: str, context: str
) -> int:
    return ec.challenge(
        _statement_bytes(RESIDENCY_PROOF, statement),
        *(ec.encode_point(p).encode() for p in (ec.G, ec.H, point, t)),
        *_context_bytes(nonce, context),
    )


# -- age: a committed birth date is at least N years before a reference date -----------------


def _age_statement(min_age_years: int, reference: date) -> dict[str, Any]:
    return {
        "min_age_years": min_age_years,
        "reference_date": reference.isoformat(),
        "bits": AGE_BITS,
    }


def prove_age_at_least(
    commitment: str,
    opening: Opening,
    *,
    min_age_years: int,
    reference: date,
    nonce: str,
    context: str = "",
) -> dict[str, Any]:
    """Prove the committed birth date makes the holder at least `min_age_years` on `reference`."""
    point = ec.decode_point(commitment)
    if not ec.same(point, ec.commit(opening.value, opening.blinding)):
        raise PredicateNotSatisfied("the opening does not match the commitment")
    gap = days_since_epoch(age_cutoff(reference, min_age_years)) - opening.value
    if not 0 <= gap < 1 << AGE_BITS:
        raise PredicateNotSatisfied(f"the holder is not at least {min_age_years} on {reference}")
    bits = [(gap >> i) & 1 for i in range(AGE_BITS)]
    statement = _age_statement(min_age_years, reference)
    return prove_bits(point, opening, bits=bits, statement=statement, nonce=nonce, context=context)


def prove_bits(
    point: Point,
    opening: Opening,
    *,
    bits: list[int],
    statement: dict[str, Any],
    nonce: str,
    context: str,
) -> dict[str, Any]:
    """Commit to each bit of the gap and prove each is 0 or 1 (a cheating caller's bits fail).

    `prove_age_at_least` is the way to prove an age; this step is public so a test can play
    a cheating prover that hands in bits which do not add up."""
    n = len(bits)
    blindings = [ec.random_scalar() for _ in range(n - 1)]
    # D = cutoff*G - C has blinding -r, so the bit blindings must sum (weighted) to -r.
    partial = sum(r << i for i, r in enumerate(blindings))
    blindings.append((-opening.blinding - partial) * pow(1 << (n - 1), -1, ec.Q) % ec.Q)
    bit_points = [ec.commit(b, r) for b, r in zip(bits, blindings, strict=True)]
    sims, firsts = [], []
    for bit, r, c_i in zip(bits, blindings, bit_points, strict=True):
        k, c_fake, s_fake = ec.random_scalar(), ec.random_scalar(), ec.random_scalar()
        branches = (c_i, ec.minus(c_i, ec.G))  # Y0 = r*H if bit 0, Y1 = r*H if bit 1
        fake = ec.minus(ec.mul_h(s_fake), ec.mul(branches[1 - bit], c_fake))
        real = ec.mul_h(k)
        firsts.append((real, fake) if bit == 0 else (fake, real))
        sims.append((k, c_fake, s_fake, r, bit))
    c = _age_challenge(statement, point, bit_points, firsts, nonce, context)
    responses = []
    for k, c_fake, s_fake, r, bit in sims:
        c_real = (c - c_fake) % ec.Q
        s_real = (k + c_real * r) % ec.Q
        c0, s0, s1 = (c_real, s_real, s_fake) if bit == 0 else (c_fake, s_fake, s_real)
        responses.append([ec.encode_scalar(c0), ec.encode_scalar(s0), ec.encode_scalar(s1)])
    return {
        "type": AGE_PROOF,
        "statement": statement,
        "commitment": ec.encode_point(point),
        "nonce": nonce,
        "context": context,
        "challenge": ec.encode_scalar(c),
        "bit_commitments": [ec.encode_point(p) for p in bit_points],
        "responses": responses,
    }


def proved_reference(proof: Mapping[str, Any], latest: date, min_age_years: int) -> date:
    """The reference date an age proof for `min_age_years` was made for, when it is on or
    before `latest`.

    Being N years old on a date means being at least N on every later one, so a proof for an
    earlier date answers the verifier's question for `latest` (a proof made just before
    midnight, checked just after). A later date would not, and is refused here. Anything else
    (another age, a date not written YYYY-MM-DD, no statement) gives `latest`, and the
    statement check then names what the proof claims against what the verifier asked."""
    statement = proof.get("statement")
    raw = statement.get("reference_date") if isinstance(statement, Mapping) else None
    try:
        claimed = date.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        claimed = None
    # The whole statement as the verifier would write it for that date (which also refuses a
    # date 3.11 reads but does not write so, such as 20261204 or 2026-W49-5)
    if claimed is None or statement != _age_statement(min_age_years, claimed):
        return latest
    if claimed > latest:
        raise StatementMismatch(
            f"the proof is for the reference date {claimed}, after {latest}: being old enough "
            f"on a later date does not show it on {latest}"
        )
    return claimed


def verify_age_at_least(
    proof: Mapping[str, Any],
    *,
    commitment: str,
    min_age_years: int,
    reference: date,
    nonce: str,
    context: str = "",
) -> None:
    """Raise a ProofError unless `proof` shows the committed birth date is old enough."""
    statement = _age_statement(min_age_years, reference)
    _check_binding(proof, AGE_PROOF, statement, commitment, nonce, context)
    point = ec.decode_point(commitment)
    bit_points, responses = _decode_bits(proof)
    cutoff = days_since_epoch(age_cutoff(reference, min_age_years))
    # Verify the bit commitments add up to D = cutoff*G - C, so d = sum 2^i b_i
    weighted = ec.plus(*(ec.mul(p, 1 << i) for i, p in enumerate(bit_points)))
    if not ec.same(weighted, ec.minus(ec.mul_g(cutoff), point)):
        raise InvalidProof("the bit commitments do not add up to the committed gap")
    c = ec.decode_scalar(proof.get("challenge"))
    firsts = []
    for c_i, (c0, s0, s1) in zip(bit_points, responses, strict=True):
        c1 = (c - c0) % ec.Q
        t0 = ec.minus(ec.mul_h(s0), ec.mul(c_i, c0))
        t1 = ec.minus(ec.mul_h(s1), ec.mul(ec.minus(c_i, ec.G), c1))
        firsts.append((t0, t1))
    # Verify the challenge is the hash of everything, so c0 + c1 = c binds every OR-proof
    if _age_challenge(statement, point, bit_points, firsts, nonce, context) != c:
        raise InvalidProof("the age proof does not verify")


def _decode_bits(proof: Mapping[str, Any]) -> tuple[list[Point], list[tuple[int, int, int]]]:
    commitments, responses = proof.get("bit_commitments"), proof.get("responses")
    if not isinstance(commitments, list) or not isinstance(responses, list):
        raise InvalidProof("an age proof needs bit_commitments and responses")
    if len(commitments) != AGE_BITS or len(responses) != AGE_BITS:
        raise InvalidProof(f"an age proof has exactly {AGE_BITS} bits")
    decoded = []
    for triple in responses:
        if not isinstance(triple, list) or len(triple) != 3:
            raise InvalidProof("each bit response is [c0, s0, s1]")
        c0, s0, s1 = (ec.decode_scalar(x) for x in triple)
        decoded.append((c0, s0, s1))
    return [ec.decode_point(p) for p in commitments], decoded


def _age_challenge(
    statement: Mapping[str, Any],
    point: Point,
    bit_points: list[Point],
    firsts: list[tuple[Point, Point]],
    nonce: str,
    context: str,
) -> int:
    points = [ec.G, ec.H, point, *bit_points, *(t for pair in firsts for t in pair)]
    return ec.challenge(
        _statement_bytes(AGE_PROOF, statement),
        *(ec.encode_point(p).encode() for p in points),
        *_context_bytes(nonce, context),
    )


def prove_opening(
    commitment: str, opening: Opening, *, nonce: str, context: str = ""
) -> dict[str, Any]:
    """Schnorr (Okamoto) proof of knowledge of (value, blinding) for a commitment."""
    point = ec.decode_point(commitment)
    a, b = ec.random_scalar(), ec.random_scalar()
    t = ec.commit(a, b)
    c = _opening_challenge(point, t, nonce, context)
    return {
        "type": "OpeningProof",
        "statement": {},
        "commitment": commitment,
        "nonce": nonce,
        "context": context,
        "t": ec.encode_point(t),
        "s_value": ec.encode_scalar(a + c * opening.value),
        "s_blinding": ec.encode_scalar(b + c * opening.blinding),
    }


def verify_opening(
    proof: Mapping[str, Any], *, commitment: str, nonce: str, context: str = ""
) -> None:
    """Raise a ProofError unless the prover knows an opening of `commitment`."""
    _check_binding(proof, "OpeningProof", {}, commitment, nonce, context)
    point, t = ec.decode_point(commitment), ec.decode_point(proof.get("t"))
    s_v, s_r = ec.decode_scalar(proof.get("s_value")), ec.decode_scalar(proof.get("s_blinding"))
    c = _opening_challenge(point, t, nonce, context)
    # Verify s_v*G + s_r*H = T + c*C
    if not ec.same(ec.commit(s_v, s_r), ec.plus(t, ec.mul(point, c))):
        raise InvalidProof("the opening proof does not verify")


def _opening_challenge(point: Point, t: Point, nonce: str, context: str) -> int:
    return ec.challenge(
        _statement_bytes("OpeningProof", {}),
        *(ec.encode_point(p).encode() for p in (ec.G, ec.H, point, t)),
        *_context_bytes(nonce, context),
    )
