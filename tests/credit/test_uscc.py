"""USCC validation: valid codes pass; each kind of wrong character is named by position."""

from __future__ import annotations

import random

import pytest

from services.credit.contract_terms import uscc_check_character
from services.credit.errors import CreditError, InvalidUSCC
from services.credit.uscc import (
    CHARSET,
    compute_check_character,
    is_valid_uscc,
    make_uscc,
    validate_uscc,
)

# Published codes of well-known companies (check characters verified by hand).
REAL = ["91440300708461136T", "91350100M000100Y43", "91110000600037341L"]


@pytest.mark.parametrize("code", REAL)
def test_real_codes_are_valid(code: str) -> None:
    assert validate_uscc(code) == code
    assert is_valid_uscc(code)


def test_lower_case_and_spaces_are_normalised() -> None:
    assert validate_uscc("  91440300708461136t ") == "91440300708461136T"


def test_check_character_is_computed() -> None:
    assert compute_check_character("91440300708461136") == "T"
    generated = make_uscc("MA01ABCD", division="310115")
    assert validate_uscc(generated) == generated
    assert generated.startswith("91310115MA01ABCD")


def reject(code: str) -> InvalidUSCC:
    with pytest.raises(InvalidUSCC) as info:
        validate_uscc(code)
    assert isinstance(info.value, CreditError)
    return info.value


def test_too_short_names_the_missing_character() -> None:
    error = reject("9144030070846113")
    assert (error.position, "missing") == (17, error.reason.split(":")[0])


def test_too_long_names_the_extra_character() -> None:
    assert reject("91440300708461136T1").position == 19


@pytest.mark.parametrize(
    ("char", "why"), [("I", "I, O, Z, S and V"), ("O", "I, O, Z, S and V"), ("-", "not a digit")]
)
def test_character_outside_the_set(char: str, why: str) -> None:
    error = reject("91440300708461" + char + "36T")
    assert error.position == 15
    assert why in error.reason


def test_unknown_registration_authority() -> None:
    error = reject("C1440300708461136T")
    assert error.position == 1
    assert "registration-authority" in error.reason


def test_organisation_type_not_allowed_for_authority() -> None:
    error = reject("94440300708461136T")
    assert error.position == 2
    assert "organisation type" in error.reason


def test_division_must_be_digits_under_a_province() -> None:
    assert reject("9144A300708461136T").position == 5
    error = reject("91990300708461136T")
    assert (error.position, "province") == (3, "province" if "province" in error.reason else "")


def test_wrong_organisation_code_check() -> None:
    error = reject("91440300708461137T")
    assert error.position == 17
    assert "expected '6'" in error.reason


def test_wrong_final_check_character() -> None:
    error = reject("91440300708461136U")
    assert error.position == 18
    assert "expected 'T'" in error.reason
    assert "character 18" in str(error)


def test_single_digit_change_is_always_caught() -> None:
    code = "91440300708461136T"
    for i in range(8, 16):
        for digit in "0123456789":
            if digit != code[i]:
                assert not is_valid_uscc(code[:i] + digit + code[i + 1 :])


def test_the_contract_computes_the_same_check_character() -> None:
    # The contract keeps its own copy: the chain registers it by the hash of contract.py alone,
    # so it cannot import uscc.py's. Pin the two to agree on every prefix the contract accepts.
    rng = random.Random(32100)
    prefixes = [
        code[:i] + ch + code[i + 1 : 17] for code in REAL for i in range(17) for ch in CHARSET
    ] + ["".join(rng.choice(CHARSET) for _ in range(17)) for _ in range(5000)]
    for prefix in prefixes:
        assert uscc_check_character(prefix) == compute_check_character(prefix), prefix
