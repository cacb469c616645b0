"""`make bench`: run every benchmark module's `run()` and print one JSON object per result.

python -m bench                 all modules
python -m bench chain_core      only the named modules
python -m bench --help          this text and the modules, each with what it measures

Results also go to bench/results/latest.jsonl; progress and timings go to stderr.
"""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import platform
import sys
import time
from pathlib import Path

import bench


def summary(name: str) -> str:
    """The first line of a bench module's docstring, read without importing it."""
    source = (Path(bench.__path__[0]) / f"{name}.py").read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(source)) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def main(argv: list[str]) -> int:
    names = sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_")
    )
    if {"-h", "--help"} & set(argv):
        print((__doc__ or "").strip() + "\n\nmodules:")
        width = max(map(len, names))
        for name in names:
            print(f"  {name:<{width}}  {summary(name)}")
        return 0
    wanted = set(argv)
    unknown = wanted - set(names)
    if unknown:
        print(
            f"unknown benchmark modules {sorted(unknown)}; have {', '.join(names)}"
            " (python -m bench --help)",
            file=sys.stderr,
        )
        return 2
    results = []
    for name in names:
        if wanted and name not in wanted:
            continue
        print(f"running bench.{name} ...", file=sys.stderr)
        started = time.perf_counter()
        module = importlib.import_module(f"bench.{name}")
        for result in module.run():
            record = {
                "module": name,
                **result,
                "machine": platform.machine(),
                "python": platform.python_version(),
            }
            results.append(record)
            print(json.dumps(record), flush=True)
        print(f"bench.{name} took {time.perf_counter() - started:.1f}s", file=sys.stderr)
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
