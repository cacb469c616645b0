"""ZK predicates: honest proofs verify and hide the value; forged or replayed ones fail."""

from __future__ import annotations

import copy
import re
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.identity import bn254 as ec
from services.identity import errors, zkp

TODAY = date(2025, 6, 1)
BORN_19_YEARS_AGO = date(2006, 3, 15)
METROPOLIS = 440300


@pytest.fixture(scope="module")
def birth() -> tuple[str, zkp.Opening]:
    return zkp.commit(zkp.days_since_epoch(BORN_19_YEARS_AGO))


@pytest.fixture(scope="module")
def age_proof(birth) -> dict:
    commitment, opening = birth
    return zkp.prove_age_at_least(
        commitment,
        opening,
        min_age_years=18,
        reference=TODAY,
        nonce="nonce-1",
        context="bank.example/kyc",
    )


def _verify_age(proof, commitment, *, years=18, nonce="nonce-1", context="bank.example/kyc"):
    zkp.verify_age_at_least(
        proof,
        commitment=commitment,
        min_age_years=years,
        reference=TODAY,
        nonce=nonce,
        context=context,
    )


def test_generators_are_independent_curve_points():
    assert not ec.same(ec.G, ec.H)
    assert ec.decode_point(ec.encode_point(ec.H)) is not None
    assert ec.same(ec.hash_to_curve(b"G"), ec.G)  # deterministic: anyone can re-derive them


def _leaves(value: object) -> list[object]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list | tuple):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def test_an_honest_age_proof_verifies_and_carries_no_birth_date(birth):
    commitment, opening = birth
    proof = zkp.prove_age_at_least(
        commitment, opening, min_age_years=18, reference=TODAY, nonce="n", context=""
    )
    _verify_age(proof, commitment, nonce="n", context="")
    # Verify no field of the proof is the birth date, in days or as a date (timings: the bench)
    days = zkp.days_since_epoch(BORN_19_YEARS_AGO)
    hidden = {days, str(days), hex(days), BORN_19_YEARS_AGO.isoformat()}
    assert not hidden.intersection(_leaves(proof))


def test_wrong_statement_cannot_be_proven(birth):
    commitment, opening = birth
    with pytest.raises(errors.PredicateNotSatisfied):
        zkp.prove_age_at_least(commitment, opening, min_age_years=21, reference=TODAY, nonce="n")


def test_proof_relabelled_to_a_stronger_statement_fails(birth, age_proof):
    commitment, _ = birth
    with pytest.raises(errors.StatementMismatch):
        _verify_age(age_proof, commitment, years=21)
    forged = copy.deepcopy(age_proof)
    forged["statement"]["min_age_years"] = 21
    with pytest.raises(errors.InvalidProof):
        _verify_age(forged, commitment, years=21)


def test_cheating_prover_with_a_negative_gap_fails(birth):
    commitment, opening = birth
    # A 19-year-old claiming >= 21: the gap is negative, so its bits cannot all be 0/1 and sum up.
    gap = zkp.days_since_epoch(zkp.age_cutoff(TODAY, 21)) - opening.value
    assert gap < 0
    bits = [(gap % ec.Q >> i) & 1 for i in range(zkp.AGE_BITS)]
    statement = {"min_age_years": 21, "reference_date": TODAY.isoformat(), "bits": zkp.AGE_BITS}
    point = ec.decode_point(commitment)
    forged = zkp.prove_bits(point, opening, bits=bits, statement=statement, nonce="n", context="")
    with pytest.raises(errors.InvalidProof, match="add up"):
        _verify_age(forged, commitment, years=21, nonce="n", context="")


def test_replayed_proof_under_another_nonce_fails(birth, age_proof):
    commitment, _ = birth
    with pytest.raises(errors.ProofNonceMismatch):
        _verify_age(age_proof, commitment, nonce="nonce-2")
    with pytest.raises(errors.ProofNonceMismatch):
        _verify_age(age_proof, commitment, context="shop.example")
    relabelled = {**age_proof, "nonce": "nonce-2"}
    with pytest.raises(errors.InvalidProof):
        _verify_age(relabelled, commitment, nonce="nonce-2")


def test_tampered_commitment_fails(age_proof):
    other, _ = zkp.commit(zkp.days_since_epoch(date(1980, 1, 1)))
    with pytest.raises(errors.CommitmentMismatch):
        _verify_age(age_proof, other)
    with pytest.raises(errors.InvalidProof):
        _verify_age({**age_proof, "commitment": other}, other)


@pytest.mark.parametrize("field", ["challenge", "bit_commitments", "responses"])
def test_forged_proof_fields_fail(birth, age_proof, field):
    commitment, _ = birth
    forged = copy.deepcopy(age_proof)
    if field == "challenge":
        forged["challenge"] = ec.encode_scalar(ec.random_scalar())
    elif field == "bit_commitments":
        forged["bit_commitments"][0] = ec.encode_point(ec.mul_g(7))
    else:
        forged["responses"][3][1] = ec.encode_scalar(ec.random_scalar())
    with pytest.raises(errors.InvalidProof):
        _verify_age(forged, commitment)


@pytest.mark.parametrize(
    "bad",
    [
        {"bit_commitments": ["00" * 63 + "01"] * zkp.AGE_BITS},  # not on the curve
        {"bit_commitments": []},
        {"responses": [["zz", "00", "00"]] * zkp.AGE_BITS},
        {"challenge": "ff" * 32},  # not reduced mod the group order
        {"responses": None},
    ],
)
def test_malformed_proofs_are_invalid(birth, age_proof, bad):
    commitment, _ = birth
    with pytest.raises(errors.InvalidProof):
        _verify_age({**age_proof, **bad}, commitment)


def test_boundary_birthdays_and_leap_days():
    assert zkp.age_cutoff(date(2024, 2, 29), 18) == date(2006, 2, 28)
    commitment, opening = zkp.commit(zkp.days_since_epoch(date(2006, 2, 28)))
    proof = zkp.prove_age_at_least(
        commitment, opening, min_age_years=18, reference=date(2024, 2, 28), nonce="n"
    )
    zkp.verify_age_at_least(
        proof, commitment=commitment, min_age_years=18, reference=date(2024, 2, 28), nonce="n"
    )
    with pytest.raises(errors.PredicateNotSatisfied):
        zkp.prove_age_at_least(
            commitment, opening, min_age_years=18, reference=date(2024, 2, 27), nonce="n"
        )


def test_residency_proof_shows_the_city_and_nothing_else():
    commitment, opening = zkp.commit(METROPOLIS)
    proof = zkp.prove_residency(commitment, opening, city_code=METROPOLIS, nonce="n", context="c")
    zkp.verify_residency(proof, commitment=commitment, city_code=METROPOLIS, nonce="n", context="c")
    with pytest.raises(errors.StatementMismatch):
        zkp.verify_residency(proof, commitment=commitment, city_code=110000, nonce="n", context="c")
    with pytest.raises(errors.ProofNonceMismatch):
        zkp.verify_residency(
            proof, commitment=commitment, city_code=METROPOLIS, nonce="m", context="c"
        )
    with pytest.raises(errors.InvalidProof):
        zkp.verify_residency(
            {**proof, "statement": {"city_code": 110000}},
            commitment=commitment,
            city_code=110000,
            nonce="n",
            context="c",
        )
    other, _ = zkp.commit(METROPOLIS)
    with pytest.raises(errors.CommitmentMismatch):
        zkp.verify_residency(proof, commitment=other, city_code=METROPOLIS, nonce="n", context="c")
    with pytest.raises(errors.InvalidProof):
        zkp.verify_residency(
            {**proof, "commitment": other},
            commitment=other,
            city_code=METROPOLIS,
            nonce="n",
            context="c",
        )


def test_non_resident_cannot_prove_residency():
    commitment, opening = zkp.commit(110000)
    with pytest.raises(errors.PredicateNotSatisfied):
        zkp.prove_residency(commitment, opening, city_code=METROPOLIS, nonce="n")
    # Forcing it: claim the code with the real blinding; the Schnorr equation then fails.
    fake = zkp.Opening(value=METROPOLIS, blinding=opening.blinding)
    forged_commitment = ec.encode_point(ec.commit(fake.value, fake.blinding))
    proof = zkp.prove_residency(forged_commitment, fake, city_code=METROPOLIS, nonce="n")
    with pytest.raises(errors.InvalidProof):
        zkp.verify_residency(
            {**proof, "commitment": commitment},
            commitment=commitment,
            city_code=METROPOLIS,
            nonce="n",
        )


def test_opening_proof():
    commitment, opening = zkp.commit(12345)
    proof = zkp.prove_opening(commitment, opening, nonce="n")
    zkp.verify_opening(proof, commitment=commitment, nonce="n")
    with pytest.raises(errors.InvalidProof):
        zkp.verify_opening(
            {**proof, "s_value": ec.encode_scalar(1)}, commitment=commitment, nonce="n"
        )


def _written_as_a_date(raw: object) -> date | None:
    """The date `raw` names if it is written YYYY-MM-DD and nothing else (the test's oracle)."""
    if not isinstance(raw, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", raw):
        return None
    try:
        return date(int(raw[:4]), int(raw[5:7]), int(raw[8:]))
    except ValueError:
        return None


@given(
    st.one_of(
        st.dates().map(date.isoformat),
        st.text(max_size=12),
        st.sampled_from(
            [
                *["20250531", "2025-W22-6", "2025W226", "20250602", "2025-5-31", "+002025-05-31"],
                *[" 2025-05-31", "2025-05-31\n", "2025-13-01", "2025-02-30", "0000-01-01", ""],
            ]
        ),
        st.none(),
        st.integers(),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    ),
    st.sampled_from([18, 21]),
    st.sampled_from([zkp.AGE_BITS, 8]),
)
def test_an_age_proof_for_a_date_up_to_the_verifiers_answers_it_and_no_later_one(raw, years, bits):
    """A proof's claimed reference date, whatever the prover wrote there: a date on or before
    the verifier's, in a statement otherwise the verifier's, is taken (old enough then means
    old enough since), a later one is refused with its reason, and anything else is left to
    the statement check (the verifier's own date is returned)."""
    statement = {"min_age_years": years, "reference_date": raw, "bits": bits}
    proof = {"type": zkp.AGE_PROOF, "statement": statement}
    claimed = _written_as_a_date(raw)
    if claimed is None or years != 18 or bits != zkp.AGE_BITS:
        assert zkp.proved_reference(proof, TODAY, 18) == TODAY
    elif claimed > TODAY:
        with pytest.raises(errors.StatementMismatch, match=f"after {TODAY}"):
            zkp.proved_reference(proof, TODAY, 18)
    else:
        assert zkp.proved_reference(proof, TODAY, 18) == claimed


@given(st.dates(max_value=date(9998, 12, 31)), st.integers(min_value=0, max_value=150))
def test_the_age_cutoff_never_moves_back_as_the_date_moves_on(day, years):
    """What lets an earlier reference date answer for a later one (29 February included)."""
    if day.year - years < 1:
        return
    assert zkp.age_cutoff(day, years) <= zkp.age_cutoff(day + timedelta(days=1), years)


def test_a_proof_made_the_day_before_verifies_for_today(birth):
    commitment, opening = birth
    yesterday = date(2025, 5, 31)
    proof = zkp.prove_age_at_least(
        commitment, opening, min_age_years=18, reference=yesterday, nonce="n", context=""
    )
    assert zkp.proved_reference(proof, TODAY, 18) == yesterday
    zkp.verify_age_at_least(
        proof, commitment=commitment, min_age_years=18, reference=yesterday, nonce="n"
    )
    with pytest.raises(errors.StatementMismatch, match="after 2025-05-30"):
        zkp.proved_reference(proof, date(2025, 5, 30), 18)
