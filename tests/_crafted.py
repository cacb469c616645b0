"""Hypothesis strategies for crafted JSON: strings that are not Unicode text, put anywhere.

JSON can escape one half of a surrogate pair ("\\ud800"); a parser reads it into a Python
string that no UTF-8 encoder accepts. Tests post such bodies with `json.dumps(body).encode()`
(its \\u escapes), since httpx's own JSON encoder refuses them.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from chain.encoding import b64url

# Unicode text without NUL (refused before anything else): giving blacklist_characters lets
# Hypothesis draw surrogates too, and one beside the lone half would pair with it
text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=6)
lone = st.builds(
    lambda before, half, after: before + chr(half) + after,
    text,
    st.integers(min_value=0xD800, max_value=0xDFFF),
    text,
)
plain = st.recursive(
    st.none() | st.booleans() | st.integers() | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)


@st.composite
def holding_lone(draw: Any, base: dict[str, Any]) -> dict[str, Any]:
    """`base` with a lone surrogate put somewhere in it: a new member's key or value, at the
    top or inside a nested list or object."""
    value = draw(lone)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        value = draw(st.sampled_from([lambda v: [v], lambda v: {"k": v}]))(value)
    obj = dict(base)
    if draw(st.booleans()):
        obj[draw(lone)] = draw(plain)
    else:
        obj[draw(text.filter(lambda k: k not in base))] = value
    return obj


def token_with(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A compact JWS whose parts are written with \\u escapes (any signature: it is not
    reached)."""
    parts = [b64url(json.dumps(part).encode()) for part in (header, claims)]
    return ".".join([*parts, b64url(b"\x00" * 64)])


@st.composite
def tokens_holding_lone(draw: Any, kid: str) -> str:
    """An EdDSA token for `kid` with a lone surrogate in its kid and sub, in another claim, in
    a member's name, or nested in a member's value."""
    header: dict[str, Any] = {"alg": "EdDSA", "typ": "JWT", "kid": kid}
    claims: dict[str, Any] = {"iss": "bank-a", "sub": kid, "aud": "chain", "iat": 1, "exp": 2}
    bad = draw(lone)
    where = draw(st.sampled_from(["kid", "iss", "aud", "name", "nested"]))
    if where == "kid":
        header["kid"] = claims["sub"] = bad
    elif where in ("iss", "aud"):
        claims[where] = bad
    elif where == "name":
        draw(st.sampled_from([header, claims]))[bad] = 1
    else:
        claims["extra"] = [{"k": bad}]
    return token_with(header, claims)
