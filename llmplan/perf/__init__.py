"""The performance model of one serving replica, free of any simulation.

`engine.py` holds the engine settings (vLLM's knobs), `setup.py` a replica's GPU, model,
engine and tensor parallelism, `parallel.py` the tensor-parallel sizes vLLM accepts for a
model on a GPU, `memory.py` how many KV-cache blocks that leaves (vLLM's
accounting), `steptime_spec.py` how a scenario names a step-time model (roofline, linear,
calibrated, with the calibration file format) and `steptime.py` the step time itself.
The scenario loader uses it to check tp and that a model fits; the simulator to run replicas.
"""

from llmplan.perf.engine import EngineSpec
from llmplan.perf.memory import KvCapacity, kv_capacity
from llmplan.perf.setup import ReplicaSetup
from llmplan.perf.steptime import StepTime, build_step_time
from llmplan.perf.steptime_spec import (
    CalibratedStepTime,
    Calibration,
    LinearStepTime,
    RooflineStepTime,
    StepTimeSpec,
)

__all__ = ["CalibratedStepTime", "Calibration", "EngineSpec", "KvCapacity", "LinearStepTime",
           "ReplicaSetup", "RooflineStepTime", "StepTime", "StepTimeSpec", "build_step_time",
           "kv_capacity"]
