"""Deterministic simulation of the consensus under faults, from one seed."""

from chain.sim.world import Failure, Scenario, SimResult, run_scenario

__all__ = ["Failure", "Scenario", "SimResult", "run_scenario"]
