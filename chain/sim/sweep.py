"""A wide seed sweep of one fault mix, too long for the test suite: `python -m chain.sim.sweep`.

Seeds cycle through validator counts and through no Byzantine validator, a seeded behaviour and
each behaviour in turn; every failure prints its replay line, and one JSON summary ends the run.
"""

from __future__ import annotations

import argparse
import json
import time

from chain.sim import BEHAVIOURS, FAULTS, Failure, Scenario, run_scenario

CRASH_MIX = ("loss", "partition", "crash")


def scenario_for(seed: int, validators: range, faults: tuple[str, ...], heights: int) -> Scenario:
    """The seed picks n from `validators` and which Byzantine behaviour, if any, to run."""
    n = validators[seed % len(validators)]
    behaviours: tuple[str | None, ...] = (None, None, *BEHAVIOURS)
    behaviour = behaviours[(seed // len(validators)) % len(behaviours)]
    byzantine = 0 if behaviour is None and seed % 2 else (n - 1) // 3
    return Scenario(
        seed=seed,
        validators=n,
        byzantine=byzantine,
        behaviour=behaviour,
        faults=faults,
        heights=heights,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed-start", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=300)
    parser.add_argument("--min-validators", type=int, default=4)
    parser.add_argument("--max-validators", type=int, default=7)
    parser.add_argument("--heights", type=int, default=8)
    parser.add_argument("--faults", default=",".join(CRASH_MIX), help=f"subset of {FAULTS}")
    args = parser.parse_args(argv)
    validators = range(args.min_validators, args.max_validators + 1)
    faults = tuple(f for f in args.faults.split(",") if f)
    started, failed = time.process_time(), 0
    for seed in range(args.seed_start, args.seed_start + args.seeds):
        scenario = scenario_for(seed, validators, faults, args.heights)
        try:
            run_scenario(scenario)
        except Failure as exc:
            failed += 1
            print(f"FAIL {str(exc).splitlines()[0]} | {scenario.replay_command()}", flush=True)
    summary = {
        "seed_start": args.seed_start,
        "runs": args.seeds,
        "failed": failed,
        "faults": list(faults),
        "validators": [validators.start, validators.stop - 1],
        "heights": args.heights,
        "cpu_s": round(time.process_time() - started, 1),
    }
    print(json.dumps(summary))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
