"""Amaranth hardware: matrix-vector unit, activation tables, LSTM datapath, top level, Verilog export."""

from .activation import ActivationTable
from .export import to_verilog
from .lstm import GateActivation, LSTMElementwise, LSTMLayer
from .mvu import MatrixVectorUnit
from .perf import cycles_per_timestep, estimate, multiplier_count
from .top import Accelerator, AxiStreamTop

__all__ = ["ActivationTable", "to_verilog", "GateActivation", "LSTMElementwise", "LSTMLayer",
           "MatrixVectorUnit", "cycles_per_timestep", "estimate", "multiplier_count", "Accelerator",
           "AxiStreamTop"]
