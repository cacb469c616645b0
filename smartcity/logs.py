"""Process logging: one JSON object per line (or text on a terminal), secrets redacted.

`configure_logging(format, level)` installs one stderr handler on the root logger and routes
uvicorn's loggers (including its access log) through it. Format: SMARTCITY_LOG_FORMAT
(`json` | `text`; default json when stderr is not a terminal, text on one); level:
SMARTCITY_LOG_LEVEL. A JSON line has `time` (UTC, ISO 8601), `level`, `logger`, `message`, any
extra fields passed with `extra=` (e.g. `node`, `height`), the HTTP `request_id` when the line
was logged while serving a request, and `exc` for a traceback.

Secrets never reach a log line: the redaction filter masks bearer tokens and Authorization
headers, anything shaped like a JWT, passwords inside URLs and private JWK members.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Attributes every LogRecord has; anything else on a record came from `extra=`
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}
_REDACTIONS = (
    # Authorization: Bearer <token> / Basic <credentials>, in headers or prose
    (
        re.compile(r"(?i)\b(authorization['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]+(\s+[^'\"\s,}]+)?"),
        r"\1[REDACTED]",
    ),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1[REDACTED]"),
    # A compact JWS/JWT (three base64url parts, the first a JSON header starting `{"`)
    (re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), "[REDACTED-JWT]"),
    # user:password@ in a URL
    (re.compile(r"(://[^:/@\s]+:)[^@\s/]+@"), r"\1[REDACTED]@"),
    # private members of a JWK ("d", and RSA's "p", "q", "dp", "dq", "qi")
    (re.compile(r"""(["'](?:d|p|q|dp|dq|qi)["']\s*:\s*["'])[^"']+"""), r"\1[REDACTED]"),
    # password=... in key=value text
    (re.compile(r"(?i)\b(password|passwd|secret)(\s*[=:]\s*)[^\s,;&]+"), r"\1\2[REDACTED]"),
)


def redact(text: str) -> str:
    """The text with credentials masked."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Masks secrets in the message and string extras before any handler formats them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            # keep uvicorn's access-log arguments for the structured fields; redact them too
            record.access = _access_fields(record)
            record.msg, record.args = cleaned, None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, redact(value))
        request_id = _request_id()
        if request_id and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True


def _request_id() -> str | None:
    """The id of the request being served, if any.

    Request ids are set by chain.observability's middleware; while that module is not loaded no
    request is being served, and not importing it keeps FastAPI and SQLAlchemy out of a CLI
    command's start.
    """
    observability = sys.modules.get("chain.observability")
    if observability is None:
        return None
    request_id: str | None = observability.current_request_id()
    return request_id


def _access_fields(record: logging.LogRecord) -> dict[str, Any] | None:
    args = record.args
    if record.name != "uvicorn.access" or not isinstance(args, tuple) or len(args) != 5:
        return None
    client, method, path, http_version, status = args
    return {
        "client": str(client),
        "method": str(method),
        "path": redact(str(path)),
        "http_version": str(http_version),
        "status": status,
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key in _STANDARD or key.startswith("_") or value is None:
                continue
            if key == "access" and isinstance(value, dict):
                entry.update(value)
                continue
            entry[key] = value if isinstance(value, int | float | bool | str) else str(value)
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def default_format(stream: TextIO) -> str:
    return "text" if stream.isatty() else "json"


def active_format() -> str:
    """The format of the handler `configure_logging` installed last: "json" or "text"."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, JsonFormatter):
            return "json"
    return "text"


def configure_logging(
    log_format: str | None = None,
    level: str | None = None,
    *,
    access_log: bool = True,
    force: bool = True,
) -> None:
    """One stderr handler for every logger (uvicorn's too), in the chosen format and level.

    `access_log=False` keeps uvicorn's per-request lines for DEBUG only.

    Without `force`, a root logger that already has handlers (a test runner's, an embedding
    program's) is left alone, as `logging.basicConfig` does.
    """
    root = logging.getLogger()
    if not force and root.handlers:
        return
    stream = sys.stderr
    chosen = (log_format or os.environ.get("SMARTCITY_LOG_FORMAT") or "").lower()
    if chosen not in ("json", "text"):
        chosen = default_format(stream)
    name = (level or os.environ.get("SMARTCITY_LOG_LEVEL") or "INFO").upper()
    numeric = logging.getLevelNamesMapping().get(name, logging.INFO)
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if chosen == "json" else logging.Formatter(TEXT_FORMAT))
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # Python warnings (deprecations from libraries) become log records in the same format
    logging.captureWarnings(True)
    for noisy in ("httpx", "httpcore", "amqtt", "transitions"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    broker = logging.getLogger("amqtt.broker")
    for old_filter in [f for f in broker.filters if isinstance(f, BrokerProbeFilter)]:
        broker.removeFilter(old_filter)
    if numeric > logging.DEBUG:
        broker.addFilter(BrokerProbeFilter())
    for name_ in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name_)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(numeric)
    if not access_log and numeric > logging.DEBUG:
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


class BrokerProbeFilter(logging.Filter):
    """Drops the embedded broker's complaints about our own probes, which are not faults.

    Waiting for the broker opens and closes a bare TCP connection ("No data ... to decode"), and
    a gateway tries MQTT 5 before falling back to 3.1.1, which amqtt refuses ("Invalid
    protocol ... 5"). Shown at DEBUG, where everything is.
    """

    PROBE_MARKERS = (
        "No data to decode MQTT packet fixed header",
        "Invalid protocol from",
        "Invalid connection from",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(marker in message for marker in self.PROBE_MARKERS)


def uvicorn_options() -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run` so it keeps the logging configured here."""
    return {"log_config": None, "log_level": None}
