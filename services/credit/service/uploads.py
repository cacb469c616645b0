"""Financial statement uploads: validated, stored, turned into features."""

from __future__ import annotations

import hashlib
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from chain.auth import Caller
from services.credit import _vectors, schemas
from services.credit._history import (
    amounts_of,
    check_continuity,
    features_by_period,
    features_hash,
    period_sort_key,
)
from services.credit._upload import UploadedFile
from services.credit.models import (
    FeatureRow,
    FeatureVectorRow,
    StatementRow,
    UploadRow,
)
from services.credit.runtime import Runtime
from services.credit.service.common import now_ms
from services.credit.service.registry import owned
from services.credit.statements import load_statements


def upload_statements(
    *, rt: Runtime, session: Session, caller: Caller, uscc: str, upload: UploadedFile
) -> schemas.UploadOut:
    """Validate a statement file; store it and its features, or store nothing and say why."""
    sme = owned(rt, session, caller, uscc, "agency")
    frame = load_statements(upload.content, file_format=upload.file_format)
    stored = {
        r.period: r
        for r in session.scalars(select(StatementRow).where(StatementRow.uscc == sme.uscc))
    }
    check_continuity(list(stored), frame)
    upload_id = uuid.uuid4().hex
    replaced = []
    for record in frame.to_dict(orient="records"):
        period = str(record["period"])
        row = stored.get(period)
        if row is None:
            row = StatementRow(uscc=sme.uscc, period=period)
            stored[period] = row
        else:
            replaced.append(period)
        row.currency, row.amounts, row.upload_id = (
            str(record["currency"]),
            amounts_of({str(k): v for k, v in record.items()}),
            upload_id,
        )
        session.add(row)
    hashes = _store_features(session, sme.uscc, list(stored.values()))
    periods = [str(p) for p in frame["period"]]
    session.add(
        UploadRow(
            id=upload_id,
            uscc=sme.uscc,
            filename=upload.filename,
            rows=len(frame),
            periods=periods,
            sha256=hashlib.sha256(upload.content).hexdigest(),
            uploaded_by=caller.org,
            time_ms=now_ms(),
        )
    )
    return schemas.UploadOut(
        upload_id=upload_id,
        uscc=sme.uscc,
        filename=upload.filename,
        sha256=hashlib.sha256(upload.content).hexdigest(),
        rows=len(frame),
        periods=periods,
        replaced=replaced,
        features_hash={p: hashes[p] for p in periods},
    )


def _store_features(session: Session, uscc: str, rows: list[StatementRow]) -> dict[str, str]:
    computed = features_by_period([r.period for r in rows], [r.amounts for r in rows])
    hashes = {}
    for period, values in computed.items():
        row = session.get(FeatureRow, (uscc, period)) or FeatureRow(uscc=uscc, period=period)
        row.sort_key, row.features = period_sort_key(period), values
        row.features_hash = hashes[period] = features_hash(uscc, period, values)
        session.add(row)
        session.merge(FeatureVectorRow(uscc=uscc, period=period, values=_vectors.pack(values)))
    return hashes


def list_statements(
    *, rt: Runtime, session: Session, caller: Caller, uscc: str
) -> schemas.StatementList:
    sme = owned(rt, session, caller, uscc, "agency")
    rows = session.scalars(select(StatementRow).where(StatementRow.uscc == sme.uscc))
    features = {
        f.period: f for f in session.scalars(select(FeatureRow).where(FeatureRow.uscc == sme.uscc))
    }
    periods = [
        schemas.StatementPeriod(
            period=r.period,
            currency=r.currency,
            amounts=r.amounts,
            features_hash=features[r.period].features_hash if r.period in features else None,
            features=features[r.period].features if r.period in features else None,
        )
        for r in sorted(rows, key=lambda r: period_sort_key(r.period))
    ]
    return schemas.StatementList(uscc=sme.uscc, periods=periods)
