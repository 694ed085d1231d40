"""Matrix-vector unit: exact integer products and sums (mirrors :class:`rnnaccel.hdl.mvu.MatrixVectorUnit`)."""

from __future__ import annotations

import numpy as np

__all__ = ["matrix_vector"]


def matrix_vector(weights, vector, bias) -> np.ndarray:
    """Exact ``weights @ vector + bias`` on integer codes.

    Parameters
    ----------
    weights : array_like of int, shape (rows, N)
        Weight codes (format ``weight``).
    vector : array_like of int, shape (N,) or (N, B)
        Input codes (format ``data``).
    bias : array_like of int, shape (rows,)
        Bias codes at accumulator precision (``frac = data.frac + weight.frac``).

    Returns
    -------
    numpy.ndarray of int64, shape (rows,) or (rows, B)
        Accumulator codes. Nothing is rounded or saturated: the hardware accumulator is as wide
        as :attr:`rnnaccel.golden.model.Model.accumulator`, so it cannot overflow.
    """
    w = np.asarray(weights, dtype=np.int64)
    v = np.asarray(vector, dtype=np.int64)
    b = np.asarray(bias, dtype=np.int64)
    acc = w @ v
    return acc + (b if acc.ndim == 1 else b[:, None])
