"""Activation units: tables and piecewise-linear functions, the one place their definitions live.

Five activation functions, each a unit made by :func:`make_activation` from its name and two formats:

- ``sigmoid``: ``1 / (1 + exp(-x))``, a :class:`Table` (half table, ``f(-x) = 1 - f(x)``);
- ``tanh``: ``tanh(x)``, a :class:`Table` (half table, odd);
- ``softsign``: ``x / (1 + |x|)``, a :class:`Table` (half table, odd);
- ``hard_sigmoid``: ``clamp(x / 6 + 1/2, 0, 1)``, a :class:`PiecewiseLinear` (direct formula);
- ``hard_tanh``: ``clamp(x, -1, 1)``, a :class:`PiecewiseLinear` (odd).

(``torch.nn.Sigmoid``, ``Tanh``, ``Softsign``, ``Hardsigmoid`` and ``Hardtanh`` with its defaults.)

Common to all units: the *index* is the pre-activation requantised (always saturating) to the
signed input format ``in_fmt`` (e.g. ``s12.8``), and the result is a code of ``out_fmt``.
Odd functions (:data:`TANH_LIKE`) are evaluated on the magnitude of the index, clipped to
``in_fmt.max_code`` like a table address, and the sign of the index is applied last:
``f(i) = -f(min(-i, max_code))`` for ``i < 0``. Hardware can therefore leave that sign to the
consumer (``apply_symmetry=False``): the unit then returns ``|f(i)|``, and the consumer negates it
exactly when ``i < 0``.

Tables
    The hardware's table memories are initialised from :func:`make_table`, and the golden model
    looks values up with :func:`activation`, which mirrors
    :class:`rnnaccel.hdl.activation.ActivationTable`. A table stores only the non-negative half of
    the input range: entry ``j`` holds ``f(j * 2**-in_fmt.frac)`` quantised to ``out_fmt`` (round to
    nearest with ties up, saturate), for ``j = 0 .. 2**(n-1) - 1``; a negative index ``i`` reads
    entry ``min(-i, 2**(n-1) - 1)`` and applies the symmetry.

Piecewise-linear units
    No memory; see :class:`PiecewiseLinear` for the integer definition, mirrored by
    :class:`rnnaccel.hdl.activation.PiecewiseLinearUnit`. With the default constants their result
    equals the correctly rounded value, i.e. exactly what a table of the float function would hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .fixed import QFormat, quantize, requantize, shift_round

__all__ = [
    "ACTIVATIONS", "SIGMOID_LIKE", "TANH_LIKE", "FUNCTIONS", "PIECEWISE_LINEAR", "FLOAT_FUNCTIONS",
    "Table", "PiecewiseLinear", "make_table", "make_activation", "activation", "activate",
    "hard_sigmoid_constant", "shared_gate_offset",
]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softsign(x):
    x = np.asarray(x, dtype=np.float64)
    return x / (1.0 + np.abs(x))


def _hard_sigmoid(x):
    # torch: relu6(x + 3) / 6.  x + 3 is exact for the codes used here and the division is
    # correctly rounded, so exact ties of the output grid stay exact ties.
    return np.clip(np.asarray(x, dtype=np.float64) + 3.0, 0.0, 6.0) / 6.0


def _hard_tanh(x):
    return np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)


#: Float functions (NumPy, float64) of every activation, for the float reference.
FLOAT_FUNCTIONS = {
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "softsign": _softsign,
    "hard_sigmoid": _hard_sigmoid,
    "hard_tanh": _hard_tanh,
}

#: Every activation name, in the order of the table in the module docstring.
ACTIVATIONS = tuple(FLOAT_FUNCTIONS)
#: Functions with values in [0, 1] and ``f(-x) = 1 - f(x)``: gate activations.
SIGMOID_LIKE = ("sigmoid", "hard_sigmoid")
#: Odd functions with values in [-1, 1]: candidate / state activations.
TANH_LIKE = ("tanh", "softsign", "hard_tanh")
#: Functions that have tables (:func:`make_table`).
FUNCTIONS = ("sigmoid", "tanh", "softsign")
#: Functions computed by :class:`PiecewiseLinear` (no memory).
PIECEWISE_LINEAR = ("hard_sigmoid", "hard_tanh")


def _check_name(function, choices=ACTIVATIONS):
    if not isinstance(function, str) or function not in ACTIVATIONS:
        raise ValueError(f"unknown activation {function!r}; expected one of {', '.join(choices)}")


def _check_formats(function: str, in_fmt, out_fmt, what: str) -> tuple[QFormat, QFormat]:
    in_fmt = QFormat.parse(in_fmt, field=f"{function} input format") if isinstance(in_fmt, str) else in_fmt
    out_fmt = QFormat.parse(out_fmt, field=f"{function} output format") if isinstance(out_fmt, str) else out_fmt
    for name, fmt in (("input", in_fmt), ("output", out_fmt)):
        if not isinstance(fmt, QFormat):
            raise TypeError(f"{function} {name} format must be a QFormat or a string like 's12.8', "
                            f"not {fmt!r}")
    if not in_fmt.signed:
        raise ValueError(f"{what} index format {in_fmt} must be signed")
    return in_fmt, out_fmt


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Table:
    """A half table of an odd-symmetric (tanh, softsign) or point-symmetric (sigmoid) function.

    Attributes
    ----------
    function : str
        ``"sigmoid"``, ``"tanh"`` or ``"softsign"``.
    in_fmt, out_fmt : QFormat
        Index format (its range is the table's saturated input range) and output format.
    values : numpy.ndarray of int64
        ``2**(in_fmt.width - 1)`` output codes for inputs ``0, 1, ...`` (in ``in_fmt`` LSBs).
    """

    function: str
    in_fmt: QFormat
    out_fmt: QFormat
    values: np.ndarray = field(repr=False)

    @property
    def depth(self) -> int:
        return len(self.values)

    @property
    def one(self) -> int:
        """The code of 1.0 in ``out_fmt`` (may be one past its largest code)."""
        return 1 << self.out_fmt.frac

    @property
    def odd(self) -> bool:
        """True for odd functions (``f(-x) = -f(x)``), whose sign can be left to the consumer."""
        return self.function in TANH_LIKE

    @property
    def memory_bits(self) -> int:
        """Bits of the table memory: ``depth * out_fmt.width``."""
        return self.depth * self.out_fmt.width

    @property
    def multipliers(self) -> int:
        """Multipliers of the hardware unit (none)."""
        return 0


@lru_cache(maxsize=64)
def make_table(function: str, in_fmt: QFormat, out_fmt: QFormat) -> Table:
    """Contents of an activation table (the hardware memory's ``init``).

    Parameters
    ----------
    function : {"sigmoid", "tanh", "softsign"}
    in_fmt : QFormat
        Signed index format; depth is ``2**(in_fmt.width - 1)``.
    out_fmt : QFormat
        Output format; entries are rounded to nearest (ties up) and saturated.

    Notes
    -----
    softsign approaches +-1 slowly (``1 - softsign(x) = 1 / (1 + x)``): its input format needs a
    much larger range than tanh's for the same saturation error.
    """
    if function in PIECEWISE_LINEAR:
        raise ValueError(f"{function!r} is piecewise-linear and has no table; use make_activation "
                         f"(table functions: {', '.join(FUNCTIONS)})")
    if function not in FUNCTIONS:
        raise ValueError(f"unknown activation {function!r}; expected one of {', '.join(FUNCTIONS)}")
    if not in_fmt.signed:
        raise ValueError(f"table index format {in_fmt} must be signed")
    j = np.arange(1 << (in_fmt.width - 1), dtype=np.int64)
    y = FLOAT_FUNCTIONS[function](j * in_fmt.lsb)
    values = quantize(y, out_fmt, "RND", "SAT")
    values.setflags(write=False)
    return Table(function, in_fmt, out_fmt, values)


# ---------------------------------------------------------------------------------------------
# Piecewise-linear units
# ---------------------------------------------------------------------------------------------

#: ``y = (x + OFFSET) * slope`` between the clamps; the offset is in units of 1.0.
_PWL_OFFSET = {"hard_sigmoid": 3, "hard_tanh": 0}


def _exact_slope(function: str):
    """The slope as a fraction ``(numerator, denominator)``."""
    return (1, 6) if function == "hard_sigmoid" else (1, 1)


def hard_sigmoid_constant(in_fmt: QFormat, out_fmt: QFormat) -> tuple[int, int]:
    """The default ``(mul, mul_frac)`` of hard_sigmoid: the shortest ``mul = ceil(2**S / 6)``,
    ``mul_frac = S``, for which the result is correctly rounded for every index code.

    Why this suffices: with ``u = i + 3 * 2**fi`` (the index plus 3, in index LSBs) the exact
    result in output LSBs is ``t = u * 2**(fo - fi) / 6``, and ``t + 1/2`` is a multiple of
    ``G = 2**-max(fi - fo, 0) / 6``. The computed value is ``t + u * d * 2**(fo - fi - S)`` with
    ``d = mul - 2**S / 6``, 1/3 or 2/3: never below ``t`` for ``u >= 0`` and at most
    ``u_max * d * 2**(fo - fi - S)`` above it, where ``u_max = min(6 * 2**fi, max_code + 3 * 2**fi)``
    is the end of the linear segment or of the input range. Rounding (``RND``) gives the same integer
    as for ``t`` while that excess is below ``G``, i.e. when
    ``6 * d * u_max * 2**max(fo - fi, 0) < 2**S``. Outside the segment the error has the sign that
    keeps the result clamped (below -3 the value stays <= 0, above +3 >= 1).
    """
    fi, fo = in_fmt.frac, out_fmt.frac
    u_max = min(6 << fi, in_fmt.max_code + (3 << fi))
    s = 3
    while True:
        mul = -(-(1 << s) // 6)                 # ceil(2**s / 6)
        six_d = 6 * mul - (1 << s)              # 6 * d: 2 or 4
        if (six_d * max(u_max, 1)) << max(fo - fi, 0) < (1 << s):
            return mul, s
        s += 1


@dataclass(frozen=True)
class PiecewiseLinear:
    """A piecewise-linear activation on integer codes (no table memory).

    Definition, on an index code ``i`` of ``in_fmt = s<n>.<fi>`` (``x = i * 2**-fi``), result in
    ``out_fmt`` (``fo`` fractional bits, ``one = 2**fo``)::

        a    = i                              hard_sigmoid
        a    = min(|i|, in_fmt.max_code)      hard_tanh (odd: on the magnitude)
        v    = (a + offset_in) * mul          exact; offset_in = 3 * 2**fi (hard_sigmoid) or 0
        r    = RND(v / 2**shift)              the one rounding, shift = fi + mul_frac - fo
                                              (round to nearest, ties up; shift <= 0: exact)
        g    = clip(r, lo, hi)                lo = max(0, out_fmt.min_code), hi = min(one, out_fmt.max_code)
        f(i) = -g if (odd and i < 0) else g

    i.e. ``hard_sigmoid(x) = clamp((x + 3) / 6, 0, 1)`` with ``1/6 ~ mul * 2**-mul_frac`` and
    ``hard_tanh(x) = clamp(x, -1, 1)`` (``mul = 1``, ``mul_frac = 0``: no multiplier), then
    saturation to ``out_fmt`` (the clamp bounds are already inside its range). The hardware adds
    ``offset_in * mul`` (and the rounding half) as one constant after the product.

    Parameters
    ----------
    function : {"hard_sigmoid", "hard_tanh"}
    in_fmt : QFormat
        Signed index format.
    out_fmt : QFormat
        Output format; signed for hard_tanh (an odd function).
    mul, mul_frac : int, optional
        The slope constant ``mul * 2**-mul_frac``. Defaults: ``1, 0`` for hard_tanh (exact) and,
        for hard_sigmoid, ``ceil(2**S / 6), S`` with the smallest ``S`` for which every result is
        provably correctly rounded (:func:`hard_sigmoid_constant`; for ``s12.8 -> u16.16``:
        ``174763 * 2**-20``, an 18-bit constant, ``|constant - 1/6| = 3.2e-7``; in the tested formats
        one bit less is no longer correctly rounded). Other values are allowed (e.g. a shorter constant for a smaller
        multiplier); golden model and hardware follow them, and :attr:`slope_error` bounds their
        effect.

    Raises
    ------
    ValueError
        For an unknown function, an unsigned ``in_fmt``, a negative ``frac``, an unsigned ``out_fmt``
        of an odd function, a non-positive ``mul``, a negative ``mul_frac``, a hard_tanh slope other
        than 1, or a product too wide for the 64-bit integer model.
    TypeError
        For a format that is not a QFormat (or string), or a non-integer constant.
    """

    function: str
    in_fmt: QFormat
    out_fmt: QFormat
    mul: int | None = None
    mul_frac: int | None = None

    def __post_init__(self):
        if self.function not in PIECEWISE_LINEAR:
            if self.function in FUNCTIONS:
                raise ValueError(f"{self.function!r} is a table function, not piecewise-linear; "
                                 f"expected one of {', '.join(PIECEWISE_LINEAR)}")
            raise ValueError(f"unknown piecewise-linear activation {self.function!r}; "
                             f"expected one of {', '.join(PIECEWISE_LINEAR)}")
        in_fmt, out_fmt = _check_formats(self.function, self.in_fmt, self.out_fmt, "piecewise-linear")
        object.__setattr__(self, "in_fmt", in_fmt)
        object.__setattr__(self, "out_fmt", out_fmt)
        for name, fmt in (("input", in_fmt), ("output", out_fmt)):
            if fmt.frac < 0:
                raise ValueError(f"{self.function} {name} format {fmt} needs frac >= 0")
        if self.odd and not out_fmt.signed:
            raise ValueError(f"{self.function} output format {out_fmt} must be signed (the function is odd)")
        if (self.mul is None) != (self.mul_frac is None):
            raise ValueError(f"{self.function}: give both mul and mul_frac or neither "
                             f"(got mul={self.mul!r}, mul_frac={self.mul_frac!r})")
        if self.mul is None:
            mul, frac = (hard_sigmoid_constant(in_fmt, out_fmt) if self.function == "hard_sigmoid"
                         else (1, 0))
            object.__setattr__(self, "mul", mul)
            object.__setattr__(self, "mul_frac", frac)
        for name in ("mul", "mul_frac"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                raise TypeError(f"{self.function}: {name} must be an integer, not {v!r}")
            object.__setattr__(self, name, int(v))
        if self.mul < 1:
            raise ValueError(f"{self.function}: mul must be positive, not {self.mul}")
        if self.mul_frac < 0:
            raise ValueError(f"{self.function}: mul_frac must be >= 0, not {self.mul_frac}")
        if in_fmt.width + 1 + self.mul.bit_length() > 62:
            raise ValueError(f"{self.function}: the product of an {in_fmt} index and mul={self.mul} "
                             f"does not fit the 64-bit integer model; use a narrower format or constant")
        if self.function == "hard_tanh" and self.mul != 1 << self.mul_frac:
            raise ValueError(f"hard_tanh has slope 1: mul * 2**-mul_frac must be 1, not "
                             f"{self.mul} * 2**-{self.mul_frac}")

    # -- the constants of the definition ------------------------------------------------------
    @property
    def odd(self) -> bool:
        """True for hard_tanh: evaluated on the magnitude, the sign may be left to the consumer."""
        return self.function in TANH_LIKE

    @property
    def offset_in(self) -> int:
        """The added constant in index LSBs (``3 * 2**fi`` for hard_sigmoid, 0 for hard_tanh)."""
        return _PWL_OFFSET[self.function] << self.in_fmt.frac

    @property
    def offset(self) -> int:
        """``offset_in * mul``: the constant added to the product (``fi + mul_frac`` fractional bits)."""
        return self.offset_in * self.mul

    @property
    def shift(self) -> int:
        """Right shift of the rounding step: ``in_fmt.frac + mul_frac - out_fmt.frac``."""
        return self.in_fmt.frac + self.mul_frac - self.out_fmt.frac

    @property
    def one(self) -> int:
        """The code of 1.0 in ``out_fmt`` (may be one past its largest code)."""
        return 1 << self.out_fmt.frac

    @property
    def lo(self) -> int:
        """Lower clamp of the (magnitude) result: 0."""
        return max(0, self.out_fmt.min_code)

    @property
    def hi(self) -> int:
        """Upper clamp of the (magnitude) result: ``min(one, out_fmt.max_code)``."""
        return min(self.one, self.out_fmt.max_code)

    @property
    def slope_error(self) -> float:
        """``|mul * 2**-mul_frac - exact slope|``. Over the linear segment (width 6 for hard_sigmoid)
        the constant moves the result by at most ``6 * slope_error`` before rounding; the default
        constants keep that below the rounding's margin, so results are correctly rounded."""
        num, den = _exact_slope(self.function)
        return abs(self.mul * den - (num << self.mul_frac)) / (den * 2.0 ** self.mul_frac)

    @property
    def memory_bits(self) -> int:
        """Bits of table memory: none."""
        return 0

    @property
    def multipliers(self) -> int:
        """Multipliers of the hardware unit: one constant multiplier unless ``mul`` is a power of two."""
        return 0 if self.mul & (self.mul - 1) == 0 else 1

    def evaluate(self, index) -> np.ndarray:
        """Output codes for index codes (already requantised to ``in_fmt``); see the class docstring."""
        index = np.asarray(index, dtype=np.int64)
        a = np.minimum(np.abs(index), self.in_fmt.max_code) if self.odd else index
        v = (a + self.offset_in) * np.int64(self.mul)
        g = np.clip(shift_round(v, self.shift, "RND"), self.lo, self.hi)
        return np.where(index < 0, -g, g) if self.odd else g


@lru_cache(maxsize=64)
def _make_piecewise_linear(function: str, in_fmt: QFormat, out_fmt: QFormat) -> PiecewiseLinear:
    return PiecewiseLinear(function, in_fmt, out_fmt)


def make_activation(function: str, in_fmt: "QFormat | str", out_fmt: "QFormat | str"
                    ) -> "Table | PiecewiseLinear":
    """The activation unit called ``function`` from ``in_fmt`` (index) to ``out_fmt``.

    Parameters
    ----------
    function : {"sigmoid", "tanh", "softsign", "hard_sigmoid", "hard_tanh"}
    in_fmt : QFormat or str
        Signed index format (the pre-activation is requantised to it, always saturating).
    out_fmt : QFormat or str
        Output format; signed for the odd functions (:data:`TANH_LIKE`).

    Returns
    -------
    Table or PiecewiseLinear
        A :class:`Table` for sigmoid, tanh and softsign, a :class:`PiecewiseLinear` for hard_sigmoid
        and hard_tanh. Both have ``function``, ``in_fmt``, ``out_fmt``, ``odd``, ``one``,
        ``memory_bits`` and ``multipliers``; use them with :func:`activation` / :func:`activate`
        and :func:`rnnaccel.hdl.activation.activation_unit`. Cached: equal arguments give the same
        object.

    Raises
    ------
    ValueError
        Unknown function (the message lists the choices), unsigned index format, unsigned output
        format of an odd function, or a malformed format string.
    TypeError
        A format that is neither a QFormat nor a string.
    """
    _check_name(function)
    in_fmt, out_fmt = _check_formats(function, in_fmt, out_fmt,
                                     "table" if function in FUNCTIONS else "piecewise-linear")
    if function in TANH_LIKE and not out_fmt.signed:
        raise ValueError(f"{function} output format {out_fmt} must be signed (the function is odd)")
    if function in FUNCTIONS:
        return make_table(function, in_fmt, out_fmt)
    return _make_piecewise_linear(function, in_fmt, out_fmt)


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------

def activation(index, table: "Table | PiecewiseLinear") -> np.ndarray:
    """Activated codes for index codes (mirrors :func:`rnnaccel.hdl.activation.activation_unit`).

    Parameters
    ----------
    index : array_like of int
        Codes in ``table.in_fmt`` (already requantised and saturated).
    table : Table or PiecewiseLinear
        The unit (from :func:`make_activation` or :func:`make_table`).

    Returns
    -------
    numpy.ndarray of int64
        Codes in ``table.out_fmt``.
    """
    if isinstance(table, PiecewiseLinear):
        return table.evaluate(index)
    if not isinstance(table, Table):
        raise TypeError(f"activation needs a Table or PiecewiseLinear unit, got {table!r}")
    index = np.asarray(index, dtype=np.int64)
    neg = index < 0
    j = np.minimum(np.abs(index), table.depth - 1)
    t = table.values[j]
    if table.function == "sigmoid":
        return np.where(neg, table.one - t, t)
    return np.where(neg, -t, t)


def activate(code, src: QFormat, table: "Table | PiecewiseLinear", rounding: str, *, counter=None,
             tag=None) -> np.ndarray:
    """Requantise ``code`` (format ``src``) to the unit's index format, always saturating, and evaluate.

    This is the whole activation step of the datapath: one :func:`requantize` and one
    :func:`activation`, as in hardware.  Saturation of the index (inputs beyond the unit's range)
    is counted under ``tag``: it is expected for large pre-activations, not an error.
    """
    idx = requantize(code, src, table.in_fmt, rounding, "SAT", counter=counter, tag=tag)
    return activation(idx, table)


def shared_gate_offset(gate: "Table | PiecewiseLinear", cand: "Table | PiecewiseLinear") -> int | None:
    """The offset ``d`` with which the candidate unit's table also gives the gate unit, or None.

    ``sigmoid(x) = (1 + tanh(x / 2)) / 2``: when the gate index format is the candidate's with one
    fractional bit less (the same index code means ``x`` and ``x / 2``) and the output formats
    match (``sigmoid_out`` has one fractional bit more than ``tanh_out``), the sigmoid code of index
    ``i`` is ``d + tanh_code(i)`` with ``d = 2**(tanh_out.frac)``. This function *checks* that for
    every index code (exhaustively, against :func:`activation` of both units, so rounding ties and
    saturation are covered) and returns ``d`` only if it holds, e.g. for the default formats
    (``s12.8 -> u16.16`` and ``s12.9 -> s16.15``). The compact schedule
    (:mod:`rnnaccel.hdl.compact`) then keeps one table memory instead of two.
    """
    if not (isinstance(gate, Table) and isinstance(cand, Table)
            and (gate.function, cand.function) == ("sigmoid", "tanh")):
        return None
    if gate.in_fmt.width != cand.in_fmt.width or cand.in_fmt.frac != gate.in_fmt.frac + 1 \
            or gate.out_fmt.frac != cand.out_fmt.frac + 1:
        return None
    offset = 1 << cand.out_fmt.frac
    i = np.arange(gate.in_fmt.min_code, gate.in_fmt.max_code + 1, dtype=np.int64)
    if np.array_equal(activation(i, gate), offset + activation(i, cand)):
        return offset
    return None
