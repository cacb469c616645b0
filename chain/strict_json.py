"""A proof bundle's JSON, read strictly so that every reader sees the same document."""

from __future__ import annotations

import json
from typing import Any

from chain.errors import ProofError

MAX_BUNDLE_DEPTH = 64


def parse_bundle(text: str | bytes) -> Any:
    """Read a bundle's JSON strictly, so that every reader sees the same document.

    Refused: duplicate members (readers disagree on which one counts), numbers with an integral
    value written as a fraction or exponent (`5.0`, `5e0`: never canonical, and a reader may
    see a float where the spec has an integer), NaN/Infinity, nesting deeper than 64.
    """
    try:
        document = json.loads(
            text,
            object_pairs_hook=unique_members,
            parse_float=_non_integral,
            parse_constant=_no_constant,
        )
    except RecursionError as exc:
        raise ProofError("the bundle nests too deeply") from exc
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ProofError(f"the bundle is not strict JSON: {exc}") from exc
    if json_depth(document) > MAX_BUNDLE_DEPTH:
        raise ProofError(f"the bundle nests deeper than {MAX_BUNDLE_DEPTH} levels")
    return document


def unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads`' object_pairs_hook refusing a member named twice (ValueError): readers
    disagree on which one counts, so what was signed must not carry two."""
    members: dict[str, Any] = {}
    for name, value in pairs:
        if name in members:
            raise ValueError(f"duplicate member {name!r}")
        members[name] = value
    return members


def _non_integral(text: str) -> float:
    value = float(text)
    if value.is_integer():
        raise ValueError(f"{text} is an integer written as a float")
    return value


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not a JSON number")


def json_depth(value: Any) -> int:
    """How deeply arrays and objects nest in a parsed JSON value (a scalar is 0), iteratively."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        children = (
            node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        )
        stack.extend((child, depth + 1) for child in children)
    return deepest
