"""What the suite hands every service: its settings, the chain, and the service's own key.

Two ways a service writes to the chain:
- self-signed: the caller signs a transaction with its own registered key (its SDK helper
  builds it) and the service checks `tx.sender` is the authenticated caller before submitting;
  required where the chain must see the actor's own signature (issuing, consenting).
- relayed: the service signs with its operator key (an organisation with role `operator`)
  and names the authenticated caller in the arguments; the contract accepts that only from an
  operator key. Used for facts the service itself attests (e.g. an audited read).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.genesis import Genesis
from chain.suites import SuiteKey
from services.common.ledger import LedgerPort, call

log = logging.getLogger(__name__)


@dataclass
class ServiceContext:
    name: str  # also the token audience: "identity", "credit", "roadhealth"
    ledger: LedgerPort
    database_url: str
    data_dir: Path
    operator_org: str
    operator_key: SuiteKey
    demo: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    # What `close` stops, in the order registered (see on_close)
    _closers: list[Callable[[], None]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )

    @property
    def genesis(self) -> Genesis:
        return self.ledger.genesis

    def relay(
        self, contract: str, method: str, args: dict[str, Any], *, wait: bool = True
    ) -> dict[str, Any]:
        """Submit a transaction signed by the service's operator key."""
        return call(self.ledger, self.operator_key, contract, method, args, wait=wait)

    def on_close(self, stop: Callable[[], None]) -> None:
        """Have `close` call `stop`: what the service started that outlives a request (a
        background thread, a client) and must end before its database or chain goes away.
        Every app built on this context registers here, so closing it stops all of theirs."""
        self._closers.append(stop)

    def close(self) -> None:
        """Stop what the service started, the last started first; a second call does nothing.

        A service's own app calls it at shutdown. A mounted app's shutdown hooks never run, so
        whoever mounts it (smartcity.suite) calls it before it stops the chain and disposes of
        the databases: a thread left running would go on polling tables that are gone."""
        while True:
            try:
                stop = self._closers.pop()
            except IndexError:  # all stopped (by this call or one running beside it)
                return
            try:
                stop()
            except Exception:  # one failing stop must not leave the others running
                log.exception("stopping part of the %s service failed", self.name)
