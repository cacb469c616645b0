"""Authenticate API callers against the chain's trust registry: bearer JWTs and roles.

No `from __future__ import annotations` in this module: FastAPI reads `require_role`'s
`Annotated[Caller, Depends(authenticate)]` at run time, and a postponed annotation would name a
closure variable it cannot resolve (tests/common/test_shared_pieces.py checks it).
"""

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from chain.auth import AuthError, Caller, verify_token
from services.common.ledger import LedgerPort


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError(
            "missing bearer token: mint one with `smartcity token --as ORG --audience SERVICE`"
        )
    return token.strip()


def authenticator(ledger: LedgerPort, audience: str) -> Callable[[Request], Caller]:
    """A FastAPI dependency returning the authenticated caller for `audience`."""

    def authenticate(request: Request) -> Caller:
        return verify_token(bearer_token(request), audience=audience, resolve=ledger.resolve_key)

    return authenticate


def require_role(authenticate: Callable[[Request], Caller], *roles: str) -> Callable[..., Caller]:
    """A dependency that also refuses (403) callers whose organisation lacks all of `roles`."""

    def check(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
        caller.require(*roles)
        return caller

    return check
