"""Amaranth hardware: matrix-vector unit, activation units, the cells' datapaths, layers, network, top level, Verilog export."""

from .activation import ActivationTable
from .export import to_verilog
from .layer import GateActivation, GRUElementwise, LSTMElementwise, RecurrentLayer, RNNElementwise, build_layer
from .lstm import LSTMLayer
from .mvu import MatrixVectorUnit
from .network import BidirectionalLayer, DenseHead, Network
from .perf import cycles_per_timestep, estimate, multiplier_count, sequence_cycles
from .top import Accelerator, AxiStreamTop

__all__ = ["ActivationTable", "to_verilog", "GateActivation", "LSTMElementwise", "GRUElementwise", "RNNElementwise",
           "RecurrentLayer", "build_layer", "LSTMLayer", "MatrixVectorUnit", "BidirectionalLayer", "DenseHead",
           "Network", "cycles_per_timestep", "sequence_cycles", "estimate", "multiplier_count", "Accelerator",
           "AxiStreamTop"]
