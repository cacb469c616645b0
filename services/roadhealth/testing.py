"""Moved to smartcity.roadhealth_harness (it composes the suite, which services may not import).

Kept only for bench/roadhealth_service.py until it imports the new place; import-linter's
contract lists this one import as a temporary exception.
"""

from smartcity.roadhealth_harness import Harness, replay_simulator, running, score_potholes

__all__ = ["Harness", "replay_simulator", "running", "score_potholes"]
