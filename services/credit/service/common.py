"""What the credit features share: the clock (role checks are services.common.auth's)."""

from __future__ import annotations

import time


def now_ms() -> int:
    return int(time.time() * 1000)
