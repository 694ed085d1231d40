"""The GRU with the reset gate *before* the recurrent product, cell ``"gru_rb"``: bit-exact integer model.

Equations (Cho et al. 2014; Keras ``GRU(reset_after=False)``; ``*`` element-wise, ``sigma`` the
gate activation, ``phi`` the candidate activation)::

    r   = sigma(W_r x_t + U_r h_{t-1} + b_r)
    z   = sigma(W_z x_t + U_z h_{t-1} + b_z)
    n   = phi(W_n x_t + U_n (r * h_{t-1}) + b_n)
    h_t = (1 - z) * n + z * h_{t-1}

Weights under PyTorch's GRU names and shapes: blocks ``r, z, n`` of ``weight_ih`` (``W``),
``weight_hh`` (``U``), ``bias_ih`` and ``bias_hh``; every bias is ``b = bias_ih + bias_hh``, summed
in float and quantised once (Keras has one bias when ``reset_after=False``). Unlike
``torch.nn.GRU`` (cell ``"gru"``), ``U_n`` multiplies ``r * h_{t-1}``, so it can only start when
``r`` is known for *every* hidden unit: a step has two matrix-vector phases.

Fixed point (``acc``: exact accumulators in ``model.accumulator``, ``a = data.frac + weight.frac``
fractional bits), one golden function per hardware block of
:class:`rnnaccel.hdl.gru_rb.GRUResetBeforeLayer`::

    phase 1   acc_r, acc_z = W_{r,z} [x_t; h_{t-1}] + b_{r,z}          matrix_vector (rows r, z: "xh")
              nx           = W_n x_t + b_n                          matrix_vector (row nx: "x"), kept exact
              r, z         = sigma_unit(requantize(acc, sigmoid_in, SAT))    row_activation("gate")
              rh           = requantize(r * h_{t-1}, data)          reset_product
    phase 2   nh           = U_n rh                                 matrix_vector (row nh: "h" slots = rh)
              n            = phi_unit(requantize(nx + nh, tanh_in, SAT))   \\
              h_t          = requantize((1 - z)*n + z*h_{t-1}, data)        / gru_rb_elementwise

* ``rh`` is requantised to ``data`` (``model.rounding``, ``model.overflow``; counted under
  ``reset_h``) because it is the matrix-vector unit's input: phase 2 runs on the same unit, with
  ``rh`` in the vector's ``h`` slots. ``|r * h| <= |h|`` for ``r`` in [0, 1], so this step only
  rounds; it never overflows.
* ``nx`` is *not* requantised: it stays exact in the accumulator format until the element-wise
  stage adds ``nh``, so ``W_n x + U_n rh + b_n`` is one exact sum rounded once, into the
  candidate unit's index (``tanh_in``, always SAT; counted under ``tanh_in(n)``). The sum fits
  the accumulator: it has ``X + H`` products plus the bias, the accumulator's own bound.
* The last step is as in ``gru``: exact products ``(1 - z)*n`` and ``z*h_{t-1}``, one rounding
  (``model.rounding``, ``model.overflow``; counted under ``hidden``).
"""

from __future__ import annotations

import numpy as np

from . import activation as _act
from .fixed import QFormat, requantize
from .layer import activation_units, quantized_parameters, row_activation
from .model import Model
from .mvu import matrix_vector

__all__ = ["PHASE1_ROWS", "PHASE2_ROWS", "row_blocks", "reset_product", "gru_rb_elementwise", "gru_rb_step"]

#: Matrix-vector rows of the first phase (over ``[x_t; h_{t-1}]``) and the second (over ``[x_t; rh]``).
PHASE1_ROWS = ("r", "z", "nx")
PHASE2_ROWS = ("nh",)


def row_blocks(model: Model) -> dict[str, slice]:
    """Row name -> rows of :func:`~rnnaccel.golden.layer.quantized_parameters` (one block of ``H``)."""
    H = model.hidden_size
    return {row.name: slice(b * H, (b + 1) * H) for b, row in enumerate(model.cell_spec.rows)}


def reset_product(r, h_prev, model: Model, counter=None) -> np.ndarray:
    """``rh = requantize(r * h_{t-1}, data)``: the reset gate applied to the previous state.

    Mirrors :class:`rnnaccel.hdl.gru_rb.ResetProduct`.

    Parameters
    ----------
    r : array_like of int
        Reset gate codes in ``sigmoid_out``.
    h_prev : array_like of int
        ``h_{t-1}`` codes in ``data``.

    Returns
    -------
    numpy.ndarray of int64
        ``rh`` in ``data`` (the matrix-vector unit's input format), rounded with ``model.rounding``;
        overflow (impossible for ``r`` in [0, 1]) follows ``model.overflow``, counted under ``reset_h``.
    """
    fm = model.formats
    r, h_prev = (np.asarray(a, dtype=np.int64) for a in (r, h_prev))
    return requantize(r * h_prev, QFormat(63, fm.sigmoid_out.frac + fm.data.frac), fm.data, model.rounding,
                      model.overflow, counter=counter, tag="reset_h")


def gru_rb_elementwise(z, nx, nh, h_prev, model: Model, counter=None) -> np.ndarray:
    """The element-wise stage of ``gru_rb``: candidate and new hidden state.

    Mirrors :class:`rnnaccel.hdl.gru_rb.GRUResetBeforeElementwise`.

    Parameters
    ----------
    z : array_like of int
        Update gate codes in ``sigmoid_out``.
    nx, nh : array_like of int
        ``W_n x + b_n`` and ``U_n rh``: exact accumulator codes (``model.accumulator``).
    h_prev : array_like of int
        ``h_{t-1}`` in ``data``.

    Returns
    -------
    numpy.ndarray of int64
        ``h_t`` in ``data``: ``n = phi(requantize(nx + nh, tanh_in, SAT))``,
        ``h_t = requantize((1 - z)*n + z*h_{t-1}, data)``.
    """
    fm = model.formats
    z, nx, nh, h_prev = (np.asarray(a, dtype=np.int64) for a in (z, nx, nh, h_prev))
    n = _act.activate(nx + nh, QFormat(63, model.accumulator.frac), activation_units(model)["cand"],
                      model.rounding, counter=counter, tag="tanh_in(n)")
    sf = fm.sigmoid_out.frac
    a_frac, b_frac = sf + fm.tanh_out.frac, sf + fm.data.frac
    frac = max(a_frac, b_frac)
    s = ((((1 << sf) - z) * n) << (frac - a_frac)) + ((z * h_prev) << (frac - b_frac))
    return requantize(s, QFormat(63, frac), fm.data, model.rounding, model.overflow, counter=counter, tag="hidden")


def gru_rb_step(x, h_prev, model: Model, counter=None) -> np.ndarray:
    """One timestep of a one-layer ``gru_rb`` model on codes: ``h_t`` (``data``) from ``x_t``, ``h_{t-1}``.

    Phase 1 computes rows ``r``, ``z``, ``nx`` of every unit and ``rh``; phase 2 the rows ``nh``
    over the vector ``[x_t; rh]`` and the element-wise stage (see the module documentation).
    """
    if model.cell != "gru_rb":
        raise ValueError(f"gru_rb_step needs a 'gru_rb' model, got cell {model.cell!r}")
    p = quantized_parameters(model)
    blk = row_blocks(model)
    x = np.asarray(x, dtype=np.int64)
    h_prev = np.asarray(h_prev, dtype=np.int64)
    acc = {name: matrix_vector(p.weights[blk[name]], np.concatenate([x, h_prev]), p.bias[blk[name]])
           for name in PHASE1_ROWS}
    r = row_activation(acc["r"], "gate", model, counter)
    z = row_activation(acc["z"], "gate", model, counter)
    rh = reset_product(r, h_prev, model, counter)
    nh = matrix_vector(p.weights[blk["nh"]], np.concatenate([x, rh]), p.bias[blk["nh"]])
    return gru_rb_elementwise(z, acc["nx"], nh, h_prev, model, counter)
