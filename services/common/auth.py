"""Authenticate API callers against the chain's trust registry: bearer JWTs and roles.

No `from __future__ import annotations` in this module: FastAPI reads `require_role`'s
`Annotated[Caller, Depends(source)]` at run time, and a postponed annotation would name a
closure variable it cannot resolve (tests/common/test_shared_pieces.py checks it).

A request's bearer check costs no thread hop when the chain runs in this process: every check
then reads memory, so `Authenticator.dependency` runs on the event loop. Against a remote node
resolving a key may ask the node, so it runs in the thread pool.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from chain.auth import AuthError, Caller, VerifiedTokens, verify_token
from services.common.ledger import LedgerPort, run_reading


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError(
            "missing bearer token: mint one with `smartcity token --as ORG --audience SERVICE`"
        )
    return token.strip()


# A key's organisation and roles on the chain, None when it is not an active member's key
Resolve = Callable[[str], tuple[str, frozenset[str]] | None]


class Authenticator:
    """The authenticated caller of a request for one audience, checked against the chain.

    A token's signature is verified once (`chain.auth.VerifiedTokens`); its key's registration
    and roles are resolved on the chain on every request, so a key or role the chain revokes
    stops working with the block that revokes it (through a remote node: within the node
    port's key cache, `services.common.ledger.KEY_CACHE_S`).
    """

    def __init__(
        self,
        ledger: LedgerPort,
        audience: str,
        *,
        resolve: Resolve | None = None,
        resolve_kept: Resolve | None = None,
    ) -> None:
        self.ledger = ledger
        self.audience = audience
        self.verified = VerifiedTokens()
        self.resolve = resolve  # else the ledger's
        # Answers from memory only, raising LookupError where it would wait on the node
        self.resolve_kept = resolve_kept

    def __call__(self, request: Request) -> Caller:
        return verify_token(
            bearer_token(request),
            audience=self.audience,
            resolve=self.resolve or self.ledger.resolve_key,
            verified=self.verified,
        )

    async def dependency(self, request: Request) -> Caller:
        """The same check as a FastAPI dependency: on the event loop when it reads memory only
        (the embedded chain, or a key `resolve_kept` holds), else in the thread pool."""
        if self.resolve_kept is not None:
            try:
                return verify_token(
                    bearer_token(request),
                    audience=self.audience,
                    resolve=self.resolve_kept,
                    verified=self.verified,
                )
            except LookupError:
                pass
        return await run_reading(self.ledger, self, request)


def authenticator(
    ledger: LedgerPort,
    audience: str,
    *,
    resolve: Resolve | None = None,
    resolve_kept: Resolve | None = None,
) -> Authenticator:
    """A FastAPI dependency returning the authenticated caller for `audience`; `resolve`
    replaces the ledger's key resolution, `resolve_kept` is tried first on the event loop."""
    return Authenticator(ledger, audience, resolve=resolve, resolve_kept=resolve_kept)


def caller_dependency(
    authenticate: Callable[[Request], Caller],
) -> Callable[[Request], Caller | Awaitable[Caller]]:
    """What a route depends on for its caller: an Authenticator's event-loop dependency, or
    any other authenticate function as it is."""
    if isinstance(authenticate, Authenticator):
        return authenticate.dependency
    return authenticate


def require_role(
    authenticate: Callable[[Request], Caller], *roles: str
) -> Callable[..., Awaitable[Caller]]:
    """A dependency that also refuses (403) callers whose organisation lacks all of `roles`."""
    source = caller_dependency(authenticate)

    async def check(caller: Annotated[Caller, Depends(source)]) -> Caller:
        caller.require(*roles)
        return caller

    return check
