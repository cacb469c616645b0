"""A bearer token's signature is checked once; everything the chain or the clock decides, always."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from chain.auth import AuthError, VerifiedTokens, mint_token, verify_token
from chain.encoding import b64url

NOW = 1_800_000_000


@pytest.fixture
def registry(keys: SimpleNamespace) -> dict[str, tuple[str, frozenset[str]]]:
    return {keys.bank.public_hex: ("bank-a", frozenset({"bank"}))}


def test_a_known_token_stops_working_when_its_key_leaves_the_registry(
    keys: SimpleNamespace, registry: dict[str, tuple[str, frozenset[str]]]
) -> None:
    verified = VerifiedTokens()
    token = mint_token(keys.bank, org="bank-a", audience="credit", now=NOW)
    first = verify_token(token, audience="credit", resolve=registry.get, now=NOW, verified=verified)
    assert first.org == "bank-a" and verified.get(token) is not None
    del registry[keys.bank.public_hex]  # the key is revoked on the chain
    with pytest.raises(AuthError, match="not an active key"):
        verify_token(token, audience="credit", resolve=registry.get, now=NOW, verified=verified)


def test_a_known_token_follows_its_roles_lifetime_and_audience(
    keys: SimpleNamespace, registry: dict[str, tuple[str, frozenset[str]]]
) -> None:
    verified = VerifiedTokens()
    token = mint_token(keys.bank, org="bank-a", audience="credit", ttl_s=60, now=NOW)
    verify_token(token, audience="credit", resolve=registry.get, now=NOW, verified=verified)
    registry[keys.bank.public_hex] = ("bank-a", frozenset({"sme"}))  # a role changed
    again = verify_token(token, audience="credit", resolve=registry.get, now=NOW, verified=verified)
    assert again.roles == frozenset({"sme"})
    with pytest.raises(AuthError, match="expired"):
        verify_token(
            token, audience="credit", resolve=registry.get, now=NOW + 600, verified=verified
        )
    with pytest.raises(AuthError, match="audience"):
        verify_token(token, audience="identity", resolve=registry.get, now=NOW, verified=verified)
    registry[keys.bank.public_hex] = ("bank-b", frozenset({"bank"}))  # the key moved org
    with pytest.raises(AuthError, match="belongs to bank-b"):
        verify_token(token, audience="credit", resolve=registry.get, now=NOW, verified=verified)


def test_a_forged_signature_is_refused_every_time_and_never_remembered(
    keys: SimpleNamespace, registry: dict[str, tuple[str, frozenset[str]]]
) -> None:
    verified = VerifiedTokens()
    token = mint_token(keys.bank, org="bank-a", audience="credit", now=NOW)
    verify_token(token, audience="credit", resolve=registry.get, now=NOW, verified=verified)
    head, payload, _ = token.split(".")
    for forged in (f"{head}.{payload}.{b64url(bytes(64))}", f"{head}.{payload}.", token + "A"):
        for _ in range(2):
            with pytest.raises(AuthError):
                verify_token(
                    forged, audience="credit", resolve=registry.get, now=NOW, verified=verified
                )
        assert verified.get(forged) is None


def test_headers_that_change_how_a_jws_is_verified_are_refused(
    keys: SimpleNamespace, registry: dict[str, tuple[str, frozenset[str]]]
) -> None:
    import json

    token = mint_token(keys.bank, org="bank-a", audience="credit", now=NOW)
    _, payload, _ = token.split(".")
    for extra in ({"crit": ["b64"], "b64": False}, {"b64": True}):
        header = {"alg": "EdDSA", "typ": "JWT", "kid": keys.bank.public_hex, **extra}
        head = b64url(json.dumps(header).encode())
        signature = b64url(keys.bank.sign(f"{head}.{payload}".encode()))
        with pytest.raises(AuthError, match="must not carry crit or b64"):
            verify_token(
                f"{head}.{payload}.{signature}", audience="credit", resolve=registry.get, now=NOW
            )


def test_the_cache_keeps_at_most_its_capacity_dropping_the_oldest(
    keys: SimpleNamespace, registry: dict[str, tuple[str, frozenset[str]]]
) -> None:
    verified = VerifiedTokens(capacity=2)
    tokens = [mint_token(keys.bank, org="bank-a", audience="credit", now=NOW) for _ in range(3)]
    for token in tokens:
        verify_token(token, audience="credit", resolve=registry.get, now=NOW, verified=verified)
    assert [verified.get(t) is not None for t in tokens] == [False, True, True]


def signed(key: object, claims: dict[str, object]) -> str:
    """A compact EdDSA JWS over `claims`, signed by `key` (a chain SigningKey)."""
    import json

    public_hex = key.public_hex  # type: ignore[attr-defined]
    head = b64url(json.dumps({"alg": "EdDSA", "typ": "JWT", "kid": public_hex}).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{b64url(key.sign(f'{head}.{body}'.encode()))}"  # type: ignore[attr-defined]


def test_an_oversized_token_is_refused_before_it_is_parsed_and_takes_no_slot(
    keys: SimpleNamespace, registry: dict[str, tuple[str, frozenset[str]]]
) -> None:
    verified = VerifiedTokens()
    claims = {
        "iss": "bank-a",
        "sub": keys.bank.public_hex,
        "aud": "credit",
        "iat": NOW,
        "exp": NOW + 60,
        "padding": [[]] * 3000,
    }
    token = signed(keys.bank, claims)
    with pytest.raises(AuthError, match="over the 4096-byte limit"):
        verify_token(token, audience="credit", resolve=registry.get, now=NOW, verified=verified)
    assert verified.get(token) is None


def test_a_genuine_token_refused_by_a_later_check_takes_no_slot_and_a_kept_one_keeps_scalars(
    keys: SimpleNamespace, registry: dict[str, tuple[str, frozenset[str]]]
) -> None:
    verified = VerifiedTokens()
    base = {"iss": "bank-a", "sub": keys.bank.public_hex, "iat": NOW, "exp": NOW + 60}
    for refused in (
        {**base, "aud": "identity"},  # another service's
        {**base, "aud": "credit", "iss": "bank-b"},  # another organisation's
        {**base, "aud": "credit", "exp": NOW - 600},  # expired
    ):
        token = signed(keys.bank, refused)
        with pytest.raises(AuthError):
            verify_token(token, audience="credit", resolve=registry.get, now=NOW, verified=verified)
        assert verified.get(token) is None
    token = signed(keys.bank, {**base, "aud": "credit", "note": {"nested": ["x"] * 100}})
    verify_token(token, audience="credit", resolve=registry.get, now=NOW, verified=verified)
    kept = verified.get(token)
    assert kept is not None
    header, claims = kept
    assert set(header) == {"alg", "kid"} and set(claims) == {"iss", "sub", "aud", "iat", "exp"}
