"""The stateless checks on worker processes, so one gateway process uses every core.

The intake thread owns the MQTT client, the outbox and the acks; the checks (decoding, schema,
canonical JSON, Ed25519 verification, hashing) are a pure function of the message, the device's
registered key and the clock, and cost about half the gateway's CPU per message. Run on threads
they hold the GIL for most of that, which starves the MQTT network thread (profiled: the intake
waited on an empty delivery queue half the time). Here each worker is a spawned process on a
pipe of its own: the intake sends a slice of (topic, payload, device key) and reads back, per
message, the outbox row to store or the reason to reject. The registry stays in the gateway
process: it looks the topic's device up and sends its key along.

A worker that dies takes nothing with it (nothing is acknowledged before the outbox commit):
the slice fails with CheckPoolError, the gateway retries the group and the pool starts the
worker again. A worker whose gateway dies reads end-of-file on its pipe and exits.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from functools import partial
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from iot_gateway.errors import GatewayError, Rejected
from iot_gateway.outbox import Incoming
from iot_gateway.validate import (
    Device,
    DeviceLookup,
    Limits,
    check_message,
    parse_topic,
    stored_topic,
)

START_TIMEOUT_S = 60.0


class CheckPoolError(GatewayError):
    """A check worker died or could not be reached (the group is retried, nothing was acked)."""


# One message to check with the registry's answer for the device its topic names: topic,
# payload, the device's key (None: not registered, or no device in the topic), whether active.
# Plain tuples cross the pipe: they pickle several times faster than dataclasses.
Job = tuple[str, bytes, str | None, bool]
# What the checks make of a message: the row to store, or (reason code, detail)
Outcome = Incoming | tuple[str, str]
# An Incoming as it crosses the pipe: topic, device, seq, canonical body, hash
Row = tuple[str, str, int, bytes, str]


def job_for(topic: str, payload: bytes, lookup: DeviceLookup) -> Job:
    """The job for a delivery: the device its topic names, looked up in the registry."""
    parsed = parse_topic(topic)
    device = lookup(parsed.device) if parsed is not None else None
    if device is None:
        return (topic, payload, None, False)
    return (topic, payload, device.pub_key, device.active)


def check_jobs(
    jobs: list[Job], now_s: float, limits: Limits, devices: dict[tuple[str, str, bool], Device]
) -> list[Outcome]:
    """Check each job as the gateway would in process; `devices` caches bound verifiers."""
    return [
        Incoming(*outcome) if len(outcome) == 5 else outcome
        for outcome in _check_rows(jobs, now_s, limits, devices)
    ]


def _check_rows(
    jobs: list[Job], now_s: float, limits: Limits, devices: dict[tuple[str, str, bool], Device]
) -> list[Row | tuple[str, str]]:
    out: list[Row | tuple[str, str]] = []
    for topic, raw, pub_key, active in jobs:
        lookup = partial(_registered, devices, pub_key, active)
        try:
            checked = check_message(topic, raw, now_s=now_s, lookup=lookup, limits=limits)
        except Rejected as exc:
            out.append((exc.code, exc.detail))
            continue
        except Exception as exc:  # any other fault is the checks', not the sender's
            # Retrying would fail the same way for ever and hold up the rest of the stream (a
            # worker process that died on it was restarted and died again): the message goes
            # to the dead-letter topic with the error named, and the rest of the group on
            out.append(("check_failed", f"the checks raised {type(exc).__name__}: {exc}"[:500]))
            continue
        payload = checked.payload
        out.append(
            (stored_topic(topic), payload["device"], payload["seq"], checked.body, checked.hash)
        )
    return out


def _registered(
    devices: dict[tuple[str, str, bool], Device], pub_key: str | None, active: bool, name: str
) -> Device | None:
    """The Device the registry answered for `name` (check_message asks only for the payload's
    device once it equals the topic's), its verifier bound once per key."""
    if pub_key is None:
        return None
    found = devices.get((name, pub_key, active))
    if found is None:
        found = devices[(name, pub_key, active)] = Device(name, pub_key, active)
    return found


def _serve(conn: Connection, limits: Limits) -> None:
    """A worker: answer each (now_s, jobs) request on the pipe until the gateway closes it.

    Ctrl-C reaches every process of the terminal's group: the worker ignores it and ends when
    its gateway, stopping in order, closes the pipe (or dies, which closes it too)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    devices: dict[tuple[str, str, bool], Device] = {}
    while True:
        try:
            now_s, jobs = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(_check_rows(jobs, now_s, limits, devices))


class CheckPool:
    """`processes` spawned workers, each on its own pipe; used by one thread at a time."""

    def __init__(self, processes: int, limits: Limits) -> None:
        self.processes = processes
        self.limits = limits
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[tuple[BaseProcess, Connection] | None] = [None] * processes
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start every worker and wait until each answers (their imports take a second)."""
        with self._lock:
            workers = [self._worker(i) for i in range(self.processes)]
            try:
                for _, conn in workers:
                    conn.send((0.0, []))
                for _, conn in workers:
                    if not conn.poll(START_TIMEOUT_S):
                        raise CheckPoolError(f"a check worker did not start in {START_TIMEOUT_S}s")
                    conn.recv()
            except (EOFError, OSError) as exc:
                self._reap()
                raise CheckPoolError(f"a check worker died while starting: {exc!r}") from exc

    def check(self, jobs: list[Job], now_s: float) -> list[Outcome]:
        """Every job checked, in order; slices go to the workers and are read back in turn."""
        with self._lock:
            size = -(-len(jobs) // self.processes)
            slices = [jobs[i : i + size] for i in range(0, len(jobs), size)]
            used = [self._worker(i) for i in range(len(slices))]
            try:
                for (_, conn), part in zip(used, slices, strict=True):
                    conn.send((now_s, part))
                results: list[Outcome] = []
                for _, conn in used:
                    rows: list[Row | tuple[str, str]] = conn.recv()
                    results += [Incoming(*r) if len(r) == 5 else r for r in rows]
            except (EOFError, OSError) as exc:
                self._reap()
                raise CheckPoolError(f"a check worker died: {exc!r}") from exc
            return results

    def close(self) -> None:
        with self._lock:
            for i, worker in enumerate(self._workers):
                if worker is not None:
                    process, conn = worker
                    conn.close()  # the worker reads end-of-file and returns
                    process.join(5)
                    if process.is_alive():
                        process.kill()
                        process.join(5)
                    self._workers[i] = None

    def _worker(self, index: int) -> tuple[BaseProcess, Connection]:
        worker = self._workers[index]
        if worker is None:
            ours, theirs = self._context.Pipe()
            process = self._context.Process(
                target=_serve,
                args=(theirs, self.limits),
                name=f"gateway-check-{index}",
                daemon=True,
            )
            process.start()
            theirs.close()
            worker = self._workers[index] = (process, ours)
        return worker

    def _reap(self) -> None:
        """Forget every worker not alive (started again on the next check); a slice's pipe
        may hold a half-read answer, so the living ones are restarted too."""
        for i, worker in enumerate(self._workers):
            if worker is not None:
                process, conn = worker
                conn.close()
                if process.is_alive():
                    process.kill()
                process.join(5)
                self._workers[i] = None
