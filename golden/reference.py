"""Float reference of the network, equal to PyTorch (float64 NumPy).

``lstm``, ``gru``, ``rnn_tanh`` and ``rnn_relu`` equal ``torch.nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``
(any ``num_layers``, ``bidirectional``) followed by an optional ``nn.Linear`` head; ``lstm_nf``
(no forget gate) is written from its equation ``c_t = c_{t-1} + i*g`` (:mod:`rnnaccel.golden.cells`).
An ``lstm`` with ``proj_size`` equals ``torch.nn.LSTM(proj_size=...)``; ``jordan`` is written from its
equations (:func:`projected_layer_float`).
``gru_rb`` (reset before the recurrent product) is Keras' ``GRU(reset_after=False)``, written from its
equations with ``b = b_ih + b_hh`` (:mod:`rnnaccel.golden.gru_rb`).
The gate and candidate activations are the model's (sigmoid and tanh by default).
"""

from __future__ import annotations

import numpy as np

from . import activation as _act
from .model import Model

__all__ = ["lstm_float", "layer_float", "network_float", "sigmoid", "float_function", "projected_layer_float"]


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def float_function(name: str):
    """The float activation function called ``name`` (``sigmoid``, ``tanh``, ``hard_sigmoid``, ...)."""
    return _act.FLOAT_FUNCTIONS[name]


def layer_float(model: Model, x, h0=None, c0=None):
    """One layer (a one-layer model, :meth:`~rnnaccel.golden.model.Model.layer`) in float64.

    Returns
    -------
    y : numpy.ndarray, shape (T, H)
        ``h_t`` at every step.
    (h_T, c_T) : tuple
        Final states (``c_T`` None for cells without a cell state).
    """
    if model.proj_size:
        return projected_layer_float(model, x, h0, c0)
    w = model.weights
    x = np.asarray(x, dtype=np.float64)
    H = model.hidden_size
    sig, phi = float_function(model.gate_activation), float_function(model.cand_activation)
    h = np.zeros(H) if h0 is None else np.asarray(h0, dtype=np.float64)
    c = np.zeros(H) if c0 is None else np.asarray(c0, dtype=np.float64)
    wih, whh, bih, bhh = w["weight_ih_l0"], w["weight_hh_l0"], w["bias_ih_l0"], w["bias_hh_l0"]
    ys = []
    for xt in x:
        if model.cell == "gru":
            a, b = wih @ xt + bih, whh @ h + bhh
            r, z = sig(a[:H] + b[:H]), sig(a[H:2 * H] + b[H:2 * H])
            n = phi(a[2 * H:] + r * b[2 * H:])
            h = (1 - z) * n + z * h
        elif model.cell == "gru_rb":
            # Reset before the recurrent product (Cho et al. 2014; Keras GRU(reset_after=False)),
            # one bias per gate: b = b_ih + b_hh.
            a = wih @ xt + bih + bhh
            r = sig(a[:H] + whh[:H] @ h)
            z = sig(a[H:2 * H] + whh[H:2 * H] @ h)
            n = phi(a[2 * H:] + whh[2 * H:] @ (r * h))
            h = (1 - z) * n + z * h
        else:
            zz = wih @ xt + whh @ h + bih + bhh
            if model.cell == "lstm":
                i, f, g, o = sig(zz[:H]), sig(zz[H:2 * H]), phi(zz[2 * H:3 * H]), sig(zz[3 * H:])
                c = f * c + i * g
                h = o * phi(c)
            elif model.cell == "lstm_nf":
                i, g, o = sig(zz[:H]), phi(zz[H:2 * H]), sig(zz[2 * H:])
                c = c + i * g
                h = o * phi(c)
            elif model.cell == "lstm_peephole":
                # Gers & Schmidhuber 2000: diagonal peepholes; i, f see c_{t-1}, o sees c_t.
                p_i, p_f, p_o = w["weight_ci_l0"], w["weight_cf_l0"], w["weight_co_l0"]
                i, f = sig(zz[:H] + p_i * c), sig(zz[H:2 * H] + p_f * c)
                c = f * c + i * phi(zz[2 * H:3 * H])
                o = sig(zz[3 * H:] + p_o * c)
                h = o * phi(c)
            elif model.cell == "rnn_tanh":
                h = phi(zz)
            elif model.cell == "rnn_relu":
                h = np.maximum(zz, 0.0)
            else:  # pragma: no cover - Model validates the cell
                raise ValueError(f"no float reference for cell {model.cell!r}")
        ys.append(h)
    return np.array(ys).reshape(-1, H), (h, c if model.cell_spec.has_cell_state else None)


def projected_layer_float(model: Model, x, h0=None, c0=None):
    """A projected one-layer model in float64 (``proj_size = P``; :mod:`rnnaccel.golden.projected`).

    ``lstm`` equals ``torch.nn.LSTM(proj_size=P)``: ``c_t = f*c_{t-1} + i*g``, ``h_t = W_hr (o*phi(c_t))``.
    ``jordan``: ``h_t = phi(W_ih x_t + W_hh y_{t-1} + b_ih + b_hh)``, ``y_t = phi(W_hy h_t + b_hy)``.

    Returns
    -------
    y : numpy.ndarray, shape (T, P)
        ``h_t`` (LSTM) / ``y_t`` (Jordan) at every step, the fed-back vector.
    (h_T, c_T) : tuple
        Final fed-back vector (P,) and cell state (H,) (None for Jordan).
    """
    w = model.weights
    x = np.asarray(x, dtype=np.float64)
    H, P = model.hidden_size, model.proj_size
    sig, phi = float_function(model.gate_activation), float_function(model.cand_activation)
    h = np.zeros(P) if h0 is None else np.asarray(h0, dtype=np.float64)
    c = np.zeros(H) if c0 is None else np.asarray(c0, dtype=np.float64)
    wih, whh, b = w["weight_ih_l0"], w["weight_hh_l0"], w["bias_ih_l0"] + w["bias_hh_l0"]
    ys = []
    for xt in x:
        zz = wih @ xt + whh @ h + b
        if model.cell == "lstm":
            i, f, g, o = sig(zz[:H]), sig(zz[H:2 * H]), phi(zz[2 * H:3 * H]), sig(zz[3 * H:])
            c = f * c + i * g
            h = w["weight_hr_l0"] @ (o * phi(c))
        elif model.cell == "jordan":
            h = phi(w["weight_hy_l0"] @ phi(zz) + w["bias_hy_l0"])
        else:  # pragma: no cover - Model validates proj_size
            raise ValueError(f"no projected float reference for cell {model.cell!r}")
        ys.append(h)
    return np.array(ys).reshape(-1, P), (h, c if model.cell == "lstm" else None)


def network_float(model: Model, x, h0=None, c0=None):
    """The whole model in float64: PyTorch's ``output`` (or the head's), and ``(h_n, c_n)``.

    Parameters
    ----------
    x : array_like, shape (T, X)
    h0, c0 : array_like, shape (num_layers * directions, H), optional

    Returns
    -------
    y : numpy.ndarray, shape (T, output_size), or (1, output_size) for ``outputs = "last"``
    (h_n, c_n) : numpy.ndarray of shape (num_layers * directions, H) (``c_n`` None without cell state)
    """
    seq = np.asarray(x, dtype=np.float64)
    n = model.num_layers * model.directions
    h0 = np.zeros((n, model.state_size)) if h0 is None else np.asarray(h0, dtype=np.float64).reshape(n, -1)
    c0 = np.zeros((n, model.hidden_size)) if c0 is None else np.asarray(c0, dtype=np.float64).reshape(n, -1)
    hn, cn = [], []
    for k, directions in enumerate(model.layers()):
        outs = []
        for d, layer in enumerate(directions):
            i = k * model.directions + d
            y, (h, c) = layer_float(layer, seq if d == 0 else seq[::-1], h0[i], c0[i])
            outs.append(y if d == 0 else y[::-1])
            hn.append(h)
            cn.append(c)
        seq = np.concatenate(outs, axis=1)
    if model.head_size:
        seq = seq @ model.weights["head.weight"].T + model.weights["head.bias"]
    if model.outputs == "last":
        seq = seq[-1:]
    return seq, (np.array(hn), np.array(cn) if model.cell_spec.has_cell_state else None)


def lstm_float(model: Model, x, h0=None, c0=None):
    """``torch.nn.LSTM`` (one layer, gates i, f, g, o) in float64: ``(y, (h_T, c_T))``."""
    return layer_float(model.layer(0), x, h0, c0)
