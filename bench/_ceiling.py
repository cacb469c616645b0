"""The machine's own ceiling: Ed25519 verifications per second on one core."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from chain.crypto import SigningKey, verify


def ed25519_verifications_per_s(
    seconds: float = 1.0, check: Callable[[str, bytes, bytes], bool] = verify
) -> float:
    key = SigningKey.generate()
    message = os.urandom(200)
    signature = key.sign(message)
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(200):
            check(key.public_hex, message, signature)
        count += 200
    return count / (time.perf_counter() - started)
