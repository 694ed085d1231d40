"""The LSTM names of the golden model (kept for code written against the first, LSTM-only version).

The cell-generic functions live in :mod:`rnnaccel.golden.layer` (one layer) and
:mod:`rnnaccel.golden.network` (stacks, directions, head); this module maps the LSTM vocabulary
onto them. Equations (PyTorch ``nn.LSTM``, gates i, f, g, o)::

    [i f g o] = W_ih x_t + W_hh h_{t-1} + (b_ih + b_hh)      exact, accumulator format
    i, f, o   = sigmoid_table(requantize(., sigmoid_in, SAT))
    g         = tanh_table(requantize(., tanh_in, SAT))
    c_t       = requantize(f * c_{t-1} + i * g, cell)         exact products, one rounding
    h_t       = requantize(o * tanh_table(requantize(c_t, tanh_in, SAT)), data)
"""

from __future__ import annotations

from .layer import QuantizedParameters, activation_units, lstm_elementwise, quantized_parameters, row_activation
from .layer import layer_step
from .model import Model
from .network import GoldenResult, quantize_input, run, run_codes

__all__ = [
    "QuantizedParameters", "quantized_parameters", "tables", "gate_activation", "lstm_elementwise",
    "lstm_step", "run_codes", "run", "GoldenResult", "quantize_input",
]


def tables(model: Model) -> dict:
    """The gate (``"sigmoid"``) and candidate (``"tanh"``) activation units of the model."""
    u = activation_units(model)
    return {"sigmoid": u["gate"], "tanh": u["cand"]}


def gate_activation(acc, function: str, model: Model, counter=None):
    """``function`` ``"sigmoid"`` (gate rows) or ``"tanh"`` (candidate rows); see :func:`row_activation`."""
    return row_activation(acc, {"sigmoid": "gate", "tanh": "cand"}[function], model, counter)


def lstm_step(x, h_prev, c_prev, model: Model, counter=None):
    """One LSTM timestep on codes; returns ``(c, h)`` (the order of the first version)."""
    h, c = layer_step(x, h_prev, c_prev, model, counter)
    return c, h
