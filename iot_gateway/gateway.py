"""The gateway: deliveries checked, accepted ones stored before their ack, rejects dead-lettered."""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from paho.mqtt.client import MQTTMessageInfo

from chain.errors import ChainError
from iot_gateway.checkpool import CheckPool, CheckPoolError, Job, Outcome, check_jobs, job_for
from iot_gateway.errors import Rejected
from iot_gateway.forwarder import Forwarder, ForwardSettings
from iot_gateway.health import HealthServer
from iot_gateway.metrics import Metrics
from iot_gateway.outbox import Incoming, Outbox, OutboxError
from iot_gateway.registry import (
    DEFAULT_CAPACITY,
    DEFAULT_UNKNOWN_CAPACITY,
    DEFAULT_UNKNOWN_TTL_S,
    DeviceRegistry,
)
from iot_gateway.source import BrokerAddress, Delivery, MqttSource, Protocol
from iot_gateway.validate import Device, Limits
from iot_gateway.wire import TOPIC_PATTERN, dlq_topic, parse_topic
from services.common.ledger import LedgerPort, RemoteLedger

log = logging.getLogger(__name__)
T = TypeVar("T")
MIN_CHECK_SLICE = 32  # below this a slice costs more to hand over than to check
BACKLOG_RECOUNT_S = 5.0  # the outbox's unforwarded messages counted again (drift, other writers)
BACKLOG_PAUSED_RECOUNT_S = 0.25  # ... and this often while the count holds the intake back
# Fault injection for the recovery tests (tests/iot_gateway/test_faults.py), never set in a
# deployment: with SMARTCITY_TEST_FAULT=kill-after-store the process SIGKILLs itself after
# its first outbox commit, before the broker hears any acknowledgement of those messages
FAULT_VARIABLE = "SMARTCITY_TEST_FAULT"
KILL_AFTER_STORE = "kill-after-store"


@dataclass(frozen=True)
class GatewaySettings:
    broker_url: str
    outbox_url: str
    forward: ForwardSettings
    instance: str = "gateway-0"  # MQTT client id and outbox owner: keep it across restarts
    group: str = "iot-gateway"
    topic: str = TOPIC_PATTERN
    protocol: Protocol = "auto"
    limits: Limits = field(default_factory=Limits)
    group_max: int = 500  # deliveries stored per outbox transaction
    max_backlog: int = 20_000  # stored but unforwarded messages before intake pauses
    receive_maximum: int = 10_000  # broker in-flight window: bounds the in-memory queue
    session_expiry_s: int = 24 * 3600  # how long the broker keeps our queue while we are down
    registry_ttl_s: float = 5.0
    # Registered devices the registry keeps (least recently seen dropped first): twice the
    # fleet this gateway serves, so a fleet's records are read once, not at every publish
    registry_capacity: int = DEFAULT_CAPACITY
    # Ids the chain does not know, kept apart (a flood of them never evicts a registered
    # device) for at most registry_unknown_ttl_s: one chain read per junk id per ttl
    registry_unknown_capacity: int = DEFAULT_UNKNOWN_CAPACITY
    registry_unknown_ttl_s: float = DEFAULT_UNKNOWN_TTL_S
    health_host: str = "127.0.0.1"
    health_port: int | None = 0  # 0 picks a free port; None serves nothing
    dlq_confirm_s: float = 5.0
    # Worker processes running the checks (iot_gateway.checkpool); 0 checks on threads in this
    # process instead (check_threads of them: verification drops the GIL, the rest does not)
    check_processes: int = 2
    check_threads: int = 2

    def __post_init__(self) -> None:
        # Verify the registry's bounds (a cache of nothing reads the chain for every message)
        capacities = {
            "registry_capacity": self.registry_capacity,
            "registry_unknown_capacity": self.registry_unknown_capacity,
        }
        for name, capacity in capacities.items():
            if capacity < 1:
                raise ValueError(f"{name} must be at least 1, got {capacity}")
        if not self.registry_unknown_ttl_s > 0:
            ttl_s = self.registry_unknown_ttl_s
            raise ValueError(f"registry_unknown_ttl_s must be more than 0 seconds, got {ttl_s}")


class Gateway:
    """Wires the MQTT source, the checks, the outbox, the forwarder and the health endpoint."""

    def __init__(self, settings: GatewaySettings, *, ledger: LedgerPort) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.outbox = Outbox(
            settings.outbox_url, owner=settings.instance, batch_max=settings.forward.batch_max
        )
        self.registry = DeviceRegistry(
            ledger.read,
            ttl_s=settings.registry_ttl_s,
            capacity=settings.registry_capacity,
            unknown_capacity=settings.registry_unknown_capacity,
            unknown_ttl_s=settings.registry_unknown_ttl_s,
            # Over HTTP a read costs a round trip and a proof: follow the chain's events instead
            # of polling every device (in one process, reads are cheap and polled)
            watch=ledger.events if isinstance(ledger, RemoteLedger) else None,
            height=ledger.height,
        )
        self.source = MqttSource(
            BrokerAddress.parse(settings.broker_url),
            client_id=settings.instance,
            topic=settings.topic,
            group=settings.group,
            protocol=settings.protocol,
            receive_maximum=settings.receive_maximum,
            session_expiry_s=settings.session_expiry_s,
        )
        self.forwarder = Forwarder(
            self.outbox, ledger=ledger, settings=settings.forward, metrics=self.metrics
        )
        self.stop_event = threading.Event()
        self._checkers = ThreadPoolExecutor(
            max(1, settings.check_threads), thread_name_prefix="gateway-checker"
        )
        self._pool = (
            CheckPool(settings.check_processes, settings.limits)
            if settings.check_processes > 0
            else None
        )
        self._devices: dict[tuple[str, str, bool], Device] = {}
        # One checked group waits here while the intake stores the one before
        self._checked: queue.Queue[tuple[list[Delivery], list[Outcome]]] = queue.Queue(1)
        self._threads: list[threading.Thread] = []
        self.health: HealthServer | None = None
        # (when counted, the count, the forwarder's stored_total and settled_total then)
        self._backlog_counted = (-math.inf, 0, 0, 0)
        self._kill_after_store = os.environ.get(FAULT_VARIABLE) == KILL_AFTER_STORE
        self._register_gauges()

    def start(self) -> None:
        if self._pool is not None:
            self._pool.start()
        self.registry.start()
        self.source.start()
        loops = (
            ("check", self._check_loop),
            ("intake", self._intake_loop),
            ("forward", self.forwarder.run),
        )
        for name, target in loops:
            thread = threading.Thread(target=target, name=f"gateway-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.settings.health_port is not None:
            self.health = HealthServer(
                self, host=self.settings.health_host, port=self.settings.health_port
            )
            self.health.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.forwarder.stop_event.set()
        self.registry.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        self._checkers.shutdown(wait=True)
        if self._pool is not None:
            self._pool.close()
        self.source.stop()
        if self.health is not None:
            self.health.stop()
        self.outbox.close()

    def is_healthy(self) -> bool:
        return self.source.connected.is_set() and all(t.is_alive() for t in self._threads)

    # --- intake -----------------------------------------------------------------------------

    def _check_loop(self) -> None:
        """Take groups of deliveries and check them while the intake stores the previous one
        (the checks run on the worker processes, the store in this one: they overlap)."""
        while not self.stop_event.is_set():
            if self.backlog() >= self.settings.max_backlog:
                # Take nothing more: the broker's in-flight window fills and it holds the rest
                self.stop_event.wait(0.05)
                continue
            group = self._take_group()
            if not group:
                continue
            outcomes = self._retrying(partial(self._check_all, group))
            while outcomes is not None and not self.stop_event.is_set():
                try:
                    self._checked.put((group, outcomes), timeout=0.1)
                    break
                except queue.Full:
                    continue

    def _intake_loop(self) -> None:
        """Store each checked group, dead-letter its rejects, then acknowledge it."""
        while not self.stop_event.is_set():
            try:
                group, outcomes = self._checked.get(timeout=0.1)
            except queue.Empty:
                continue
            self._retrying(partial(self.store_group, group, outcomes))

    def _retrying(self, step: Callable[[], T]) -> T | None:
        """The step's result, retried after a growing pause while the outbox, the chain or a
        check worker fails (nothing is acknowledged before it succeeds); None when stopped."""
        delay = 0.1
        while not self.stop_event.is_set():
            try:
                return step()
            except (OutboxError, ChainError, CheckPoolError) as exc:
                log.warning("intake paused %.1fs: %s", delay, exc)
                self.metrics.inc("intake_errors_total")
                self.stop_event.wait(delay)
                delay = min(delay * 2, 5.0)
        return None

    def _take_group(self) -> list[Delivery]:
        try:
            first = self.source.deliveries.get(timeout=0.1)
        except queue.Empty:
            return []
        group = [first]
        while len(group) < self.settings.group_max:
            try:
                group.append(self.source.deliveries.get_nowait())
            except queue.Empty:
                break
        return group

    def process_group(self, group: list[Delivery]) -> None:
        """Check every delivery, store the accepted, dead-letter the rest, then ack them all."""
        self.store_group(group, self._check_all(group))

    def store_group(self, group: list[Delivery], outcomes: list[Outcome]) -> None:
        """Store a checked group's accepted messages, dead-letter the rest, then ack them all."""
        accepted: list[tuple[Delivery, Incoming]] = []
        rejected: list[tuple[Delivery, Rejected]] = []
        for delivery, checked in zip(group, outcomes, strict=True):
            if isinstance(checked, Incoming):
                accepted.append((delivery, checked))
            else:
                rejected.append((delivery, Rejected(*checked)))
        if accepted:
            result = self.outbox.store([item for _, item in accepted])
            now = time.time()
            latencies: list[float] = []
            duplicates = 0
            for (delivery, _), outcome in zip(accepted, result.outcome, strict=True):
                if outcome == "stored":
                    latencies.append(now - delivery.received_at)
                elif outcome == "duplicate":
                    duplicates += 1
                else:
                    rejected.append(
                        (delivery, Rejected(outcome, "seq already accepted with other content"))
                    )
            if self._kill_after_store and latencies:
                log.warning(
                    "%s=%s: killing the process before the acks", FAULT_VARIABLE, KILL_AFTER_STORE
                )
                os.kill(os.getpid(), signal.SIGKILL)
            self.forwarder.note_stored(len(latencies))
            # counted per group, not per message: each update takes the metrics' lock
            self.metrics.inc("accepted_total", len(latencies))
            self.metrics.inc("duplicates_total", duplicates)
            self.metrics.observe_many("store_latency_seconds", latencies)
        pending = [self._dead_letter(delivery, exc) for delivery, exc in rejected]
        deadline = time.monotonic() + self.settings.dlq_confirm_s
        for info in pending:
            # A reject is acknowledged once its dead letter is with the broker
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        self.source.ack(group)

    def _check_all(self, group: list[Delivery]) -> list[Outcome]:
        """Each delivery checked: on the worker processes, or in slices on the checker threads
        (Ed25519 verification, the largest cost, runs without the GIL)."""
        now = time.time()
        jobs = [job_for(d.topic, d.payload, self.registry.lookup) for d in group]
        if self._pool is not None:
            return self._pool.check(jobs, now)
        workers = self.settings.check_threads
        if workers < 2 or len(jobs) < 2 * MIN_CHECK_SLICE:
            return self._check_slice(jobs, now)
        size = max(MIN_CHECK_SLICE, -(-len(jobs) // workers))
        slices = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        results = self._checkers.map(self._check_slice, slices, [now] * len(slices))
        return [checked for part in results for checked in part]

    def _check_slice(self, jobs: list[Job], now: float) -> list[Outcome]:
        return check_jobs(jobs, now, self.settings.limits, self._devices)

    def _dead_letter(self, delivery: Delivery, exc: Rejected) -> MQTTMessageInfo:
        self.metrics.inc("rejected_total", reason=exc.code)
        parsed = parse_topic(delivery.topic)
        city = parsed.city if parsed else "unknown"
        device = parsed.device if parsed else "unknown"
        envelope = {
            "reason": exc.code,
            "detail": exc.detail,
            "topic": delivery.topic,
            "client_id": self.settings.instance,
            "payload_b64": base64.b64encode(delivery.payload).decode("ascii"),
            "received_at": delivery.received_at,
        }
        log.info("rejected %s on %s: %s", exc.code, delivery.topic, exc.detail)
        return self.source.publish(dlq_topic(city, device), json.dumps(envelope).encode(), qos=1)

    # --- health -----------------------------------------------------------------------------

    def backlog(self) -> int:
        """Messages queued in memory plus those stored and not yet forwarded. The stored part
        is counted in the outbox every BACKLOG_RECOUNT_S and followed in between by what this
        process stored and forwarded since (counting reads every pending index entry: with a
        backlog of thousands, the check loop's count every 0.25 s cost 8-10 us a message)."""
        at, counted, stored, settled = self._backlog_counted
        now = time.monotonic()
        forwarder = self.forwarder
        value = counted + (forwarder.stored_total - stored) - (forwarder.settled_total - settled)
        if now - at > BACKLOG_RECOUNT_S or (
            value >= self.settings.max_backlog and now - at > BACKLOG_PAUSED_RECOUNT_S
        ):
            # Stored read before the count and settled after: a group or a batch committed
            # while counting is then counted twice, never missed (the guard errs on the side
            # of pausing until the next count)
            stored = forwarder.stored_total
            value = self.outbox.unforwarded_count()
            self._backlog_counted = (now, value, stored, forwarder.settled_total)
        return max(value, 0) + self.source.deliveries.qsize()

    def anchor_lag_s(self) -> float:
        oldest = self.outbox.oldest_unanchored_at()
        return 0.0 if oldest is None else max(0.0, time.time() - oldest)

    def _register_gauges(self) -> None:
        m = self.metrics
        m.gauge("queue_depth", self.backlog, "messages received and not yet forwarded")
        m.gauge(
            "inbound_queue",
            lambda: self.source.deliveries.qsize(),
            "deliveries waiting for their checks",
        )
        m.gauge(
            "anchor_lag_seconds",
            self.anchor_lag_s,
            "age of the oldest stored message not yet anchored",
        )
        m.gauge(
            "sequence_gaps", self.outbox.sequence_gaps, "seq numbers missing per device, summed"
        )
        m.gauge(
            "mqtt_connected",
            lambda: float(self.source.connected.is_set()),
            "1 when connected to the broker",
        )
        m.gauge(
            "mqtt_connects",
            lambda: float(self.source.connects),
            "successful connections to the broker since start",
        )
