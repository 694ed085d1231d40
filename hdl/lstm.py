"""The LSTM names of the hardware (kept for code written against the first, LSTM-only version).

Everything lives in :mod:`rnnaccel.hdl.layer`; :class:`LSTMLayer` is :class:`~rnnaccel.hdl.layer.RecurrentLayer`.
"""

from .layer import GateActivation, LSTMElementwise, RecurrentLayer, row_order, vector_layout

LSTMLayer = RecurrentLayer

__all__ = ["GateActivation", "LSTMElementwise", "LSTMLayer", "row_order", "vector_layout"]
