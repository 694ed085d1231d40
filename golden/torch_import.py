"""Import from PyTorch: ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` modules or their ``state_dict``, with an
optional ``nn.Linear`` head.

torch is imported only when a module is passed; a ``state_dict`` may hold NumPy arrays (e.g. read
from an ``.npz``) and needs no torch at all.
"""

from __future__ import annotations

import re

import numpy as np

from . import cells as _cells
from .model import ConfigError, Formats, Model

__all__ = ["from_torch"]

#: ``RNNBase.mode`` of the PyTorch modules -> cell kind.
_MODES = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu"}
_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
_KEY_RE = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")
_HEAD_KEYS = ("head.weight", "head.bias")
_NONLINEARITIES = ("tanh", "relu")
_SUPPORTED = "torch.nn.LSTM, nn.GRU or nn.RNN"


def _to_numpy(t) -> np.ndarray:
    if hasattr(t, "detach"):
        return t.detach().to("cpu").double().numpy()
    return np.asarray(t, dtype=np.float64)


def _is_module(obj) -> bool:
    return hasattr(obj, "state_dict") and callable(obj.state_dict) and hasattr(obj, "parameters")


def _suffixes(num_layers: int, bidirectional: bool) -> list[str]:
    return [s for k in range(num_layers) for s in [f"_l{k}"] + ([f"_l{k}_reverse"] if bidirectional else [])]


def _check_nonlinearity(nonlinearity):
    if nonlinearity is not None and nonlinearity not in _NONLINEARITIES:
        raise ConfigError(f"from_torch: nonlinearity = {nonlinearity!r}; nn.RNN has 'tanh' or 'relu'")


# -- modules ------------------------------------------------------------------------------------------
def _split_sequential(seq):
    """``nn.Sequential(rnn)`` or ``nn.Sequential(rnn, nn.Linear)`` -> (rnn, linear or None)."""
    import torch

    parts = list(seq)
    kinds = ", ".join(type(p).__name__ for p in parts)
    ok = (len(parts) in (1, 2) and isinstance(parts[0], torch.nn.RNNBase)
          and (len(parts) == 1 or isinstance(parts[1], torch.nn.Linear)))
    if not ok:
        raise ConfigError(
            f"from_torch: cannot map an nn.Sequential of ({kinds}); supported: (LSTM|GRU|RNN) or "
            f"(LSTM|GRU|RNN, Linear). Otherwise pass the recurrent module and give the Linear as head=")
    return parts[0], (parts[1] if len(parts) == 2 else None)


def _from_module(module, cell, nonlinearity):
    """(cell, input_size, hidden_size, num_layers, bidirectional, weights) of an RNN module."""
    import torch

    kind = type(module).__name__
    if isinstance(module, torch.nn.RNNCellBase):
        raise ConfigError(
            f"from_torch: cannot map a {kind} module (a single cell); use the sequence module "
            f"(nn.{kind.removesuffix('Cell')}) with num_layers=1, or pass a state_dict with the cell's "
            f"weight_ih / weight_hh / bias_ih / bias_hh renamed to weight_ih_l0 / ... / bias_hh_l0")
    if not isinstance(module, torch.nn.RNNBase) or module.mode not in _MODES:
        hint = "; pass it as head= beside the recurrent module" if isinstance(module, torch.nn.Linear) else ""
        raise ConfigError(f"from_torch: cannot map a {kind} module; supported: {_SUPPORTED}{hint}")
    found = _MODES[module.mode]
    if cell is not None and cell != found:
        raise ConfigError(
            f"from_torch: cell = {cell!r} does not match the {kind} module (cell {found!r}); cell= only "
            f"re-interprets a state_dict (e.g. cell='lstm_nf' for 3-block LSTM weights without forget gate)")
    if nonlinearity is not None and nonlinearity != getattr(module, "nonlinearity", None):
        what = (f"an nn.RNN with nonlinearity={module.nonlinearity!r}" if kind == "RNN"
                else f"a {kind} module, which has no nonlinearity option")
        raise ConfigError(f"from_torch: nonlinearity = {nonlinearity!r} does not match {what}; leave it out")
    X, H, L, bidir = module.input_size, module.hidden_size, module.num_layers, bool(module.bidirectional)
    rows = _cells.CELLS[found].gate_blocks * H
    weights = {}
    for sfx in _suffixes(L, bidir):
        for p in _PARAMS:
            # getattr rather than state_dict(): also right for parametrised weights (weight_norm, ...)
            t = getattr(module, p + sfx, None) if (module.bias or p.startswith("weight")) else None
            weights[p + sfx] = np.zeros(rows) if t is None else _to_numpy(t)
        P = getattr(module, "proj_size", 0)
        if P:
            weights["weight_hr" + sfx] = _to_numpy(getattr(module, "weight_hr" + sfx))
    return found, X, H, L, bidir, weights, getattr(module, "proj_size", 0)


# -- state_dicts --------------------------------------------------------------------------------------
def _from_state_dict(sd, cell, nonlinearity):
    keys = list(sd.keys())
    if "weight_ih_l0" not in sd or "weight_hh_l0" not in sd:
        raise ConfigError(f"from_torch: state_dict has no weight_ih_l0 / weight_hh_l0 (keys: {sorted(keys)}); "
                          f"pass the state_dict of a {_SUPPORTED}")
    unknown = sorted(k for k in keys if not (isinstance(k, str) and (_KEY_RE.match(k) or k in _HEAD_KEYS)))
    if unknown:
        raise ConfigError(
            f"from_torch: state_dict has unexpected entries {unknown}; expected PyTorch RNN names "
            f"(weight_ih_l<k>, weight_hh_l<k>, bias_ih_l<k>, bias_hh_l<k>, each optionally with _reverse) and "
            f"head.weight / head.bias. Pass the recurrent module's own state_dict (e.g. net.rnn.state_dict()) "
            f"and its Linear as head=")
    w_ih, w_hh = _to_numpy(sd["weight_ih_l0"]), _to_numpy(sd["weight_hh_l0"])
    if w_hh.ndim != 2 or w_ih.ndim != 2 or w_hh.shape[1] == 0:
        raise ConfigError(f"from_torch: weight_ih_l0 / weight_hh_l0 have shapes {w_ih.shape} / {w_hh.shape}; "
                          f"expected 2-D (gate_blocks * hidden_size, input_size) / (..., hidden_size)")
    H, P = w_hh.shape[1], 0
    if "weight_hr_l0" in sd:        # an LSTM with proj_size: weight_hr (P, H), weight_hh (4H, P)
        w_hr = _to_numpy(sd["weight_hr_l0"])
        if w_hr.ndim != 2 or w_hr.shape[0] != w_hh.shape[1]:
            raise ConfigError(f"from_torch: weight_hr_l0 has shape {w_hr.shape}; with weight_hh_l0 {w_hh.shape} "
                              f"it must be (proj_size, hidden_size) = ({w_hh.shape[1]}, hidden_size)")
        P, H = w_hr.shape
    blocks = w_hh.shape[0] // H if w_hh.shape[0] % H == 0 else None
    if blocks not in (1, 3, 4):
        raise ConfigError(
            f"from_torch: weight_hh_l0 has shape {w_hh.shape}: expected gate_blocks x hidden_size rows with 4 "
            f"(LSTM: {4 * H}), 3 (GRU, or cell='lstm_nf': {3 * H}) or 1 (RNN: {H}) blocks for hidden_size {H}")
    _check_nonlinearity(nonlinearity)
    if cell is None:
        if blocks != 1 and nonlinearity is not None:
            raise ConfigError(f"from_torch: nonlinearity = {nonlinearity!r} applies to nn.RNN weights (1 gate "
                              f"block), but weight_hh_l0 has {blocks} blocks; leave it out")
        cell = {4: "lstm", 3: "gru", 1: f"rnn_{nonlinearity or 'tanh'}"}[blocks]
    else:
        if cell not in _cells.CELLS:
            raise ConfigError(f"from_torch: unknown cell {cell!r}; supported: {', '.join(_cells.CELLS)}")
        need = _cells.CELLS[cell].gate_blocks
        if need != blocks:
            raise ConfigError(
                f"from_torch: cell = {cell!r} has {need} gate block(s) ({need * H} rows for hidden_size {H}), "
                f"but weight_hh_l0 has {w_hh.shape[0]} rows ({blocks} block(s)); choose a cell with {blocks}")
        if nonlinearity is not None and cell != f"rnn_{nonlinearity}":
            raise ConfigError(f"from_torch: nonlinearity = {nonlinearity!r} contradicts cell = {cell!r}; "
                              f"give only one of them")
    layers, bidir = set(), False
    for k in keys:
        m = _KEY_RE.match(k)
        if m:
            layers.add(int(m.group(2)))
            bidir |= m.group(3) is not None
    L = max(layers) + 1
    rows = _cells.CELLS[cell].gate_blocks * H
    weights = {k: _to_numpy(v) for k, v in sd.items()}
    if not any(k.startswith("bias_") for k in keys):      # an nn.* created with bias=False
        for sfx in _suffixes(L, bidir):
            weights |= {f"bias_ih{sfx}": np.zeros(rows), f"bias_hh{sfx}": np.zeros(rows)}
    return cell, w_ih.shape[1], H, L, bidir, weights, P


# -- head ---------------------------------------------------------------------------------------------
def _head_weights(head, n_in: int, H: int, directions: int) -> dict[str, np.ndarray]:
    kind = type(head).__name__
    if _is_module(head):
        import torch

        if not isinstance(head, torch.nn.Linear):
            raise ConfigError(f"from_torch: head must be an nn.Linear (or its state_dict), got a {kind} module")
        w, b = _to_numpy(head.weight), head.bias
    elif hasattr(head, "keys"):
        extra = sorted(set(head.keys()) - {"weight", "bias"})
        if "weight" not in head or extra:
            raise ConfigError(f"from_torch: a head state_dict needs 'weight' and optionally 'bias' (an nn.Linear's "
                              f"state_dict), got keys {sorted(head.keys())}")
        w, b = _to_numpy(head["weight"]), head.get("bias")
    else:
        raise ConfigError(f"from_torch: head must be an nn.Linear (or its state_dict), got {kind}")
    if w.ndim != 2:
        raise ConfigError(f"from_torch: head weight has shape {w.shape}; expected (out_features, in_features)")
    if w.shape[1] != n_in:
        raise ConfigError(
            f"from_torch: head in_features = {w.shape[1]} does not match the recurrent output, hidden_size x "
            f"directions = {H} x {directions} = {n_in}; use nn.Linear({n_in}, {w.shape[0]})")
    return {"head.weight": w, "head.bias": np.zeros(w.shape[0]) if b is None else _to_numpy(b)}


def from_torch(module, *, formats: Formats | dict | None = None, pe: int = 1, simd: int = 1,
               rounding: str = "RND", overflow: str = "SAT", name: str | None = None,
               outputs: str = "sequence", head=None, cell: str | None = None,
               nonlinearity: str | None = None) -> Model:
    """Build a :class:`~rnnaccel.golden.model.Model` from a PyTorch recurrent module or its ``state_dict``.

    Parameters
    ----------
    module : torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN, torch.nn.Sequential or mapping
        The recurrent module, with any ``num_layers`` and ``bidirectional``. ``batch_first`` does not
        change the weights (the accelerator streams one timestep after the other either way).
        ``dropout`` between layers acts only in training, so it is ignored: the model is the module in
        ``eval()`` mode. ``bias=False`` gives zero biases. ``nn.RNN`` maps to cell ``"rnn_tanh"`` or
        ``"rnn_relu"`` after its ``nonlinearity``. An ``nn.LSTM`` with ``proj_size > 0`` keeps it
        (``weight_hr_l{k}``; the head then reads ``proj_size * directions`` values).

        An ``nn.Sequential(rnn)`` or ``nn.Sequential(rnn, nn.Linear)`` is taken as a container of the
        recurrent module and its head (PyTorch itself cannot run it, since the recurrent module returns
        a tuple).

        A ``state_dict`` (mapping of names to tensors or arrays) is read by name: the cell from the gate
        blocks of ``weight_hh_l0`` (4 x hidden_size rows: ``"lstm"``, 3: ``"gru"``, 1: ``"rnn_tanh"``, or
        ``"rnn_relu"`` with ``nonlinearity="relu"``), ``num_layers`` from the ``_l<k>`` names,
        ``bidirectional`` from ``_reverse`` names; no ``bias_*`` entries mean zero biases. Entries
        ``head.weight`` / ``head.bias`` give a dense head, so ``from_torch(model.weights)`` rebuilds
        a model's weights.
    formats : Formats or dict of str, optional
        Fixed-point formats (a dict like ``{"weight": "s8.6"}`` overrides single defaults).
    pe, simd, rounding, overflow, outputs
        As in :class:`~rnnaccel.golden.model.Model`.
    name : str, optional
        Model name; default the cell name (``"lstm"``, ``"gru"``, ...).
    head : torch.nn.Linear or mapping, optional
        A dense head after the recurrent stack (or an ``nn.Linear``'s ``state_dict``): ``in_features``
        must be ``hidden_size * directions``; stored as ``head.weight`` / ``head.bias`` (zeros for
        ``bias=False``), and ``head_size`` is its ``out_features``.
    cell : str, optional
        Override the cell inferred from a ``state_dict`` by one with the same number of gate blocks,
        e.g. ``cell="lstm_nf"`` for LSTM weights without forget gate (blocks i, g, o). With a module it
        must name the module's own cell.
    nonlinearity : {"tanh", "relu"}, optional
        Of an ``nn.RNN`` ``state_dict`` (default ``"tanh"``); with a module it must match the module's.

    Returns
    -------
    Model
        With ``num_layers``, ``bidirectional`` and ``head_size`` set from the module and head.

    Raises
    ------
    ConfigError
        For what it cannot map (other module types, a head whose ``in_features`` do
        not match, unexpected ``state_dict`` entries, a cell override with the wrong number of gate
        blocks); the message names the value and what to do instead.
    """
    if isinstance(formats, dict):
        formats = Formats.from_dict(formats)
    formats = formats or Formats()
    if _is_module(module):
        import torch

        if isinstance(module, torch.nn.Sequential):
            module, seq_head = _split_sequential(module)
            if seq_head is not None:
                if head is not None:
                    raise ConfigError("from_torch: the nn.Sequential already ends in a Linear head; do not "
                                      "also pass head=")
                head = seq_head
        found, X, H, L, bidir, weights, P = _from_module(module, cell, nonlinearity)
    elif hasattr(module, "keys"):
        found, X, H, L, bidir, weights, P = _from_state_dict(module, cell, nonlinearity)
    else:
        raise ConfigError(f"from_torch: expected a {_SUPPORTED} module or its state_dict, got "
                          f"{type(module).__name__}")
    dirs = 2 if bidir else 1
    sd_head = {k.removeprefix("head."): weights.pop(k) for k in _HEAD_KEYS if k in weights}
    if sd_head:
        if head is not None:
            raise ConfigError(f"from_torch: the state_dict already has {sorted('head.' + k for k in sd_head)}; "
                              f"do not also pass head=")
        head = sd_head
    if head is not None:
        weights |= _head_weights(head, (P or H) * dirs, P or H, dirs)
    head_size = int(np.shape(weights["head.weight"])[0]) if "head.weight" in weights else 0
    return Model(cell=found, input_size=X, hidden_size=H, weights=weights, formats=formats,
                 rounding=rounding, overflow=overflow, pe=pe, simd=simd, name=name or found,
                 num_layers=L, bidirectional=bidir, head_size=head_size, outputs=outputs, proj_size=P)
