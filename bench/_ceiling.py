"""The machine's own ceiling: Ed25519 verifications per second on one core, one at a time
(libsodium, the figure the consensus aims were set against) and in the batches nodes check."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

from chain.crypto import SigningKey, verify, verify_many


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


def verification_ceiling(samples: int = 5, seconds: float = 1.0) -> tuple[float, list[float]]:
    """One core's verification rate as the median of `samples` timings, and the timings.

    On a shared machine one second's figure swung from 8,800 to 13,200 between consecutive
    runs (a neighbour's load); a ratio against one such figure moved with it, the run it
    divides did not. The median is the machine's rate as the run that follows meets it."""
    rates = sorted(ed25519_verifications_per_s(seconds) for _ in range(samples))
    return statistics.median(rates), rates


def batch_verifications_per_s(seconds: float = 1.0, batch: int = 250, keys: int = 4) -> float:
    """One core checking signatures as a node's verification worker does (`verify_many`, one
    multi-scalar multiplication a batch): `batch` signatures by `keys` keys, as the bench's
    clients send them (a chunk of a 500-transaction batch on 2 cores), each message distinct."""
    signers = [SigningKey.generate() for _ in range(keys)]
    checks = []
    for i in range(batch):
        signer, message = signers[i % keys], os.urandom(200)
        checks.append((signer.public_hex, message, signer.sign(message)))
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        if not all(verify_many(checks)):
            raise AssertionError("an honest batch failed verification")
        count += batch
    return count / (time.perf_counter() - started)
