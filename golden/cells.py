"""The recurrent cells: their PyTorch weight blocks and the matrix-vector rows the hardware computes.

One :class:`Cell` per supported cell kind. It is the single source of truth for

* the blocks of PyTorch's ``weight_ih`` / ``weight_hh`` (``torch_gates``, in PyTorch's order),
* the *rows* the matrix-vector unit computes for every hidden unit, in order (``rows``): each row
  names the part of the vector ``[x_t; h_{t-1}]`` it reads (``"xh"`` all of it, ``"x"`` only x_t,
  ``"h"`` only h_{t-1}) and what happens to its accumulator (``"gate"``: the gate activation,
  e.g. sigmoid; ``"cand"``: the candidate activation, e.g. tanh; ``"relu"``; ``"linear"``: kept as a
  number in the ``cell`` format for the element-wise stage),
* and the element-wise state the cell keeps (``"c"`` for LSTMs, ``"h"`` for the GRU).

Equations (``*`` element-wise, ``sigma`` the gate activation, ``phi`` the candidate activation;
defaults sigmoid and tanh)::

    lstm     i,f,o = sigma(W_{i,f,o} [x;h] + b)   g = phi(W_g [x;h] + b)
             c_t = f*c_{t-1} + i*g                h_t = o*phi(c_t)                 (torch.nn.LSTM)
    lstm_nf  as lstm without f:  c_t = c_{t-1} + i*g      (Hochreiter & Schmidhuber 1997)
    gru      r,z = sigma(W_{r,z} [x;h] + b)   n = phi(W_in x + b_in + r*(W_hn h + b_hn))
             h_t = (1-z)*n + z*h_{t-1}                                               (torch.nn.GRU)
    rnn_tanh h_t = phi(W_ih x + W_hh h + b)                         (torch.nn.RNN, 'tanh')
    rnn_relu h_t = relu(W_ih x + W_hh h + b)                        (torch.nn.RNN, 'relu')
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Row", "Cell", "CELLS", "cell"]


@dataclass(frozen=True)
class Row:
    """One matrix-vector row per hidden unit.

    Attributes
    ----------
    name : str
        ``i``, ``f``, ``g``, ``o``, ``r``, ``z``, ``nx`` (W_in x + b_in), ``nh`` (W_hn h + b_hn), ``h``.
    block : int
        The PyTorch gate block (row block of ``weight_ih`` / ``weight_hh``) it comes from.
    part : {"xh", "x", "h"}
        The part of ``[x_t; h_{t-1}]`` the row reads.
    act : {"gate", "cand", "relu", "linear"}
        What follows the accumulator.
    """

    name: str
    block: int
    part: str
    act: str


@dataclass(frozen=True)
class Cell:
    """A recurrent cell kind (see the module documentation for the equations)."""

    name: str
    torch_gates: tuple[str, ...]
    rows: tuple[Row, ...]
    state: str | None
    title: str
    torch_module: str | None

    @property
    def gate_blocks(self) -> int:
        """Row blocks of PyTorch's ``weight_ih`` (gates x hidden_size rows)."""
        return len(self.torch_gates)

    @property
    def has_cell_state(self) -> bool:
        return self.state == "c"


def _rows(*spec) -> tuple[Row, ...]:
    return tuple(Row(*s) for s in spec)


CELLS: dict[str, Cell] = {c.name: c for c in (
    Cell("lstm", ("i", "f", "g", "o"),
         _rows(("i", 0, "xh", "gate"), ("f", 1, "xh", "gate"), ("g", 2, "xh", "cand"), ("o", 3, "xh", "gate")),
         "c", "LSTM (forget gate; torch.nn.LSTM)", "LSTM"),
    Cell("lstm_nf", ("i", "g", "o"),
         _rows(("i", 0, "xh", "gate"), ("g", 1, "xh", "cand"), ("o", 2, "xh", "gate")),
         "c", "LSTM without forget gate (Hochreiter & Schmidhuber 1997)", None),
    Cell("gru", ("r", "z", "n"),
         _rows(("r", 0, "xh", "gate"), ("z", 1, "xh", "gate"), ("nx", 2, "x", "linear"), ("nh", 2, "h", "linear")),
         "h", "GRU, reset after the recurrent product (torch.nn.GRU)", "GRU"),
    Cell("rnn_tanh", ("h",), _rows(("h", 0, "xh", "cand"),), None, "Elman RNN, tanh (torch.nn.RNN)", "RNN"),
    Cell("rnn_relu", ("h",), _rows(("h", 0, "xh", "relu"),), None, "Elman RNN, ReLU (torch.nn.RNN)", "RNN"),
)}


def cell(name: str) -> Cell:
    """The :class:`Cell` called ``name``; ``ValueError`` naming the choices otherwise."""
    try:
        return CELLS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown cell {name!r}; supported: {', '.join(CELLS)}") from None
