"""Statement uploads: read from the request body, validated, stored, turned into features.

A statement file comes as multipart/form-data or as the raw file. python-multipart is not among
the project's dependencies, so multipart bodies are parsed with the standard library's MIME
parser (the same RFC 2046 framing); a raw body with a CSV or Excel content type is accepted too.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP

from sqlalchemy import select
from sqlalchemy.orm import Session

from chain.auth import Caller
from services.credit import schemas
from services.credit._service_errors import BadInput, TooLarge
from services.credit.models import (
    FeatureRow,
    FeatureVectorRow,
    StatementRow,
    UploadRow,
)
from services.credit.runtime import Runtime
from services.credit.service import vectors
from services.credit.service.common import now_ms
from services.credit.service.history import (
    amounts_of,
    check_continuity,
    features_by_period,
    features_hash,
    period_sort_key,
)
from services.credit.service.registry import owned
from services.credit.statements import FileFormat, load_statements

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
XLSX_TYPES = {
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.ms-excel",
}
CSV_TYPES = {"text/csv", "application/csv", "text/plain"}


@dataclass(frozen=True)
class UploadedFile:
    filename: str
    content: bytes
    file_format: FileFormat


def read_upload(content_type: str, body: bytes, *, field: str = "file") -> UploadedFile:
    """The statement file in a request body, or a 4xx saying what is wrong with the upload."""
    # Verify the size before parsing anything
    if len(body) > MAX_UPLOAD_BYTES:
        raise TooLarge(f"upload of {len(body)} bytes exceeds {MAX_UPLOAD_BYTES}")
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        return _from_multipart(content_type, body, field)
    if media in CSV_TYPES | XLSX_TYPES:
        return _as_file("upload", media, body)
    raise BadInput(
        f"unsupported content type {media or 'none'!r}: send multipart/form-data with a"
        " 'file' part, or the file itself as text/csv or .xlsx",
        code="unsupported_media_type",
    )


def _from_multipart(content_type: str, body: bytes, field: str) -> UploadedFile:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise BadInput("malformed multipart body (no parts or no boundary)", code="bad_multipart")
    parts: list[Message] = [p for p in message.iter_parts() if isinstance(p, Message)]
    for part in parts:
        if part.get_param("name", header="content-disposition") != field:
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            break
        filename = part.get_filename() or "upload"
        return _as_file(filename, part.get_content_type(), payload)
    names = [p.get_param("name", header="content-disposition") for p in parts]
    raise BadInput(
        f"the multipart body has no part named {field!r} (parts: {names})", code="missing_file"
    )


def _as_file(filename: str, media: str, content: bytes) -> UploadedFile:
    if not content:
        raise BadInput("the uploaded file is empty", code="empty_file")
    lower = filename.lower()
    is_xlsx = lower.endswith((".xlsx", ".xlsm")) or media in XLSX_TYPES or content[:2] == b"PK"
    if lower.endswith(".xls") and not lower.endswith(".xlsx"):
        raise BadInput("legacy .xls files are not read: save as .xlsx or CSV", code="bad_format")
    return UploadedFile(filename[:256], content, "xlsx" if is_xlsx else "csv")


def upload_statements(
    *, rt: Runtime, session: Session, caller: Caller, uscc: str, upload: UploadedFile
) -> schemas.UploadOut:
    """Validate a statement file; store it and its features, or store nothing and say why."""
    sme = owned(rt=rt, session=session, caller=caller, uscc=uscc, also=("agency",))
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
        session.merge(FeatureVectorRow(uscc=uscc, period=period, values=vectors.pack(values)))
    return hashes


def list_statements(
    *, rt: Runtime, session: Session, caller: Caller, uscc: str
) -> schemas.StatementList:
    sme = owned(rt=rt, session=session, caller=caller, uscc=uscc, also=("agency",))
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
