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
    lstm_peephole  i,f = sigma(W_{i,f} [x;h] + b + p_{i,f}*c_{t-1})   g = phi(W_g [x;h] + b)
             c_t = f*c_{t-1} + i*g   o = sigma(W_o [x;h] + b + p_o*c_t)   h_t = o*phi(c_t)
             (Gers & Schmidhuber 2000; diagonal peepholes p_i, p_f, p_o: rnnaccel.golden.peephole)
    gru      r,z = sigma(W_{r,z} [x;h] + b)   n = phi(W_in x + b_in + r*(W_hn h + b_hn))
             h_t = (1-z)*n + z*h_{t-1}                                               (torch.nn.GRU)
    rnn_tanh h_t = phi(W_ih x + W_hh h + b)                         (torch.nn.RNN, 'tanh')
    rnn_relu h_t = relu(W_ih x + W_hh h + b)                        (torch.nn.RNN, 'relu')
    jordan   h_t = phi(W_ih x + W_hh y_{t-1} + b)   y_t = phi(W_hy h_t + b_hy)   (Jordan 1986; y: proj_size)
    gru_rb   r,z = sigma(W_{r,z} [x;h] + b)   n = phi(W_n x + U_n (r*h_{t-1}) + b_n)
             h_t = (1-z)*n + z*h_{t-1}   (Cho et al. 2014, Keras GRU(reset_after=False); PyTorch GRU
             weight names, b_n = b_ih[n] + b_hh[n]: rnnaccel.golden.gru_rb)

With ``proj_size = P`` the LSTM projects its output (``torch.nn.LSTM(proj_size=P)``, Sak et al. 2014):
``m_t = o*phi(c_t)`` (H), ``h_t = W_hr m_t`` (P), and ``h_t`` is what is fed back and passed on. The
Jordan RNN feeds back its output ``y_t`` (P). Both add a second matrix-vector pass per step
(:mod:`rnnaccel.golden.projected`).
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
    act : {"gate", "cand", "relu", "linear", "raw"}
        What follows the accumulator (``"raw"``: nothing, the exact accumulator goes on to the
        element-wise stage, e.g. the peephole LSTM's gate rows).
    bias : {"part", "both", "none"}
        The PyTorch biases the row adds: ``"part"`` (default) those of the parts it reads (``b_ih``
        for ``x``, ``b_hh`` for ``h``, ``b_ih + b_hh`` for ``xh``); ``"both"``: ``b_ih + b_hh`` summed
        in float and quantised once; ``"none"``: no bias (``gru_rb``: ``b_n`` on its ``nx`` row, no
        bias on ``nh``).
    """

    name: str
    block: int
    part: str
    act: str
    bias: str = "part"


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
    Cell("lstm_peephole", ("i", "f", "g", "o"),
         _rows(("i", 0, "xh", "raw"), ("f", 1, "xh", "raw"), ("g", 2, "xh", "cand"), ("o", 3, "xh", "raw")),
         "c", "LSTM with peephole connections (Gers & Schmidhuber 2000)", None),
    Cell("jordan", ("h",), _rows(("h", 0, "xh", "cand"),), None,
         "Jordan RNN: the previous output y_{t-1} (proj_size) is the context", None),
    # Two matrix-vector phases per step (rnnaccel.golden.gru_rb): r, z, nx over [x; h_{t-1}], then
    # nh = U_n (r*h_{t-1}) over the vector whose h slots hold r*h_{t-1}.
    Cell("gru_rb", ("r", "z", "n"),
         _rows(("r", 0, "xh", "gate"), ("z", 1, "xh", "gate"), ("nx", 2, "x", "raw", "both"),
               ("nh", 2, "h", "raw", "none")),
         "h", "GRU, reset before the recurrent product (Cho et al. 2014; Keras reset_after=False)", None),
)}


def cell(name: str) -> Cell:
    """The :class:`Cell` called ``name``; ``ValueError`` naming the choices otherwise."""
    try:
        return CELLS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown cell {name!r}; supported: {', '.join(CELLS)}") from None
