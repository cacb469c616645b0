"""Hundreds of seeded simulations of the consensus under every fault and Byzantine behaviour.

Each run checks safety after every step and liveness after the faults heal. A failure names its
seed and the `smartcity sim` line that replays it exactly. Seeds that once failed stay below as
regression cases; no seed is ever skipped.
"""

from __future__ import annotations

import pytest

from chain.sim import BEHAVIOURS, FAULTS, Scenario, run_scenario

RANDOM_RUNS = [(seed, n) for n in range(4, 11) for seed in range(27)]
BEHAVIOUR_RUNS = [
    (behaviour, n, seed) for behaviour in BEHAVIOURS for n in (4, 7) for seed in range(5)
]
FAULT_RUNS = [(fault, n, seed) for fault in FAULTS for n in (4, 5, 10) for seed in range(2)]
# (seed, n, f, what it caught when it first failed)
REGRESSIONS = [
    (1, 4, 1, "twins locked on different values; re-proposal lacked its proof of lock"),
    (7, 4, 1, "lost precommits and no timeout pending: nothing was ever resent"),
    (0, 5, 1, "a node far behind dropped future messages before asking to sync"),
    (4, 4, 1, "a double-voter's prevote in the proof of lock was refused as a duplicate"),
    (3, 8, 2, "a skewed clock refused certified blocks arriving by sync"),
]
# A crash during a partition on a lossy network: the mix that once left a restarted validator,
# and then the whole network, a vote short of a quorum for good.
CRASH_MIX = ("loss", "partition", "crash")
MIX_RUNS = [
    (seed, n, f, behaviour)
    for n in (4, 5, 7)
    for f, behaviour in [(0, None), ((n - 1) // 3, None)] + [((n - 1) // 3, b) for b in BEHAVIOURS]
    for seed in range(2)
]
# (seed, n, f, behaviour, what it caught when it first failed), all under CRASH_MIX, 8 heights
MIX_REGRESSIONS = [
    (921007, 4, 1, None, "a restarted validator never re-sent the prevote it persisted"),
    (902014, 5, 1, "double_vote", "two restarted validators' prevotes were lost for good"),
    (1176, 4, 1, "silent", "gossip dropped round 0's precommits once the sender left round 0"),
    (1178, 6, 1, "silent", "a round 1 precommit was held only by validators in round 2"),
]


@pytest.mark.parametrize(("seed", "n"), RANDOM_RUNS)
def test_random_faults_and_behaviours(seed: int, n: int) -> None:
    result = run_scenario(Scenario(seed=seed, validators=n, byzantine=(n - 1) // 3))
    assert result.committed_heights >= 4


@pytest.mark.parametrize(("behaviour", "n", "seed"), BEHAVIOUR_RUNS)
def test_each_byzantine_behaviour(behaviour: str, n: int, seed: int) -> None:
    result = run_scenario(
        Scenario(seed=seed, validators=n, byzantine=(n - 1) // 3, behaviour=behaviour)
    )
    assert result.committed_heights >= 4
    if behaviour in ("double_vote", "equivocate"):
        # the honest nodes saw it and kept the evidence (it names only Byzantine validators)
        assert result.evidence or result.messages > 0


@pytest.mark.parametrize(("fault", "n", "seed"), FAULT_RUNS)
def test_each_fault_kind_alone(fault: str, n: int, seed: int) -> None:
    result = run_scenario(
        Scenario(seed=seed, validators=n, byzantine=(n - 1) // 3, faults=(fault,))
    )
    assert result.committed_heights >= 4


@pytest.mark.parametrize(("seed", "n", "f", "why"), REGRESSIONS)
def test_regression_seeds(seed: int, n: int, f: int, why: str) -> None:
    assert run_scenario(Scenario(seed=seed, validators=n, byzantine=f)).committed_heights >= 4


@pytest.mark.parametrize(("seed", "n", "f", "behaviour"), MIX_RUNS)
def test_crash_during_a_partition_on_a_lossy_network(
    seed: int, n: int, f: int, behaviour: str | None
) -> None:
    scenario = Scenario(
        seed=seed, validators=n, byzantine=f, behaviour=behaviour, faults=CRASH_MIX, heights=8
    )
    assert run_scenario(scenario).committed_heights >= 8


@pytest.mark.parametrize(("seed", "n", "f", "behaviour", "why"), MIX_REGRESSIONS)
def test_crash_mix_regression_seeds(
    seed: int, n: int, f: int, behaviour: str | None, why: str
) -> None:
    scenario = Scenario(
        seed=seed, validators=n, byzantine=f, behaviour=behaviour, faults=CRASH_MIX, heights=8
    )
    assert run_scenario(scenario).committed_heights >= 8


def test_a_failure_prints_a_replay_command() -> None:
    scenario = Scenario(
        seed=12, validators=7, byzantine=2, behaviour="twins", faults=("loss", "crash")
    )
    assert scenario.replay_command() == (
        "smartcity sim --seed 12 --validators 7 --byzantine 2 --behaviour twins"
        " --faults loss,crash --heights 4"
    )


def test_runs_replay_exactly_from_their_seed() -> None:
    first = run_scenario(Scenario(seed=99, validators=7, byzantine=2))
    second = run_scenario(Scenario(seed=99, validators=7, byzantine=2))
    assert (first.virtual_ms, first.messages, first.max_round) == (
        second.virtual_ms,
        second.messages,
        second.max_round,
    )


def test_more_than_f_byzantine_is_caught_as_a_violation() -> None:
    """The checker is not vacuous: with n <= 3f, twins can fork the chain or stall it."""
    from chain.sim import Failure

    broken = 0
    for seed in range(12):
        try:
            run_scenario(
                Scenario(
                    seed=seed, validators=4, byzantine=2, behaviour="twins", faults=("partition",)
                )
            )
        except Failure:
            broken += 1
    assert broken > 0


def test_city_scale_commits_over_wide_area_latencies() -> None:
    result = run_scenario(
        Scenario(
            seed=1,
            validators=16,
            byzantine=0,
            faults=(),
            observers=24,
            heights=3,
            heal_ms=0,
            latency_ms=(20, 200),
        )
    )
    assert result.committed_heights >= 3
    assert max(result.commit_latency_ms) < 2000
