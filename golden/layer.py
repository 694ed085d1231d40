"""Bit-exact integer model of one recurrent layer, one function per hardware block.

=======================================  ============================================================
golden function                          hardware block
=======================================  ============================================================
:func:`quantized_parameters`             weight / bias memory contents
:func:`rnnaccel.golden.mvu.matrix_vector` :class:`rnnaccel.hdl.mvu.MatrixVectorUnit`
:func:`row_activation`                   :class:`rnnaccel.hdl.layer.GateActivation`
:func:`lstm_elementwise`                 :class:`rnnaccel.hdl.layer.LSTMElementwise`
:func:`gru_elementwise`                  :class:`rnnaccel.hdl.layer.GRUElementwise`
:func:`rnn_elementwise`                  :class:`rnnaccel.hdl.layer.RNNElementwise`
:func:`rnnaccel.golden.peephole.peephole_elementwise` :class:`rnnaccel.hdl.peephole.PeepholeLSTMElementwise`
:func:`layer_step`                       one timestep of :class:`rnnaccel.hdl.layer.RecurrentLayer`
:func:`run_layer`                        the layer over one sequence
=======================================  ============================================================

The functions take a *one-layer* model (:meth:`rnnaccel.golden.model.Model.layer`). The cells'
equations are in :mod:`rnnaccel.golden.cells`; here is where each is rounded::

    acc       = W [x_t; h_{t-1}] + b                       exact (accumulator format), one per row
    gate row  : sigma_unit(requantize(acc, sigmoid_in, SAT))      -> sigmoid_out
    cand row  : phi_unit(requantize(acc, tanh_in, SAT))           -> tanh_out
    relu row  : requantize(max(acc, 0), data)                     -> data
    linear row: requantize(acc, cell, SAT)                        -> cell    (GRU's two n parts)

    LSTM:  c_t = requantize(f*c_{t-1} + i*g, cell)   (no forget gate: c_{t-1} + i*g)
           h_t = requantize(o * phi(requantize(c_t, tanh_in, SAT)), data)
    GRU:   n   = phi(requantize(nx + r*nh, tanh_in, SAT))
           h_t = requantize((1 - z)*n + z*h_{t-1}, data)
    RNN:   h_t = requantize(phi, data)  (tanh)  or the relu row itself
    LSTM with proj_size, Jordan RNN: a projection pass follows (rnnaccel.golden.projected)

Every sum of products is exact and rounded once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import activation as _act
from .cells import Row
from .fixed import QFormat, SaturationCounter, quantize, requantize
from .model import Model
from .mvu import matrix_vector

__all__ = [
    "QuantizedParameters", "quantized_parameters", "activation_units", "row_activation", "lstm_elementwise",
    "gru_elementwise", "rnn_elementwise", "layer_step", "run_layer",
]


@dataclass(frozen=True)
class QuantizedParameters:
    """Integer weights and biases of a layer's matrix-vector rows, in row-block order.

    ``weights`` has shape (len(rows) * H, X + H): block ``b`` (rows ``b*H .. b*H + H - 1``) is
    row ``cell.rows[b]`` of every hidden unit, ``[W_ih | W_hh]`` of its PyTorch gate block with the
    part it does not read set to zero. ``bias`` is ``b_ih + b_hh`` summed in float and quantised
    once at accumulator precision (only ``b_ih`` for an ``x`` row, only ``b_hh`` for an ``h`` row:
    GRU's ``b_hn`` stays inside the reset product).
    """

    weights: np.ndarray
    bias: np.ndarray
    saturation: SaturationCounter


def _row_matrix(model: Model, row: Row):
    H, X = model.hidden_size, model.input_size
    w = model.weights
    sl = slice(row.block * H, (row.block + 1) * H)
    wih, whh = w["weight_ih_l0"][sl], w["weight_hh_l0"][sl]
    bih, bhh = w["bias_ih_l0"][sl], w["bias_hh_l0"][sl]
    if row.bias != "part":
        # The row's own bias rule (Row.bias; gru_rb: b_n = b_ih + b_hh on nx, none on nh).
        weights, _ = _row_matrix(model, Row(row.name, row.block, row.part, row.act))
        return weights, {"both": bih + bhh, "none": np.zeros_like(bih)}[row.bias]
    if row.part == "x":
        return np.concatenate([wih, np.zeros((H, H))], axis=1), bih
    if row.part == "h":
        return np.concatenate([np.zeros((H, X)), whh], axis=1), bhh
    return np.concatenate([wih, whh], axis=1), bih + bhh


def quantized_parameters(model: Model) -> QuantizedParameters:
    """Quantise the float weights (format ``weight``) and biases (format ``model.bias``).

    Round to nearest, saturate; saturated parameters are counted under ``weight`` and ``bias``.
    """
    cache = model.__dict__.setdefault("_golden_cache", {})
    key = ("params", model.formats, model.rounding)
    if key not in cache:
        counter = SaturationCounter()
        parts = [_row_matrix(model, row) for row in model.cell_spec.rows]
        w = np.concatenate([p[0] for p in parts], axis=0)
        b = np.concatenate([p[1] for p in parts])
        wq = quantize(w, model.formats.weight, "RND", "SAT", counter=counter, tag="weight")
        bq = quantize(b, model.bias, "RND", "SAT", counter=counter, tag="bias")
        for a in (wq, bq):
            a.setflags(write=False)
        if model.cell == "lstm_peephole":
            # The diagonal peephole weights (their own ROMs) saturate into the same report.
            from .peephole import peephole_parameters
            counter.update(peephole_parameters(model).saturation)
        cache[key] = QuantizedParameters(wq, bq, counter)
    return cache[key]


def activation_units(model: Model) -> dict:
    """The gate unit (``sigmoid_in`` -> ``sigmoid_out``) and the candidate unit (``tanh_in`` ->
    ``tanh_out``) of the model: tables or piecewise-linear units, also the hardware's contents."""
    f = model.formats
    return {"gate": _act.make_activation(model.gate_activation, f.sigmoid_in, f.sigmoid_out),
            "cand": _act.make_activation(model.cand_activation, f.tanh_in, f.tanh_out)}


def row_activation(acc, act: str, model: Model, counter=None) -> np.ndarray:
    """What follows a row's accumulator; mirrors :class:`rnnaccel.hdl.layer.GateActivation`.

    ``act`` is the row's :attr:`~rnnaccel.golden.cells.Row.act`: ``"gate"`` (result in
    ``sigmoid_out``), ``"cand"`` (``tanh_out``), ``"relu"`` (``data``), ``"linear"`` (``cell``) or
    ``"raw"`` (the accumulator unchanged, ``model.accumulator``).
    """
    f = model.formats
    acc = np.asarray(acc, dtype=np.int64)
    if act == "gate":
        return _act.activate(acc, model.accumulator, activation_units(model)["gate"], model.rounding,
                             counter=counter, tag="sigmoid_in")
    if act == "cand":
        return _act.activate(acc, model.accumulator, activation_units(model)["cand"], model.rounding,
                             counter=counter, tag="tanh_in")
    if act == "relu":
        return requantize(np.maximum(acc, 0), model.accumulator, f.data, model.rounding, model.overflow,
                          counter=counter, tag="hidden")
    if act == "linear":
        return requantize(acc, model.accumulator, f.cell, model.rounding, "SAT", counter=counter, tag="gru_n")
    if act == "raw":
        # The exact accumulator itself (peephole LSTM gates: rounded later, with p*c added).
        return acc
    raise ValueError(f"unknown row activation {act!r}")


def lstm_elementwise(i, f, g, o, c_prev, model: Model, counter=None):
    """The LSTM element-wise stage: new cell state and hidden state from activated gates.

    Parameters
    ----------
    i, o : array_like of int
        Gate codes in ``sigmoid_out``.
    f : array_like of int or None
        Forget gate codes in ``sigmoid_out``; None for the LSTM without forget gate
        (``c_t = c_{t-1} + i*g``).
    g : array_like of int
        Candidate codes in ``tanh_out``.
    c_prev : array_like of int
        Cell state codes in ``cell``.

    Returns
    -------
    c, h : numpy.ndarray of int64
        ``c_t`` in ``cell`` and ``h_t`` in ``data``. Mirrors :class:`rnnaccel.hdl.layer.LSTMElementwise`.
        Without a forget gate the cell state only saturates (SAT) or wraps (WRAP) at the ``cell``
        format's range; each event is counted under ``cell``.
    """
    fm = model.formats
    i, g, o, c_prev = (np.asarray(a, dtype=np.int64) for a in (i, g, o, c_prev))
    fc_frac = fm.sigmoid_out.frac + fm.cell.frac
    ig_frac = fm.sigmoid_out.frac + fm.tanh_out.frac
    frac = max(fc_frac, ig_frac)
    fc = c_prev << fm.sigmoid_out.frac if f is None else np.asarray(f, dtype=np.int64) * c_prev
    s = (fc << (frac - fc_frac)) + ((i * g) << (frac - ig_frac))
    c = requantize(s, QFormat(63, frac), fm.cell, model.rounding, model.overflow, counter=counter, tag="cell")
    t = _act.activate(c, fm.cell, activation_units(model)["cand"], model.rounding, counter=counter,
                      tag="tanh_in(cell)")
    h = requantize(o * t, QFormat(63, ig_frac), fm.data, model.rounding, model.overflow,
                   counter=counter, tag="hidden")
    return c, h


def gru_elementwise(r, z, nx, nh, h_prev, model: Model, counter=None) -> np.ndarray:
    """The GRU element-wise stage (reset after the recurrent product, as ``torch.nn.GRU``).

    Parameters
    ----------
    r, z : array_like of int
        Reset and update gate codes in ``sigmoid_out``.
    nx, nh : array_like of int
        ``W_in x + b_in`` and ``W_hn h + b_hn`` in ``cell`` (saturated from the accumulator).
    h_prev : array_like of int
        ``h_{t-1}`` in ``data``.

    Returns
    -------
    numpy.ndarray of int64
        ``h_t`` in ``data``: ``n = phi(requantize(nx + r*nh, tanh_in, SAT))``,
        ``h_t = requantize((1 - z)*n + z*h_{t-1}, data)``. Mirrors :class:`rnnaccel.hdl.layer.GRUElementwise`.
    """
    fm = model.formats
    r, z, nx, nh, h_prev = (np.asarray(a, dtype=np.int64) for a in (r, z, nx, nh, h_prev))
    sf = fm.sigmoid_out.frac
    pre = (nx << sf) + r * nh
    n = _act.activate(pre, QFormat(63, sf + fm.cell.frac), activation_units(model)["cand"], model.rounding,
                      counter=counter, tag="tanh_in(n)")
    a_frac, b_frac = sf + fm.tanh_out.frac, sf + fm.data.frac
    frac = max(a_frac, b_frac)
    s = (((1 << sf) - z) * n << (frac - a_frac)) + ((z * h_prev) << (frac - b_frac))
    return requantize(s, QFormat(63, frac), fm.data, model.rounding, model.overflow, counter=counter, tag="hidden")


def rnn_elementwise(value, model: Model, counter=None) -> np.ndarray:
    """The Elman RNN's last step: ``tanh_out`` codes to ``data`` (``rnn_tanh``); the relu row is
    already in ``data`` (``rnn_relu``, returned unchanged). Mirrors :class:`rnnaccel.hdl.layer.RNNElementwise`."""
    value = np.asarray(value, dtype=np.int64)
    if model.cell == "rnn_relu":
        return value
    fm = model.formats
    return requantize(value, fm.tanh_out, fm.data, model.rounding, model.overflow, counter=counter, tag="hidden")


def layer_step(x, h_prev, c_prev, model: Model, counter=None):
    """One timestep of a one-layer model on codes.

    Parameters
    ----------
    x : array_like of int, shape (X,)
        In ``data``.
    h_prev : array_like of int, shape (H,)
        In ``data``.
    c_prev : array_like of int, shape (H,), or None
        The LSTM cell state in ``cell`` (ignored by other cells).

    Returns
    -------
    h, c : numpy.ndarray of int64
        ``c`` is None for cells without a cell state.
    """
    if model.proj_size:
        # LSTM with projection, Jordan RNN: h_prev and h have proj_size entries.
        from .projected import projected_step
        return projected_step(x, h_prev, c_prev, model, counter)
    if model.cell == "gru_rb":
        # Reset before the recurrent product: two matrix-vector phases (rnnaccel.golden.gru_rb).
        from .gru_rb import gru_rb_step
        return gru_rb_step(x, h_prev, model, counter), None
    p = quantized_parameters(model)
    H = model.hidden_size
    h_prev = np.asarray(h_prev, dtype=np.int64)
    v = np.concatenate([np.asarray(x, dtype=np.int64), h_prev])
    acc = matrix_vector(p.weights, v, p.bias)
    val = {row.name: row_activation(acc[b * H:(b + 1) * H], row.act, model, counter)
           for b, row in enumerate(model.cell_spec.rows)}
    if model.cell in ("lstm", "lstm_nf"):
        c, h = lstm_elementwise(val["i"], val.get("f"), val["g"], val["o"], c_prev, model, counter)
        return h, c
    if model.cell == "lstm_peephole":
        # i, f, o are raw accumulators; the stage adds p*c before the gate units (golden/peephole.py).
        from .peephole import peephole_elementwise
        c, h = peephole_elementwise(val["i"], val["f"], val["g"], val["o"], c_prev, model, counter)
        return h, c
    if model.cell == "gru":
        return gru_elementwise(val["r"], val["z"], val["nx"], val["nh"], h_prev, model, counter), None
    return rnn_elementwise(val["h"], model, counter), None


def run_layer(model: Model, x_codes, h0=None, c0=None, counter=None):
    """A one-layer model over one sequence of codes (T, X) from ``h0`` / ``c0`` (zeros by default).

    Returns
    -------
    hs : numpy.ndarray of int64, shape (T, state_size)
        ``h_t`` (``proj_size`` long for projected cells, as ``h0``).
    cs : numpy.ndarray of int64, shape (T, H), or None
        Cell states (LSTMs only).
    """
    H = model.hidden_size
    h = np.zeros(model.state_size, dtype=np.int64) if h0 is None else np.asarray(h0, dtype=np.int64)
    lstm = model.cell_spec.has_cell_state
    c = (np.zeros(H, dtype=np.int64) if c0 is None else np.asarray(c0, dtype=np.int64)) if lstm else None
    hs, cs = [], []
    for x in np.asarray(x_codes, dtype=np.int64):
        h, c = layer_step(x, h, c, model, counter)
        hs.append(h)
        cs.append(c)
    hs = np.array(hs, dtype=np.int64).reshape(-1, model.state_size)
    return hs, (np.array(cs, dtype=np.int64).reshape(-1, H) if lstm else None)
