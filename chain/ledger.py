"""The ledger: checks transactions, executes blocks deterministically and commits them.

`execute` is a pure function of the committed state and its inputs; `commit` persists a block
with its receipts and state atomically, then applies it in memory. Consensus (one validator or
many) decides *which* block to commit; the ledger decides what a block means.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from chain import bundles, merkle
from chain.block import Certificate, Event, Header, Receipt, validators_hash, verify_certificate
from chain.contracts import governance, membership
from chain.contracts.anchors import Anchors
from chain.contracts.framework import Context, ContractRegistry
from chain.contracts.governance import Governance, Invoke
from chain.contracts.membership import Membership
from chain.errors import (
    ChainError,
    ContractError,
    GenesisError,
    ProofError,
    TxRejected,
)
from chain.executed import BlockResult as BlockResult  # where callers have found it
from chain.executed import LiveTxs, Senders
from chain.genesis import Genesis, initial_state
from chain.smt import StateProof
from chain.state import CommittedState, Overlay, StateView, key_hash, stored_value
from chain.store import BlockStore
from chain.suites.hashing import trees_for
from chain.tx import Tx, wrong_suite
from chain.writer import BlockWriter, DurableTip

log = logging.getLogger(__name__)
PROOF_FRAMES = 16  # heights whose proof frame (header, certificate, transitions) is kept
RESOLVED_KEYS = 4096  # senders and token keys whose organisation and roles are remembered


class InvalidBlock(ChainError):
    """A proposed block breaks a rule every honest node enforces."""


class Ledger:
    """Committed state and history of one chain, backed by a block store."""

    def __init__(self, genesis: Genesis, store: BlockStore) -> None:
        self.genesis = genesis
        self.trees = trees_for(genesis.suite)  # the chain's suite, bound once: hash and trees
        self.store = store
        self.lock = threading.RLock()
        self.registry = ContractRegistry()
        gov = Governance()
        gov.bind(self._invoke_as_governance)
        for contract in (Membership(), gov, Anchors()):
            self.registry.add(contract)
        self._recover()

    # -- startup -------------------------------------------------------------------------

    def _recover(self) -> None:
        genesis_writes = initial_state(self.genesis)
        self.store.init_genesis(
            self.genesis.hash,
            self.genesis.chain_id,
            {k: stored_value(v, self.trees.hasher) for k, v in genesis_writes.items()},
        )
        rows, hasher = list(self.store.state()), self.trees.hasher
        values = {(r.namespace, r.key): r.value for r in rows}
        tree = self.trees.Tree.from_entries(
            (key_hash(r.namespace, r.key, hasher), bytes.fromhex(r.value_hash)) for r in rows
        )
        self.state = CommittedState(values=values, tree=tree, hasher=hasher)
        self.height = self.store.latest_height()
        self.last_header: Header | None = None
        if self.height:
            stored = self.store.block(self.height)
            if stored is None:
                raise GenesisError(f"block {self.height} is missing from the store")
            self.last_header = Header.from_json(stored[0])
            # Verify the recovered state is the one the last header committed to
            if self.state.root.hex() != self.last_header.state_root:
                raise GenesisError(
                    f"state root after recovery {self.state.root.hex()[:16]}… does not match block"
                    f" {self.height}'s {self.last_header.state_root[:16]}…: the database is corrupt"
                )
        self.durable = DurableTip.of(self.last_header, self.state.root.hex())
        self.live_txs = LiveTxs(
            self.store.live_tx_hashes(self.height + 1), next_height=self.height + 1
        )
        self.unwritten: dict[str, None] = {}  # txs of blocks whose background write is pending
        # Transactions on disk, counted once here and then as blocks are written: /metrics
        # counting the table on every scrape cost a scan that grows with the chain
        self.txs_stored = self.store.tx_count()
        self._install_registered_contracts()
        self._block_writer: BlockWriter[BlockResult] | None = None
        self._frames: dict[int, str] = {}
        # pub key -> (height it was resolved at, resolve_key's answer then)
        self._resolved: dict[str, tuple[int, tuple[str, frozenset[str]] | None]] = {}
        log.info("ledger at height %d, state root %s", self.height, self.state.root.hex()[:16])

    def _install_registered_contracts(self) -> None:
        for (namespace, key), value in sorted(self.state.values.items()):
            if namespace == governance.NAMESPACE and key.startswith("contract:"):
                name = key.removeprefix("contract:")
                if name not in self.registry:
                    self.registry.install(name, value["path"], value["code_hash"])

    # -- reads ---------------------------------------------------------------------------

    def store_height(self) -> int:
        """The highest block on disk: below `height` while background writes are pending."""
        writer = self._block_writer
        return self.height if writer is None else writer.durable_height(self.height)

    @property
    def chain_id(self) -> str:
        return self.genesis.chain_id

    @property
    def prev_hash(self) -> str:
        return self.last_header.hash if self.last_header else self.genesis.hash

    def validators(self) -> list[dict[str, Any]]:
        value: list[dict[str, Any]] = self.state.get(governance.NAMESPACE, "validators") or []
        return value

    def validator_powers(self) -> dict[str, int]:
        return {v["pub_key"]: v["power"] for v in self.validators()}

    def resolve_key(self, pub_key: str) -> tuple[str, frozenset[str]] | None:
        """The active organisation and roles of an active registered key, remembered until
        the next commit (the door checks every transaction's sender and every token's key,
        mostly the same few, against a state that changes only when a block commits)."""
        height = self.height
        known = self._resolved.get(pub_key)
        if known is not None and known[0] == height:
            return known[1]
        found = membership.resolve_key(
            self._view(Overlay(self.state), membership.NAMESPACE), pub_key
        )
        if len(self._resolved) >= RESOLVED_KEYS:
            self._resolved.clear()  # unregistered keys asked about cannot grow it
        self._resolved[pub_key] = (height, found)
        return found

    def read(self, namespace: str, key: str) -> Any:
        return self.state.get(namespace, key)

    def prove_state(self, namespace: str, key: str) -> tuple[Any, StateProof]:
        with self.lock:
            return self.state.get(namespace, key), self.state.prove(namespace, key)

    # -- the door ------------------------------------------------------------------------

    def check_tx(self, tx: Tx, *, verify_signature: bool = True) -> None:
        """Refuse a transaction that could never succeed, with a code a client can act on."""
        next_height = self.height + 1
        # Verify it is for this chain and still (but not too far) ahead of expiry
        if tx.chain_id != self.chain_id:
            raise TxRejected(
                "wrong_chain_id", f"transaction is for {tx.chain_id!r}, this is {self.chain_id!r}"
            )
        if tx.expiry_height < next_height:
            raise TxRejected(
                "tx_expired", f"expiry height {tx.expiry_height} is below next height {next_height}"
            )
        limit = next_height + self.genesis.params.max_ttl_blocks
        if tx.expiry_height > limit:
            raise TxRejected(
                "expiry_too_far", f"expiry height {tx.expiry_height} is beyond {limit}"
            )
        # Verify the contract, method and arguments exist and parse
        self.registry.get(tx.contract).parse_tx_args(tx)
        # Verify it was not committed already
        if tx.hash in self.live_txs:
            raise TxRejected(
                "tx_replayed", f"transaction {tx.hash} is already committed", status=409
            )
        # Verify it is signed under the chain's suite, validly, by a registered, active key
        if tx.suite != self.genesis.crypto:
            raise TxRejected("wrong_suite", wrong_suite(tx, self.genesis.crypto), status=401)
        if verify_signature and not tx.has_valid_signature():
            raise TxRejected(
                "bad_signature", "signature does not verify for sender and body", status=401
            )
        if self.resolve_key(tx.sender) is None:
            raise TxRejected(
                "unknown_sender",
                f"sender {tx.sender[:16]}… is not an active registered key",
                status=403,
            )

    # -- execution -----------------------------------------------------------------------

    def execute(
        self,
        txs: Sequence[Tx],
        *,
        height: int,
        time_ms: int,
        proposer: str,
    ) -> BlockResult:
        """Execute a block on the committed state without changing it."""
        with self.lock:
            # Verify the block extends the committed chain and time moves forward
            if height != self.height + 1:
                raise InvalidBlock(f"block height {height} does not follow committed {self.height}")
            if self.last_header is not None and time_ms <= self.last_header.time_ms:
                raise InvalidBlock("block time does not advance")
            if len(txs) > self.genesis.params.max_block_txs:
                raise InvalidBlock(
                    f"{len(txs)} transactions exceed {self.genesis.params.max_block_txs}"
                )
            hasher = self.trees.hasher
            current_validators = validators_hash(self.validators(), hasher)
            block = Overlay(self.state)
            receipts: list[Receipt] = []
            seen: set[str] = set()
            senders = Senders()
            for index, tx in enumerate(txs):
                self._check_in_block(tx, height, seen)
                receipts.append(
                    self._execute_tx(
                        block, tx, height=height, time_ms=time_ms, index=index, senders=senders
                    )
                )
            changes = dict(block.writes)
            tree, stored = self.state.apply_block(changes, block.encoded)
            held = self.state.values
            created = frozenset([k for k in changes if k not in held])
            next_validators = block.get(governance.NAMESPACE, "validators") or []
            header = Header(
                chain_id=self.chain_id,
                height=height,
                prev_hash=self.prev_hash,
                time_ms=time_ms,
                proposer=proposer,
                txs_root=merkle.root([tx.encode() for tx in txs], hasher).hex(),
                tx_count=len(txs),
                receipts_root=merkle.root([r.encode() for r in receipts], hasher).hex(),
                state_root=tree.root_hash.hex(),
                validators_hash=current_validators,
                next_validators_hash=validators_hash(next_validators, hasher),
            )
            return BlockResult(header, list(txs), receipts, changes, tree, stored, created)

    def _check_in_block(self, tx: Tx, height: int, seen: set[str]) -> None:
        """Rules whose breach invalidates the block: the proposer's fault, not the sender's."""
        digest = tx.hash
        if tx.chain_id != self.chain_id:
            raise InvalidBlock(f"tx {digest} is for chain {tx.chain_id}")
        if tx.expiry_height < height:
            raise InvalidBlock(f"tx {digest} expired at {tx.expiry_height}")
        if digest in seen or digest in self.live_txs:
            raise InvalidBlock(f"tx {digest} is included twice")
        if tx.suite != self.genesis.crypto:
            raise InvalidBlock(f"tx {digest}: {wrong_suite(tx, self.genesis.crypto)}")
        # A transaction this process admitted was verified then: this is a set look-up
        if not tx.has_valid_signature():
            raise InvalidBlock(f"tx {digest} has a bad signature")
        seen.add(digest)

    def _execute_tx(
        self, block: Overlay, tx: Tx, *, height: int, time_ms: int, index: int, senders: Senders
    ) -> Receipt:
        scratch = Overlay(block)
        digest = tx.hash
        try:
            sender = senders.resolve(scratch, tx.sender)
            if sender is None:
                raise ContractError("unknown_sender", "sender is not an active registered key")
            contract = self.registry.get(tx.contract)
            ctx = Context(
                sender=tx.sender,
                sender_org=sender[0],
                sender_roles=sender[1],
                height=height,
                time_ms=time_ms,
                tx_hash=digest,
                contract=contract.name,
            )
            contract.execute_tx(ctx, self._view(scratch, contract.name, contract.system), tx)
        except (ContractError, TxRejected) as exc:
            return Receipt(digest, height, index, ok=False, code=exc.code, error=exc.message)
        except Exception as exc:  # a contract bug: deterministic, so every node records the same
            log.exception("contract %s.%s crashed on %s", tx.contract, tx.method, digest)
            return Receipt(
                digest, height, index, ok=False, code="contract_crashed", error=type(exc).__name__
            )
        scratch.merge()
        senders.written(scratch)
        return Receipt(digest, height, index, ok=True, events=tuple(ctx.events))

    def _invoke_as_governance(self, ctx: Context, state: StateView, call: Invoke) -> None:
        """Run an application contract's method with the authority of an approved proposal."""
        contract = self.registry.get(call.contract)
        inner = Context(
            sender=governance.GOVERNANCE_ORG,
            sender_org=governance.GOVERNANCE_ORG,
            sender_roles=frozenset({governance.GOVERNANCE_ORG}),
            height=ctx.height,
            time_ms=ctx.time_ms,
            tx_hash=ctx.tx_hash,
            contract=contract.name,
        )
        contract.execute(inner, state.for_contract(contract.name), call.method, call.args)
        ctx.events.extend(inner.events)

    @staticmethod
    def _view(overlay: Overlay, namespace: str, privileged: bool = False) -> StateView:
        return StateView(overlay, namespace, privileged=privileged)

    # -- commit --------------------------------------------------------------------------

    def commit(
        self,
        result: BlockResult,
        certificate: Certificate,
        *,
        background: bool = False,
        on_durable: Callable[[BlockResult], None] | None = None,
    ) -> None:
        """Make a certified block the committed state and persist it atomically.

        In the foreground the block is written, then applied. With `background` (consensus
        pipelining) it is applied in memory at once, so the next height can be proposed and
        executed, and a writer thread persists blocks in height order; `on_durable` runs once
        the block is on disk. Reads of history wait for pending writes (`flush`), and a
        validator flushes before it signs anything at the next height (engine), so what it
        signed never runs ahead of what it stored.
        """
        header = result.header
        with self.lock:
            # Verify the block still extends our chain and is certified by the validators
            if header.height != self.height + 1 or header.prev_hash != self.prev_hash:
                raise InvalidBlock(f"block {header.height} does not extend height {self.height}")
            try:
                verify_certificate(certificate, header, self.validator_powers(), self.trees.verify)
            except ProofError as exc:
                raise InvalidBlock(
                    f"certificate does not commit block {header.height}: {exc}"
                ) from exc
            if background:
                writer = self._writer()
                writer.expect(header.height)  # before the new height can be seen
                try:
                    self._apply(result)
                    self.unwritten.update(dict.fromkeys(tx.hash for tx in result.txs))
                    writer.put(result, certificate, on_durable)  # queued before the lock opens
                except BaseException as exc:
                    if self.height == header.height:  # visible as committed, never stored
                        writer.fail(exc, from_height=header.height)
                    else:
                        writer.cancel(header.height)
                    raise
            else:
                self._write(result, certificate)
                self._apply(result)
        if not background and on_durable is not None:
            on_durable(result)

    def _apply(self, result: BlockResult) -> None:
        """Make a certified, verified block the committed state in memory (under the lock)."""
        header = result.header
        self.state.commit(result.changes, result.tree)
        self.height = header.height
        self.last_header = header
        live = self.live_txs
        for tx in result.txs:
            live.add(tx.hash, tx.expiry_height)
        live.forget_expired(header.height)
        if any(
            ns == governance.NAMESPACE and k.startswith("contract:") for ns, k in result.changes
        ):
            self._install_registered_contracts()

    def _write(self, result: BlockResult, certificate: Certificate) -> None:
        header = result.header
        changed_set = header.next_validators_hash != header.validators_hash
        next_validators = (
            result.changes.get((governance.NAMESPACE, "validators")) if changed_set else None
        )
        self.store.commit_block(
            height=header.height,
            block_hash=header.hash,
            header=header.to_json(),
            certificate=certificate.to_json(),
            tx_rows=result.tx_rows,
            changes=result.stored,
            created=result.created,
            next_validators=next_validators,
        )
        self.txs_stored += len(result.txs)
        self.durable = DurableTip.of(header, header.state_root)  # one reference, swapped whole
        for tx in result.txs:  # before the block's waiters are told (on_durable)
            self.unwritten.pop(tx.hash, None)

    def _writer(self) -> BlockWriter[BlockResult]:
        if self._block_writer is None:
            self._block_writer = BlockWriter(self._write)
        return self._block_writer

    @property
    def writer_error(self) -> BaseException | None:
        """Why the background writer stopped, if it did: the node can no longer store blocks."""
        return None if self._block_writer is None else self._block_writer.error

    def flush(self) -> None:
        """Wait until every block committed in the background is on disk (or raise its error)."""
        if self._block_writer is not None:
            self._block_writer.flush()

    def close(self) -> None:
        if self._block_writer is not None:
            self._block_writer.close()
            self._block_writer = None

    # -- history -------------------------------------------------------------------------

    def block(self, height: int) -> tuple[Header, Certificate] | None:
        if self.store_height() < height <= self.height:
            self.flush()  # committed, its background write still in flight
        stored = self.store.block(height)
        if stored is None:
            return None
        return Header.from_json(stored[0]), Certificate.from_json(stored[1])

    def tx_proof(self, tx_hash: str) -> dict[str, Any] | None:
        """The proof bundle of a committed transaction and its receipt."""
        return bundles.tx_bundle(self, tx_hash)

    def validator_transitions(self, height: int) -> list[dict[str, Any]]:
        """The certified headers that changed the validator set before `height`, with each new
        set: a verifier holding only the genesis follows them to the set that signed `height`."""
        out = []
        for changed_at, validators in self.store.validator_set_changes(height):
            block = self.block(changed_at)
            if block is None:
                raise GenesisError(f"block {changed_at} is missing")
            header, cert = block
            out.append(
                {
                    "header": header.to_json(),
                    "certificate": cert.to_json(),
                    "validators": validators,
                }
            )
        return out

    def state_proof(self, namespace: str, key: str) -> dict[str, Any]:
        """The proof bundle of a state key's value (or absence) at the committed height."""
        with self.lock:
            value, proof = self.prove_state(namespace, key)
            height = self.height
            if height not in self._frames:
                self.flush()  # the header and transitions this proof cites must be on disk
        if height == 0:
            raise ProofError("no block committed yet: state proofs start at height 1")
        return {
            "version": 1,
            "kind": "state",
            "chain_id": self.chain_id,
            "namespace": namespace,
            "key": key,
            "value": value,
            "state_proof": proof.to_json(),
            **self.proof_frame(height),
        }

    def proof_frame(self, height: int) -> dict[str, Any]:
        """What proofs at `height` cite (header, certificate, transitions): immutable, so kept."""
        encoded = self._frames.get(height)
        if encoded is None:
            block = self.block(height)
            if block is None:
                raise GenesisError(f"block {height} is missing")
            frame: dict[str, Any] = {
                "header": block[0].to_json(),
                "certificate": block[1].to_json(),
            }
            frame["validator_transitions"] = self.validator_transitions(height)
            encoded = json.dumps(frame)
            with self.lock:
                while len(self._frames) >= PROOF_FRAMES:
                    self._frames.pop(next(iter(self._frames)))
                self._frames[height] = encoded
        return dict(json.loads(encoded))


def event_list(receipts: Sequence[Receipt]) -> list[Event]:
    return [e for r in receipts for e in r.events]
