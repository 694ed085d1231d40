"""Bit-exact integer model of the whole network: stacked, bidirectional layers and the dense head.

=================================  ==========================================================
golden function                    hardware block
=================================  ==========================================================
:func:`rnnaccel.golden.layer.run_layer`  one :class:`rnnaccel.hdl.layer.RecurrentLayer`
:func:`dense_head`                 :class:`rnnaccel.hdl.network.DenseHead`
:func:`run_codes` / :func:`run`    :class:`rnnaccel.hdl.top.Accelerator` over one sequence
=================================  ==========================================================

Layer ``k`` reads the outputs of layer ``k - 1`` (``[forward; backward]`` when bidirectional, as
PyTorch concatenates them); the backward direction runs over the reversed sequence and its outputs
are put back in time order. The head is ``requantize(W_y y + b_y, data)`` on the last layer's
outputs. With ``outputs = "last"`` only the last timestep's output is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .fixed import SaturationCounter, quantize, requantize, to_float
from .layer import quantized_parameters, run_layer
from .model import Model
from .mvu import matrix_vector

__all__ = ["GoldenResult", "quantize_input", "head_parameters", "dense_head", "run_codes", "run", "parameter_saturation",
           "initial_state_formats"]


@dataclass
class GoldenResult:
    """Outputs of the integer model for one sequence.

    Attributes
    ----------
    h_codes : numpy.ndarray of int64, shape (T, output_size), or (1, output_size) for ``outputs = "last"``
        What the accelerator streams out (format ``data``): the last layer's hidden states
        (``[forward; backward]``), or the dense head's outputs.
    c_codes : numpy.ndarray of int64, shape (T, H), or None
        Cell states (format ``cell``) of the last layer's forward direction, for LSTMs.
    final_h, final_c : numpy.ndarray of int64, shape (num_layers * directions, state_size / H)
        States after the sequence, PyTorch's ``h_n`` / ``c_n`` order (``final_c`` None without a cell
        state). A backward direction's final state is the one after time step 0.
    layer_outputs : list of numpy.ndarray
        Every layer's output sequence (T, H * directions).
    saturation : SaturationCounter
        Overflow events per tensor during this run.
    """

    h_codes: np.ndarray
    c_codes: np.ndarray | None
    model: Model = field(repr=False)
    saturation: SaturationCounter = field(default_factory=SaturationCounter)
    final_h: np.ndarray | None = None
    final_c: np.ndarray | None = None
    layer_outputs: list = field(default_factory=list, repr=False)

    @cached_property
    def h(self) -> np.ndarray:
        """Outputs as real values."""
        return to_float(self.h_codes, self.model.formats.data)

    @cached_property
    def c(self) -> np.ndarray | None:
        return None if self.c_codes is None else to_float(self.c_codes, self.model.formats.cell)


def quantize_input(x, model: Model, counter=None) -> np.ndarray:
    """Quantise a float input sequence (T, X) to ``data`` codes (round to nearest, saturate)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != model.input_size:
        raise ValueError(f"input sequence must have shape (T, {model.input_size}), got {x.shape}")
    return quantize(x, model.formats.data, "RND", "SAT", counter=counter, tag="input")


def head_parameters(model: Model):
    """Quantised dense-head weights (``weight``) and bias (``model.bias``): (weights, bias, counter)."""
    cache = model.__dict__.setdefault("_golden_cache", {})
    key = ("head", model.formats)
    if key not in cache:
        counter = SaturationCounter()
        w = quantize(model.weights["head.weight"], model.formats.weight, "RND", "SAT", counter=counter, tag="weight")
        b = quantize(model.weights["head.bias"], model.bias, "RND", "SAT", counter=counter, tag="bias")
        for a in (w, b):
            a.setflags(write=False)
        cache[key] = (w, b, counter)
    return cache[key]


def dense_head(y, model: Model, counter=None) -> np.ndarray:
    """The dense head on codes: ``requantize(W_y y + b_y, head_accumulator -> data)`` per timestep.

    ``y`` has shape (T, H * directions) in ``data``. Mirrors :class:`rnnaccel.hdl.network.DenseHead`.
    """
    w, b, _ = head_parameters(model)
    acc = matrix_vector(w, np.asarray(y, dtype=np.int64).T, b).T
    return requantize(acc, model.head_accumulator, model.formats.data, model.rounding, model.overflow,
                      counter=counter, tag="head")


def _states(value, model: Model, fmt, what: str, size: int):
    n = model.num_layers * model.directions
    if value is None:
        return [None] * n
    a = np.asarray(value, dtype=np.int64)
    if a.shape == (size,) and n == 1:
        a = a[None]
    if a.shape != (n, size):
        raise ValueError(f"{what} must have shape ({n}, {size}) (layers x directions, state), got {a.shape}")
    if not fmt.contains(a).all():
        raise ValueError(f"{what} codes outside the format {fmt}")
    return list(a)


def initial_state_formats(model: Model) -> dict:
    """Formats of the initial states: ``h0`` in ``data``, ``c0`` in ``cell`` (LSTMs only)."""
    out = {"h0": model.formats.data}
    if model.cell_spec.has_cell_state:
        out["c0"] = model.formats.cell
    return out


def parameter_saturation(model: Model) -> SaturationCounter:
    """Saturation events of quantising every parameter of the model (weights, biases, projections, head)."""
    counter = SaturationCounter()
    for layer in (lay for directions in model.layers() for lay in directions):
        counter.update(quantized_parameters(layer).saturation)
        if layer.proj_size:
            from .projected import projection_parameters
            counter.update(projection_parameters(layer).saturation)
    if model.head_size:
        counter.update(head_parameters(model)[2])
    return counter


def run_codes(model: Model, x_codes, counter=None, *, h0=None, c0=None) -> GoldenResult:
    """Run one sequence of input codes (T, X); the hardware's exact output.

    Parameters
    ----------
    h0, c0 : array_like of int, shape (num_layers * directions, H), optional
        Initial states (codes in ``data`` / ``cell``); zeros by default.
    """
    x_codes = np.asarray(x_codes, dtype=np.int64)
    if x_codes.ndim != 2 or x_codes.shape[1] != model.input_size:
        raise ValueError(f"input codes must have shape (T, {model.input_size}), got {x_codes.shape}")
    if not model.formats.data.contains(x_codes).all():
        raise ValueError(f"input codes outside the data format {model.formats.data}")
    counter = SaturationCounter() if counter is None else counter
    h0s = _states(h0, model, model.formats.data, "h0", model.state_size)
    c0s = _states(c0, model, model.formats.cell, "c0", model.hidden_size)
    H, P, T = model.hidden_size, model.state_size, len(x_codes)
    seq = x_codes
    final_h, final_c, layer_outputs, c_codes = [], [], [], None
    for k, directions in enumerate(model.layers()):
        outs = []
        for d, layer in enumerate(directions):
            i = k * model.directions + d
            inp = seq if d == 0 else seq[::-1]
            hs, cs = run_layer(layer, inp, h0s[i], c0s[i], counter)
            final_h.append(hs[-1] if T else (h0s[i] if h0s[i] is not None else np.zeros(P, np.int64)))
            if cs is not None:
                final_c.append(cs[-1] if T else (c0s[i] if c0s[i] is not None else np.zeros(H, np.int64)))
            if d == 0 and k == model.num_layers - 1:
                c_codes = cs
            outs.append(hs if d == 0 else hs[::-1])
        seq = np.concatenate(outs, axis=1)
        layer_outputs.append(seq)
    y = dense_head(seq, model, counter) if model.head_size else seq
    if model.outputs == "last":
        y = y[-1:]
    return GoldenResult(np.asarray(y, dtype=np.int64).reshape(-1, model.output_size), c_codes, model, counter,
                        np.array(final_h, dtype=np.int64), np.array(final_c, dtype=np.int64) if final_c else None,
                        layer_outputs)


def run(model: Model, x, *, h0=None, c0=None) -> GoldenResult:
    """Quantise a float sequence (T, X) and run the integer model: a bit-exact prediction of the hardware.

    ``h0`` / ``c0`` are float initial states (num_layers * directions, H), quantised to ``data`` /
    ``cell``. ``result.saturation`` counts overflow events of the input, the parameters and every step.
    """
    counter = parameter_saturation(model)
    xq = quantize_input(x, model, counter)
    h0q = None if h0 is None else quantize(h0, model.formats.data, "RND", "SAT", counter=counter, tag="h0")
    c0q = None if c0 is None else quantize(c0, model.formats.cell, "RND", "SAT", counter=counter, tag="c0")
    return run_codes(model, xq, counter, h0=h0q, c0=c0q)
