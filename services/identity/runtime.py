"""What the identity service holds while running: its chain access, vault, URL, clock, caches."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jsonschema
from jwcrypto import jwk

from services.common.runtime import ServiceRuntime
from services.identity.chain import IdentityChain
from services.identity.status_mirror import StatusMirror
from services.identity.vault import Vault


@dataclass(frozen=True)
class TypeRecord:
    """A registered credential type as verification reads it (a type never changes)."""

    name: str
    schema_json: dict[str, Any]
    schema_hash: str


@dataclass
class Runtime(ServiceRuntime):
    """What the domain functions share: the chain, the vault, URLs, a clock and caches."""

    vault: Vault
    base_url: str
    entry_order_key: bytes = field(repr=False)  # orders status list entries (service/entries)
    clock: Callable[[], float] = time.time
    signing_keys: dict[str, jwk.JWK] = field(default_factory=dict)
    types: dict[str, TypeRecord] = field(default_factory=dict)
    missing_types: dict[str, float] = field(default_factory=dict)  # name -> read again after
    validators: dict[str, jsonschema.protocols.Validator] = field(default_factory=dict)
    chain: IdentityChain = field(init=False)
    status_lists: StatusMirror = field(init=False)  # kept current with the chain's blocks

    def __post_init__(self) -> None:
        self.chain = IdentityChain(self.ctx)
        self.status_lists = StatusMirror(self.chain.feed)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), tz=UTC)
