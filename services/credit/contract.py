"""The SME credit contract: SMEs, model versions, ratings, consents and bank inquiries.

State (namespace `credit`), keyed by the Unified Social Credit Code itself: a USCC is the public
registration number printed on every business licence and listed in the national enterprise
publicity system, so it is not personal data, and hashing it would hide nothing (the codes are
enumerable and published) while making every proof harder to read.

    sme:{uscc}                       org, key and DID the SME is bound to
    model:{sha256}                   artefact hash, training-data hash, metrics, status
    rating:{uscc}                    the SME's current rating (PD and score as decimal strings,
                                     grade, reason codes,
                                     model hash, feature hash; never the features)
    consent:{uscc}:{bank}:{purpose}  a consent the SME signed, its period and status
    inquiries:{uscc}                 how many inquiries the SME has had (n)
    inquiry:{uscc}:{n}               one bank read: bank, key, purpose, rating, time
    inquiries                        how many inquiries in all (N)
    inquiry_log:{N}                  {uscc, n}: the N-th inquiry, so auditors can walk them all
    rating_batch:{root}              a batch of ratings anchored by its RFC 6962 root: model,
                                     count, anchoring tx, and its place on the rating clock
    rating_clock                     how many rating transactions and batches so far: orders
                                     a batch against the ratings written one by one

Ratings are written one by one (`record_ratings`: each SME's `rating:{uscc}`), or for large
batches by one `anchors.anchor` of the Merkle root over the ratings' canonical records plus one
`record_rating_batch` (checks the model is approved and the root is the service's anchor). A
batch-rated SME's `rating:{uscc}` is written when a bank first reads it: `record_inquiry`
carries the rating record and its audit path, the contract checks it against the batch's root
and, when the batch is newer than the SME's current rating, makes it current before recording
the read, so every rating a bank reads has a state proof and every read is on the chain.

Who writes what:
- operator (relayed by the credit service): SME registration, model registration, ratings and
  inquiries -- facts the service attests after authenticating the caller;
- the SME's own key: consents (grant, revoke), so no one else can consent for it;
- governance (an approved `invoke` proposal): model approval and retirement.
"""

from __future__ import annotations

from typing import Any

from chain import merkle
from chain.contracts.framework import Context, Contract, method
from chain.contracts.membership import KEY_SHAPES, chain_suite
from chain.errors import ContractError, EncodingError, ProofError
from chain.state import StateView
from services.credit.contract_terms import (
    GOVERNANCE_ROLE,
    KEY_HEX_DIGITS,
    MAX_CONSENT_MS,
    NAMESPACE,
    OPERATOR_ROLE,
    RATING_CLOCK,
    TOTAL_INQUIRIES,
    BatchRating,
    ConsentRef,
    GrantConsent,
    ModelRef,
    RecordInquiry,
    RecordRatingBatch,
    RecordRatings,
    RegisterModel,
    RegisterSmes,
    consent_key,
    consent_problem,
    inquiry_count_key,
    inquiry_key,
    inquiry_log_key,
    model_key,
    rating_batch_key,
    rating_key,
    rating_record,
    record_hash,
    sme_key,
    uscc_check_character,
)

# -- the contract --------------------------------------------------------------------------


class CreditContract(Contract):
    """SME credit ledger: ratings only from approved models, reads only under live consent."""

    name = NAMESPACE
    code_modules = ("services.credit.contract_terms",)

    @method(RegisterSmes)
    def register_smes(self, ctx: Context, state: StateView, args: RegisterSmes) -> None:
        ctx.require_role(OPERATOR_ROLE, "agency")
        seen: set[str] = set()
        for entry in args.smes:
            # Verify the code is valid, new and listed once in this batch
            _require_valid_uscc(entry.uscc)
            if entry.uscc in seen or state.get(sme_key(entry.uscc)) is not None:
                raise ContractError("sme_exists", f"SME {entry.uscc} is already registered")
            seen.add(entry.uscc)
            key = _require_sme_org_key(state, entry.org, entry.key)
            record = {
                "uscc": entry.uscc,
                "org": entry.org,
                "key": key,
                "did": entry.did,
                "registered_by": ctx.sender_org,
                "height": ctx.height,
                "time_ms": ctx.time_ms,
                "tx": ctx.tx_hash,
            }
            state.put(sme_key(entry.uscc), record)
            ctx.emit("sme_registered", uscc=entry.uscc, org=entry.org)

    @method(RegisterModel)
    def register_model(self, ctx: Context, state: StateView, args: RegisterModel) -> None:
        ctx.require_role(OPERATOR_ROLE)
        # Verify the artefact hash is new
        if state.get(model_key(args.sha256)) is not None:
            raise ContractError("model_exists", f"model {args.sha256} is already registered")
        state.put(
            model_key(args.sha256),
            {
                "sha256": args.sha256,
                "data_sha256": args.data_sha256,
                "features": args.features,
                "description": args.description,
                "metrics": args.metrics,
                "status": "pending",
                "registered_by": ctx.sender_org,
                "registered_height": ctx.height,
                "registered_tx": ctx.tx_hash,
                "approved_height": None,
                "retired_height": None,
            },
        )
        ctx.emit("model_registered", sha256=args.sha256, data_sha256=args.data_sha256)

    @method(ModelRef)
    def approve_model(self, ctx: Context, state: StateView, args: ModelRef) -> None:
        model = self._governed_model(ctx, state, args.sha256)
        if model["status"] != "pending":
            raise ContractError("model_not_pending", f"model {args.sha256} is {model['status']}")
        state.put(
            model_key(args.sha256), {**model, "status": "approved", "approved_height": ctx.height}
        )
        ctx.emit("model_approved", sha256=args.sha256)

    @method(ModelRef)
    def retire_model(self, ctx: Context, state: StateView, args: ModelRef) -> None:
        model = self._governed_model(ctx, state, args.sha256)
        if model["status"] == "retired":
            raise ContractError("model_retired", f"model {args.sha256} is already retired")
        state.put(
            model_key(args.sha256), {**model, "status": "retired", "retired_height": ctx.height}
        )
        ctx.emit("model_retired", sha256=args.sha256)

    @method(RecordRatings)
    def record_ratings(self, ctx: Context, state: StateView, args: RecordRatings) -> None:
        ctx.require_role(OPERATOR_ROLE)
        _require_approved_model(state, args.model)
        clock = _tick(state)
        for index, entry in enumerate(args.ratings):
            # Verify the SME is registered
            if state.get(sme_key(entry.uscc)) is None:
                raise ContractError("unknown_sme", f"SME {entry.uscc} is not registered")
            previous = state.get(rating_key(entry.uscc))
            seq = 1 if previous is None else int(previous["seq"]) + 1
            state.put(
                rating_key(entry.uscc),
                {
                    **entry.model_dump(),
                    "model": args.model,
                    "seq": seq,
                    "tx": ctx.tx_hash,
                    "index": index,
                    "height": ctx.height,
                    "time_ms": ctx.time_ms,
                    "clock": clock,
                },
            )
        ctx.emit("rated", model=args.model, count=len(args.ratings))

    @method(RecordRatingBatch)
    def record_rating_batch(self, ctx: Context, state: StateView, args: RecordRatingBatch) -> None:
        ctx.require_role(OPERATOR_ROLE)
        _require_approved_model(state, args.model)
        # Verify the root is this organisation's anchor of exactly `count` records, used once
        anchor_tx = state.read("anchors", f"root:{ctx.sender_org}:{args.root}")
        if anchor_tx is None:
            raise ContractError("not_anchored", f"{ctx.sender_org} has not anchored {args.root}")
        anchored = state.read("anchors", f"batch:{anchor_tx}")
        if anchored is None or anchored["count"] != args.count:
            raise ContractError("bad_count", f"the anchor of {args.root} has another count")
        if state.get(rating_batch_key(args.root)) is not None:
            raise ContractError("batch_exists", f"rating batch {args.root} is already recorded")
        state.put(
            rating_batch_key(args.root),
            {
                "root": args.root,
                "count": args.count,
                "model": args.model,
                "anchor_tx": anchor_tx,
                "clock": _tick(state),
                "tx": ctx.tx_hash,
                "height": ctx.height,
                "time_ms": ctx.time_ms,
            },
        )
        ctx.emit("rated_batch", model=args.model, root=args.root, count=args.count)

    @method(GrantConsent)
    def grant_consent(self, ctx: Context, state: StateView, args: GrantConsent) -> None:
        self._require_sme_itself(ctx, state, args.uscc)
        _require_bank(state, args.bank)
        start = ctx.time_ms if args.start_ms is None else args.start_ms
        # Verify the period is well formed, not over, and not longer than allowed
        if args.end_ms <= start:
            raise ContractError("bad_period", "the consent must end after it starts")
        if args.end_ms <= ctx.time_ms:
            raise ContractError("bad_period", f"the consent would end before now ({ctx.time_ms})")
        if args.end_ms - start > MAX_CONSENT_MS:
            raise ContractError("bad_period", "a consent lasts at most 3 years")
        record = {
            "uscc": args.uscc,
            "bank": args.bank,
            "purpose": args.purpose,
            "start_ms": start,
            "end_ms": args.end_ms,
            "status": "granted",
            "granted_by": ctx.sender,
            "granted_tx": ctx.tx_hash,
            "granted_height": ctx.height,
            "revoked_tx": None,
            "revoked_ms": None,
        }
        state.put(consent_key(args.uscc, args.bank, args.purpose), record)
        ctx.emit("consent_granted", uscc=args.uscc, bank=args.bank, purpose=args.purpose)

    @method(ConsentRef)
    def revoke_consent(self, ctx: Context, state: StateView, args: ConsentRef) -> None:
        self._require_sme_itself(ctx, state, args.uscc)
        key = consent_key(args.uscc, args.bank, args.purpose)
        consent = state.get(key)
        # Verify there is a consent to revoke
        if consent is None:
            raise ContractError("no_consent", f"no consent for {args.bank} ({args.purpose})")
        if consent["status"] == "revoked":
            raise ContractError("consent_revoked", "the consent is already revoked")
        state.put(
            key,
            {**consent, "status": "revoked", "revoked_tx": ctx.tx_hash, "revoked_ms": ctx.time_ms},
        )
        ctx.emit("consent_revoked", uscc=args.uscc, bank=args.bank, purpose=args.purpose)

    @method(RecordInquiry)
    def record_inquiry(self, ctx: Context, state: StateView, args: RecordInquiry) -> None:
        ctx.require_role(OPERATOR_ROLE)
        # Verify the reading key is the bank's and the SME's consent is live now
        _require_bank(state, args.bank)
        _require_suite_key(state, args.bank_key)
        key_record = state.read("membership", f"key:{args.bank_key}")
        if key_record is None or key_record["org"] != args.bank:
            raise ContractError("unknown_key", f"key {args.bank_key[:16]}… is not {args.bank}'s")
        consent = state.get(consent_key(args.uscc, args.bank, args.purpose))
        problem = consent_problem(consent, ctx.time_ms)
        if problem is not None:
            raise ContractError(*problem)
        if args.batch is not None:
            _process_batch_rating(ctx, state, args.uscc, args.batch)
        # Verify the rating read is the SME's current one
        rating = state.get(rating_key(args.uscc))
        if rating is None or rating["seq"] != args.rating_seq:
            raise ContractError("stale_rating", f"rating {args.rating_seq} is not current")
        n = int(state.get(inquiry_count_key(args.uscc), 0)) + 1
        total = int(state.get(TOTAL_INQUIRIES, 0)) + 1
        record = {
            "uscc": args.uscc,
            "n": n,
            "seq": total,
            "bank": args.bank,
            "bank_key": args.bank_key,
            "purpose": args.purpose,
            "consent_tx": consent["granted_tx"],
            "rating_seq": rating["seq"],
            "rating_tx": rating["tx"],
            "model": rating["model"],
            "tx": ctx.tx_hash,
            "height": ctx.height,
            "time_ms": ctx.time_ms,
        }
        state.put(inquiry_key(args.uscc, n), record)
        state.put(inquiry_count_key(args.uscc), n)
        state.put(TOTAL_INQUIRIES, total)
        state.put(inquiry_log_key(total), {"uscc": args.uscc, "n": n})
        ctx.emit("inquiry", uscc=args.uscc, bank=args.bank, purpose=args.purpose, n=n, seq=total)

    # -- helpers -----------------------------------------------------------------------

    def _governed_model(self, ctx: Context, state: StateView, sha256: str) -> dict[str, Any]:
        # Verify governance is acting and the model exists
        ctx.require_role(GOVERNANCE_ROLE)
        model: dict[str, Any] | None = state.get(model_key(sha256))
        if model is None:
            raise ContractError("unknown_model", f"model {sha256} is not registered")
        return model

    def _require_sme_itself(self, ctx: Context, state: StateView, uscc: str) -> None:
        # Verify the SME signs for itself
        sme = state.get(sme_key(uscc))
        if sme is None:
            raise ContractError("unknown_sme", f"SME {uscc} is not registered")
        if sme["org"] != ctx.sender_org:
            raise ContractError(
                "forbidden", f"only {sme['org']} may consent for {uscc}, not {ctx.sender_org}"
            )


def _tick(state: StateView) -> int:
    """Advance the rating clock; a rating or batch with a higher clock is newer."""
    clock = int(state.get(RATING_CLOCK, 0)) + 1
    state.put(RATING_CLOCK, clock)
    return clock


def _require_approved_model(state: StateView, sha256_: str) -> None:
    # Verify the model is approved by governance
    model = state.get(model_key(sha256_))
    if model is None:
        raise ContractError("unknown_model", f"model {sha256_} is not registered")
    if model["status"] != "approved":
        raise ContractError(
            "model_not_approved", f"model {sha256_} is {model['status']}, not approved"
        )


def _process_batch_rating(ctx: Context, state: StateView, uscc: str, proof: BatchRating) -> None:
    """Make a batch rating the SME's current one if its batch is newer than the current one."""
    batch = state.get(rating_batch_key(proof.root))
    # Verify the batch is recorded and the rating is this SME's, in the batch's tree
    if batch is None:
        raise ContractError("unknown_batch", f"no rating batch {proof.root}")
    if proof.rating.uscc != uscc:
        raise ContractError("bad_batch_rating", f"the batch rating is {proof.rating.uscc}'s")
    record = rating_record(proof.rating.model_dump(), batch["model"])
    try:
        path = [bytes.fromhex(p) for p in proof.path]
        root = merkle.root_from_path(
            merkle.leaf_hash(record_hash(record)), proof.index, batch["count"], path
        )
    except (ValueError, EncodingError, ProofError) as exc:
        raise ContractError("bad_batch_rating", f"malformed audit path: {exc}") from exc
    if root.hex() != proof.root:
        raise ContractError("bad_batch_rating", "the rating is not in the batch's Merkle tree")
    current = state.get(rating_key(uscc))
    if current is not None and current.get("batch") == proof.root:
        return  # already made current by an earlier read
    # Verify no newer rating has replaced the batch's
    if current is not None and int(current.get("clock", 0)) >= batch["clock"]:
        raise ContractError("stale_rating", f"a newer rating of {uscc} replaced batch {proof.root}")
    seq = 1 if current is None else int(current["seq"]) + 1
    state.put(
        rating_key(uscc),
        {
            **proof.rating.model_dump(),
            "model": batch["model"],
            "seq": seq,
            "tx": batch["tx"],
            "index": proof.index,
            "height": batch["height"],
            "time_ms": batch["time_ms"],
            "clock": batch["clock"],
            "batch": proof.root,
            "anchor_tx": batch["anchor_tx"],
            "made_current_tx": ctx.tx_hash,
        },
    )


def _require_valid_uscc(uscc: str) -> None:
    expected = uscc_check_character(uscc[:17])
    if uscc[17] != expected:
        raise ContractError(
            "bad_uscc", f"{uscc}: check character is {uscc[17]!r}, expected {expected!r}"
        )


def _require_sme_org_key(state: StateView, org_id: str, key: str | None) -> str:
    """The SME organisation's key to bind (the given one, or its first), checking both exist."""
    org = state.read("membership", f"org:{org_id}")
    if org is None or org["status"] != "active":
        raise ContractError("unknown_org", f"no active organisation {org_id}")
    if "sme" not in org["roles"]:
        raise ContractError("not_sme", f"organisation {org_id} lacks role sme")
    if key is None:
        return str(org["keys"][0])
    _require_suite_key(state, key)
    if key not in org["keys"]:
        raise ContractError("unknown_key", f"key {key[:16]}… is not one of {org_id}'s keys")
    return key


def _require_bank(state: StateView, bank: str) -> None:
    org = state.read("membership", f"org:{bank}")
    if org is None or org["status"] != "active" or "bank" not in org["roles"]:
        raise ContractError("unknown_bank", f"{bank} is not an active organisation with role bank")


def _require_suite_key(state: StateView, key: str) -> None:
    suite = chain_suite(state)
    # Verify the key has the shape of the chain's suite's public keys
    if len(key) != KEY_HEX_DIGITS[suite]:
        raise ContractError("bad_key", f"{key[:16]}… is not an {KEY_SHAPES[suite]}")
