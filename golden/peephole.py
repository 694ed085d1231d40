"""The peephole LSTM (Gers & Schmidhuber 2000), cell ``"lstm_peephole"``: parameters, checks, element-wise stage.

Equations (``*`` element-wise; ``p_i``, ``p_f``, ``p_o`` are *diagonal* peephole weights, one
per hidden unit; ``sigma`` the gate activation, ``phi`` the candidate activation)::

    i   = sigma(W_i [x_t; h_{t-1}] + b_i + p_i * c_{t-1})
    f   = sigma(W_f [x_t; h_{t-1}] + b_f + p_f * c_{t-1})
    g   = phi(W_g [x_t; h_{t-1}] + b_g)
    c_t = f * c_{t-1} + i * g
    o   = sigma(W_o [x_t; h_{t-1}] + b_o + p_o * c_t)          (the output gate sees the *new* state)
    h_t = o * phi(c_t)

Weights: PyTorch-style blocks ``i, f, g, o`` in ``weight_ih_l{k}``, ``weight_hh_l{k}``,
``bias_ih_l{k}``, ``bias_hh_l{k}`` (as ``torch.nn.LSTM``), plus ``weight_ci_l{k}``,
``weight_cf_l{k}``, ``weight_co_l{k}`` of shape ``(H,)`` (``p_i``, ``p_f``, ``p_o``).

Fixed point (``acc`` = the exact row accumulator ``W [x; h] + b`` in ``model.accumulator``,
``a = data.frac + weight.frac`` fractional bits)::

    p            quantised to ``weight`` (round to nearest, saturate; counted under ``weight``)
    p*c          exact, pc = weight.frac + cell.frac fractional bits
    pre          = acc * 2**(P - a) + p*c * 2**(P - pc),   P = max(a, pc)          exact
    i, f, o      = sigma_unit(requantize(pre, sigmoid_in, SAT))   the ONE rounding of a gate
    c_t          = requantize(f*c_{t-1} + i*g, cell)              as lstm (exact sum, one rounding)
    h_t          = requantize(o * phi(requantize(c_t, tanh_in, SAT)), data)

so the gate rows ``i``, ``f``, ``o`` leave the matrix-vector unit as raw accumulators (row
activation ``"raw"``) and ``g`` as usual through the candidate unit. Saturation events are counted
under ``sigmoid_in`` (gate indices), ``cell``, ``tanh_in(cell)`` and ``hidden``, as for ``lstm``.

Hardware: :class:`rnnaccel.hdl.peephole.PeepholeLSTMElementwise` (mirrored by
:func:`peephole_elementwise`). Its cell-state chain is read when a unit enters and written back
:data:`MIN_UNIT_SPACING` cycles later, so the units of a lane must arrive at least that many
cycles apart: :func:`check_peephole_model` (called by :class:`~rnnaccel.golden.model.Model`)
requires ``beats_per_unit >= MIN_UNIT_SPACING``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import activation as _act
from .fixed import QFormat, SaturationCounter, quantize, requantize
from .model import ConfigError, Model

__all__ = ["PEEPHOLE_WEIGHTS", "MIN_UNIT_SPACING", "PeepholeParameters", "peephole_parameters",
           "peephole_formats", "peephole_preactivation", "peephole_elementwise", "check_peephole_model",
           "max_simd"]

#: Names of the diagonal peephole weights (without the ``_l{k}`` suffix), in the order p_i, p_f, p_o.
PEEPHOLE_WEIGHTS = ("weight_ci", "weight_cf", "weight_co")

#: Smallest number of cycles between two units entering the peephole element-wise stage: the cell
#: state read on entry is written back after the peephole products (1 cycle), the gate units
#: (``TABLE_LATENCY`` = 5), the products f*c and i*g (1) and the cell-state register (1).
#: :class:`rnnaccel.hdl.peephole.PeepholeLSTMElementwise` checks that its pipeline matches.
MIN_UNIT_SPACING = 8


@dataclass(frozen=True)
class PeepholeParameters:
    """Quantised peephole weights of a one-layer model.

    Attributes
    ----------
    weights : numpy.ndarray of int64, shape (3, H)
        Rows ``p_i``, ``p_f``, ``p_o`` in the ``weight`` format (the per-lane ROM contents).
    saturation : SaturationCounter
        Saturated weights, under ``weight``.
    """

    weights: np.ndarray
    saturation: SaturationCounter


def peephole_parameters(model: Model) -> PeepholeParameters:
    """Quantise ``weight_ci_l0``, ``weight_cf_l0``, ``weight_co_l0`` to ``weight`` (RND, SAT); cached."""
    if model.cell != "lstm_peephole":
        raise ValueError(f"peephole_parameters needs an 'lstm_peephole' model, got cell {model.cell!r}")
    cache = model.__dict__.setdefault("_golden_cache", {})
    key = ("peephole", model.formats)
    if key not in cache:
        counter = SaturationCounter()
        w = np.stack([np.asarray(model.weights[f"{name}_l0"], dtype=np.float64) for name in PEEPHOLE_WEIGHTS])
        q = quantize(w, model.formats.weight, "RND", "SAT", counter=counter, tag="weight")
        q.setflags(write=False)
        cache[key] = PeepholeParameters(q, counter)
    return cache[key]


def peephole_formats(model: Model) -> dict[str, QFormat]:
    """Formats of the exact intermediate values.

    Returns
    -------
    dict
        ``"product"``: ``p*c`` (frac ``weight.frac + cell.frac``); ``"pre"``: the gate
        pre-activation ``acc + p*c`` with frac ``P = max(accumulator.frac, product.frac)`` and a
        width that holds every sum (the widest layer's accumulator, aligned, plus the widest product).
    """
    f = model.formats
    pc_frac = f.weight.frac + f.cell.frac
    frac = max(model.accumulator.frac, pc_frac)
    widest = max(model.layer_input_size(k) for k in range(model.num_layers)) + model.state_size
    acc_bound = widest * (1 << (f.data.width - 1)) * (1 << (f.weight.width - 1)) + (1 << (model.bias.width - 1))
    bound = (acc_bound << (frac - model.accumulator.frac)) \
        + (((1 << (f.weight.width - 1)) * (1 << (f.cell.width - 1))) << (frac - pc_frac))
    return {"product": QFormat(f.weight.width + f.cell.width, pc_frac),
            "pre": QFormat(bound.bit_length() + 1, frac)}


def peephole_preactivation(acc, p, c, model: Model) -> np.ndarray:
    """Exact gate pre-activation ``acc + p*c`` in :func:`peephole_formats` ``["pre"]`` (no rounding).

    ``acc`` in ``model.accumulator``, ``p`` in ``weight``, ``c`` in ``cell``.
    """
    fm = peephole_formats(model)
    acc, p, c = (np.asarray(a, dtype=np.int64) for a in (acc, p, c))
    frac = fm["pre"].frac
    return (acc << (frac - model.accumulator.frac)) + ((p * c) << (frac - fm["product"].frac))


def peephole_elementwise(i_acc, f_acc, g, o_acc, c_prev, model: Model, counter=None, *, units=None):
    """The peephole LSTM element-wise stage: ``(c_t, h_t)`` from the raw gate accumulators.

    Mirrors :class:`rnnaccel.hdl.peephole.PeepholeLSTMElementwise`.

    Parameters
    ----------
    i_acc, f_acc, o_acc : array_like of int
        Exact row accumulators ``W [x; h] + b`` of the gates (``model.accumulator``; row activation
        ``"raw"``).
    g : array_like of int
        Candidate codes in ``tanh_out``.
    c_prev : array_like of int
        ``c_{t-1}`` in ``cell``.
    model : Model
        A one-layer ``lstm_peephole`` model (its peephole weights are used).
    counter : SaturationCounter, optional
    units : array_like of int, optional
        Hidden-unit index of every element (default: ``0 .. H-1``, i.e. whole vectors).

    Returns
    -------
    c, h : numpy.ndarray of int64
        ``c_t`` in ``cell`` and ``h_t`` in ``data``.
    """
    fm = model.formats
    pw = peephole_parameters(model).weights
    i_acc, f_acc, g, o_acc, c_prev = (np.asarray(a, dtype=np.int64) for a in (i_acc, f_acc, g, o_acc, c_prev))
    j = np.arange(model.hidden_size) if units is None else np.asarray(units, dtype=np.int64)
    p_i, p_f, p_o = pw[0][j], pw[1][j], pw[2][j]
    pre_fmt = peephole_formats(model)["pre"]
    unit = _activation_units(model)
    i = _act.activate(peephole_preactivation(i_acc, p_i, c_prev, model), pre_fmt, unit["gate"], model.rounding,
                      counter=counter, tag="sigmoid_in")
    f = _act.activate(peephole_preactivation(f_acc, p_f, c_prev, model), pre_fmt, unit["gate"], model.rounding,
                      counter=counter, tag="sigmoid_in")
    fc_frac = fm.sigmoid_out.frac + fm.cell.frac
    ig_frac = fm.sigmoid_out.frac + fm.tanh_out.frac
    frac = max(fc_frac, ig_frac)
    s = ((f * c_prev) << (frac - fc_frac)) + ((i * g) << (frac - ig_frac))
    c = requantize(s, QFormat(63, frac), fm.cell, model.rounding, model.overflow, counter=counter, tag="cell")
    o = _act.activate(peephole_preactivation(o_acc, p_o, c, model), pre_fmt, unit["gate"], model.rounding,
                      counter=counter, tag="sigmoid_in")
    t = _act.activate(c, fm.cell, unit["cand"], model.rounding, counter=counter, tag="tanh_in(cell)")
    h = requantize(o * t, QFormat(63, ig_frac), fm.data, model.rounding, model.overflow,
                   counter=counter, tag="hidden")
    return c, h


def _activation_units(model: Model) -> dict:
    from .layer import activation_units  # golden.layer dispatches to this module: import on use
    return activation_units(model)


def max_simd(model: Model) -> int:
    """The largest ``simd`` for which every layer of ``model`` gives each hidden unit at least
    :data:`MIN_UNIT_SPACING` matrix-vector beats (0 if none does)."""
    rows = len(model.cell_spec.rows)
    lengths = [model.layer_input_size(k) + model.state_size for k in range(model.num_layers)]
    ok = [s for s in range(1, min(lengths) + 1) if all(rows * math.ceil(n / s) >= MIN_UNIT_SPACING for n in lengths)]
    return max(ok, default=0)


def check_peephole_model(model: Model) -> None:
    """Checks of an ``lstm_peephole`` model (called from ``Model.__post_init__``).

    Raises
    ------
    ConfigError
        If a hidden unit gets fewer than :data:`MIN_UNIT_SPACING` matrix-vector beats
        (``beats_per_unit = 4 * ceil((X + H) / simd)``; the element-wise stage's cell state
        is written back that many cycles after it is read), naming ``simd`` and the largest
        ``simd`` that works; or if the exact gate pre-activation ``acc + p*c`` needs more than
        62 bits.
    """
    rows = len(model.cell_spec.rows)
    for k in range(model.num_layers):
        n = model.layer_input_size(k) + model.state_size
        beats = rows * math.ceil(n / model.simd)
        if beats < MIN_UNIT_SPACING:
            where = f" of layer {k}" if model.num_layers > 1 else ""
            raise ConfigError(
                f"hardware.simd = {model.simd} leaves each hidden unit only beats_per_unit = {rows} x "
                f"ceil({n} / {model.simd}) = {beats} matrix-vector cycles{where}, but the peephole LSTM's "
                f"element-wise stage writes a unit's cell state back {MIN_UNIT_SPACING} cycles after reading "
                f"it, so units must arrive at least {MIN_UNIT_SPACING} cycles apart; choose simd <= "
                f"{max_simd(model)}")
    pre = peephole_formats(model)["pre"]
    if pre.width > 62:
        f = model.formats
        raise ConfigError(
            f"the peephole gate pre-activation acc + p*c needs {pre.width} bits (accumulator {model.accumulator}, "
            f"weight {f.weight} x cell {f.cell}), more than the 62 the model supports; narrow the data, "
            f"weight or cell format")
