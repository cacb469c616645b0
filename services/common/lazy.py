"""A package's public names loaded on first use (PEP 562), so importing it stays cheap.

A package whose helpers pull heavy libraries (jwcrypto, pandas, SQLAlchemy) lists them here
instead of importing them: `python -m services.identity.cli --help` then loads none of them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

# public name -> (module, its name there); a name of None is the module itself
Exports = Mapping[str, tuple[str, str | None]]


def lazy_exports(
    module_name: str, exports: Exports
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return the `__getattr__` and `__dir__` that load `module_name`'s `exports` on first use."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        source, attr = exports[name]
        found = importlib.import_module(source)
        value = found if attr is None else getattr(found, attr)
        setattr(sys.modules[module_name], name, value)  # resolved once
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[module_name])) | set(exports))

    return __getattr__, __dir__
