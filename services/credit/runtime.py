"""What the credit service holds while running: its chain access and its scoring models."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.common.runtime import ServiceRuntime
from services.credit.chain import CreditChain
from services.credit.model_store import ModelStore


@dataclass
class Runtime(ServiceRuntime):
    """What the domain needs besides the session: the context, the chain and the models."""

    models: ModelStore
    registered: set[str] = field(default_factory=set)
    chain: CreditChain = field(init=False)

    def __post_init__(self) -> None:
        self.chain = CreditChain(self.ctx)
