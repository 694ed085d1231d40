"""Bit-exact integer model of the LSTM accelerator, one function per hardware block.

=================================  ==========================================================
golden function                    hardware block
=================================  ==========================================================
:func:`quantized_parameters`       weight / bias memory contents
:func:`rnnaccel.golden.mvu.matrix_vector`  :class:`rnnaccel.hdl.mvu.MatrixVectorUnit`
:func:`gate_activation`            :class:`rnnaccel.hdl.lstm.GateActivation`
:func:`lstm_elementwise`           :class:`rnnaccel.hdl.lstm.LSTMElementwise`
:func:`lstm_step`                  one timestep of :class:`rnnaccel.hdl.lstm.LSTMLayer`
:func:`run_codes` / :func:`run`    :class:`rnnaccel.hdl.top.Accelerator` over sequences
=================================  ==========================================================

Equations (PyTorch ``nn.LSTM``, gates i, f, g, o)::

    [i f g o] = W_ih x_t + W_hh h_{t-1} + (b_ih + b_hh)      exact, accumulator format
    i, f, o   = sigmoid_table(requantize(., sigmoid_in, SAT))
    g         = tanh_table(requantize(., tanh_in, SAT))
    c_t       = requantize(f * c_{t-1} + i * g, cell)         exact products, one rounding
    h_t       = requantize(o * tanh_table(requantize(c_t, tanh_in, SAT)), data)

``h_0 = c_0 = 0`` at the start of every sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .activation import Table, activate, make_table
from .fixed import QFormat, SaturationCounter, quantize, requantize, to_float
from .model import Model
from .mvu import matrix_vector

__all__ = [
    "QuantizedParameters", "quantized_parameters", "tables", "gate_activation", "lstm_elementwise",
    "lstm_step", "run_codes", "run", "GoldenResult", "quantize_input",
]


@dataclass(frozen=True)
class QuantizedParameters:
    """Integer weights and bias of the layer in PyTorch row order (gates i, f, g, o).

    ``weights`` is ``[W_ih | W_hh]`` of shape (4H, X + H); ``bias`` is ``b_ih + b_hh`` summed in
    float and then quantised once, at accumulator precision.
    """

    weights: np.ndarray
    bias: np.ndarray
    saturation: SaturationCounter


def quantized_parameters(model: Model) -> QuantizedParameters:
    """Quantise the float weights (format ``weight``) and summed biases (format ``model.bias``).

    Round to nearest, saturate; saturated parameters are counted under ``weight`` and ``bias``.
    """
    cache = model.__dict__.setdefault("_golden_cache", {})
    key = (model.formats, model.rounding)
    if key not in cache:
        counter = SaturationCounter()
        w = np.concatenate([model.weights["weight_ih_l0"], model.weights["weight_hh_l0"]], axis=1)
        wq = quantize(w, model.formats.weight, "RND", "SAT", counter=counter, tag="weight")
        b = model.weights["bias_ih_l0"] + model.weights["bias_hh_l0"]
        bq = quantize(b, model.bias, "RND", "SAT", counter=counter, tag="bias")
        for a in (wq, bq):
            a.setflags(write=False)
        cache[key] = QuantizedParameters(wq, bq, counter)
    return cache[key]


def tables(model: Model) -> dict[str, Table]:
    """The sigmoid and tanh tables of the model (also the hardware memories' contents)."""
    f = model.formats
    return {"sigmoid": make_table("sigmoid", f.sigmoid_in, f.sigmoid_out),
            "tanh": make_table("tanh", f.tanh_in, f.tanh_out)}


def gate_activation(acc, function: str, model: Model, counter=None) -> np.ndarray:
    """Activation of gate pre-activations (accumulator codes) -> gate codes.

    ``function`` is ``"sigmoid"`` (i, f, o; result in ``sigmoid_out``) or ``"tanh"``
    (g; result in ``tanh_out``). Mirrors :class:`rnnaccel.hdl.lstm.GateActivation`.
    """
    table = tables(model)[function]
    return activate(acc, model.accumulator, table, model.rounding, counter=counter,
                    tag=f"{function}_in")


def lstm_elementwise(i, f, g, o, c_prev, model: Model, counter=None):
    """The element-wise stage: new cell state and hidden state from activated gates.

    Parameters
    ----------
    i, f, o : array_like of int
        Gate codes in ``sigmoid_out``.
    g : array_like of int
        Candidate codes in ``tanh_out``.
    c_prev : array_like of int
        Cell state codes in ``cell``.

    Returns
    -------
    c, h : numpy.ndarray of int64
        ``c_t`` in ``cell`` and ``h_t`` in ``data``. Mirrors :class:`rnnaccel.hdl.lstm.LSTMElementwise`.
    """
    fm = model.formats
    i, f, g, o, c_prev = (np.asarray(a, dtype=np.int64) for a in (i, f, g, o, c_prev))
    fc_frac = fm.sigmoid_out.frac + fm.cell.frac
    ig_frac = fm.sigmoid_out.frac + fm.tanh_out.frac
    frac = max(fc_frac, ig_frac)
    s = ((f * c_prev) << (frac - fc_frac)) + ((i * g) << (frac - ig_frac))
    c = requantize(s, QFormat(63, frac), fm.cell, model.rounding, model.overflow,
                   counter=counter, tag="cell")
    t = activate(c, fm.cell, tables(model)["tanh"], model.rounding, counter=counter, tag="tanh_in(cell)")
    h = requantize(o * t, QFormat(63, ig_frac), fm.data, model.rounding, model.overflow,
                   counter=counter, tag="hidden")
    return c, h


def lstm_step(x, h_prev, c_prev, model: Model, counter=None):
    """One timestep on codes: ``x`` (X,), ``h_prev`` (H,) in ``data``; ``c_prev`` (H,) in ``cell``."""
    p = quantized_parameters(model)
    H = model.hidden_size
    v = np.concatenate([np.asarray(x, dtype=np.int64), np.asarray(h_prev, dtype=np.int64)])
    acc = matrix_vector(p.weights, v, p.bias)
    i = gate_activation(acc[0:H], "sigmoid", model, counter)
    f = gate_activation(acc[H:2 * H], "sigmoid", model, counter)
    g = gate_activation(acc[2 * H:3 * H], "tanh", model, counter)
    o = gate_activation(acc[3 * H:4 * H], "sigmoid", model, counter)
    return lstm_elementwise(i, f, g, o, c_prev, model, counter)


@dataclass
class GoldenResult:
    """Outputs of the integer model for one sequence.

    Attributes
    ----------
    h_codes, c_codes : numpy.ndarray of int64, shape (T, H)
        Hidden state (format ``data``) and cell state (format ``cell``) at every step.
    saturation : SaturationCounter
        Overflow events per tensor during this run.
    """

    h_codes: np.ndarray
    c_codes: np.ndarray
    model: Model = field(repr=False)
    saturation: SaturationCounter = field(default_factory=SaturationCounter)

    @cached_property
    def h(self) -> np.ndarray:
        """Hidden states as real values."""
        return to_float(self.h_codes, self.model.formats.data)

    @cached_property
    def c(self) -> np.ndarray:
        return to_float(self.c_codes, self.model.formats.cell)


def quantize_input(x, model: Model, counter=None) -> np.ndarray:
    """Quantise a float input sequence (T, X) to ``data`` codes (round to nearest, saturate)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != model.input_size:
        raise ValueError(f"input sequence must have shape (T, {model.input_size}), got {x.shape}")
    return quantize(x, model.formats.data, "RND", "SAT", counter=counter, tag="input")


def run_codes(model: Model, x_codes, counter=None) -> GoldenResult:
    """Run one sequence of input codes (T, X) from zero state; the hardware's exact output."""
    x_codes = np.asarray(x_codes, dtype=np.int64)
    if x_codes.ndim != 2 or x_codes.shape[1] != model.input_size:
        raise ValueError(f"input codes must have shape (T, {model.input_size}), got {x_codes.shape}")
    if not model.formats.data.contains(x_codes).all():
        raise ValueError(f"input codes outside the data format {model.formats.data}")
    counter = SaturationCounter() if counter is None else counter
    H = model.hidden_size
    h = np.zeros(H, dtype=np.int64)
    c = np.zeros(H, dtype=np.int64)
    hs, cs = [], []
    for x in x_codes:
        c, h = lstm_step(x, h, c, model, counter)
        hs.append(h)
        cs.append(c)
    shape = (0, H)
    return GoldenResult(np.array(hs).reshape(-1, H) if hs else np.zeros(shape, np.int64),
                        np.array(cs).reshape(-1, H) if cs else np.zeros(shape, np.int64),
                        model, counter)


def run(model: Model, x) -> GoldenResult:
    """Quantise a float sequence (T, X) and run the integer model: a bit-exact prediction of the hardware.

    ``result.saturation`` counts overflow events of the input, the parameters and every step.
    """
    counter = SaturationCounter(quantized_parameters(model).saturation)
    xq = quantize_input(x, model, counter)
    return run_codes(model, xq, counter)
