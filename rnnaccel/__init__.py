"""rnnaccel: fixed-point recurrent-network accelerators in Amaranth HDL, with a bit-exact golden model.

Public API::

    import rnnaccel
    model = rnnaccel.load("model.toml")             # or rnnaccel.from_torch(torch_lstm, formats=...)
    y = rnnaccel.golden.run(model, x)               # bit-exact prediction of the hardware
    hw = rnnaccel.hdl.Accelerator(model)            # an Amaranth wiring.Component
    verilog = rnnaccel.hdl.to_verilog(model)        # AXI4-Stream top ``rnnaccel_top``

Subpackages: ``golden`` (specification), ``hdl`` (Amaranth), ``sim`` (simulation harnesses),
``scripts`` (command line and flows).
"""

import importlib

from rnnaccel.golden import ConfigError, Formats, Model, QFormat, from_torch, load, save

__version__ = "0.1.0"
__all__ = ["ConfigError", "Formats", "Model", "QFormat", "from_torch", "load", "save", "__version__",
           "golden", "hdl", "sim", "scripts"]

_LAZY = ("hdl", "sim", "scripts")


def __getattr__(name):
    # hdl/sim/scripts import Amaranth and cocotb tooling: load them on first use.
    if name in _LAZY:
        return importlib.import_module(f"rnnaccel.{name}")
    raise AttributeError(f"module 'rnnaccel' has no attribute {name!r}")
