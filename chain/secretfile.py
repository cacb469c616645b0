"""Passwords kept in files (Docker/compose secrets), filled into connection URLs at start.

A URL names the place of its password with `{password}`; an environment variable names the
file that holds it. The password never appears in the URL a person types or in compose.yaml.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from chain.errors import ChainError

PLACEHOLDER = "{password}"


class SecretError(ChainError):
    """A URL asks for a password file that is not named or cannot be read."""


def fill_password(url: str, *, url_name: str, file_variable: str) -> str:
    """`url` with `{password}` replaced by the URL-quoted contents of the named password file."""
    if PLACEHOLDER not in url:
        return url
    path = os.environ.get(file_variable)
    if not path:
        raise SecretError(f"{url_name} has {PLACEHOLDER} but no {file_variable}")
    try:
        password = Path(path).read_text().strip()
    except OSError as exc:
        raise SecretError(
            f"cannot read the password file {path} ({file_variable}): {exc.strerror}"
        ) from exc
    return url.replace(PLACEHOLDER, quote(password, safe=""))
