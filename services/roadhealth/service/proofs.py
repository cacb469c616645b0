"""Proofs: a reading from its device's signature to a committed block, checkable offline."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.roadhealth import schemas
from services.roadhealth.errors import UnknownDevice, UnknownReading
from services.roadhealth.models import RhBatch, RhWindow
from services.roadhealth.runtime import Runtime
from services.roadhealth.service.devices import device_view
from services.roadhealth.wire import MAX_SEQ, audit_path, has_valid_signature


def reading_proof(*, rt: Runtime, session: Session, device: str, seq: int) -> schemas.ReadingProof:
    """A reading from its device signature to a committed block, checkable offline."""
    # Verify the number can be a reading's at all (the database cannot hold a larger one)
    if not 0 <= seq <= MAX_SEQ:
        raise UnknownReading(f"no reading {seq} of device {device!r}: seq is 0..{MAX_SEQ}")
    window = session.scalars(
        select(RhWindow).where(RhWindow.device == device, RhWindow.seq == seq)
    ).first()
    if window is None:
        raise UnknownReading(f"no reading {seq} of device {device!r}")
    batch = session.get(RhBatch, window.anchor_tx)
    tx_bundle = rt.chain.tx_proof(window.anchor_tx)
    if batch is None or tx_bundle is None:
        raise UnknownReading(f"the anchor of reading {seq} of {device!r} is not available")
    payload = json.loads(window.payload)
    bundle = {
        **tx_bundle,
        "kind": "record",
        "record": {
            "hash": window.hash,
            "index": window.leaf_index,
            "size": batch.count,
            "path": audit_path(batch.leaves, window.leaf_index),
        },
    }
    device_bundle = rt.chain.device_proof(device)
    record = device_bundle.get("value")
    if record is None:
        raise UnknownDevice(f"device {device!r} is no longer registered")
    return schemas.ReadingProof(
        payload=payload,
        message_hash=window.hash,
        device=device_view(device=device, record=record),
        signature_valid=has_valid_signature(payload, record["pub_key"]),
        anchor=schemas.ReadingAnchor(
            tx=window.anchor_tx, root=window.root, leaf_index=window.leaf_index, count=batch.count
        ),
        bundle=bundle,
        device_bundle=device_bundle,
    )
