"""The scenario file: schema (models.py) and the one loader that validates it (loader.py)."""

from llmplan.scenario.loader import LoadedScenario, load_scenario, load_scenario_text
from llmplan.scenario.models import LocalDeployment, Scenario, TaskSpec

__all__ = ["LoadedScenario", "LocalDeployment", "Scenario", "TaskSpec", "load_scenario",
           "load_scenario_text"]
