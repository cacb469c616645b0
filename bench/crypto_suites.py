"""Crypto suites (chain/suites): sign and verify per second, hashes per second and MB/s.

Each rate is operations per second of one thread's CPU time (`time.thread_time`), so a loaded
machine slows the wall clock more than the figure. The machine's ceiling, raw
chain.crypto.verify (Ed25519, libsodium) in thread CPU time, is measured in the same run, and
each verify rate is given as a share of it. The SM suite is skipped, with the reason, where
libcrypto.so.3 is missing.
Messages are 200 bytes (a transaction body, a vote); bulk hashing uses 64 KiB blocks.

BENCH_CRYPTO_SECONDS sets the CPU seconds per figure (default 1.5).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from chain.crypto import SigningKey, verify
from chain.suites import SUITE_NAMES, CryptoSuite, SuiteUnavailable, suite_for

SECONDS = float(os.environ.get("BENCH_CRYPTO_SECONDS", "1.5"))
MESSAGE = os.urandom(200)
BLOCK = os.urandom(64 * 1024)


def _cpu_rate(operation: Callable[[], object], seconds: float = SECONDS) -> tuple[int, float]:
    """Operations done and thread CPU seconds spent, calling `operation` for `seconds`."""
    operation()  # warm up: first-use loading and caches
    count, started = 0, time.thread_time()
    while (spent := time.thread_time() - started) < seconds:
        for _ in range(20):
            operation()
        count += 20
    return count, spent


def _record(suite: str, op: str, count: int, spent: float, **extra: Any) -> dict[str, Any]:
    return {
        "bench": "crypto_suites",
        "suite": suite,
        "op": op,
        "ops": count,
        "cpu_seconds": round(spent, 3),
        "per_second": round(count / spent, 1),
        **extra,
    }


def _suite_results(suite: CryptoSuite, ceiling: float) -> list[dict[str, Any]]:
    key = suite.generate()
    signature = suite.sign(key, MESSAGE)
    public_hex = key.public_hex

    def check() -> bool:
        return suite.verify(public_hex, MESSAGE, signature)

    results = [_record(suite.name, "sign", *_cpu_rate(lambda: suite.sign(key, MESSAGE)))]
    count, spent = _cpu_rate(check)
    results.append(
        _record(
            suite.name,
            "verify",
            count,
            spent,
            share_of_ed25519_ceiling=round(count / spent / ceiling, 3),
        )
    )
    results.append(_record(suite.name, "hash_200_bytes", *_cpu_rate(lambda: suite.hash(MESSAGE))))
    count, spent = _cpu_rate(lambda: suite.hash(BLOCK))
    results.append(
        _record(
            suite.name,
            "hash_64_kib",
            count,
            spent,
            mb_per_second=round(count * len(BLOCK) / spent / 1e6, 1),
        )
    )
    seal_key = suite.generate_seal_key()
    results.append(
        _record(
            suite.name,
            "seal_200_bytes",
            *_cpu_rate(lambda: suite.seal(seal_key, MESSAGE, b"table:column:row")),
        )
    )
    return results


def _ceiling() -> tuple[dict[str, Any], float]:
    """Raw Ed25519 verification (chain.crypto.verify) per second of thread CPU time."""
    key = SigningKey.generate()
    signature = key.sign(MESSAGE)
    count, spent = _cpu_rate(lambda: verify(key.public_hex, MESSAGE, signature))
    return _record("chain.crypto", "ceiling_ed25519_verify", count, spent), count / spent


def run() -> list[dict[str, Any]]:
    ceiling_record, ceiling = _ceiling()
    results: list[dict[str, Any]] = [ceiling_record]
    for name in SUITE_NAMES:
        try:
            suite = suite_for(name)
        except SuiteUnavailable as exc:
            results.append({"bench": "crypto_suites", "suite": name, "skipped": str(exc)})
            continue
        results.extend(_suite_results(suite, ceiling))
    return results
