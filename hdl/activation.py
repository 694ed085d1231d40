"""Activation units: tables (sigmoid, tanh, softsign) and piecewise-linear units (hard_sigmoid, hard_tanh).

:func:`activation_unit` makes the hardware of a golden unit from
:func:`rnnaccel.golden.activation.make_activation`: an :class:`ActivationTable` (memory initialised
from :func:`~rnnaccel.golden.activation.make_table`) or a :class:`PiecewiseLinearUnit`. Both have the
same ports and the same latency (``TABLE_LATENCY``), so either fits the same pipeline slot.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from rnnaccel.golden.activation import FUNCTIONS, TANH_LIKE, PiecewiseLinear, Table

from .dsp import registered_rom
from .fixed import shape_of
from .perf import TABLE_LATENCY
from ._util import checked_init

__all__ = ["ActivationTable", "PiecewiseLinearUnit", "activation_unit"]


class ActivationTable(wiring.Component):
    """Half-table lookup with symmetry; mirrors :func:`rnnaccel.golden.activation.activation`.

    Parameters
    ----------
    table : Table
        Contents (the memory's ``init``), index and output formats.
    apply_symmetry : bool
        If false (odd functions only: tanh, softsign), the output is the magnitude ``|f|`` and the
        consumer applies the sign of the index (negative exactly when the index is negative), e.g.
        to the other factor of a product (one negation fewer in its path).

    Attributes
    ----------
    i_stream : In(stream.Signature(signed(in_fmt.width), always_ready=True))
        Index codes (the pre-activation requantised to ``table.in_fmt``, combinationally: the
        unit registers its input).
    o_stream : Out(stream.Signature(shape_of(out_fmt), always_ready=True))
        Activated codes.

    Notes
    -----
    ``unit`` (and ``table``) is the golden :class:`~rnnaccel.golden.activation.Table`.

    Latency ``TABLE_LATENCY`` = 5 cycles (index register, address register, synchronous memory read, data register:
    :func:`~rnnaccel.hdl.dsp.registered_rom`, on ECP5 the block RAM's own output register, then a
    fabric register, so the long route out of the block RAM row ends in a register; the symmetry,
    one subtraction or negation and a multiplexer, follows combinationally);
    throughput one value per cycle. One memory of ``2**(in_fmt.width - 1)`` words.
    """

    @checked_init
    def __init__(self, table: Table, *, apply_symmetry: bool = True):
        if not isinstance(table, Table):
            raise TypeError(f"ActivationTable needs a golden Table, got {table!r}")
        if not apply_symmetry and not table.odd:
            odd_tables = ", ".join(f for f in FUNCTIONS if f in TANH_LIKE)
            raise ValueError(f"only an odd function's table ({odd_tables}) can leave the sign to the consumer, "
                             f"not {table.function!r}")
        self.table = table
        self.unit = table
        self.apply_symmetry = apply_symmetry
        self.latency = TABLE_LATENCY
        super().__init__({
            "i_stream": In(stream.Signature(signed(table.in_fmt.width), always_ready=True)),
            "o_stream": Out(stream.Signature(shape_of(table.out_fmt), always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        t = self.table
        # Stage 1: index register. Stage 2: address register (the clamped magnitude) and sign.
        # Stage 3: memory read. Stage 4: the memory word goes straight into a register (no logic
        # behind the block RAM's slow clock-to-output; on ECP5 the block RAM's own output register,
        # hdl/dsp.py). Stage 5: a fabric register (below); the symmetry is applied after it, in the
        # consumer's cycle. The address
        # register keeps the magnitude and clamp logic out of the route to the block RAMs (a table
        # of 2048 x 16 is two DP16KD, which the placer may put far apart).
        idx = Signal.like(self.i_stream.payload, reset_less=True)
        valid_i = Signal()
        # The table has 2**(width - 1) words, so only the most negative index has a magnitude
        # beyond it: that test is registered beside the index, and the address register sees
        # one carry chain (the negation) and a multiplexer.
        over = Signal(name="idx_over", reset_less=True)
        if t.depth != 1 << (t.in_fmt.width - 1):
            raise RuntimeError(f"ActivationTable assumes a 2**(width-1)-word table, got {t.depth} words "
                               f"for {t.in_fmt}")
        m.d.sync += [idx.eq(self.i_stream.payload), valid_i.eq(self.i_stream.valid),
                     over.eq(self.i_stream.payload == t.in_fmt.min_code)]
        neg = idx < 0
        addr = Signal(range(t.depth), name="addr", reset_less=True)
        neg_a, valid_a = Signal(), Signal()
        m.d.sync += [addr.eq(Mux(over, t.depth - 1, Mux(neg, -idx, idx))), neg_a.eq(neg), valid_a.eq(valid_i)]
        rom = registered_rom(m, [int(v) for v in t.values], shape_of(t.out_fmt), addr, name="mem")
        # Stage 5: a fabric register straight behind the block RAM's (the route out of the block RAM
        # row is long on ECP5, so it gets a cycle of its own, without logic).
        data = Signal(shape_of(t.out_fmt), name="data", reset_less=True)
        m.d.sync += data.eq(rom)
        neg_d, neg_r, neg_o, valid_d, valid_r = Signal(), Signal(), Signal(), Signal(), Signal()
        m.d.sync += [neg_d.eq(neg_a), valid_d.eq(valid_a), neg_r.eq(neg_d), valid_r.eq(valid_d),
                     neg_o.eq(neg_r), self.o_stream.valid.eq(valid_r)]
        if not self.apply_symmetry:
            value = data
        elif t.function == "sigmoid":
            value = Mux(neg_o, t.one - data, data)
        else:
            value = Mux(neg_o, -data, data)
        m.d.comb += self.o_stream.payload.eq(value)
        return m


class PiecewiseLinearUnit(wiring.Component):
    """Piecewise-linear activation (hard_sigmoid, hard_tanh) without memory; mirrors
    :meth:`rnnaccel.golden.activation.PiecewiseLinear.evaluate` (see
    :class:`~rnnaccel.golden.activation.PiecewiseLinear` for the definition).

    A drop-in replacement of :class:`ActivationTable`: the same ports and the same latency.

    Parameters
    ----------
    unit : PiecewiseLinear
        Function, formats and slope constant.
    apply_symmetry : bool
        If false (odd functions only: hard_tanh), the output is the magnitude ``|f|`` and the
        consumer applies the sign of the index (negative exactly when the index is negative).

    Attributes
    ----------
    i_stream : In(stream.Signature(signed(in_fmt.width), always_ready=True))
        Index codes (the pre-activation requantised to ``unit.in_fmt``, combinationally: the unit
        registers its input).
    o_stream : Out(stream.Signature(shape_of(out_fmt), always_ready=True))
        Activated codes, straight from a register.
    unit, table : PiecewiseLinear
        The golden description (``table`` is an alias, for code written against
        :class:`ActivationTable`).

    Notes
    -----
    Latency ``TABLE_LATENCY`` = 5 cycles, throughput one value per cycle:

    1. index register (also the multiplier's input register);
    2. product register: ``index * mul`` (hard_sigmoid: one constant multiplier of
       ``unit.mul.bit_length()`` bits, both sides registered) or, for hard_tanh, the clipped
       magnitude of the index (no multiplier);
    3. sum register: product plus one constant (``offset`` and the rounding half), shift;
    4. output register: clamp to ``[lo, hi]``, and the sign for odd functions with ``apply_symmetry``;
    5. a second output register (the table's latency).

    No memory.
    """

    @checked_init
    def __init__(self, unit: PiecewiseLinear, *, apply_symmetry: bool = True):
        if not isinstance(unit, PiecewiseLinear):
            raise TypeError(f"PiecewiseLinearUnit needs a golden PiecewiseLinear, got {unit!r}")
        if not apply_symmetry and not unit.odd:
            raise ValueError(f"only an odd function (hard_tanh) can leave the sign to the consumer, "
                             f"not {unit.function!r}")
        self.unit = self.table = unit
        self.apply_symmetry = apply_symmetry
        self.latency = TABLE_LATENCY
        super().__init__({
            "i_stream": In(stream.Signature(signed(unit.in_fmt.width), always_ready=True)),
            "o_stream": Out(stream.Signature(shape_of(unit.out_fmt), always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        u = self.unit
        # Stage 1: index register (the multiplier's input register).
        idx = Signal.like(self.i_stream.payload, reset_less=True)
        v1 = Signal()
        m.d.sync += [idx.eq(self.i_stream.payload), v1.eq(self.i_stream.valid)]
        # Stage 2: product register (for odd functions: on the magnitude, clipped like a table address).
        if u.odd:
            mag = Mux(idx < 0, -idx, idx)
            a = Mux(mag > u.in_fmt.max_code, u.in_fmt.max_code, mag)[:u.in_fmt.width - 1]
        else:
            a = idx
        prod = Signal((a * u.mul).shape() if u.mul != 1 else a.shape(), name="prod", reset_less=True)
        neg2, v2 = Signal(), Signal()
        m.d.sync += [prod.eq(a * u.mul if u.mul != 1 else a), neg2.eq(idx < 0), v2.eq(v1)]
        # Stage 3: one constant and the shift -> sum register. RND of the golden model is
        # (v + half) >> shift, and the half is folded into the offset constant (one adder).
        if u.shift > 0:
            r_val = (prod + (u.offset + (1 << (u.shift - 1)))) >> u.shift
        else:
            r_val = (prod + u.offset) << -u.shift
        r = Signal(r_val.shape(), name="sum", reset_less=True)
        neg3, v3 = Signal(), Signal()
        m.d.sync += [r.eq(r_val), neg3.eq(neg2), v3.eq(v2)]
        # Stage 4: clamp and sign -> output register. Stage 5: a second output register (the table's
        # latency: its block RAM output has a fabric register of its own).
        g = Mux(r > u.hi, u.hi, Mux(r < u.lo, u.lo, r))
        if u.odd and self.apply_symmetry:
            g = Mux(neg3, -g, g)
        out4, v4 = Signal(shape_of(u.out_fmt), name="out4", reset_less=True), Signal()
        m.d.sync += [out4.eq(g), v4.eq(v3)]
        m.d.sync += [self.o_stream.payload.eq(out4), self.o_stream.valid.eq(v4)]
        return m


def activation_unit(unit: "Table | PiecewiseLinear", *, apply_symmetry: bool = True
                    ) -> "ActivationTable | PiecewiseLinearUnit":
    """The hardware of a golden activation unit (from :func:`rnnaccel.golden.activation.make_activation`).

    Parameters
    ----------
    unit : Table or PiecewiseLinear
    apply_symmetry : bool
        False leaves the sign to the consumer (odd functions only: tanh, softsign, hard_tanh).

    Returns
    -------
    ActivationTable or PiecewiseLinearUnit
        Same ports, same latency ``TABLE_LATENCY``.

    Raises
    ------
    TypeError
        If ``unit`` is neither.
    """
    if isinstance(unit, Table):
        return ActivationTable(unit, apply_symmetry=apply_symmetry)
    if isinstance(unit, PiecewiseLinear):
        return PiecewiseLinearUnit(unit, apply_symmetry=apply_symmetry)
    raise TypeError(f"activation_unit needs a golden Table or PiecewiseLinear "
                    f"(rnnaccel.golden.activation.make_activation), got {unit!r}")
