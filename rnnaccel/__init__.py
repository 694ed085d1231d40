"""rnnaccel: fixed-point recurrent-network accelerators in Amaranth HDL, with a bit-exact golden model.

Public API::

    model = rnnaccel.load("model.toml")            # or rnnaccel.from_torch(torch_lstm, formats=...)
    y = rnnaccel.golden.run(model, x)               # bit-exact prediction of the hardware
    hw = rnnaccel.hdl.Accelerator(model)            # an Amaranth wiring.Component
"""

from rnnaccel.golden import ConfigError, Formats, Model, QFormat, from_torch, load, save

__version__ = "0.1.0"
__all__ = ["ConfigError", "Formats", "Model", "QFormat", "from_torch", "load", "save", "__version__"]
