"""Float reference of the recurrent layer, equal to PyTorch (float64 NumPy)."""

from __future__ import annotations

import numpy as np

from .model import Model

__all__ = ["lstm_float", "sigmoid"]


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def lstm_float(model: Model, x, h0=None, c0=None):
    """``torch.nn.LSTM`` (one layer, gates i, f, g, o) in float64.

    Parameters
    ----------
    model : Model
        Its float weights are used; formats are ignored.
    x : array_like, shape (T, X)
    h0, c0 : array_like, shape (H,), optional
        Initial states (zeros by default).

    Returns
    -------
    y : numpy.ndarray, shape (T, H)
        ``h_t`` at every step (PyTorch's ``output``).
    (h_T, c_T) : tuple of numpy.ndarray
        Final states.
    """
    w = model.weights
    x = np.asarray(x, dtype=np.float64)
    H = model.hidden_size
    h = np.zeros(H) if h0 is None else np.asarray(h0, dtype=np.float64)
    c = np.zeros(H) if c0 is None else np.asarray(c0, dtype=np.float64)
    b = w["bias_ih_l0"] + w["bias_hh_l0"]
    ys = []
    for xt in x:
        z = w["weight_ih_l0"] @ xt + w["weight_hh_l0"] @ h + b
        i, f, g, o = sigmoid(z[:H]), sigmoid(z[H:2 * H]), np.tanh(z[2 * H:3 * H]), sigmoid(z[3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        ys.append(h)
    return np.array(ys).reshape(-1, H), (h, c)
