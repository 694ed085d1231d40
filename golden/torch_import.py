"""Import from PyTorch: an ``nn.LSTM`` module or its ``state_dict``. torch is imported lazily."""

from __future__ import annotations

import numpy as np

from .model import ConfigError, Formats, Model

__all__ = ["from_torch"]

_NAMES = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


def _to_numpy(t) -> np.ndarray:
    if hasattr(t, "detach"):
        return t.detach().to("cpu").double().numpy()
    return np.asarray(t, dtype=np.float64)


def from_torch(module, *, formats: Formats | dict | None = None, pe: int = 1, simd: int = 1,
               rounding: str = "RND", overflow: str = "SAT", name: str = "lstm") -> Model:
    """Build a :class:`~rnnaccel.golden.model.Model` from ``torch.nn.LSTM`` or its ``state_dict``.

    Parameters
    ----------
    module : torch.nn.LSTM or mapping
        A one-layer, unidirectional LSTM without projection (``batch_first`` either way: it does
        not change the weights), or its ``state_dict``. A module created with ``bias=False`` gets
        zero biases.
    formats : Formats or dict of str, optional
        Fixed-point formats (a dict like ``{"weight": "s8.6"}`` overrides single defaults).
    pe, simd, rounding, overflow, name
        As in :class:`~rnnaccel.golden.model.Model`.

    Raises
    ------
    ConfigError
        For modules it cannot map (more layers, bidirectional, proj_size, other module types).
    """
    if isinstance(formats, dict):
        formats = Formats.from_dict(formats)
    formats = formats or Formats()
    if hasattr(module, "state_dict") and callable(module.state_dict):
        kind = type(module).__name__
        if kind != "LSTM":
            raise ConfigError(f"from_torch: cannot map a {kind} module; this version supports torch.nn.LSTM")
        if module.num_layers != 1:
            raise ConfigError(f"from_torch: num_layers = {module.num_layers}; this version maps one layer "
                              f"(num_layers=1)")
        if module.bidirectional:
            raise ConfigError("from_torch: bidirectional=True is not supported yet; use a unidirectional LSTM")
        if getattr(module, "proj_size", 0):
            raise ConfigError(f"from_torch: proj_size = {module.proj_size} is not supported yet; use proj_size=0")
        sd = module.state_dict()
        X, H = module.input_size, module.hidden_size
    elif hasattr(module, "keys"):
        sd = module
        if "weight_ih_l0" not in sd or "weight_hh_l0" not in sd:
            raise ConfigError(f"from_torch: state_dict has no weight_ih_l0 / weight_hh_l0 (keys: "
                              f"{sorted(sd.keys())}); pass an nn.LSTM state_dict")
        extra = sorted(k for k in sd.keys() if k not in _NAMES)
        if extra:
            raise ConfigError(f"from_torch: state_dict has entries this version cannot map: {extra} "
                              f"(only a one-layer, unidirectional LSTM without projection)")
        w_hh = _to_numpy(sd["weight_hh_l0"])
        H = w_hh.shape[1]
        if w_hh.ndim != 2 or w_hh.shape[0] != 4 * H:
            raise ConfigError(
                f"from_torch: weight_hh_l0 has shape {w_hh.shape}, but an LSTM has 4 gates x hidden_size "
                f"rows ({4 * H}, {H}); a GRU (3 gates) or plain RNN state_dict is not supported yet")
        X = _to_numpy(sd["weight_ih_l0"]).shape[1]
    else:
        raise ConfigError(f"from_torch: expected torch.nn.LSTM or its state_dict, got {type(module).__name__}")
    weights = {k: _to_numpy(sd[k]) for k in _NAMES if k in sd}
    for k in ("bias_ih_l0", "bias_hh_l0"):
        weights.setdefault(k, np.zeros(4 * H))
    return Model(cell="lstm", input_size=X, hidden_size=H, weights=weights, formats=formats,
                 rounding=rounding, overflow=overflow, pe=pe, simd=simd, name=name)
