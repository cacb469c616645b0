"""`make bench`: run every benchmark module's `run()` and print one JSON object per result.

python -m bench                 all modules
python -m bench chain_core      only the named modules
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import platform
import sys
import time
from pathlib import Path

import bench


def main(argv: list[str]) -> int:
    wanted = set(argv)
    names = sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_")
    )
    unknown = wanted - set(names)
    if unknown:
        print(f"unknown benchmark modules {sorted(unknown)}; have {names}", file=sys.stderr)
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
