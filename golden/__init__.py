"""The golden model: formats, model description, float reference and bit-exact integer model."""

from .fixed import QFormat, SaturationCounter, quantize, requantize, to_float
from .cells import CELLS as CELL_KINDS
from .model import ConfigError, Formats, Model, load, save
from .network import GoldenResult, run, run_codes
from .reference import lstm_float, network_float
from .torch_import import from_torch

__all__ = ["QFormat", "SaturationCounter", "quantize", "requantize", "to_float", "GoldenResult", "run",
           "run_codes", "ConfigError", "Formats", "Model", "load", "save", "lstm_float", "network_float",
           "from_torch", "CELL_KINDS"]
