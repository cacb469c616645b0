"""Telemetry through real Mosquitto at QoS 1: the broker's drain rate, and the gateway's share.

The ceiling must bound the thing measured, not the load generator: a bare subscriber receiving
while one Python publisher sends live measures the publisher. So every drain here starts from a
backlog: a persistent session (MQTT 5, session expiry, no clean start) subscribes and goes
offline, several publisher processes queue BENCH_GATEWAY_MESSAGES signed windows for it in the
bench's own Mosquitto (`max_queued_messages 0`: nothing dropped), and the session comes back
and drains them. Results (JSON, one object each):

- drain_bare_subscriber: a bare MQTT 5 subscriber with the gateway's receive window and its
  receive path (paho's buffered client handing each PUBLISH straight over, acknowledging 500
  at a time in one write): the broker's drain rate on this machine (the ceiling);
- drain_gateway_*: the same backlog drained by 1 and 2 gateway processes (MQTT 5 shared
  subscription) with JSON payloads, and by 1 with CBOR: messages per second from the first
  stored to the last stored (the gateway's rate and its ratio to the broker's), and from the
  first stored until road-health accepted the last batch (the whole path and its ratio), with
  the CPU milliseconds per message of the gateway processes (and of their check workers
  alone), of road-health (a `smartcity service roadhealth` process on SQLite, all its work in
  its own process) and of the node;
- latency_at_half_load_1_gateway: live publishing at half the one-gateway drain rate,
  publish-to-stored p50/p99;
- the machine's Ed25519 ceiling (verifications per second, one core).

The rates in the first group exclude that group (its messages were received before the clock
could start), so no path is credited with time it did not spend.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import threading
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import create_engine, text

from bench._ceiling import ed25519_verifications_per_s
from bench._processes import (
    Processes,
    cpu_s,
    start_node,
    start_private_mosquitto,
    start_service,
    wait_for,
)
from chain.client import ChainClient, Identity
from chain.home import SuiteHome
from iot_gateway.publisher import connect_publisher
from iot_gateway.simulator import Fleet, Outgoing
from iot_gateway.source import BrokerAddress, BufferedClient, connect_properties, new_client
from iot_gateway.wire import Encoding
from services.common.ledger import RemoteLedger
from smartcity.demo import init_suite
from smartcity.iot import demo_network, register_devices

MESSAGES = int(os.environ.get("BENCH_GATEWAY_MESSAGES", "20000"))
DEVICES = int(os.environ.get("BENCH_GATEWAY_DEVICES", "200"))
PUBLISHERS = 4  # processes queueing the backlog
RECEIVE_MAXIMUM = 10_000  # the gateway's default in-flight window, given to the bare subscriber
ACK_GROUP = 500  # the bare subscriber acknowledges as the gateway does, a group at a time
SESSION_EXPIRY_S = 900
CITY = "benchcity"


# --- the backlog --------------------------------------------------------------------------


def backlog(fleet: Fleet, n: int, encoding: Encoding) -> list[Outgoing]:
    """n signed windows, one per device in turn, each device's a second apart ending now."""
    fleet.encoding = encoding
    devices = len(fleet.network.devices)
    start = time.time() - n // devices - 2
    return [fleet.next_message(start + i // devices) for i in range(n)]


def _publish_part(broker: str, part: list[tuple[str, bytes]]) -> None:
    client = connect_publisher(broker, f"bench-pub-{uuid.uuid4().hex[:8]}")
    infos = [client.publish(topic, payload, qos=1) for topic, payload in part]
    for info in infos:
        info.wait_for_publish(120)
    client.loop_stop()
    client.disconnect()


def queue_backlog(broker: str, messages: list[Outgoing]) -> float:
    """Publish the messages from PUBLISHERS processes; returns once the broker acked all."""
    items = [(m.topic, m.payload) for m in messages]
    ctx = multiprocessing.get_context("fork")
    started = time.monotonic()
    workers = [
        ctx.Process(target=_publish_part, args=(broker, items[i::PUBLISHERS]))
        for i in range(PUBLISHERS)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(300)
        if w.exitcode != 0:
            raise RuntimeError(f"a publisher process exited with {w.exitcode}")
    return time.monotonic() - started


def end_session(broker: str, client_id: str) -> None:
    """Remove a persistent session (and what the broker still queues for it)."""
    address = BrokerAddress.parse(broker)
    client = new_client(address, client_id, "5", persistent=False)
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    props = connect_properties(session_expiry_s=0, receive_maximum=RECEIVE_MAXIMUM)
    client.connect(address.host, address.port, clean_start=True, properties=props)
    client.loop_start()
    connected.wait(10)
    client.disconnect()
    client.loop_stop()


# --- the bare subscriber --------------------------------------------------------------------


def _bare_client(
    broker: str, client_id: str, got: list[float], n: int, done: threading.Event
) -> tuple[mqtt.Client, BrokerAddress]:
    address = BrokerAddress.parse(broker)
    client = new_client(address, client_id, "5", persistent=True)
    assert isinstance(client, BufferedClient)
    client.manual_ack_set(True)
    unacked: list[int] = []

    def on_delivery(_topic: str, _payload: bytes, mid: int, _qos: int) -> None:
        # The gateway's own receive path and acknowledgement in one write per group
        got.append(time.perf_counter())
        unacked.append(mid)
        if len(unacked) >= ACK_GROUP or len(got) >= n:
            client.ack_many(unacked)
            unacked.clear()
        if len(got) >= n:
            done.set()

    client.on_delivery = on_delivery
    return client, address


def drain_bare(broker: str, topic: str, messages: list[Outgoing]) -> dict[str, Any]:
    client_id = f"bench-bare-{uuid.uuid4().hex[:6]}"
    got: list[float] = []
    done = threading.Event()
    n = len(messages)
    client, address = _bare_client(broker, client_id, got, n, done)
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    props = connect_properties(session_expiry_s=SESSION_EXPIRY_S, receive_maximum=RECEIVE_MAXIMUM)
    client.connect(address.host, address.port, clean_start=True, properties=props)
    client.loop_start()
    client.subscribe(topic, qos=1)
    if not subscribed.wait(10):
        raise RuntimeError("the bare subscriber's subscription was not acknowledged")
    client.disconnect()
    client.loop_stop()
    queue_backlog(broker, messages)
    cpu_before = time.process_time()
    client, _ = _bare_client(broker, client_id, got, n, done)
    client.connect(address.host, address.port, clean_start=False, properties=props)
    client.loop_start()
    done.wait(300)
    cpu = time.process_time() - cpu_before
    bye = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
    bye.SessionExpiryInterval = 0
    client.disconnect(properties=bye)
    client.loop_stop()
    if len(got) < n:
        raise RuntimeError(f"the bare subscriber drained {len(got)} of {n} queued messages")
    rate = (n - 1) / (got[-1] - got[0])
    return {"msgs_per_s": rate, "cpu_ms_per_msg": 1000 * cpu / n}


# --- gateways -------------------------------------------------------------------------------


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its children (a gateway's check workers), Linux /proc."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return cpu_s(pid) + sum(tree_cpu_s(child) for child in children)


class Stack:
    """The chain node, road-health and the gateways as separate processes."""

    def __init__(self, work: Path, broker: str) -> None:
        self.work = work
        self.broker = broker
        self.procs = Processes(work)
        self.suite = work / "suite"
        init_suite(
            self.suite,
            validators=1,
            contracts=[("roadhealth", "services.roadhealth.contract:RoadHealthContract")],
        )
        self.home = SuiteHome(self.suite)
        self.node = start_node(self.procs, self.suite)
        self.roadhealth = start_service(
            self.procs,
            self.suite,
            "roadhealth",
            self.node,
            f"sqlite:///{work / 'roadhealth.db'}",
        )

    def register(self, fleet: Fleet) -> None:
        client = ChainClient(
            self.node, identity=Identity("road-authority", self.home.org_key("road-authority"))
        )
        ledger = RemoteLedger(client, self.home.genesis())
        register_devices(
            ledger,
            self.home.org_key("road-authority"),
            fleet.network,
            self.roadhealth,
            stop=threading.Event(),
        )
        client.close()

    def spawn_gateway(self, instance: str, group: str, topic: str) -> Path:
        ready = self.work / f"{instance}.ready"
        ready.unlink(missing_ok=True)
        self.procs.python(
            instance,
            "smartcity",
            [
                "gateway",
                "run",
                "--data",
                str(self.suite),
                "--broker",
                self.broker,
                "--roadhealth",
                self.roadhealth,
                "--chain",
                self.node,
                "--outbox",
                f"sqlite:///{self.work / instance}.db",
                "--instance",
                instance,
                "--group",
                group,
                "--topic",
                topic,
                "--protocol",
                "5",
                "--session-expiry",
                str(SESSION_EXPIRY_S),
                "--ready-file",
                str(ready),
            ],
        )
        return ready

    def _up(self, name: str, ready: Path) -> bool:
        return self.procs.check_alive(name) and ready.exists()

    def outbox_rows(self, instances: list[str], sql: str) -> list[Any]:
        rows: list[Any] = []
        for instance in instances:
            engine = create_engine(f"sqlite:///{self.work / instance}.db")
            with engine.connect() as conn:
                rows += list(conn.execute(text(sql)).all())
            engine.dispose()
        return rows

    def count(self, instances: list[str], sql: str) -> int:
        return sum(int(r[0] or 0) for r in self.outbox_rows(instances, sql))

    def drain(self, fleet: Fleet, gateways: int, encoding: Encoding) -> dict[str, Any]:
        """Gateways subscribe and stop; the backlog is queued; they come back and drain it."""
        group = f"bench-{uuid.uuid4().hex[:6]}"
        instances = [f"{group}-{i}" for i in range(gateways)]
        topic = f"city/{CITY}/road/+/sensor/+/telemetry/#"
        # First run: the sessions and the shared subscription exist, the registry is warm
        warm = backlog(fleet, 2 * len(fleet.network.devices), encoding)
        readies = [self.spawn_gateway(i, group, topic) for i in instances]
        for ready, name in zip(readies, instances, strict=True):
            wait_for(partial(self._up, name, ready), name, 120)
        time.sleep(1.0)  # the subscriptions reach the broker
        queue_backlog(self.broker, warm)
        wait_for(lambda: self.count(instances, FORWARDED) >= len(warm), "the warm-up", 120)
        for name in instances:
            self.procs.stop(name)
        messages = backlog(fleet, MESSAGES, encoding)
        queued_s = queue_backlog(self.broker, messages)
        n = len(messages) + len(warm)
        # Second run: drain. The gateways' CPU counts from when they are up (their imports and
        # start-up are not per-message costs); road-health's and the node's from now.
        others = {"roadhealth": self.procs.pid("roadhealth"), "node": self.procs.pid("validator-0")}
        before = {k: cpu_s(pid) for k, pid in others.items()}
        readies = [self.spawn_gateway(i, group, topic) for i in instances]
        gateway_pids = [self.procs.pid(i) for i in instances]
        wait_for(lambda: all(r.exists() for r in readies), "the gateways to start", 120, 0.005)
        started_cpu = sum(tree_cpu_s(p) for p in gateway_pids)
        started_main = sum(cpu_s(p) for p in gateway_pids)
        wait_for(lambda: self.count(instances, STORED) >= n, "the drain", 600, 0.1)
        wait_for(lambda: self.count(instances, FORWARDED) >= n, "road-health", 900, 0.1)
        gateway_cpu = sum(tree_cpu_s(p) for p in gateway_pids) - started_cpu
        main_cpu = sum(cpu_s(p) for p in gateway_pids) - started_main
        used = {k: cpu_s(pid) - before[k] for k, pid in others.items()}
        for name in instances:
            self.procs.stop(name)
            end_session(self.broker, name)
        stored = sorted(float(r[0]) for r in self.outbox_rows(instances, STORED_AT))
        forwarded = max(float(r[0]) for r in self.outbox_rows(instances, FORWARDED_AT))
        drained = stored[-len(messages) :]  # the warm-up's messages were stored long before
        first = drained[0]
        counted = sum(1 for s in drained if s > first)  # the first group is not credited
        return {
            "messages": len(messages),
            "queued_seconds": round(queued_s, 2),
            "stored_msgs_per_s": counted / (drained[-1] - first),
            "path_msgs_per_s": counted / (forwarded - first),
            "gateway_cpu_ms_per_msg": 1000 * gateway_cpu / len(messages),
            "gateway_workers_cpu_ms_per_msg": 1000 * (gateway_cpu - main_cpu) / len(messages),
            "roadhealth_cpu_ms_per_msg": 1000 * used["roadhealth"] / len(messages),
            "node_cpu_ms_per_msg": 1000 * used["node"] / len(messages),
        }

    def live_latency(self, fleet: Fleet, rate: float, seconds: float) -> list[float]:
        """Publish live at `rate` to one running gateway; publish-to-stored latencies."""
        group = f"bench-{uuid.uuid4().hex[:6]}"
        instance = f"{group}-0"
        ready = self.spawn_gateway(instance, group, f"city/{CITY}/road/+/sensor/+/telemetry/#")
        wait_for(lambda: self.procs.check_alive(instance) and ready.exists(), instance, 120)
        time.sleep(1.0)
        fleet.encoding = "json"
        client = connect_publisher(self.broker, f"bench-live-{uuid.uuid4().hex[:6]}")
        sent: dict[tuple[str, int], float] = {}
        infos = []
        count = int(rate * seconds)
        started = time.monotonic()
        for i in range(count):
            ahead = i / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
            message = fleet.next_message(time.time())
            sent[(message.device, int(message.seq or 0))] = time.time()
            infos.append(client.publish(message.topic, message.payload, qos=1))
        for info in infos:
            info.wait_for_publish(60)
        client.loop_stop()
        client.disconnect()
        wait_for(lambda: self.count([instance], STORED) >= count, "live messages stored", 120)
        rows = self.outbox_rows(
            [instance], "SELECT device, seq, stored_at FROM iot_gateway_messages"
        )
        self.procs.stop(instance)
        end_session(self.broker, instance)
        return sorted(float(s) - sent[(d, int(q))] for d, q, s in rows if (d, int(q)) in sent)

    def close(self) -> None:
        self.procs.stop_all()


STORED = "SELECT count(*) FROM iot_gateway_messages"
STORED_AT = "SELECT stored_at FROM iot_gateway_messages"
FORWARDED = "SELECT coalesce(sum(count), 0) FROM iot_gateway_batches WHERE state = 'forwarded'"
FORWARDED_AT = "SELECT max(forwarded_at) FROM iot_gateway_batches"


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def run() -> list[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="bench-gw-"))
    broker_procs = Processes(work)
    broker = start_private_mosquitto(broker_procs)
    if broker is None:
        raise RuntimeError(
            "bench.iot_gateway needs the mosquitto binary (Debian package mosquitto) to run a"
            " broker that queues without limit; install it or skip this module"
        )
    results: list[dict[str, Any]] = [
        {
            "name": "ceiling_ed25519_verify_one_core",
            "verifications_per_s": round(ed25519_verifications_per_s(), 1),
        }
    ]
    stack = Stack(work, broker)
    try:
        network = demo_network(city=CITY, seed=7, n_devices=DEVICES)
        fleet = Fleet(network, seed=1)
        stack.register(fleet)
        samples = network.rate_hz  # one-second windows
        topic = f"city/{CITY}/road/+/sensor/+/telemetry/#"
        bare = drain_bare(broker, topic, backlog(fleet, MESSAGES, "json"))
        ceiling = bare["msgs_per_s"]
        results.append(
            {
                "name": "drain_bare_subscriber",
                "messages": MESSAGES,
                "publisher_processes": PUBLISHERS,
                "msgs_per_s": round(ceiling, 1),
                "samples_per_s": round(ceiling * samples, 1),
                "subscriber_cpu_ms_per_msg": round(bare["cpu_ms_per_msg"], 4),
            }
        )
        one_rate = 0.0
        runs: tuple[tuple[int, Encoding], ...] = ((1, "json"), (2, "json"), (1, "cbor"))
        for gateways, encoding in runs:
            got = stack.drain(fleet, gateways, encoding)
            one_rate = one_rate or got["stored_msgs_per_s"]
            results.append(
                {
                    "name": f"drain_gateway_{gateways}_{encoding}",
                    "gateways": gateways,
                    "encoding": encoding,
                    "messages": got["messages"],
                    "stored_msgs_per_s": round(got["stored_msgs_per_s"], 1),
                    "stored_ratio_to_broker": round(got["stored_msgs_per_s"] / ceiling, 3),
                    "to_roadhealth_msgs_per_s": round(got["path_msgs_per_s"], 1),
                    "to_roadhealth_ratio_to_broker": round(got["path_msgs_per_s"] / ceiling, 3),
                    "gateway_cpu_ms_per_msg": round(got["gateway_cpu_ms_per_msg"], 4),
                    # of which the check workers (decoding, the canonical check, Ed25519)
                    "gateway_workers_cpu_ms_per_msg": round(
                        got["gateway_workers_cpu_ms_per_msg"], 4
                    ),
                    "roadhealth_cpu_ms_per_msg": round(got["roadhealth_cpu_ms_per_msg"], 4),
                    "node_cpu_ms_per_msg": round(got["node_cpu_ms_per_msg"], 4),
                    "backlog_queued_in_s": got["queued_seconds"],
                }
            )
        half = one_rate / 2
        latencies = stack.live_latency(fleet, half, 8.0)
        results.append(
            {
                "name": "latency_at_half_load_1_gateway",
                "rate_msgs_per_s": round(half, 1),
                "messages": len(latencies),
                "p50_publish_to_stored_s": round(_pct(latencies, 0.5), 4),
                "p99_publish_to_stored_s": round(_pct(latencies, 0.99), 4),
            }
        )
    finally:
        stack.close()
        broker_procs.stop_all()
    return results
