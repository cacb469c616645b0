"""`python -m bench`: --help lists what each module measures; a wrong name is refused."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import bench


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], capture_output=True, text=True, timeout=60
    )


MODULES = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))


def test_help_lists_every_module_with_what_it_measures_and_runs_nothing() -> None:
    done = run_bench("--help")
    assert done.returncode == 0, done.stderr
    listed = [line.split()[0] for line in done.stdout.split("modules:")[1].splitlines() if line]
    assert listed == MODULES
    assert all(
        len(line.split(maxsplit=1)) == 2
        for line in done.stdout.split("modules:")[1].splitlines()
        if line
    )
    assert "running" not in done.stderr


def test_an_unknown_module_is_refused_with_the_names_there_are() -> None:
    done = run_bench("consensus", "no_such_bench")
    assert done.returncode == 2
    assert "unknown benchmark modules ['no_such_bench']" in done.stderr
    assert "consensus" in done.stderr and "--help" in done.stderr
    assert "running" not in done.stderr
