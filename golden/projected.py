"""Bit-exact integer model of the projected layers: LSTM with projection and Jordan RNN.

Both cells feed back a vector of ``P = proj_size`` values computed from the ``H`` element-wise
results by a second matrix-vector pass per step (the *projection*):

=============  =====================================================================================
cell           equations (``sigma`` gate activation, ``phi`` candidate activation, default tanh)
=============  =====================================================================================
``lstm``       ``i,f,o = sigma(W_{i,f,o} [x_t; h_{t-1}] + b)``, ``g = phi(W_g [x_t; h_{t-1}] + b)``,
(proj_size)    ``c_t = f*c_{t-1} + i*g``, ``m_t = o*phi(c_t)`` (H), ``h_t = W_hr m_t`` (P, no bias)
               -- ``torch.nn.LSTM(proj_size=P)`` (Sak et al. 2014); ``W_hh`` is (4H, P)
``jordan``     ``h_t = phi(W_ih x_t + W_hh y_{t-1} + b_ih + b_hh)`` (H),
               ``y_t = phi(W_hy h_t + b_hy)`` (P) -- Jordan (1986): the context is the previous
               *output*. The output activation is the candidate activation (tanh by default), so
               the fed-back ``y`` stays in (-1, 1) like an Elman RNN's ``h``, which keeps the
               ``data`` format of the recurrent vector well used; a linear output would be unbounded.
=============  =====================================================================================

The layer outputs (and feeds back) ``h_t`` / ``y_t``. Where each step is rounded (one golden
function per hardware block; the gate pass and element-wise stage are those of
:mod:`rnnaccel.golden.layer`)::

    acc   = W [x_t; h_{t-1}] + b                   exact (model.accumulator)     matrix_vector
    rows  : as rnnaccel.golden.layer.row_activation                               GateActivation
    lstm  : c_t, m_t = lstm_elementwise(...)        m_t in data                  LSTMElementwise
    jordan: h_t = requantize(phi(acc), data)                                      RNNElementwise
    pacc  = W_p v + b_p                             exact (model.projection_accumulator)
            v = m_t (lstm) or h_t (jordan), b_p = 0 (lstm) or b_hy (jordan)      :func:`projection`
    lstm  : h_t = requantize(pacc, data)                                          :func:`projection_output`
    jordan: y_t = requantize(phi_unit(requantize(pacc, tanh_in, SAT)), tanh_out -> data)

Rounding ``model.rounding`` everywhere, overflow ``model.overflow`` on the ``data`` results, table
inputs always saturating; overflow events are counted under ``projection`` (LSTM ``h_t``),
``tanh_in(y)`` and ``output`` (Jordan ``y_t``). The hardware is
:class:`rnnaccel.hdl.projected.ProjectedLayer` (the projection reuses the gate pass's
matrix-vector unit, :class:`rnnaccel.hdl.projected.ProjectionOutput` rounds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import activation as _act
from .fixed import SaturationCounter, quantize, requantize
from .layer import activation_units, lstm_elementwise, quantized_parameters, rnn_elementwise, row_activation
from .model import Model
from .mvu import matrix_vector

__all__ = ["PROJECTED_CELLS", "ProjectionParameters", "projection_parameters",
           "projection", "jordan_output", "projection_output", "projected_step"]

#: Cells with a projection pass, and the names of their projection weight / bias (without ``_l{k}``).
PROJECTED_CELLS = {"lstm": ("weight_hr", None), "jordan": ("weight_hy", "bias_hy")}


def _check(model: Model):
    if not isinstance(model, Model):
        raise TypeError(f"expected a rnnaccel Model, got {type(model).__name__}")
    if model.cell not in PROJECTED_CELLS or not model.proj_size:
        raise ValueError(f"model (cell {model.cell!r}, proj_size {model.proj_size}) has no projection; the "
                         f"projected layers are {', '.join(PROJECTED_CELLS)} with proj_size > 0")


@dataclass(frozen=True)
class ProjectionParameters:
    """Integer projection weights (P, H) in ``weight`` and bias (P,) in ``model.bias`` (zeros for
    the LSTM, which has no projection bias), and their saturation events."""

    weights: np.ndarray
    bias: np.ndarray
    saturation: SaturationCounter


def projection_parameters(model: Model) -> ProjectionParameters:
    """Quantise the projection weights (``weight``) and bias (``model.bias``), round to nearest, saturate.

    These are the contents of the projection rows of the matrix-vector unit's memories.
    Saturated parameters are counted under ``weight`` and ``bias``.
    """
    _check(model)
    cache = model.__dict__.setdefault("_golden_cache", {})
    key = ("projection", model.formats)
    if key not in cache:
        counter = SaturationCounter()
        wname, bname = PROJECTED_CELLS[model.cell]
        w = quantize(model.weights[f"{wname}_l0"], model.formats.weight, "RND", "SAT", counter=counter, tag="weight")
        if bname:
            b = quantize(model.weights[f"{bname}_l0"], model.bias, "RND", "SAT", counter=counter, tag="bias")
        else:
            b = np.zeros(model.proj_size, dtype=np.int64)
        for a in (w, b):
            a.setflags(write=False)
        cache[key] = ProjectionParameters(w, b, counter)
    return cache[key]


def projection(values, model: Model) -> np.ndarray:
    """The projection pass: exact ``W_p v + b_p`` (format ``model.projection_accumulator``).

    Parameters
    ----------
    values : array_like of int, shape (H,)
        The element-wise results in ``data``: ``m_t`` (LSTM) or ``h_t`` (Jordan).

    Returns
    -------
    numpy.ndarray of int64, shape (P,)
        Mirrors the projection rows of the layer's :class:`rnnaccel.hdl.mvu.MatrixVectorUnit`
        (nothing is rounded: the accumulator holds the exact sum).
    """
    p = projection_parameters(model)
    return matrix_vector(p.weights, np.asarray(values, dtype=np.int64), p.bias)


def jordan_output(acc, model: Model, counter=None) -> np.ndarray:
    """Jordan's output ``y_t = phi(pacc)`` on codes: the candidate unit, then ``tanh_out -> data``.

    ``y = requantize(phi_unit(requantize(acc, tanh_in, SAT)), tanh_out, data)``; index saturation
    is counted under ``tanh_in(y)``, overflow of ``y`` under ``output``.
    """
    fm = model.formats
    t = _act.activate(np.asarray(acc, dtype=np.int64), model.projection_accumulator, activation_units(model)["cand"],
                      model.rounding, counter=counter, tag="tanh_in(y)")
    return requantize(t, fm.tanh_out, fm.data, model.rounding, model.overflow, counter=counter, tag="output")


def projection_output(acc, model: Model, counter=None) -> np.ndarray:
    """The projection's rounding: accumulator codes to the fed-back vector in ``data``.

    LSTM: ``h_t = requantize(acc, data)`` (overflow counted under ``projection``); Jordan:
    :func:`jordan_output`. Mirrors :class:`rnnaccel.hdl.projected.ProjectionOutput`.
    """
    _check(model)
    if model.cell == "jordan":
        return jordan_output(acc, model, counter)
    return requantize(np.asarray(acc, dtype=np.int64), model.projection_accumulator, model.formats.data,
                      model.rounding, model.overflow, counter=counter, tag="projection")


def projected_step(x, h_prev, c_prev, model: Model, counter=None):
    """One timestep of a projected one-layer model on codes (see the module documentation).

    Parameters
    ----------
    x : array_like of int, shape (X,)
        In ``data``.
    h_prev : array_like of int, shape (P,)
        The fed-back vector ``h_{t-1}`` / ``y_{t-1}`` in ``data``.
    c_prev : array_like of int, shape (H,), or None
        The LSTM's cell state in ``cell`` (ignored by Jordan).

    Returns
    -------
    h, c : numpy.ndarray of int64
        ``h_t`` / ``y_t`` (P,) in ``data`` and the cell state (H,) (None for Jordan).
    """
    _check(model)
    P, H = model.proj_size, model.hidden_size
    h_prev = np.asarray(h_prev, dtype=np.int64)
    if h_prev.shape != (P,):
        raise ValueError(f"h_prev must have proj_size = {P} entries, got shape {h_prev.shape}")
    p = quantized_parameters(model)
    acc = matrix_vector(p.weights, np.concatenate([np.asarray(x, dtype=np.int64), h_prev]), p.bias)
    val = {row.name: row_activation(acc[b * H:(b + 1) * H], row.act, model, counter)
           for b, row in enumerate(model.cell_spec.rows)}
    if model.cell == "lstm":
        c, v = lstm_elementwise(val["i"], val["f"], val["g"], val["o"], c_prev, model, counter)
    else:
        c, v = None, rnn_elementwise(val["h"], model, counter)
    return projection_output(projection(v, model), model, counter), c
