"""The gateway's ingestion endpoint, checks in the order docs/roadhealth-ingest.md gives them.

Several processes may ingest into one database at once (locks.py): a batch is claimed by its
row before anything else (a second request for it waits, then answers as the first), its
devices' rows are held while its windows are deduplicated, placed and stored, and its
segments' rows while their condition and potholes are worked out again.
"""

from __future__ import annotations

import logging
import time
from hashlib import sha256
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from chain.errors import EncodingError
from services.roadhealth.assessment.windows import WindowInput, analyse_windows
from services.roadhealth.errors import AnchorNotCommitted, BadBatch, BatchConflict
from services.roadhealth.models import RhBatch
from services.roadhealth.runtime import Runtime
from services.roadhealth.schemas import IngestMessage, IngestRequest, MessageResult
from services.roadhealth.service import conditions, placement, potholes, repairs
from services.roadhealth.service.locks import (
    insert_ignoring_existing,
    lock_devices,
    lock_segments,
    network_version,
)
from services.roadhealth.service.placement import Accepted, Placed, is_reported
from services.roadhealth.service.segments import reload_index
from services.roadhealth.wire import (
    PayloadInvalid,
    Telemetry,
    batch_root,
    canonical_pair,
    has_valid_signature,
    parse_payload,
    topic_device,
)

log = logging.getLogger(__name__)
# PostgreSQL's deadlock_detected, serialization_failure, lock_not_available
RETRY_SQLSTATES = frozenset({"40P01", "40001", "55P03"})


def ingest_batch(
    *, rt: Runtime, session: Session, caller_org: str, request: IngestRequest
) -> dict[str, Any]:
    """Check and store an anchored batch; the same batch again answers the first answer."""
    try:
        return _ingest(rt, session, caller_org=caller_org, request=request)
    except (IntegrityError, OperationalError) as exc:
        # The locks leave no such conflict between two ingests; should one still happen (a
        # write from elsewhere), the batch is stored by nothing and the gateway retries it
        if isinstance(exc, OperationalError) and _sqlstate(exc) not in RETRY_SQLSTATES:
            raise
        # Said in the log (the answer names no table or row): a conflict that repeats for
        # one batch is a defect to find, not a race
        log.warning("ingest of %s conflicted: %s", request.batch.anchor_tx, exc.orig)
        raise BatchConflict(
            "a concurrent write conflicted with this batch; nothing was stored, retry",
            code="batch_in_progress",
        ) from exc


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def _ingest(
    rt: Runtime, session: Session, *, caller_org: str, request: IngestRequest
) -> dict[str, Any]:
    batch, messages = request.batch, request.messages
    encoded = _check_integrity(request)
    _check_anchor(rt, caller_org=caller_org, root=batch.root, tx=batch.anchor_tx, count=batch.count)
    # Verify this anchor was not ingested before (then answer as the first time)
    previous = _claim_batch(session, request, caller_org, [h for h, _r, _u in encoded])
    if previous is not None:
        return previous
    _follow_network(rt, session)
    results: dict[int, MessageResult] = {}
    accepted = _check_messages(rt, request, encoded, results)  # and analysed: before any lock
    lock_devices(session=session, devices=(a.telemetry.device for a in accepted))
    nearby = placement.stored_near(session=session, accepted=accepted)
    new = _deduplicate(accepted, nearby, results)
    starts = placement.starts_by_device(new=new, nearby=nearby)
    placed = placement.store_windows(
        rt=rt, session=session, batch=batch, new=new, fixes=starts, results=results
    )
    revisited = placement.revisit_neighbours(
        rt=rt, session=session, new=new, nearby=nearby, fixes=starts
    )
    response = {
        "anchor_tx": batch.anchor_tx,
        "root": batch.root,
        "count": batch.count,
        "stored": sum(r.status == "stored" for r in results.values()),
        "duplicates": sum(r.status == "duplicate" for r in results.values()),
        "rejected": sum(r.status == "rejected" for r in results.values()),
        "results": [results[m.leaf_index].model_dump() for m in messages],
    }
    session.execute(
        update(RhBatch).where(RhBatch.anchor_tx == batch.anchor_tx).values(response=response)
    )
    _assess(rt, session, placed, revisited)
    return response


def _check_integrity(request: IngestRequest) -> list[tuple[str, str, bytes]]:
    """Each message's hash, canonical JSON and signing bytes, once the batch is whole and its
    root right."""
    batch, messages = request.batch, request.messages
    # Verify the request carries the whole batch, leaves in order, each hash its payload's
    if len(messages) != batch.count:
        raise BadBatch(f"count is {batch.count} but {len(messages)} messages were sent")
    for i, m in enumerate(messages):
        if m.leaf_index != i:
            raise BadBatch(f"messages[{i}] has leaf_index {m.leaf_index}; leaves must be in order")
    hashes = [m.hash for m in messages]
    if len(set(hashes)) != len(hashes):
        raise BadBatch("two messages have the same hash")
    encoded = []
    for m in messages:
        try:
            # Encoded once: what is signed is the whole minus its `sig` member
            unsigned, raw = canonical_pair(m.payload)
        except (EncodingError, ValueError) as exc:  # a lone surrogate, an integer past 2^53, ...
            raise BadBatch(f"leaf {m.leaf_index}: payload cannot be canonicalised: {exc}") from exc
        actual = sha256(raw).hexdigest()  # wire.message_hash, keeping the bytes to store
        if actual != m.hash:
            raise BadBatch(
                f"leaf {m.leaf_index}: hash is not SHA-256 of the canonical payload",
                code="hash_mismatch",
                details={"leaf_index": m.leaf_index, "expected": actual},
            )
        encoded.append((actual, raw.decode(), unsigned))
    # Verify the hashes make the claimed root
    if batch_root(hashes) != batch.root:
        raise BadBatch(
            "the RFC 6962 root over the message hashes is not batch.root", code="root_mismatch"
        )
    return encoded


def _check_anchor(rt: Runtime, *, caller_org: str, root: str, tx: str, count: int) -> None:
    # Verify the caller's organisation anchored exactly this root, count, in this transaction
    if rt.chain.anchored_root(caller_org, root) == tx:
        record = rt.chain.anchor_record(tx)
        if record is None or record.get("count") != count:
            raise BadBatch(f"anchor {tx} claims another count", code="anchor_mismatch")
        return
    bundle = rt.chain.tx_proof(tx)
    if bundle is None:
        raise AnchorNotCommitted(f"anchor transaction {tx} is not committed (yet); retry")
    raise BadBatch(
        f"transaction {tx} is not {caller_org}'s successful anchor of root {root}",
        code="anchor_mismatch",
    )


def _claim_batch(
    session: Session, request: IngestRequest, org: str, hashes: list[str]
) -> dict[str, Any] | None:
    """Insert the batch's row, or return the answer it got when it was stored before. Another
    request storing the same batch right now is waited for, so each batch is applied once."""
    batch = request.batch
    claimed = session.execute(
        insert_ignoring_existing(session=session, model=RhBatch)
        .values(
            anchor_tx=batch.anchor_tx,
            root=batch.root,
            count=batch.count,
            org=org,
            leaves=hashes,
            response={},
            received_at=time.time(),
        )
        .returning(RhBatch.anchor_tx)
    ).first()
    if claimed is not None:
        return None
    previous = session.scalars(select(RhBatch).where(RhBatch.anchor_tx == batch.anchor_tx)).one()
    if previous.root != batch.root:
        raise BatchConflict(f"batch {batch.anchor_tx} was ingested with another root")
    return dict(previous.response)


def _follow_network(rt: Runtime, session: Session) -> None:
    """Match against the network as committed: another process may have imported segments."""
    if network_version(session=session) != rt.index_version:
        reload_index(rt=rt, session=session)


def _check_messages(
    rt: Runtime,
    request: IngestRequest,
    encoded: list[tuple[str, str, bytes]],
    results: dict[int, MessageResult],
) -> list[Accepted]:
    devices: dict[str, Any] = {}
    passed: list[tuple[IngestMessage, Telemetry, str, str, str]] = []
    for m, (digest, raw, unsigned) in zip(request.messages, encoded, strict=True):

        def reject(code: str, message: str, leaf: int = m.leaf_index) -> None:
            results[leaf] = MessageResult(
                leaf_index=leaf, status="rejected", code=code, message=message
            )

        try:
            telemetry = parse_payload(m.payload)
        except PayloadInvalid as exc:
            reject(exc.code, exc.message)
            continue
        if topic_device(m.topic) != telemetry.device:
            reject("topic_mismatch", "topic is not city/{c}/road/{s}/sensor/{device}/telemetry")
            continue
        if telemetry.device not in devices:
            devices[telemetry.device] = rt.device_records.get(telemetry.device)
        record = devices[telemetry.device]
        if record is None:
            reject("unknown_device", f"device {telemetry.device} is not registered")
        elif record["status"] != "active":
            reject("device_suspended", f"device {telemetry.device} is suspended")
        elif not has_valid_signature(m.payload, record["pub_key"], unsigned=unsigned):
            reject("bad_signature", "sig does not verify with the device's registered key")
        else:
            passed.append((m, telemetry, raw, digest, record["vehicle_class"]))
    # Analysed together: the classifier judges the events of all the batch's windows at once
    analyses = analyse_windows(
        [WindowInput(t.acc_z, t.rate_hz, t.speed_mps, vc) for _m, t, _r, _d, vc in passed],
        classifier=rt.classifier,
    )
    return [
        Accepted(m.leaf_index, t, raw, digest, m.topic, vehicle_class, analysis)
        for (m, t, raw, digest, vehicle_class), analysis in zip(passed, analyses, strict=True)
    ]


def _deduplicate(
    accepted: list[Accepted],
    nearby: dict[tuple[str, int], Row[Any]],
    results: dict[int, MessageResult],
) -> list[Accepted]:
    """The windows not stored before; the others' results say duplicate or seq_conflict."""
    stored = {key: row.hash for key, row in nearby.items()}
    new = []
    for a in accepted:
        key = (a.telemetry.device, a.telemetry.seq)
        if key not in stored:
            stored[key] = a.hash  # a later leaf of this batch with the same seq conflicts
            new.append(a)
            continue
        same = stored[key] == a.hash
        results[a.leaf_index] = MessageResult(
            leaf_index=a.leaf_index,
            status="duplicate" if same else "rejected",
            code=None if same else "seq_conflict",
            message=None if same else f"seq {a.telemetry.seq} was stored with another payload",
        )
    return new


def _assess(rt: Runtime, session: Session, placed: list[Placed], revisited: list[Placed]) -> None:
    """Pothole reports, then condition and potholes of every segment a window came to or left,
    with those segments held."""
    windows = placed + revisited
    left = {w.was_on for w in revisited if w.was_on is not None}
    segments = {w.segment for w in windows if w.segment is not None} | left
    held = lock_segments(session=session, segments=segments)
    # A window matched again reports from where it now lies
    moved = [w.id for w in revisited if w.id is not None]
    withdrawn = potholes.withdraw_reports(rt=rt, session=session, window_ids=moved)
    filed = [r for window in windows for r in _reports_of(rt, window)]
    grouped = potholes.file_reports(rt=rt, session=session, reports=filed)
    conditions.refresh_segments(rt=rt, session=session, segments=held)
    # Vehicles before the batch: a report withdrawn and filed again is not a new vehicle
    potholes.confirm_grown(rt=rt, session=session, vehicles_before={**grouped, **withdrawn})
    # Passes count once, when a window is first stored (one matched again was counted then)
    repairs.note_passes(rt=rt, session=session, windows=placed)
    rt.kick_alerts()


def _reports_of(rt: Runtime, window: Placed) -> list[potholes.Report]:
    # A report needs the direction of travel: without it an event `offset_m` into the
    # window may lie before or after its start, and a window starting at a junction may
    # be on either road (such a report once made a pothole on the wrong street)
    if window.segment is None or window.chainage_m is None or not window.direction:
        return []
    if window.id is None:  # read back only for windows with events to report
        return []
    length = rt.index.lengths_m.get(window.segment, 0.0)
    filed = []
    for event in window.anomalies:
        if not is_reported(event):
            continue  # a bump, or the classifier calls its surroundings plain road
        chainage = window.chainage_m + window.direction * float(event["offset_m"])
        if not 0.0 <= chainage <= length:
            continue  # past the segment's end: another segment's business
        filed.append(
            potholes.Report(
                segment=window.segment,
                window_id=window.id,
                device=window.device,
                message_hash=window.hash,
                t0=window.t0,
                chainage_m=chainage,
                peak_mps2=float(event["peak_mps2"]),
            )
        )
    return filed
