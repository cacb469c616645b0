"""What a service holds while it runs, the same base in every service (`<svc>/runtime.py`)."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.context import ServiceContext


@dataclass
class ServiceRuntime:
    """The suite's context for this service; each service adds its chain access and caches.

    A subclass sets `chain` (its `services/<svc>/chain.py` class) in `__post_init__`.
    """

    ctx: ServiceContext
