"""The model description: cell kind, sizes, fixed-point formats, parallelism and float weights.

It is the one object that the importers (:func:`load`, :func:`rnnaccel.golden.torch_import.from_torch`)
produce and that the golden model, the hardware generator, the simulators and the flows consume.
Every field is checked when the object is built, so a bad config fails when it is loaded, with a
message naming the field, the value and what is expected.

Config file (TOML) example::

    name = "my-lstm"

    [model]
    cell = "lstm"
    input_size = 32
    hidden_size = 32
    weights = "my-lstm.npz"        # relative to this file; PyTorch state_dict names

    [formats]                      # every entry optional; defaults in DEFAULT_FORMATS
    data = "s16.12"
    weight = "s16.12"

    [numerics]
    rounding = "RND"               # TRN | RND | RND_CONV
    overflow = "SAT"               # SAT | WRAP

    [hardware]
    pe = 4
    simd = 8
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from . import activation as _activation
from . import cells as _cells
from .fixed import OVERFLOW_MODES, ROUNDING_MODES, QFormat

__all__ = ["Formats", "Model", "DEFAULT_FORMATS", "CELLS", "GATES", "load", "save", "ConfigError", "random_weights",
           "GATE_ACTIVATIONS", "CAND_ACTIVATIONS", "OUTPUTS"]

#: Cell kinds this version generates (see :mod:`rnnaccel.golden.cells`).
CELLS = tuple(_cells.CELLS)

#: Gate blocks of each cell in PyTorch's order (row blocks of ``weight_ih_l0`` / ``weight_hh_l0``).
GATES = {name: c.torch_gates for name, c in _cells.CELLS.items()}

#: Choices of the gate activation (i, f, o / r, z) and of the candidate activation (g, tanh(c) / n / h).
GATE_ACTIVATIONS = _activation.SIGMOID_LIKE
CAND_ACTIVATIONS = _activation.TANH_LIKE

#: What the accelerator streams out: every timestep's output, or only the last step's of a sequence.
OUTPUTS = ("sequence", "last")
#: Hardware schedules of a layer (``[hardware] schedule``): ``pipelined`` (every PE lane has its own
#: activation units and element-wise stage, :class:`rnnaccel.hdl.layer.RecurrentLayer`) or
#: ``compact`` (one activation table and one element-wise stage with bit-serial multipliers shared
#: by all lanes, for small parts: :class:`rnnaccel.hdl.compact.CompactLSTMLayer`; LSTMs only).
SCHEDULES = ("pipelined", "compact")


class ConfigError(ValueError):
    """A model description with an impossible or missing value (subclass of ``ValueError``)."""


@dataclass(frozen=True)
class Formats:
    """Fixed-point formats of every tensor of the LSTM datapath.

    Attributes
    ----------
    data : QFormat
        ``x_t`` and ``h_t`` (they share the matrix-vector unit's input vector ``[x_t; h_{t-1}]``).
        Default ``s16.12``: range +-8 for normalised inputs, ``h`` in (-1, 1) to 2^-12.
    weight : QFormat
        ``W_ih`` and ``W_hh``. Default ``s16.12``: trained LSTM weights rarely exceed +-8.
    cell : QFormat
        The cell state ``c_t``, which is not bounded by +-1. Default ``s16.11`` (+-16).
    sigmoid_in : QFormat
        Table index of the sigmoid: the pre-activation is requantised (always saturating) to this
        format, whose range is the table's input range. Default ``s12.8``: +-8, where sigmoid is
        within 3.4e-4 of 0 and 1; 2048 entries per half table.
    sigmoid_out : QFormat
        Gate values i, f, o in [0, 1): all bits fractional, default ``u16.16``, so a forget gate
        near 1 keeps 16 bits (coarse gate formats are what make long sequences drift).
    tanh_in : QFormat
        Table index of tanh (for g and for tanh(c_t)). Default ``s12.9``: +-4, where tanh is
        within 6.8e-4 of +-1; 2048 entries per half table.
    tanh_out : QFormat
        Values in (-1, 1): default ``s16.15``.
    """

    data: QFormat = QFormat(16, 12)
    weight: QFormat = QFormat(16, 12)
    cell: QFormat = QFormat(16, 11)
    sigmoid_in: QFormat = QFormat(12, 8)
    sigmoid_out: QFormat = QFormat(16, 16, signed=False)
    tanh_in: QFormat = QFormat(12, 9)
    tanh_out: QFormat = QFormat(16, 15)

    def __post_init__(self):
        # Accept format strings ("s16.12") as well as QFormat objects.
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, QFormat):
                try:
                    object.__setattr__(self, f.name, QFormat.parse(v, field=f"formats.{f.name}"))
                except (TypeError, ValueError) as e:
                    raise ConfigError(str(e)) from None

    def as_dict(self) -> dict[str, str]:
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict, *, prefix: str = "formats") -> "Formats":
        if not isinstance(d, dict):
            raise ConfigError(f"[{prefix}] must be a table of format strings, got {d!r}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(
                f"[{prefix}] has unknown entries {unknown}; known formats are {sorted(names)}")
        kw = {}
        for k, v in d.items():
            try:
                kw[k] = QFormat.parse(v, field=f"{prefix}.{k}")
            except (TypeError, ValueError) as e:
                raise ConfigError(str(e)) from None
        return cls(**kw)


DEFAULT_FORMATS = Formats()


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value}")
    return int(value)


@dataclass
class Model:
    """A recurrent network ready for generation: cell, sizes, formats, parallelism and float weights.

    Parameters
    ----------
    cell : str
        One of :data:`CELLS` (see :mod:`rnnaccel.golden.cells` for the equations): ``"lstm"``
        (``torch.nn.LSTM``), ``"lstm_nf"`` (no forget gate), ``"gru"`` (``torch.nn.GRU``),
        ``"rnn_tanh"`` / ``"rnn_relu"`` (``torch.nn.RNN``), ``"jordan"`` (Jordan RNN, needs
        ``proj_size``; weights also ``weight_hy_l{k}`` (P, H), ``bias_hy_l{k}`` (P,)). An ``"lstm"`` with
        ``proj_size`` also has ``weight_hr_l{k}`` (P, H) (``torch.nn.LSTM(proj_size=P)``).
        ``"lstm_peephole"`` (Gers & Schmidhuber 2000, :mod:`rnnaccel.golden.peephole`) also has the
        diagonal peepholes ``weight_ci_l{k}``, ``weight_cf_l{k}``, ``weight_co_l{k}`` (H,) and needs
        ``4 * ceil((X_k + H) / simd) >= 6`` (units reach its element-wise stage 6 cycles apart).
    input_size, hidden_size : int
        ``X`` and ``H``.
    weights : dict of str to numpy.ndarray
        PyTorch state_dict names: ``weight_ih_l{k}`` (G*H, X_k), ``weight_hh_l{k}`` (G*H, H),
        ``bias_ih_l{k}`` (G*H,), ``bias_hh_l{k}`` (G*H,) for every layer ``k`` (``G`` gate blocks of the
        cell; ``X_0 = X``, deeper layers read ``H`` or ``2H`` when bidirectional), the same with the
        suffix ``_reverse`` for the backward direction, and ``head.weight`` (head_size, H*dirs) and
        ``head.bias`` (head_size,) for a dense head. Float, finite.
    formats : Formats
    rounding : {"TRN", "RND", "RND_CONV"}
        Rounding of every requantisation step.
    overflow : {"SAT", "WRAP"}
        Overflow of the cell-state and hidden-state steps. Table inputs always saturate (the
        table's range is the saturated input range of the activation).
    pe, simd : int
        Processing elements (rows computed in parallel) and multipliers per PE (columns per
        cycle), for every layer. ``pe`` must divide ``hidden_size`` so that each PE owns whole
        hidden units.
    num_layers : int
        Stacked layers (``torch.nn.*(num_layers=N)``); each layer is its own pipeline stage.
    bidirectional : bool
        A backward layer beside every forward one, outputs concatenated ``[forward; backward]``.
    head_size : int
        Outputs of a dense (linear) head after the stack; 0 for none.
    gate_activation, cand_activation : str
        The gate activation (``sigmoid`` or ``hard_sigmoid``) and the candidate/state activation
        (``tanh``, ``softsign`` or ``hard_tanh``).
    outputs : {"sequence", "last"}
        Stream every timestep's output or only the last step's of each sequence.
    proj_size : int
        Length of the projected recurrent vector (LSTM with projection, Jordan RNN); 0 for none.
    initial_state : bool
        Take ``h0`` (and ``c0``) of every layer from the input stream on the first step of each
        sequence; otherwise sequences start from zero states.
    max_len : int
        Longest sequence a bidirectional layer buffers (hardware ``[hardware] max_len``).
    final_state : bool
        The last output beat of every sequence also carries the final states ``h_n`` (and ``c_n``)
        of every layer and direction.
    schedule : {"pipelined", "compact"}
        Hardware schedule of the layers (:data:`SCHEDULES`, ``[hardware] schedule``); ``compact``
        (``lstm`` / ``lstm_nf`` without projection, initial or final state) trades cycles for
        logic: see :mod:`rnnaccel.hdl.compact`.
    name : str

    Raises
    ------
    ConfigError
        On any impossible value; the message names the field.
    """

    cell: str
    input_size: int
    hidden_size: int
    weights: dict
    formats: Formats = field(default_factory=Formats)
    rounding: str = "RND"
    overflow: str = "SAT"
    pe: int = 1
    simd: int = 1
    name: str = "rnn"
    num_layers: int = 1
    bidirectional: bool = False
    head_size: int = 0
    gate_activation: str = "sigmoid"
    cand_activation: str = "tanh"
    outputs: str = "sequence"
    proj_size: int = 0
    initial_state: bool = False
    max_len: int = 64
    final_state: bool = False
    schedule: str = "pipelined"

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ConfigError(f"model.cell: unknown cell {self.cell!r}; supported: {', '.join(CELLS)}")
        self.input_size = _positive_int(self.input_size, "model.input_size")
        self.hidden_size = _positive_int(self.hidden_size, "model.hidden_size")
        self.num_layers = _positive_int(self.num_layers, "model.num_layers")
        if not isinstance(self.bidirectional, (bool, np.bool_)):
            raise ConfigError(f"model.bidirectional must be true or false, got {self.bidirectional!r}")
        self.bidirectional = bool(self.bidirectional)
        if isinstance(self.head_size, bool) or not isinstance(self.head_size, (int, np.integer)) \
                or self.head_size < 0:
            raise ConfigError(f"model.head_size must be a non-negative integer (0: no dense head), "
                              f"got {self.head_size!r}")
        self.head_size = int(self.head_size)
        if isinstance(self.proj_size, bool) or not isinstance(self.proj_size, (int, np.integer)) \
                or self.proj_size < 0:
            raise ConfigError(f"model.proj_size must be a non-negative integer (0: no projection), "
                              f"got {self.proj_size!r}")
        self.proj_size = int(self.proj_size)
        if not isinstance(self.initial_state, (bool, np.bool_)):
            raise ConfigError(f"model.initial_state must be true or false, got {self.initial_state!r}")
        self.initial_state = bool(self.initial_state)
        if not isinstance(self.final_state, (bool, np.bool_)):
            raise ConfigError(f"model.final_state must be true or false, got {self.final_state!r}")
        self.final_state = bool(self.final_state)
        self.max_len = _positive_int(self.max_len, "hardware.max_len")
        if self.gate_activation not in GATE_ACTIVATIONS:
            raise ConfigError(f"model.gate_activation: unknown {self.gate_activation!r}; "
                              f"choose one of {', '.join(GATE_ACTIVATIONS)}")
        if self.cand_activation not in CAND_ACTIVATIONS:
            raise ConfigError(f"model.cand_activation: unknown {self.cand_activation!r}; "
                              f"choose one of {', '.join(CAND_ACTIVATIONS)}")
        if self.outputs not in OUTPUTS:
            raise ConfigError(f"model.outputs: unknown {self.outputs!r}; choose one of {', '.join(OUTPUTS)}")
        if not isinstance(self.formats, Formats):
            raise ConfigError(f"formats must be a Formats object, got {self.formats!r}")
        if self.rounding not in ROUNDING_MODES:
            raise ConfigError(f"numerics.rounding: unknown rounding mode {self.rounding!r}; "
                              f"expected one of {', '.join(ROUNDING_MODES)}")
        if self.overflow not in OVERFLOW_MODES:
            raise ConfigError(f"numerics.overflow: unknown overflow mode {self.overflow!r}; "
                              f"expected one of {', '.join(OVERFLOW_MODES)}")
        self._check_projection()
        self.pe = _positive_int(self.pe, "hardware.pe")
        self.simd = _positive_int(self.simd, "hardware.simd")
        if self.hidden_size % self.pe:
            divisors = [d for d in range(1, self.hidden_size + 1) if self.hidden_size % d == 0]
            raise ConfigError(
                f"hardware.pe = {self.pe} does not fit the rows: each PE owns whole hidden units, so pe "
                f"must divide hidden_size = {self.hidden_size}; choose one of {divisors}")
        smallest = min(self.layer_input_size(k) for k in range(self.num_layers)) + self.state_size
        if self.simd > smallest:
            raise ConfigError(
                f"hardware.simd = {self.simd} exceeds the vector length input_size + hidden_size = "
                f"{smallest}" + (" of the smallest layer" if self.num_layers > 1 else "")
                + f"; choose simd <= {smallest}")
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"name must be a non-empty string, got {self.name!r}")
        self._check_formats()
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"hardware.schedule: unknown {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.schedule == "compact":
            # The compact layer's own conditions (cells, folds per row against pe): hdl/compact.py.
            from rnnaccel.hdl.compact import check_compact_model
            check_compact_model(self)
        if self.cell == "lstm_peephole":
            # Units must reach the element-wise stage MIN_UNIT_SPACING cycles apart (simd bound);
            # the exact gate pre-activation acc + p*c must fit (rnnaccel.golden.peephole).
            from .peephole import check_peephole_model
            check_peephole_model(self)
        self.weights = self._check_weights(self.weights)

    def __setattr__(self, name, value):
        # Derived objects (layer views, quantised parameters) are cached on the model: a changed
        # field must not leave them stale.
        if name in self.__dataclass_fields__:
            self.__dict__.pop("_layer_cache", None)
            self.__dict__.pop("_golden_cache", None)
        object.__setattr__(self, name, value)

    # -- structure -------------------------------------------------------------------------------
    @property
    def cell_spec(self) -> _cells.Cell:
        """The :class:`~rnnaccel.golden.cells.Cell` (PyTorch gate blocks, hardware rows, state)."""
        return _cells.CELLS[self.cell]

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Length of an output vector: ``head_size`` with a head, else ``H * directions``."""
        return self.head_size or self.state_size * self.directions

    @property
    def is_single_layer(self) -> bool:
        """One unidirectional layer without head (what one layer engine computes)."""
        return self.num_layers == 1 and not self.bidirectional and not self.head_size

    def layer_input_size(self, k: int) -> int:
        """Input length of layer ``k``: ``X`` for the first, ``H * directions`` above."""
        return self.input_size if k == 0 else self.state_size * self.directions

    def layer(self, k: int = 0, reverse: bool = False) -> "Model":
        """Layer ``k`` (backward direction if ``reverse``) as a one-layer model (weights named ``_l0``).

        The golden layer functions and the hardware layer take such one-layer models.
        """
        if not 0 <= k < self.num_layers:
            raise ValueError(f"layer {k} out of range: the model has {self.num_layers} layer(s)")
        if reverse and not self.bidirectional:
            raise ValueError("reverse=True needs a bidirectional model")
        if self.is_single_layer:
            return self
        cache = self.__dict__.setdefault("_layer_cache", {})
        if (k, reverse) not in cache:
            sfx = f"_l{k}" + ("_reverse" if reverse else "")
            # Every per-layer weight (PyTorch's names end in _l{k} or _l{k}_reverse) renamed to _l0.
            w = {name[:-len(sfx)] + "_l0": v for name, v in self.weights.items() if name.endswith(sfx)}
            cache[(k, reverse)] = Model(
                cell=self.cell, input_size=self.layer_input_size(k), hidden_size=self.hidden_size, weights=w,
                formats=self.formats, rounding=self.rounding, overflow=self.overflow, pe=self.pe, simd=self.simd,
                name=f"{self.name}_l{k}" + ("_reverse" if reverse else ""), proj_size=self.proj_size,
                gate_activation=self.gate_activation, cand_activation=self.cand_activation,
                schedule=self.schedule)
        return cache[(k, reverse)]

    def layers(self) -> list[list["Model"]]:
        """``layers()[k]`` = the one-layer models of layer ``k`` (forward, then backward)."""
        return [[self.layer(k, d == 1) for d in range(self.directions)] for k in range(self.num_layers)]

    # -- derived sizes (of layer 0; use :meth:`layer` for the others) ----------------------------
    @property
    def gates(self) -> tuple[str, ...]:
        """Names of the matrix-vector rows of one hidden unit, in hardware order."""
        return tuple(r.name for r in self.cell_spec.rows)

    @property
    def state_size(self) -> int:
        """Length of the recurrent vector ``h_t`` that is fed back and passed on: ``proj_size`` when
        the cell projects it (LSTM with projection, Jordan RNN), else ``hidden_size``."""
        return self.proj_size or self.hidden_size

    @property
    def vector_size(self) -> int:
        """Length ``N = X + H`` (``X + proj_size`` with a projection) of ``[x_t; h_{t-1}]``."""
        return self.input_size + self.state_size

    @property
    def rows(self) -> int:
        """Rows of the matrix-vector pass: ``len(gates) * H``."""
        return len(self.gates) * self.hidden_size

    @property
    def folds(self) -> int:
        """SIMD chunks of the whole vector ``[x_t; h_{t-1}]``: ``ceil(N / simd)``."""
        return math.ceil(self.vector_size / self.simd)

    def fold_range(self, part: str) -> tuple[int, int]:
        """Chunks ``[start, stop)`` of ``[x_t; h_{t-1}]`` that a row reading ``part`` visits.

        ``"xh"``: all; ``"x"``: those holding x_t; ``"h"``: those holding h_{t-1} (the chunk that
        holds both is visited by both, with zero weights on the other part).
        """
        X, s = self.input_size, self.simd
        return {"xh": (0, self.folds), "x": (0, math.ceil(X / s)), "h": (X // s, self.folds)}[part]

    @property
    def fold_ranges(self) -> tuple[tuple[int, int], ...]:
        """:meth:`fold_range` of every row of a hidden unit, in hardware order."""
        return tuple(self.fold_range(r.part) for r in self.cell_spec.rows)

    @property
    def beats_per_unit(self) -> int:
        """Matrix-vector beats per hidden unit (sum of the rows' chunk counts)."""
        return sum(b - a for a, b in self.fold_ranges)

    @property
    def rows_per_pe(self) -> int:
        return self.rows // self.pe

    @property
    def accumulator(self) -> QFormat:
        """Format of the matrix-vector accumulator: exact for ``N`` products plus the bias."""
        f = self.formats
        bound = self.vector_size * (1 << (f.data.width - 1)) * (1 << (f.weight.width - 1))
        bound += 1 << (self.bias.width - 1)
        # Sums lie in [-bound, bound - 1]: the smallest two's complement width holding them
        # (bound.bit_length() + 1 would waste a bit whenever bound is a power of two).
        return QFormat((bound - 1).bit_length() + 1, f.data.frac + f.weight.frac)

    @property
    def bias(self) -> QFormat:
        """Format of the summed bias: accumulator precision, as many integer bits as a product."""
        f = self.formats
        return QFormat(f.data.width + f.weight.width, f.data.frac + f.weight.frac)

    @property
    def head_accumulator(self) -> QFormat:
        """Accumulator format of the dense head (``H * directions`` products plus the bias)."""
        f = self.formats
        bound = self.state_size * self.directions * (1 << (f.data.width - 1)) * (1 << (f.weight.width - 1))
        bound += 1 << (self.bias.width - 1)
        return QFormat((bound - 1).bit_length() + 1, f.data.frac + f.weight.frac)

    @property
    def projection_accumulator(self) -> QFormat:
        """Accumulator format of the projection pass (``proj_size`` rows over the ``H`` element-wise
        results: LSTM ``W_hr m_t``, Jordan ``W_hy h_t + b_hy``): ``H`` products plus the bias, exact."""
        f = self.formats
        bound = self.hidden_size * (1 << (f.data.width - 1)) * (1 << (f.weight.width - 1))
        bound += 1 << (self.bias.width - 1)
        return QFormat((bound - 1).bit_length() + 1, f.data.frac + f.weight.frac)

    def _check_projection(self):
        """``proj_size``: optional for ``lstm`` (``0 < P < H``, as torch requires), required for ``jordan``
        (its output y_t, any length > 0), 0 for every other cell; its accumulator fits the model."""
        P, H = self.proj_size, self.hidden_size
        if self.cell == "jordan" and not P:
            raise ConfigError("model.proj_size = 0: the jordan cell feeds back its output y_t, whose length "
                              "is proj_size; set proj_size > 0")
        if P and self.cell not in ("lstm", "jordan"):
            raise ConfigError(f"model.proj_size = {P}: cell {self.cell!r} has no projection (only 'lstm', as "
                              f"torch.nn.LSTM(proj_size=...), and 'jordan' have one); use proj_size = 0")
        if P and self.cell == "lstm" and P >= H:
            raise ConfigError(f"model.proj_size = {P} must be smaller than hidden_size = {H} (as in "
                              f"torch.nn.LSTM); choose proj_size from 1 to {H - 1}, or 0 for no projection")
        if P and self.projection_accumulator.width > 62:
            raise ConfigError(
                f"the projection accumulator needs {self.projection_accumulator.width} bits for data "
                f"{self.formats.data} x weight {self.formats.weight} over hidden_size = {H} terms, more "
                f"than the 62 the model supports; narrow the data or weight format")

    # -- validation ----------------------------------------------------------------------------
    def _check_formats(self):
        f = self.formats
        for name in ("data", "weight", "cell", "sigmoid_in", "tanh_in", "tanh_out"):
            fmt = getattr(f, name)
            if not fmt.signed:
                raise ConfigError(f"formats.{name} = {fmt} must be signed (write it as s{fmt.width}.{fmt.frac})")
        for name in ("sigmoid_in", "tanh_in"):
            fmt = getattr(f, name)
            if not 2 <= fmt.width <= 16:
                raise ConfigError(
                    f"formats.{name} = {fmt}: the table index width sets the table depth 2**(width-1); "
                    f"use a width from 2 to 16")
        for fld in fields(f):
            fmt = getattr(f, fld.name)
            if not 0 <= fmt.frac <= fmt.width:
                raise ConfigError(f"formats.{fld.name} = {fmt} has frac outside 0..width")
            if fmt.width > 32:
                raise ConfigError(f"formats.{fld.name} = {fmt} is wider than 32 bits; use width <= 32")
        for name in ("sigmoid_out", "tanh_out"):
            fmt = getattr(f, name)
            if fmt.frac > fmt.width - int(fmt.signed):
                raise ConfigError(
                    f"formats.{name} = {fmt} cannot hold 0.5 and above; with a sign bit use frac <= width - 1 "
                    f"(e.g. s16.15), or make it unsigned (u16.16)")
        if f.sigmoid_out.int_bits > 1 + int(f.sigmoid_out.signed):
            raise ConfigError(
                f"formats.sigmoid_out = {f.sigmoid_out} wastes integer bits on values in [0, 1]; give it "
                f"at most one integer bit (e.g. u16.16, u16.15 or s16.14)")
        if f.tanh_out.int_bits > 2:
            raise ConfigError(
                f"formats.tanh_out = {f.tanh_out} wastes integer bits on values in (-1, 1); give it at "
                f"most sign plus one integer bit (e.g. s16.15 or s16.14)")
        widest = max(self.layer_input_size(k) for k in range(self.num_layers)) + self.state_size
        bound = widest * (1 << (f.data.width - 1)) * (1 << (f.weight.width - 1)) + (1 << (self.bias.width - 1))
        need = (bound - 1).bit_length() + 1
        if need > 62:
            raise ConfigError(
                f"the accumulator needs {need} bits for data {f.data} x weight "
                f"{f.weight} over {widest} terms, more than the 62 the model supports; "
                f"narrow the data or weight format")

    def layer_weight_shapes(self, x: int) -> dict[str, tuple[int, ...]]:
        """Shapes of one layer's weights (names without the ``_l{k}`` suffix) for input length ``x``.

        ``weight_hh`` reads the recurrent vector (``state_size`` long). Cells with more parameters
        (e.g. peepholes, projections) add theirs here.
        """
        r = self.cell_spec.gate_blocks * self.hidden_size
        shapes = {"weight_ih": (r, x), "weight_hh": (r, self.state_size), "bias_ih": (r,), "bias_hh": (r,)}
        if self.cell == "lstm" and self.proj_size:
            # torch.nn.LSTM(proj_size=P): h_t = W_hr m_t, no bias.
            shapes["weight_hr"] = (self.proj_size, self.hidden_size)
        if self.cell == "jordan":
            # y_t = phi(W_hy h_t + b_hy).
            shapes |= {"weight_hy": (self.proj_size, self.hidden_size), "bias_hy": (self.proj_size,)}
        if self.cell == "lstm_peephole":
            # Diagonal peephole weights p_i, p_f, p_o (Gers & Schmidhuber 2000).
            shapes |= {name: (self.hidden_size,) for name in ("weight_ci", "weight_cf", "weight_co")}
        return shapes

    def _expected_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = {}
        for k in range(self.num_layers):
            x = self.layer_input_size(k)
            for sfx in [f"_l{k}"] + ([f"_l{k}_reverse"] if self.bidirectional else []):
                shapes |= {f"{name}{sfx}": shape for name, shape in self.layer_weight_shapes(x).items()}
        if self.head_size:
            shapes |= {"head.weight": (self.head_size, self.state_size * self.directions),
                       "head.bias": (self.head_size,)}
        return shapes

    def _check_weights(self, weights) -> dict[str, np.ndarray]:
        if not hasattr(weights, "keys"):
            raise ConfigError(f"weights must be a mapping of PyTorch state_dict names to arrays, got "
                              f"{type(weights).__name__}")
        expected = self._expected_shapes()
        missing = [k for k in expected if k not in weights]
        if missing:
            raise ConfigError(
                f"weights: missing {missing}; this {self.cell} model ({self.num_layers} layer(s), "
                f"{self.directions} direction(s), head_size {self.head_size}) needs {sorted(expected)} "
                f"(PyTorch names)")
        unknown = sorted(set(weights) - set(expected))
        if unknown:
            raise ConfigError(f"weights: unexpected entries {unknown}; expected exactly {sorted(expected)}")
        out = {}
        for k, shape in expected.items():
            a = np.asarray(weights[k])
            if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
                raise ConfigError(f"weights.{k}: expected real numbers, got dtype {a.dtype}")
            a = a.astype(np.float64)
            if a.shape != shape:
                raise ConfigError(
                    f"weights.{k}: shape {a.shape}, expected {shape} for input_size={self.input_size}, "
                    f"hidden_size={self.hidden_size} ({self.cell}: {self.cell_spec.gate_blocks} gate blocks "
                    f"x hidden_size rows)")
            bad = ~np.isfinite(a)
            if bad.any():
                idx = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ConfigError(
                    f"weights.{k}: {int(bad.sum())} non-finite value(s), first {a[idx]} at index {idx}; "
                    f"weights must be finite numbers")
            out[k] = a
        return out

    # -- views -----------------------------------------------------------------------------------
    def summary(self) -> dict:
        """Plain-data description (formats, sizes, parallelism), for ``summary.json``."""
        return {
            "name": self.name,
            "cell": self.cell,
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "output_size": self.output_size,
            "state_size": self.state_size,
            "formats": self.formats.as_dict() | {"accumulator": str(self.accumulator),
                                                 "bias": str(self.bias)},
            "rounding": self.rounding,
            "overflow": self.overflow,
            "pe": self.pe,
            "simd": self.simd,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "head_size": self.head_size,
            "gate_activation": self.gate_activation,
            "cand_activation": self.cand_activation,
            "outputs": self.outputs,
            "proj_size": self.proj_size,
            "initial_state": self.initial_state,
            "final_state": self.final_state,
            "max_len": self.max_len,
            "schedule": self.schedule,
        }

    def with_hardware(self, *, pe: int | None = None, simd: int | None = None,
                      schedule: str | None = None) -> "Model":
        """A copy with other parallelism or schedule (validated again)."""
        return replace(self, pe=self.pe if pe is None else pe, simd=self.simd if simd is None else simd,
                       schedule=self.schedule if schedule is None else schedule, weights=dict(self.weights))

    def with_formats(self, **formats) -> "Model":
        """A copy with some formats replaced, e.g. ``m.with_formats(weight="s8.6")``."""
        kw = {k: QFormat.parse(v, field=f"formats.{k}") for k, v in formats.items()}
        return replace(self, formats=replace(self.formats, **kw), weights=dict(self.weights))


# -- TOML + npz -------------------------------------------------------------------------------------
_TOP_KEYS = {"name", "model", "formats", "numerics", "hardware"}
_MODEL_KEYS = {"cell", "input_size", "hidden_size", "weights", "num_layers", "bidirectional", "head_size",
               "gate_activation", "cand_activation", "outputs", "proj_size", "initial_state",
               "final_state"}
_MODEL_OPTIONS = ("num_layers", "bidirectional", "head_size", "gate_activation", "cand_activation", "outputs",
                  "proj_size", "initial_state", "final_state")


def _table(cfg: dict, key: str) -> dict:
    t = cfg.get(key, {})
    if not isinstance(t, dict):
        raise ConfigError(f"[{key}] must be a table, got {t!r}")
    return t


def _check_keys(table: dict, allowed: set, where: str):
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown entries {unknown}; allowed: {sorted(allowed)}")


def from_dict(cfg: dict, weights: dict | None = None, *, base: Path | None = None) -> Model:
    """Build a :class:`Model` from a parsed config (the TOML layout) and optional weights.

    If ``weights`` is None the config's ``model.weights`` names an ``.npz`` file, relative to ``base``.
    """
    _check_keys(cfg, _TOP_KEYS, "config")
    m = _table(cfg, "model")
    _check_keys(m, _MODEL_KEYS, "[model]")
    for key in ("cell", "input_size", "hidden_size"):
        if key not in m:
            raise ConfigError(f"model.{key} is missing; [model] needs cell, input_size, hidden_size and weights")
    numerics = _table(cfg, "numerics")
    _check_keys(numerics, {"rounding", "overflow"}, "[numerics]")
    hw = _table(cfg, "hardware")
    _check_keys(hw, {"pe", "simd", "max_len", "schedule"}, "[hardware]")
    if weights is None:
        if "weights" not in m:
            raise ConfigError("model.weights is missing: name the .npz file with the layer's weights")
        path = Path(m["weights"])
        if not path.is_absolute() and base is not None:
            path = base / path
        if not path.exists():
            raise ConfigError(f"model.weights: file {str(path)!r} does not exist")
        try:
            with np.load(path, allow_pickle=False) as npz:
                weights = {k: npz[k] for k in npz.files}
        except Exception as e:  # a corrupt file: say which one
            raise ConfigError(f"model.weights: cannot read {str(path)!r} as .npz: {e}") from None
    return Model(
        cell=m["cell"], input_size=m["input_size"], hidden_size=m["hidden_size"], weights=weights,
        formats=Formats.from_dict(_table(cfg, "formats")),
        rounding=numerics.get("rounding", "RND"), overflow=numerics.get("overflow", "SAT"),
        pe=hw.get("pe", 1), simd=hw.get("simd", 1), max_len=hw.get("max_len", 64),
        schedule=hw.get("schedule", "pipelined"), name=cfg.get("name", Path(base or ".").name or "rnn"),
        **{k: m[k] for k in _MODEL_OPTIONS if k in m},
    )


def load(path) -> Model:
    """Load a model description from a TOML config plus its ``.npz`` of weights.

    Raises
    ------
    ConfigError
        If the file is not valid TOML or any value is impossible; the message names the field.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        cfg = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    cfg.setdefault("name", path.stem)
    return from_dict(cfg, base=path.parent)


def to_dict(model: Model, weights_file: str) -> dict:
    return {
        "name": model.name,
        "model": {"cell": model.cell, "input_size": model.input_size, "hidden_size": model.hidden_size,
                  "weights": weights_file} | {k: getattr(model, k) for k in _MODEL_OPTIONS},
        "formats": model.formats.as_dict(),
        "numerics": {"rounding": model.rounding, "overflow": model.overflow},
        "hardware": {"pe": model.pe, "simd": model.simd, "max_len": model.max_len, "schedule": model.schedule},
    }


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    # A JSON string is a valid TOML basic string (same escapes, \uXXXX included).
    return json.dumps(str(v))


def save(model: Model, path) -> Path:
    """Write ``path`` (TOML) and the weights beside it (same stem, ``.npz``); returns the TOML path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    npz = path.with_suffix(".npz")
    np.savez(npz, **model.weights)
    d = to_dict(model, npz.name)
    lines = [f"name = {_toml_value(d['name'])}", ""]
    for section in ("model", "formats", "numerics", "hardware"):
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in d[section].items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def random_weights(input_size: int, hidden_size: int, *, scale: float = 0.5, seed: int = 0,
                   cell: str = "lstm", num_layers: int = 1, bidirectional: bool = False,
                   head_size: int = 0, proj_size: int = 0) -> dict[str, np.ndarray]:
    """Uniform random weights in ``[-scale, scale]`` under PyTorch's names, for trials and tests.

    ``scale`` around 0.3 gives gates that neither all saturate nor all sit at 0.5, like trained
    weights of a layer of this size. The names and shapes are those :class:`Model` expects
    (with ``proj_size``: ``weight_hr_l{k}`` for ``lstm``, ``weight_hy_l{k}`` / ``bias_hy_l{k}`` for
    ``jordan``; ``weight_hh`` and the next layer's input then have ``proj_size`` columns).
    """
    if cell not in CELLS:
        raise ConfigError(f"model.cell: unknown cell {cell!r}; supported: {', '.join(CELLS)}")
    rng = np.random.default_rng(seed)
    rows = len(GATES[cell]) * hidden_size
    dirs = 2 if bidirectional else 1
    state = proj_size or hidden_size
    out = {}
    for k in range(num_layers):
        x = input_size if k == 0 else state * dirs
        for sfx in [f"_l{k}"] + ([f"_l{k}_reverse"] if bidirectional else []):
            out |= {f"weight_ih{sfx}": rng.uniform(-scale, scale, (rows, x)),
                    f"weight_hh{sfx}": rng.uniform(-scale, scale, (rows, state)),
                    f"bias_ih{sfx}": rng.uniform(-scale, scale, rows),
                    f"bias_hh{sfx}": rng.uniform(-scale, scale, rows)}
            if proj_size and cell == "lstm":
                out[f"weight_hr{sfx}"] = rng.uniform(-scale, scale, (proj_size, hidden_size))
            if proj_size and cell == "jordan":
                out |= {f"weight_hy{sfx}": rng.uniform(-scale, scale, (proj_size, hidden_size)),
                        f"bias_hy{sfx}": rng.uniform(-scale, scale, proj_size)}
            if cell == "lstm_peephole":
                out |= {f"{name}{sfx}": rng.uniform(-scale, scale, hidden_size)
                        for name in ("weight_ci", "weight_cf", "weight_co")}
    if head_size:
        out |= {"head.weight": rng.uniform(-scale, scale, (head_size, state * dirs)),
                "head.bias": rng.uniform(-scale, scale, head_size)}
    return out
