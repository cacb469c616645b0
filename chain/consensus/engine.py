"""Runs the consensus state machine for one node: timers, persistence, commits, sync, gossip.

One thread per node owns the machine; messages, transactions and sync replies reach it through
a queue. The node's ledger, mempool, waiters and event stream are the same as a single
validator's: the engine only decides which block is committed next.
"""

from __future__ import annotations

import heapq
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from chain.block import Certificate, CommitSig
from chain.consensus.candidate import Candidate, LedgerApp
from chain.consensus.machine import (
    Broadcast,
    Decide,
    Effect,
    FoundEvidence,
    Persist,
    RequestSync,
    ScheduleTimeout,
    SignedState,
    Tendermint,
    Timeouts,
)
from chain.consensus.messages import Message, ValidatorSet, Vote
from chain.crypto import verify
from chain.errors import ChainError
from chain.node import Node
from chain.tx import Tx, verify_signatures
from chain.types import BlockHash, Height, PublicKey, Round

log = logging.getLogger(__name__)
LAST_SIGNED = "consensus_last_signed"
SYNC_BATCH = 50


class Transport(Protocol):
    """How an engine reaches its peers (in-process hub or authenticated TCP)."""

    def broadcast(self, message: Message) -> None: ...

    def broadcast_txs(self, txs: list[Tx]) -> None: ...

    def request_sync(self, peer: str, height: int) -> None: ...


@dataclass(frozen=True)
class Commit:
    """A committed block as block sync carries it."""

    candidate: Candidate
    precommits: tuple[Vote, ...]


class Engine:
    """The consensus driver of one validator or observer."""

    def __init__(
        self,
        node: Node,
        transport: Transport,
        *,
        timeouts: Timeouts | None = None,
        empty_block_interval_ms: int = 5_000,
        max_proposal_txs: int = 2_000,
    ) -> None:
        self.node = node
        self.ledger = node.ledger
        self.transport = transport
        # Real nodes on a loaded host need time to build, ship and re-execute a full proposal
        self.timeouts = timeouts or Timeouts(
            propose_ms=3000, prevote_ms=1000, precommit_ms=1000, delta_ms=1000
        )
        self.empty_block_interval_s = empty_block_interval_ms / 1000
        self.public_key = node.key.public_hex if node.key else None
        self.app = LedgerApp(
            self.ledger, node.mempool, self.public_key, max_block_txs=max_proposal_txs
        )
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=100_000)
        self._timers: list[tuple[float, int, ScheduleTimeout]] = []
        self._seq = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._waiting_since: float | None = None
        self.machine: Tendermint | None = None
        self.fatal: BaseException | None = None
        node.mempool.listeners.append(self._on_new_txs)

    # -- inputs from other threads ---------------------------------------------------------

    def deliver(self, message: Message, sender: str | None = None) -> None:
        self._put(("msg", (message, sender)))

    def deliver_commits(self, commits: list[Commit]) -> None:
        self._put(("sync", commits))

    def deliver_txs(self, txs: list[Tx]) -> None:
        self._put(("txs", txs))

    def receive_txs(self, txs: list[Tx]) -> None:
        """Transactions gossiped by a peer: admitted like any other, refusals dropped."""
        fresh = []
        mempool, live = self.node.mempool, self.ledger.live_txs
        unseen = [tx for tx in txs if tx.hash not in mempool and tx.hash not in live]
        verify_signatures(unseen)
        for tx in unseen:
            try:
                self.ledger.check_tx(tx)
            except ChainError as exc:  # a peer's bad transaction is its problem, not ours
                log.debug("gossiped tx %s refused: %s", tx.hash[:16], exc)
                continue
            fresh.append(tx)
        if fresh:
            try:
                self.node.mempool.add(fresh, gossip=False)
            except Exception:
                log.debug("mempool full; %d gossiped transactions left with the peer", len(fresh))

    def serve_sync(self, height: int) -> list[Commit]:
        """Committed blocks from `height` on, with their certificates' precommits."""
        commits = []
        for h in range(height, min(self.ledger.height, height + SYNC_BATCH - 1) + 1):
            block = self.ledger.block(h)
            if block is None:
                break
            header, cert = block
            txs = tuple(self._txs_of(h))
            votes = tuple(
                Vote("precommit", cert.height, cert.round, cert.block_hash, s.validator, s.sig)
                for s in cert.signatures
            )
            commits.append(Commit(Candidate(header, txs), votes))
        return commits

    def _txs_of(self, height: int) -> list[Tx]:
        from chain.tx import tx_from_json

        return [tx_from_json(body) for body, _ in self.ledger.store.block_txs(height)]

    def _on_new_txs(self, txs: list[Tx], gossip: bool) -> None:
        if gossip:
            self.transport.broadcast_txs(txs)
        self._put(("tx", None))

    def _put(self, item: tuple[str, Any]) -> None:
        try:
            self._inbox.put_nowait(item)
        except queue.Full:
            log.warning("consensus inbox full: dropping a %s (peers will re-gossip)", item[0])

    # -- life -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start (or restart, as after a crash) from the ledger and the persisted signed state."""
        self._stop.clear()
        self._timers.clear()
        self._waiting_since = None
        self.app.forget()
        restored = self._restored()
        self.machine = Tendermint(
            chain_id=self.ledger.chain_id,
            validators=self._validator_set(),
            height=self.ledger.height + 1,
            app=self.app,
            verify=verify,
            signer=self.node.key,
            timeouts=self.timeouts,
            restored=restored,
        )
        # Transactions restored from the persisted mempool were acknowledged before a restart:
        # gossip them again, or a node that never proposes would hold them forever
        pending = self.node.mempool.reap(len(self.node.mempool), lambda tx: True)
        if pending:
            self.transport.broadcast_txs(pending)
        self._thread = threading.Thread(
            target=self._run, name=f"consensus-{(self.public_key or 'observer')[:8]}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._put(("stop", None))
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _validator_set(self) -> ValidatorSet:
        return ValidatorSet.of(self.ledger.validator_powers())

    def _restored(self) -> SignedState | None:
        raw = self.ledger.store.get_meta(LAST_SIGNED)
        if raw is None:
            return None
        data = json.loads(raw)

        def value(v: Any) -> Candidate | None:
            return None if v is None else Candidate.from_json(v)

        return SignedState(
            data["height"],
            data["round"],
            data["step"],
            data["block_hash"],
            data["locked_round"],
            value(data["locked_value"]),
            data["valid_round"],
            value(data["valid_value"]),
        )

    def _run(self) -> None:
        assert self.machine is not None
        try:
            self._apply(self.machine.start())
            while not self._stop.is_set():
                self._fire_due_timers()
                self._maybe_advance()
                try:
                    kind, payload = self._inbox.get(timeout=self._wait_s())
                except queue.Empty:
                    continue
                self._handle(kind, payload)
        except Exception as exc:  # storage gone or code mismatch: stop rather than diverge
            log.exception("consensus stopped")
            self.fatal = exc
            self.node.fatal = exc

    def _wait_s(self) -> float:
        deadline = self._timers[0][0] if self._timers else time.monotonic() + 0.5
        if self._waiting_since is not None:
            deadline = min(deadline, self._waiting_since + self.empty_block_interval_s)
        return max(0.0, min(0.5, deadline - time.monotonic()))

    def _handle(self, kind: str, payload: Any) -> None:
        machine = self.machine
        assert machine is not None
        if kind == "msg":
            message, sender = payload
            if self._waiting_since is not None and message.height == machine.height + 1:
                self._advance()  # a peer has started the next height: join it
            self._apply(machine.on_message(message, sender=sender))
        elif kind == "txs":
            self.receive_txs(payload)
        elif kind == "sync":
            for commit in payload:
                if self.machine is None or commit.candidate.header.height != self.ledger.height + 1:
                    continue
                if self._waiting_since is not None:
                    self._advance()
                self._apply(self.machine.on_commit(commit.candidate, list(commit.precommits)))

    def _fire_due_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now and self.machine is not None:
            _, _, timeout = heapq.heappop(self._timers)
            self._apply(self.machine.on_timeout(timeout.kind, timeout.height, timeout.round))

    def _maybe_advance(self) -> None:
        """After a commit, start the next height once there is work (or an empty block is due)."""
        if self._waiting_since is None:
            return
        due = time.monotonic() - self._waiting_since >= self.empty_block_interval_s
        if len(self.node.mempool) or due:
            self._advance()

    def _advance(self) -> None:
        assert self.machine is not None
        self._waiting_since = None
        self._timers.clear()
        self._apply(self.machine.advance(self._validator_set()))

    # -- effects --------------------------------------------------------------------------

    def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Persist):
                self.ledger.store.put_meta(LAST_SIGNED, json.dumps(_state_json(effect.state)))
            elif isinstance(effect, Broadcast):
                self.transport.broadcast(effect.message)
            elif isinstance(effect, ScheduleTimeout):
                self._seq += 1
                heapq.heappush(
                    self._timers, (time.monotonic() + effect.after_ms / 1000, self._seq, effect)
                )
            elif isinstance(effect, Decide):
                self._commit(effect)
            elif isinstance(effect, FoundEvidence):
                body = effect.evidence.to_json()
                if self.ledger.store.add_evidence(
                    height=body["height"], validator=body["validator"], kind=body["type"], body=body
                ):
                    log.warning(
                        "evidence of %s by %s at height %s",
                        body["type"],
                        body["validator"][:16],
                        body["height"],
                    )
            elif isinstance(effect, RequestSync):
                self.transport.request_sync(effect.peer, effect.height)

    def _commit(self, decision: Decide) -> None:
        candidate: Candidate = decision.value
        result = self.app.result_for(candidate)
        certificate = Certificate(
            Height(decision.height),
            Round(decision.round),
            BlockHash(candidate.hash),
            [CommitSig(PublicKey(v.validator), v.sig) for v in decision.precommits],
        )
        self.ledger.commit(result, certificate)
        self.app.forget()
        self.node.after_commit(result)
        self._waiting_since = time.monotonic()
        if len(self.node.mempool):
            self._advance()


def _state_json(state: SignedState) -> dict[str, Any]:
    def value(v: Any) -> Any:
        return None if v is None else v.to_json()

    return {
        "height": state.height,
        "round": state.round,
        "step": state.step,
        "block_hash": state.block_hash,
        "locked_round": state.locked_round,
        "locked_value": value(state.locked_value),
        "valid_round": state.valid_round,
        "valid_value": value(state.valid_value),
    }
