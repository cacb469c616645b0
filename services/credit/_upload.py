"""Read an uploaded statement file from a request body: multipart/form-data or the raw file.

python-multipart is not among the project's dependencies, so multipart bodies are parsed with the
standard library's MIME parser (the same RFC 2046 framing); a raw body with a CSV or Excel
content type is accepted too.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP

from services.credit._service_errors import BadInput, TooLarge
from services.credit.statements import FileFormat

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
