"""Deterministic simulation of the consensus under faults, from one seed."""

from chain.sim.scenario import BEHAVIOURS, FAULTS, Failure, Scenario, SimResult
from chain.sim.world import run_scenario

__all__ = ["BEHAVIOURS", "FAULTS", "Failure", "Scenario", "SimResult", "run_scenario"]
