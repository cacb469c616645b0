"""`make lint`: no non-test module over the line limit, except the documented ones.

A module past a few hundred lines holds more than one feature (../shared/STYLE.md); split it by
feature. The limit and its exceptions, each with the reason it cannot be split, live in
pyproject.toml under [tool.smartcity.module-sizes]. An exception that no longer applies (the file
is gone or back under the limit) fails the check too, so the list stays honest.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIPPED_PARTS = {"tests", ".venv", ".tools", "node_modules", "__pycache__", "data"}


def modules(root: Path, packages: list[str]) -> list[Path]:
    """Every Python module of the checked packages, tests excluded."""
    found: list[Path] = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if not SKIPPED_PARTS.intersection(path.relative_to(root).parts):
                found.append(path)
    return found


def line_count(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


def problems(root: Path) -> list[str]:
    """What breaks the rule: modules over the limit and exceptions that no longer apply."""
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["smartcity"]
    rule = config["module-sizes"]
    limit: int = rule["max_lines"]
    exceptions: dict[str, str] = rule.get("exceptions", {})
    found: list[str] = []
    for path in modules(root, rule["packages"]):
        name = path.relative_to(root).as_posix()
        lines = line_count(path)
        if lines > limit and name not in exceptions:
            found.append(f"{name}: {lines} lines (limit {limit}); split it by feature")
    for name in sorted(exceptions):
        path = root / name
        if not path.is_file():
            found.append(f"{name}: listed as an exception but missing; drop it from the list")
        elif line_count(path) <= limit:
            found.append(f"{name}: back under {limit} lines; drop it from the exceptions")
    return found


def main() -> int:
    found = problems(ROOT)
    for line in found:
        print(line, file=sys.stderr)
    if not found:
        print("module sizes: every non-test module is within its limit")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
