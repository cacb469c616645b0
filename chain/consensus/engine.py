"""Runs the consensus state machine for one node: timers, persistence, commits, sync, gossip.

One thread per node owns the machine. Consensus messages and sync replies reach it through one
queue, gossiped transactions through a second, bounded one that it serves only when the first is
empty: under load a node drops gossip (the sender still holds those transactions and proposes
them, and peers fetch them for its proposals) rather than let votes wait behind it. A proposal
arrives compact (header and transaction hashes, chain.consensus.wire); the engine resolves it
from the mempool, asks the sender for what it lacks, and hands the machine the full block.
The node's ledger, mempool, waiters and event stream are the same as a single validator's: the
engine only decides which block is committed next.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from chain.block import Certificate, CommitSig
from chain.consensus.candidate import Candidate, CompactBlock, LedgerApp
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
from chain.consensus.machine import Tendermint
from chain.consensus.messages import Message, Proposal, ValidatorSet, Vote
from chain.consensus.signed_state import LAST_SIGNED, signed_state_from_json, signed_state_json
from chain.consensus.wire import Commit
from chain.errors import ChainError
from chain.node import Node
from chain.tx import Tx, verify_signatures
from chain.types import BlockHash, Height, PublicKey, Round

log = logging.getLogger(__name__)
# Heights an idle chain may start without waiting the gap, refilled at one per gap
HEIGHT_BURST = 10
SYNC_BATCH = 50
MAX_INBOX = 100_000
MAX_GOSSIP_BATCHES = 256  # gossiped tx batches waiting; beyond, new gossip is dropped
MAX_PARKED = 64  # compact proposals waiting for transactions
MAX_UNWRITTEN_BLOCKS = 8  # blocks committed in memory whose background write is pending


class Transport(Protocol):
    """How an engine reaches its peers (in-process hub or authenticated TCP)."""

    def broadcast(self, message: Message) -> None: ...

    def broadcast_txs(self, txs: list[Tx]) -> None: ...

    def request_sync(self, peer: str, height: int) -> None: ...

    def request_txs(self, peer: str, hashes: list[str]) -> None: ...


@dataclass
class _Parked:
    """A compact proposal waiting for transactions this node does not hold yet."""

    block: CompactBlock
    proposals: list[tuple[Proposal, str | None]] = field(default_factory=list)
    asked: set[str] = field(default_factory=set)


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
        min_block_interval_ms: int = 100,
    ) -> None:
        self.node = node
        self.ledger = node.ledger
        self.transport = transport
        # Real nodes on a loaded host need time to build, ship and re-execute a full proposal
        self.timeouts = timeouts or Timeouts(
            propose_ms=3000, prevote_ms=1000, precommit_ms=1000, delta_ms=1000
        )
        self.empty_block_interval_s = empty_block_interval_ms / 1000
        # Tendermint's timeout_commit: after a block of transactions that left more waiting,
        # gather more this long before the next height (unless a full block waits), so a busy
        # chain makes a few blocks of many. On an idle chain a transaction starts a height at
        # once (a lone caller's writes waited 100 ms each for nothing to gather) while an
        # allowance of HEIGHT_BURST heights lasts, refilled at one a gap: a trickle from many
        # callers still makes no more blocks a second than the gap allows
        self.min_block_interval_s = min_block_interval_ms / 1000
        self._busy = False  # the last block held transactions and left others pending
        self._allowance = float(HEIGHT_BURST)
        self._allowance_at = time.monotonic()
        self.max_proposal_txs = max_proposal_txs
        self.public_key = node.key.public_hex if node.key else None
        self.app = LedgerApp(
            self.ledger, node.mempool, self.public_key, max_block_txs=max_proposal_txs
        )
        self._inbox: deque[tuple[str, Any]] = deque()
        self._gossip: deque[list[Tx]] = deque()
        self._wake = threading.Event()
        self._parked: dict[str, _Parked] = {}
        self._fetched: dict[str, Tx] = {}  # fetched for proposals: signature-checked only
        self.dropped_gossip = 0
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
        """Transactions from a peer (gossip, or the answer to a fetch for a proposal)."""
        if len(self._gossip) >= MAX_GOSSIP_BATCHES and not self._parked:
            self.dropped_gossip += len(txs)
            log.debug("gossip backlog full: %d transactions left with their sender", len(txs))
            return
        self._gossip.append(txs)
        self._wake.set()

    def deliver_fetched(self, txs: list[Tx]) -> None:
        """A peer's answer to our request for a proposal's transactions: served first."""
        self._put(("fetched", txs))

    def serve_txs(self, hashes: list[str]) -> list[Tx]:
        """The transactions a peer lacks for a proposal, those this node holds."""
        out = []
        for digest in hashes[: self.app.max_block_txs]:
            tx = self._find_tx(digest)
            if tx is not None:
                out.append(tx)
        return out

    def _find_tx(self, digest: str) -> Tx | None:
        return self.node.mempool.get(digest) or self._fetched.get(digest)

    def receive_txs(self, txs: list[Tx]) -> None:
        """Transactions gossiped by a peer: admitted like any other, refusals dropped. Those a
        parked proposal waits for are kept for it once their signature verifies, even if the
        door would refuse them: executing the block decides what they do."""
        if self._parked:
            txs = self._take_wanted(txs)
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
            txs = tuple(self.block_txs(h))
            votes = tuple(
                Vote("precommit", cert.height, cert.round, cert.block_hash, s.validator, s.sig)
                for s in cert.signatures
            )
            commits.append(Commit(Candidate(header, txs), votes))
        return commits

    def block_txs(self, height: int) -> list[Tx]:
        """The transactions of the committed block at `height`, in block order."""
        from chain.tx import tx_from_json

        return [tx_from_json(body) for body, _ in self.ledger.store.block_txs(height)]

    def _take_wanted(self, txs: list[Tx]) -> list[Tx]:
        wanted = {d for p in self._parked.values() for d in p.block.tx_hashes}
        rest = []
        mine = [tx for tx in txs if tx.hash in wanted]
        verify_signatures(mine)
        for tx in txs:
            if tx.hash not in wanted:
                rest.append(tx)
            elif tx.has_valid_signature():
                self._fetched[tx.hash] = tx
        self._retry_parked()
        return rest

    def _on_new_txs(self, txs: list[Tx], gossip: bool) -> None:
        if gossip:
            self.transport.broadcast_txs(txs)
        self._wake.set()

    def _put(self, item: tuple[str, Any]) -> None:
        if len(self._inbox) >= MAX_INBOX:
            log.warning("consensus inbox full: dropping a %s (peers will re-gossip)", item[0])
            return
        self._inbox.append(item)
        self._wake.set()

    # -- life -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start (or restart, as after a crash) from the ledger and the persisted signed state."""
        self._stop.clear()
        self._timers.clear()
        self._waiting_since = None
        self.app.forget()
        restored = self.persisted_state()
        self.machine = Tendermint(
            chain_id=self.ledger.chain_id,
            validators=self._validator_set(),
            height=self.ledger.height + 1,
            app=self.app,
            verify=self.ledger.trees.verify,  # the chain's suite (chain/suites)
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
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with contextlib.suppress(ChainError):
            self.ledger.flush()  # blocks decided before the stop reach the disk

    def _validator_set(self) -> ValidatorSet:
        return ValidatorSet.of(self.ledger.validator_powers())

    def persisted_state(self) -> SignedState | None:
        """The signed state last persisted before a vote (what a restart resumes), if any."""
        raw = self.ledger.store.get_meta(LAST_SIGNED)
        return None if raw is None else signed_state_from_json(raw)

    def _run(self) -> None:
        assert self.machine is not None
        try:
            self._apply(self.machine.start())
            while not self._stop.is_set():
                self._wake.clear()
                # Consensus first: votes and proposals never wait behind gossip or timers
                while self._inbox and not self._stop.is_set():
                    self._handle(*self._inbox.popleft())
                self._fire_due_timers()
                self._maybe_advance()
                if self._gossip and not self._inbox:
                    self.receive_txs(self._gossip.popleft())
                    continue
                if not self._inbox:
                    self._wake.wait(self._wait_s())
        except Exception as exc:  # storage gone or code mismatch: stop rather than diverge
            log.exception("consensus stopped")
            self.fatal = exc
            self.node.fatal = exc

    def _wait_s(self) -> float:
        deadline = self._timers[0][0] if self._timers else time.monotonic() + 0.5
        if self._waiting_since is not None:
            # With work pending the next height is due at _due_at() (the gap, or at once on an
            # idle chain with allowance left), else after empty_block_interval_s
            pending = len(self.node.mempool) > 0
            due = self._due_at() if pending else self._waiting_since + self.empty_block_interval_s
            deadline = min(deadline, due)
        return max(0.0, min(0.5, deadline - time.monotonic()))

    def _handle(self, kind: str, payload: Any) -> None:
        machine = self.machine
        assert machine is not None
        if kind == "msg":
            message, sender = payload
            if isinstance(message, Proposal) and isinstance(message.value, CompactBlock):
                message = self._resolve(message, sender)
                if message is None:
                    return
            if self._waiting_since is not None and message.height == machine.height + 1:
                self._advance()  # a peer has started the next height: join it
            self._apply(machine.on_message(message, sender=sender))
        elif kind == "fetched":
            self.receive_txs(payload)
        elif kind == "sync":
            for commit in payload:
                if self.machine is None or commit.candidate.header.height != self.ledger.height + 1:
                    continue
                if self._waiting_since is not None:
                    self._advance()
                self._apply(self.machine.on_commit(commit.candidate, list(commit.precommits)))

    # -- compact proposals ----------------------------------------------------------------

    def _resolve(self, proposal: Proposal, sender: str | None) -> Proposal | None:
        """The proposal with its full block, or None (parked) while transactions are missing."""
        machine = self.machine
        assert machine is not None
        block: CompactBlock = proposal.value
        # Verify the compact block is the one signed, for this height or a later one
        if proposal.height < machine.height or block.hash != proposal.block_hash:
            return None
        candidate, missing = block.resolve(self._find_tx)
        if candidate is not None:
            return dataclasses.replace(proposal, value=candidate)
        parked = self._parked.get(block.hash)
        if parked is None:
            if len(self._parked) >= MAX_PARKED:
                self._drop_old_parked()
            parked = self._parked[block.hash] = _Parked(block)
        parked.proposals.append((proposal, sender))
        peer = sender or proposal.proposer
        if peer not in parked.asked:
            parked.asked.add(peer)
            self.transport.request_txs(peer, missing)
        return None

    def _retry_parked(self) -> None:
        for digest, parked in list(self._parked.items()):
            candidate, _ = parked.block.resolve(self._find_tx)
            if candidate is None:
                continue
            del self._parked[digest]
            for proposal, sender in parked.proposals:
                self._put(("msg", (dataclasses.replace(proposal, value=candidate), sender)))

    def _drop_old_parked(self) -> None:
        height = self.machine.height if self.machine else 0
        for digest, parked in list(self._parked.items()):
            if parked.block.header.height < height or len(self._parked) >= MAX_PARKED:
                del self._parked[digest]

    def _fire_due_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now and self.machine is not None:
            _, _, timeout = heapq.heappop(self._timers)
            self._apply(self.machine.on_timeout(timeout.kind, timeout.height, timeout.round))

    def _maybe_advance(self) -> None:
        """After a commit, start the next height once there is work (or an empty block is due)."""
        if self._waiting_since is None:
            return
        waited = time.monotonic() - self._waiting_since
        pending = len(self.node.mempool)
        if (
            pending >= self.max_proposal_txs
            or (pending and self._due_at() <= time.monotonic())  # due first: it may be "now"
            or waited >= self.empty_block_interval_s
        ):
            self._advance()

    def _due_at(self) -> float:
        """When pending work may start the next height: the gap after the commit if that block
        left work waiting; else now while the allowance lasts, or once a height's worth has
        refilled, never later than the gap."""
        assert self._waiting_since is not None
        gap_end = self._waiting_since + self.min_block_interval_s
        if self._busy:
            return gap_end
        now = self._refill()
        if self._allowance >= 1:
            return now
        return min(gap_end, now + (1 - self._allowance) * self.min_block_interval_s)

    def _refill(self) -> float:
        """Add the allowance the time since the last refill earned (one height a gap)."""
        now = time.monotonic()
        gap = self.min_block_interval_s
        grown = (now - self._allowance_at) / gap if gap > 0 else HEIGHT_BURST
        self._allowance = min(float(HEIGHT_BURST), self._allowance + grown)
        self._allowance_at = now
        return now

    def _advance(self) -> None:
        assert self.machine is not None
        self._refill()
        self._allowance = max(0.0, self._allowance - 1)  # every height started uses one
        self._waiting_since = None
        self._timers.clear()
        self._drop_old_parked()
        self._apply(self.machine.advance(self._validator_set()))

    # -- effects --------------------------------------------------------------------------

    def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Persist):
                # What a validator signs never runs ahead of what it stored: a block committed
                # in the background is on disk before anything of the next height is signed
                if effect.state.height > self.ledger.store_height():
                    self.ledger.flush()
                # orjson: a locked block's thousands of transaction texts escape 2-3x faster
                state = orjson.dumps(signed_state_json(effect.state)).decode()
                self.ledger.store.put_meta(LAST_SIGNED, state)
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
        # Pipelined: applied now, so the next height's proposal executes while a writer thread
        # stores this block; waiters hear of it (after_commit) once it is on disk
        self.ledger.commit(result, certificate, background=True, on_durable=self.node.after_commit)
        # Out of the mempool now, not once stored (as a lone producer does): left in until the
        # write, they counted as backlog, so the door refused batches it had room for, and as
        # work, so the next height started at once and proposed them, found them committed,
        # dropped them and proposed an empty block (2-7 of 13-16 proposals in 12 s of overload)
        self.node.mempool.remove([tx.hash for tx in result.txs])
        # Busy: a block of transactions committed and more wait (an empty block, such as the
        # one certifying genesis, says nothing of load even if a transaction came meanwhile)
        self._busy = bool(result.txs) and len(self.node.mempool) > 0
        if self.ledger.height - self.ledger.store_height() > MAX_UNWRITTEN_BLOCKS:
            self.ledger.flush()  # an observer never signs: bound its backlog of writes here
        self.app.forget()
        self._fetched.clear()
        # The run loop starts the next height (_maybe_advance): starting it from here recursed a
        # level per block where advancing decides at once (a lone validator with a backlog)
        self._waiting_since = time.monotonic()
