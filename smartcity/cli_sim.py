"""`smartcity sim`: the consensus in the deterministic simulator, seed by seed."""

from __future__ import annotations

import json
import sys

import click

from chain.sim import BEHAVIOURS, FAULTS, Failure, Scenario, run_scenario


@click.command()
@click.option("--seed", type=int, default=None, help="Run exactly this seed (replay).")
@click.option(
    "--seeds",
    type=click.IntRange(1, 100_000),
    default=20,
    show_default=True,
    help="How many seeds to run, from --seed-start.",
)
@click.option("--seed-start", type=int, default=0, show_default=True)
@click.option("--validators", type=click.IntRange(1, 200), default=4, show_default=True)
@click.option(
    "--byzantine",
    type=click.IntRange(0, 66),
    default=None,
    help="Byzantine validators (default: the most tolerated, (n-1)//3).",
)
@click.option(
    "--behaviour",
    type=click.Choice(BEHAVIOURS),
    default=None,
    help="What every Byzantine validator does (default: chosen by seed).",
)
@click.option(
    "--faults",
    default=None,
    help=f"Comma-separated subset of {','.join(FAULTS)}, or 'none' (default: chosen by seed).",
)
@click.option("--observers", type=click.IntRange(0, 1000), default=0, show_default=True)
@click.option("--heights", type=click.IntRange(1, 10_000), default=4, show_default=True)
@click.option("--latency", default="5,60", show_default=True, help="Min,max one-way latency in ms.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run.")
def sim(
    seed: int | None,
    seeds: int,
    seed_start: int,
    validators: int,
    byzantine: int | None,
    behaviour: str | None,
    faults: str | None,
    observers: int,
    heights: int,
    latency: str,
    as_json: bool,
) -> None:
    """Run the consensus in the deterministic simulator; exit 1 with a replay line on failure."""
    f = (validators - 1) // 3 if byzantine is None else byzantine
    if 3 * f >= validators:
        raise click.BadParameter(
            f"{f} Byzantine of {validators} breaks n > 3f", param_hint="--byzantine"
        )
    chosen: tuple[str, ...] | None = None
    if faults is not None:
        chosen = (
            () if faults == "none" else tuple(x.strip() for x in faults.split(",") if x.strip())
        )
        unknown = set(chosen) - set(FAULTS)
        if unknown:
            raise click.BadParameter(
                f"unknown {sorted(unknown)}; choose from {FAULTS}", param_hint="--faults"
            )
    try:
        low, high = (int(x) for x in latency.split(","))
    except ValueError as exc:
        raise click.BadParameter("use MIN,MAX milliseconds", param_hint="--latency") from exc
    run_seeds = [seed] if seed is not None else list(range(seed_start, seed_start + seeds))
    failures = 0
    for index, current in enumerate(run_seeds, 1):
        scenario = Scenario(
            seed=current,
            validators=validators,
            byzantine=f,
            behaviour=behaviour,
            faults=chosen,
            observers=observers,
            heights=heights,
            latency_ms=(low, high),
        )
        try:
            result = run_scenario(scenario)
        except Failure as exc:
            failures += 1
            click.echo(f"FAIL seed {current}: {exc}", err=True)
            continue
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "seed": current,
                        "validators": validators,
                        "byzantine": f,
                        "heights": result.committed_heights,
                        "virtual_ms": result.virtual_ms,
                        "messages": result.messages,
                        "max_round": result.max_round,
                        "evidence": len(result.evidence),
                    }
                )
            )
        elif len(run_seeds) > 1 and index % 10 == 0:
            click.echo(f"{index}/{len(run_seeds)} seeds, {failures} failed", err=True)
    click.echo(f"{len(run_seeds) - failures} passed, {failures} failed")
    if failures:
        sys.exit(1)
