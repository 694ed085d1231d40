"""Activation tables: the one place their contents are made.

The hardware's table memories are initialised from :func:`make_table`, and the golden model
looks values up with :func:`activation`, which mirrors :class:`rnnaccel.hdl.activation.ActivationTable`.

A table stores only the non-negative half of the input range and uses symmetry for the other:
``sigmoid(-x) = 1 - sigmoid(x)`` and ``tanh(-x) = -tanh(x)``.  The table index is the
pre-activation requantised (saturating) to the input format ``s<n>.<f>``; entry ``j`` holds
``f(j * 2**-f)`` quantised to the output format (round to nearest, saturate), for
``j = 0 .. 2**(n-1) - 1``.  A negative index ``i`` reads entry ``min(-i, 2**(n-1) - 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .fixed import QFormat, quantize, requantize

__all__ = ["FUNCTIONS", "Table", "make_table", "activation", "activate"]

_FLOAT = {
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
}

#: Functions that have tables.
FUNCTIONS = tuple(_FLOAT)


@dataclass(frozen=True, eq=False)
class Table:
    """A half table of an odd-symmetric (tanh) or point-symmetric (sigmoid) function.

    Attributes
    ----------
    function : str
        ``"sigmoid"`` or ``"tanh"``.
    in_fmt, out_fmt : QFormat
        Index format (its range is the table's saturated input range) and output format.
    values : numpy.ndarray of int64
        ``2**(in_fmt.width - 1)`` output codes for inputs ``0, 1, ...`` (in ``in_fmt`` LSBs).
    """

    function: str
    in_fmt: QFormat
    out_fmt: QFormat
    values: np.ndarray

    @property
    def depth(self) -> int:
        return len(self.values)

    @property
    def one(self) -> int:
        """The code of 1.0 in ``out_fmt`` (may be one past its largest code)."""
        return 1 << self.out_fmt.frac


@lru_cache(maxsize=64)
def make_table(function: str, in_fmt: QFormat, out_fmt: QFormat) -> Table:
    """Contents of an activation table (the hardware memory's ``init``).

    Parameters
    ----------
    function : {"sigmoid", "tanh"}
    in_fmt : QFormat
        Signed index format; depth is ``2**(in_fmt.width - 1)``.
    out_fmt : QFormat
        Output format; entries are rounded to nearest (ties up) and saturated.
    """
    if function not in _FLOAT:
        raise ValueError(f"unknown activation {function!r}; expected one of {', '.join(FUNCTIONS)}")
    if not in_fmt.signed:
        raise ValueError(f"table index format {in_fmt} must be signed")
    j = np.arange(1 << (in_fmt.width - 1), dtype=np.int64)
    y = _FLOAT[function](j * in_fmt.lsb)
    values = quantize(y, out_fmt, "RND", "SAT")
    values.setflags(write=False)
    return Table(function, in_fmt, out_fmt, values)


def activation(index, table: Table) -> np.ndarray:
    """Look up table codes for index codes (mirrors :class:`~rnnaccel.hdl.activation.ActivationTable`).

    Parameters
    ----------
    index : array_like of int
        Codes in ``table.in_fmt`` (already requantised and saturated).
    table : Table

    Returns
    -------
    numpy.ndarray of int64
        Codes in ``table.out_fmt``.
    """
    index = np.asarray(index, dtype=np.int64)
    neg = index < 0
    j = np.minimum(np.abs(index), table.depth - 1)
    t = table.values[j]
    if table.function == "sigmoid":
        return np.where(neg, table.one - t, t)
    return np.where(neg, -t, t)


def activate(code, src: QFormat, table: Table, rounding: str, *, counter=None, tag=None) -> np.ndarray:
    """Requantise ``code`` (format ``src``) to the table's index format, always saturating, and look up.

    This is the whole activation step of the datapath: one :func:`requantize` and one
    :func:`activation`, as in hardware.  Saturation of the index (inputs beyond the table's range)
    is counted under ``tag``: it is expected for large pre-activations, not an error.
    """
    idx = requantize(code, src, table.in_fmt, rounding, "SAT", counter=counter, tag=tag)
    return activation(idx, table)
