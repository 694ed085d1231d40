"""The golden model: formats, model description, float reference and bit-exact integer model."""

from .fixed import QFormat, SaturationCounter, quantize, requantize, to_float
from .lstm import GoldenResult, run, run_codes
from .model import ConfigError, Formats, Model, load, save
from .reference import lstm_float
from .torch_import import from_torch

__all__ = ["QFormat", "SaturationCounter", "quantize", "requantize", "to_float", "GoldenResult", "run",
           "run_codes", "ConfigError", "Formats", "Model", "load", "save", "lstm_float", "from_torch"]
