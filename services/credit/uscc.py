"""Unified Social Credit Code (GB 32100-2015) validation and check-character computation.

Layout of the 18 characters (1-based positions):

    1      registration-authority code     (e.g. 9 market regulation, 5 civil affairs, Y other)
    2      organisation-type code          (depends on the authority, e.g. 91 enterprise)
    3-8    administrative division code    (GB/T 2260, six digits)
    9-17   organisation code               (GB 11714: 8 body characters + its own check)
    18     check character                 (weights 3^(i-1) mod 31, modulus 31)

All characters come from the 31-character set 0-9 and A-Z without I, O, Z, S and V.
The division check is structural (six digits under a known province prefix); the full
county-level GB/T 2260 table is not shipped.
"""

from __future__ import annotations

from services.credit.contract_terms import USCC_CHARSET, uscc_check_character
from services.credit.errors import InvalidUSCC

USCC_LENGTH = 18
CHARSET = USCC_CHARSET  # the contract checks codes on the chain: one alphabet, one routine
_VALUE = {c: i for i, c in enumerate(CHARSET)}
_EXCLUDED = "IOZSV"

# Registration authority (position 1) -> organisation types allowed at position 2.
# GB 32100-2015 table 1 defines 1, 5, 9 and Y; the others were assigned by later notices.
ORGANISATION_TYPES: dict[str, dict[str, str]] = {
    "1": {
        "1": "government organ",
        "2": "public institution",
        "3": "mass organisation",
        "9": "other",
    },
    "2": {"1": "foreign resident news agency", "9": "other"},
    "3": {
        "1": "law firm",
        "2": "notary office",
        "3": "grassroots legal service",
        "4": "judicial expertise institution",
        "5": "arbitration commission",
        "9": "other",
    },
    "4": {"1": "foreign cultural centre", "9": "other"},
    "5": {
        "1": "social organisation",
        "2": "private non-enterprise unit",
        "3": "foundation",
        "9": "other",
    },
    "6": {"1": "foreign tourism office", "2": "HK/Macao/Taiwan tourism office", "9": "other"},
    "7": {"1": "religious venue", "2": "religious college", "9": "other"},
    "8": {"1": "grassroots trade union", "9": "other"},
    "9": {"1": "enterprise", "2": "individual business", "3": "farmers' cooperative"},
    "A": {"1": "military public institution", "9": "other"},
    "N": {
        "1": "group collective",
        "2": "village collective",
        "3": "township collective",
        "9": "other",
    },
    "Y": {"1": "other"},
}

# Province-level prefixes of GB/T 2260, plus "10" used with "0000" for national registrations.
PROVINCE_PREFIXES = frozenset(
    {
        *("11", "12", "13", "14", "15", "21", "22", "23"),
        *("31", "32", "33", "34", "35", "36", "37"),
        *("41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54"),
        *("61", "62", "63", "64", "65", "71", "81", "82"),
    }
)

_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def compute_check_character(first17: str) -> str:
    """Return the GB 32100 check character (position 18) for the first 17 characters."""
    # Verify the prefix is 17 characters from the USCC set
    if len(first17) != USCC_LENGTH - 1:
        raise ValueError(f"need 17 characters, got {len(first17)}")
    bad = next((i for i, c in enumerate(first17) if c not in _VALUE), None)
    if bad is not None:
        raise InvalidUSCC(first17, bad + 1, f"{first17[bad]!r} is not in the USCC character set")
    return uscc_check_character(first17)


def compute_organisation_check(body8: str) -> str:
    """Return the GB 11714 check character for an 8-character organisation-code body."""
    total = sum(int(c, 36) * w for c, w in zip(body8, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def validate_uscc(code: str) -> str:
    """Return the canonical (stripped, upper-case) code or raise `InvalidUSCC` saying where."""
    canonical = code.strip().upper()
    _verify_length(canonical)
    _verify_charset(canonical)
    _verify_authority_and_type(canonical)
    _verify_division(canonical)
    _verify_organisation_code(canonical)
    _verify_check_character(canonical)
    return canonical


def is_valid_uscc(code: str) -> bool:
    """Return whether `code` is a valid USCC."""
    try:
        validate_uscc(code)
    except InvalidUSCC:
        return False
    return True


def make_uscc(
    body8: str, *, authority: str = "9", org_type: str = "1", division: str = "110108"
) -> str:
    """Build a valid USCC from an 8-character organisation-code body (for demos and tests)."""
    org = body8.upper() + compute_organisation_check(body8.upper())
    first17 = authority + org_type + division + org
    return validate_uscc(first17 + compute_check_character(first17))


def _verify_length(code: str) -> None:
    if len(code) < USCC_LENGTH:
        raise InvalidUSCC(
            code, len(code) + 1, f"missing: a USCC has 18 characters, got {len(code)}"
        )
    if len(code) > USCC_LENGTH:
        raise InvalidUSCC(
            code, USCC_LENGTH + 1, f"extra: a USCC has 18 characters, got {len(code)}"
        )


def _verify_charset(code: str) -> None:
    for position, char in enumerate(code, start=1):
        if char in _VALUE:
            continue
        why = (
            "letters I, O, Z, S and V are not used"
            if char in _EXCLUDED
            else "not a digit or letter"
        )
        raise InvalidUSCC(code, position, f"{char!r} is not in the USCC character set ({why})")


def _verify_authority_and_type(code: str) -> None:
    types = ORGANISATION_TYPES.get(code[0])
    if types is None:
        raise InvalidUSCC(code, 1, f"{code[0]!r} is not a registration-authority code")
    if code[1] not in types:
        allowed = ", ".join(sorted(types))
        raise InvalidUSCC(
            code, 2, f"{code[1]!r} is not an organisation type of authority {code[0]!r} ({allowed})"
        )


def _verify_division(code: str) -> None:
    division = code[2:8]
    for offset, char in enumerate(division):
        if not char.isdigit():
            raise InvalidUSCC(
                code, 3 + offset, f"{char!r}: the administrative division is 6 digits"
            )
    if division[:2] == "10" and division[2:] == "0000":
        return
    if division[:2] not in PROVINCE_PREFIXES:
        raise InvalidUSCC(code, 3, f"division {division} does not start with a province code")


def _verify_organisation_code(code: str) -> None:
    expected = compute_organisation_check(code[8:16])
    if code[16] != expected:
        raise InvalidUSCC(
            code, 17, f"organisation-code check character is {code[16]!r}, expected {expected!r}"
        )


def _verify_check_character(code: str) -> None:
    expected = compute_check_character(code[:17])
    if code[17] != expected:
        raise InvalidUSCC(code, 18, f"check character is {code[17]!r}, expected {expected!r}")
