"""A deterministic SaaS company that emits canonical events, faults included, and the ground truth.

``simulate(SimulationConfig(...))`` is pure (no clock, no I/O); ``output`` writes its records to
files or publishes them. ``revstream simulate`` is the command line.
"""

from connectors.simulator.config import BusinessRates, FaultRates, SimulationConfig
from connectors.simulator.simulate import Simulation, simulate

__all__ = ["BusinessRates", "FaultRates", "Simulation", "SimulationConfig", "simulate"]
