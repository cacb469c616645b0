"""What `smartcity up` tells the person at the terminal, apart from the logs.

The banner (where everything is served) goes to stdout; logs go to stderr, as JSON lines unless
stderr is a terminal (docs/operations.md). A port that is already taken is reported in one line
before anything is opened.
"""

from __future__ import annotations

import errno
import logging
import socket

import httpx

log = logging.getLogger("smartcity.up")


def port_problem(host: str, port: int) -> str | None:
    """Why `up` cannot listen on host:port, in one sentence, or None when it can."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # uvicorn sets SO_REUSEADDR too: a port in TIME_WAIT is free for it, a listener is not
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use{_who(host, port)}; stop it or pass --port"
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def _who(host: str, port: int) -> str:
    """' by a smartcity suite (chain …)' when one answers there, else ''."""
    try:
        answer = httpx.get(f"http://{host}:{port}/dashboard/api/config", timeout=1.0)
        config = answer.json() if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return ""
    if not isinstance(config, dict) or "chain_id" not in config:
        return ""
    genesis = str(config.get("genesis_hash", ""))[:16]
    return f" by another smartcity suite (chain {config['chain_id']}, genesis {genesis}…)"


def log_destination(log_format: str) -> str:
    """The banner's line saying where the logs go and in which format."""
    if log_format == "json":
        return "JSON lines on stderr (SMARTCITY_LOG_FORMAT=text for plain lines)"
    return "plain lines on stderr (SMARTCITY_LOG_FORMAT=json for JSON lines)"


def announce(lines: list[str], **fields: str | int) -> None:
    """Print the banner to stdout and log the same facts once, so JSON logs hold them too."""
    for line in lines:
        print(line, flush=True)
    log.info("suite serving", extra=fields)
