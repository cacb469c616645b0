"""The simulated world: validators, a lossy network, faults, Byzantine behaviour, invariants.

Everything random comes from one `random.Random(seed)`; time is virtual (milliseconds). After
every event the safety invariants are checked; once the faults heal, every honest node must
commit again within a bounded number of rounds. A failure carries the one-line replay command.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from chain.block import PRECOMMIT
from chain.consensus.effects import (
    Broadcast,
    Decide,
    Effect,
    FoundEvidence,
    Persist,
    RequestSync,
    ScheduleTimeout,
    SignedState,
    Timeouts,
)
from chain.consensus.evidence import Evidence
from chain.consensus.machine import Tendermint
from chain.consensus.messages import Message, Proposal, ValidatorSet, Vote
from chain.crypto import SigningKey, verify
from chain.sim.app import SimApp, SimBlock, tx_is_signed
from chain.sim.byzantine import corrupt, other_proposal, resign
from chain.sim.scenario import BEHAVIOURS, CHAIN_ID, FAULTS, Failure, Scenario, SimResult
from chain.types import BlockHash


@cache
def _key(index: int) -> SigningKey:
    return SigningKey.from_seed(index.to_bytes(4, "big").ljust(32, b"\x5a"))


@cache
def _verify_cached(public_hex: str, message: bytes, signature: bytes) -> bool:
    return verify(public_hex, message, signature)


@dataclass
class Disk:
    """What survives a crash: the committed chain and the last signed state."""

    chain: list[tuple[int, SimBlock]] = field(default_factory=list)
    signed: SignedState | None = None
    certificates: list[tuple[Vote, ...]] = field(default_factory=list)


@dataclass
class SimNode:
    name: str
    key: SigningKey
    voter: bool
    byzantine: str | None = None
    skew_ms: int = 0
    disk: Disk = field(default_factory=Disk)
    alive: bool = True
    generation: int = 0
    machine: Tendermint | None = None
    evidence: list[Evidence] = field(default_factory=list)
    sent: list[Message] = field(default_factory=list)

    @property
    def height(self) -> int:
        return len(self.disk.chain)


class World:
    def __init__(self, scenario: Scenario) -> None:
        self.s = scenario
        self.rng = random.Random(scenario.seed)
        self.now = 0
        self.queue: list[tuple[int, int, str, Any]] = []
        self.seq = 0
        self.messages = 0
        self.partition: list[set[str]] | None = None
        self.healed = False
        self.faults = self._choose_faults()
        self.loss = self.rng.uniform(0.05, 0.3) if "loss" in self.faults else 0.0
        self.duplicate = self.rng.uniform(0.05, 0.3) if "duplicate" in self.faults else 0.0
        low, high = scenario.latency_ms
        self.delay = (low, high * (4 if "delay" in self.faults else 1))
        self.nodes = self._make_nodes()
        voters = {n.key.public_hex: 1 for n in self.nodes if n.voter}
        self.validators = ValidatorSet.of(voters)
        self.timeouts = Timeouts(propose_ms=300, prevote_ms=200, precommit_ms=200, delta_ms=150)
        self.heal_round: dict[str, tuple[int, int]] = {}  # height and round when faults healed
        self.decide_time: dict[int, int] = {}
        self.start_time: dict[int, int] = {1: 0}
        self.max_round = 0

    # -- set-up ---------------------------------------------------------------------------

    def _choose_faults(self) -> tuple[str, ...]:
        if self.s.faults is not None:
            return self.s.faults
        return tuple(f for f in FAULTS if self.rng.random() < 0.45)

    def _make_nodes(self) -> list[SimNode]:
        s = self.s
        behaviours = [s.behaviour or self.rng.choice(BEHAVIOURS) for _ in range(s.byzantine)]
        bad = set(self.rng.sample(range(s.validators), s.byzantine))
        nodes: list[SimNode] = []
        it = iter(behaviours)
        for i in range(s.validators):
            behaviour = next(it) if i in bad else None
            skew = self.rng.randint(-900, 900) if "skew" in self.faults else 0
            nodes.append(SimNode(f"v{i}", _key(i), True, behaviour, skew))
            if behaviour == "twins":
                nodes.append(SimNode(f"v{i}-twin", _key(i), True, "twins", skew))
        nodes += [SimNode(f"o{i}", _key(1000 + i), False) for i in range(s.observers)]
        return nodes

    def honest(self) -> list[SimNode]:
        return [n for n in self.nodes if n.byzantine is None]

    # -- events ---------------------------------------------------------------------------

    def push(self, at_ms: int, kind: str, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at_ms, self.seq, kind, payload))

    def run(self) -> SimResult:
        for node in self.nodes:
            self._boot(node)
        self._schedule_faults()
        self.push(self.s.heal_ms, "heal", None)
        target = self.s.heights
        deadline = self.s.heal_ms + self._liveness_budget_ms()
        while self.queue:
            at, _, kind, payload = heapq.heappop(self.queue)
            if at > deadline:
                break
            self.now = at
            self._dispatch(kind, payload)
            if self.healed and all(n.height >= target for n in self.honest() if n.alive):
                break
        self._check_liveness(target)
        return self._result()

    def _liveness_budget_ms(self) -> int:
        rounds = self.s.liveness_rounds * self.s.heights
        per_round = self.timeouts.propose_ms + self.timeouts.prevote_ms + self.timeouts.precommit_ms
        return rounds * (per_round + 3 * self.timeouts.delta_ms * self.s.liveness_rounds) + 10_000

    def _dispatch(self, kind: str, payload: Any) -> None:
        if kind == "deliver":
            self._deliver(*payload)
        elif kind == "timeout":
            node, generation, timeout = payload
            if node.alive and node.generation == generation and node.machine is not None:
                self._apply(
                    node, node.machine.on_timeout(timeout.kind, timeout.height, timeout.round)
                )
        elif kind == "crash":
            payload.alive = False
            payload.generation += 1
        elif kind == "restart":
            self._boot(payload)
        elif kind == "partition":
            self.partition = payload
        elif kind == "heal":
            self._heal()
        elif kind == "sync":
            self._serve_sync(*payload)
        elif kind == "replay":
            node, message = payload
            self._send(node, message, byzantine_copy=True)

    def _heal(self) -> None:
        self.healed = True
        self.partition = None
        self.loss = self.duplicate = 0.0
        self.delay = self.s.latency_ms
        for node in self.nodes:
            if not node.alive:
                self._boot(node)
        for node in self.honest():
            if node.machine is not None:
                self.heal_round[node.name] = (node.machine.height, node.machine.round)

    def _schedule_faults(self) -> None:
        names = [n.name for n in self.nodes]
        if "partition" in self.faults:
            self.rng.shuffle(names)
            cut = self.rng.randint(1, len(names) - 1)
            start = self.rng.randint(200, self.s.heal_ms // 2)
            self.push(start, "partition", [set(names[:cut]), set(names[cut:])])
            self.push(self.rng.randint(start + 500, self.s.heal_ms), "partition", None)
        if "crash" in self.faults:
            honest = [n for n in self.honest() if n.voter]
            for node in self.rng.sample(honest, min(len(honest), self.rng.randint(1, 2))):
                down = self.rng.randint(100, self.s.heal_ms - 500)
                self.push(down, "crash", node)
                self.push(self.rng.randint(down + 100, self.s.heal_ms), "restart", node)

    # -- a node's life --------------------------------------------------------------------

    def _boot(self, node: SimNode) -> None:
        node.alive = True
        node.generation += 1
        skew = node.skew_ms

        def clock() -> int:
            return self.now + skew

        app = SimApp(node.key.public_hex, clock, node.disk.chain)
        node.machine = Tendermint(
            chain_id=CHAIN_ID,
            validators=self.validators,
            height=node.height + 1,
            app=app,
            verify=_verify_cached,
            signer=node.key if node.voter else None,
            timeouts=self.timeouts,
            restored=node.disk.signed,
        )
        self._apply(node, node.machine.start())

    def _apply(self, node: SimNode, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Persist):
                node.disk.signed = effect.state
            elif isinstance(effect, Broadcast):
                self._broadcast(node, effect.message)
            elif isinstance(effect, ScheduleTimeout):
                self.push(self.now + effect.after_ms, "timeout", (node, node.generation, effect))
            elif isinstance(effect, Decide):
                self._commit(node, effect)
            elif isinstance(effect, FoundEvidence):
                node.evidence.append(effect.evidence)
                self._check_evidence(effect.evidence)
            elif isinstance(effect, RequestSync):
                peer = next((n for n in self.nodes if n.key.public_hex == effect.peer), None)
                if peer is not None:
                    self.push(self.now + self._latency(), "sync", (node, peer, effect.height))

    def _commit(self, node: SimNode, decision: Decide) -> None:
        node.disk.chain.append((decision.round, decision.value))
        node.disk.certificates.append(decision.precommits)
        self.max_round = max(self.max_round, decision.round)
        self.decide_time.setdefault(decision.height, self.now)
        self.start_time.setdefault(decision.height + 1, self.now)
        self._check_safety(node, decision)
        self._check_rounds_after_heal(node, decision)
        assert node.machine is not None
        self._apply(node, node.machine.advance(self.validators))

    def _serve_sync(self, asker: SimNode, peer: SimNode, height: int) -> None:
        """A peer answers with the commits it has from `height` on (block + certificate)."""
        if not (asker.alive and peer.alive) or self._cut(peer.name, asker.name):
            return
        for h in range(height, peer.height + 1):
            if asker.machine is None or asker.machine.height != h:
                continue
            block = peer.disk.chain[h - 1][1]
            effects = asker.machine.on_commit(block, list(peer.disk.certificates[h - 1]))
            self._apply(asker, effects)

    # -- the network ----------------------------------------------------------------------

    def _latency(self) -> int:
        return self.rng.randint(*self.delay)

    def _cut(self, a: str, b: str) -> bool:
        return self.partition is not None and not any(a in g and b in g for g in self.partition)

    def _broadcast(self, node: SimNode, message: Message) -> None:
        behaviour = node.byzantine
        if behaviour == "silent":
            return
        node.sent.append(message)
        if behaviour in (None, "twins", "replay"):
            self._send(node, message)
        if behaviour == "replay" and node.sent:
            old = self.rng.choice(node.sent)
            self.push(self.now + self.rng.randint(100, 3000), "replay", (node, old))
        elif behaviour == "equivocate":
            self._equivocate(node, message)
        elif behaviour == "double_vote":
            self._double_vote(node, message)
        elif behaviour == "phantom":
            self._send(
                node,
                resign(node.key, message, BlockHash("ff" * 32))
                if isinstance(message, Vote)
                else message,
            )
        elif behaviour == "bad_sig":
            self._send(node, corrupt(message))
            self._send(node, message, to_half=True)

    def _send(
        self,
        node: SimNode,
        message: Message,
        *,
        byzantine_copy: bool = False,
        to_half: bool = False,
        targets: list[SimNode] | None = None,
    ) -> None:
        peers = targets if targets is not None else [n for n in self.nodes if n is not node]
        if to_half:
            peers = peers[: len(peers) // 2]
        for peer in peers:
            if self._cut(node.name, peer.name) or self.rng.random() < self.loss:
                continue
            copies = 2 if self.rng.random() < self.duplicate else 1
            for _ in range(copies):
                jitter = self._latency() + (
                    self.rng.randint(0, 200) if "reorder" in self.faults and not self.healed else 0
                )
                self.push(self.now + jitter, "deliver", (peer, node, message))

    def _deliver(self, peer: SimNode, sender: SimNode, message: Message) -> None:
        if not peer.alive or peer.machine is None:
            return
        self.messages += 1
        self._apply(peer, peer.machine.on_message(message, sender=sender.key.public_hex))

    # -- Byzantine behaviour --------------------------------------------------------------

    def _split(self, node: SimNode) -> tuple[list[SimNode], list[SimNode]]:
        others = [n for n in self.nodes if n is not node]
        self.rng.shuffle(others)
        return others[: len(others) // 2], others[len(others) // 2 :]

    def _equivocate(self, node: SimNode, message: Message) -> None:
        if not isinstance(message, Proposal):
            self._send(node, message)
            return
        first, second = self._split(node)
        forged = other_proposal(node.key, message, salt=self.rng.randint(1, 10**9))
        self._send(node, message, targets=first)
        self._send(node, forged, targets=second)

    def _double_vote(self, node: SimNode, message: Message) -> None:
        if not isinstance(message, Vote):
            self._send(node, message)
            return
        first, second = self._split(node)
        other_hash = None if message.block_hash is not None else BlockHash("ee" * 32)
        self._send(node, message, targets=first)
        self._send(node, resign(node.key, message, other_hash), targets=second)

    # -- invariants -----------------------------------------------------------------------

    def fail(self, what: str) -> Failure:
        return Failure(
            f"{what}\n  seed {self.s.seed}, faults {self.faults}; replay: {self.s.replay_command()}"
        )

    def _check_safety(self, node: SimNode, decision: Decide) -> None:
        if node.byzantine is not None:
            return
        block: SimBlock = decision.value
        # Verify no two honest nodes committed different blocks at this height
        for other in self.honest():
            if other is not node and other.height >= decision.height:
                theirs = other.disk.chain[decision.height - 1][1]
                if theirs.hash != block.hash:
                    raise self.fail(
                        f"fork at height {decision.height}: {node.name} and {other.name} differ"
                    )
        # Verify the chain only grew: the new block extends the previous one
        if decision.height != node.height or (
            node.height > 1 and block.prev != node.disk.chain[-2][1].hash
        ):
            raise self.fail(f"{node.name} committed height {decision.height} out of order")
        # Verify every committed transaction is validly signed and the commit has a quorum
        if not all(tx_is_signed(t) for t in block.txs):
            raise self.fail(f"{node.name} committed an unsigned transaction at {decision.height}")
        power = len(
            {
                v.validator
                for v in decision.precommits
                if v.kind == PRECOMMIT and v.block_hash == block.hash
            }
        )
        if not self.validators.has_quorum(power):
            raise self.fail(
                f"{node.name} committed height {decision.height} without a precommit quorum"
            )

    def _check_rounds_after_heal(self, node: SimNode, decision: Decide) -> None:
        """Once faults heal, every honest decision comes within a bounded number of rounds."""
        if not self.healed or node.byzantine is not None or node.name not in self.heal_round:
            return
        height, round_ = self.heal_round[node.name]
        spent = decision.round - (round_ if decision.height == height else 0)
        if spent > self.s.liveness_rounds:
            raise self.fail(
                f"liveness: {node.name} took {spent} rounds after the heal"
                f" to decide height {decision.height}"
            )

    def _check_evidence(self, evidence: Evidence) -> None:
        offender = next(n for n in self.nodes if n.key.public_hex == evidence.offender)
        if offender.byzantine is None:
            raise self.fail(
                f"honest {offender.name} was caught equivocating: {evidence.to_json()['type']}"
            )

    def _check_liveness(self, target: int) -> None:
        for node in self.honest():
            if node.alive and node.height < target:
                raise self.fail(
                    f"liveness: {node.name} is at height {node.height}, not {target},"
                    f" {self.now} ms after start ({self.now - self.s.heal_ms} ms after the heal)"
                )

    def _result(self) -> SimResult:
        heights = min((n.height for n in self.honest()), default=0)
        evidence = [e.to_json() for n in self.honest() for e in n.evidence]
        latencies = [
            self.decide_time[h] - self.start_time[h]
            for h in sorted(self.decide_time)
            if h in self.start_time
        ]
        txs = sum(len(b.txs) for _, b in self.honest()[0].disk.chain) if self.honest() else 0
        return SimResult(
            self.s, heights, self.now, self.messages, evidence, self.max_round, latencies, txs
        )


def run_scenario(scenario: Scenario) -> SimResult:
    """Run one seeded scenario; raises Failure (with the replay command) on any violation."""
    world = World(scenario)
    return world.run()


def scenario_callable() -> Callable[[Scenario], SimResult]:
    return run_scenario
