"""Activation table unit (sigmoid / tanh), initialised from :func:`rnnaccel.golden.activation.make_table`."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from rnnaccel.golden.activation import Table

from .fixed import shape_of
from .perf import TABLE_LATENCY
from ._util import checked_init

__all__ = ["ActivationTable"]


class ActivationTable(wiring.Component):
    """Half-table lookup with symmetry; mirrors :func:`rnnaccel.golden.activation.activation`.

    Parameters
    ----------
    table : Table
        Contents (the memory's ``init``), index and output formats.
    apply_symmetry : bool
        If false (tanh only), the output is the magnitude ``|tanh|`` and the consumer applies the
        sign of the index, e.g. to the other factor of a product (one negation fewer in its path).

    Attributes
    ----------
    i_stream : In(stream.Signature(signed(in_fmt.width), always_ready=True))
        Index codes (the pre-activation requantised to ``table.in_fmt``, combinationally: the
        unit registers its input).
    o_stream : Out(stream.Signature(shape_of(out_fmt), always_ready=True))
        Activated codes.

    Notes
    -----
    Latency ``TABLE_LATENCY`` = 3 cycles (index register, synchronous memory read, data register;
    the symmetry, one subtraction or negation and a multiplexer, follows the data register
    combinationally, so the block RAM output path has no logic);
    throughput one value per cycle. One memory of ``2**(in_fmt.width - 1)`` words.
    """

    @checked_init
    def __init__(self, table: Table, *, apply_symmetry: bool = True):
        if not isinstance(table, Table):
            raise TypeError(f"ActivationTable needs a golden Table, got {table!r}")
        if not apply_symmetry and table.function != "tanh":
            raise ValueError(f"only an odd function's table (tanh) can leave the sign to the consumer, "
                             f"not {table.function!r}")
        self.table = table
        self.apply_symmetry = apply_symmetry
        self.latency = TABLE_LATENCY
        super().__init__({
            "i_stream": In(stream.Signature(signed(table.in_fmt.width), always_ready=True)),
            "o_stream": Out(stream.Signature(shape_of(table.out_fmt), always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        t = self.table
        m.submodules.mem = mem = memory.Memory(shape=shape_of(t.out_fmt), depth=t.depth,
                                               init=[int(v) for v in t.values])
        rd = mem.read_port()
        # Stage 1: index register. Stage 2: memory read (address = clamped magnitude).
        idx = Signal.like(self.i_stream.payload)
        valid_i = Signal()
        m.d.sync += [idx.eq(self.i_stream.payload), valid_i.eq(self.i_stream.valid)]
        neg = idx < 0
        mag = Mux(neg, -idx, idx)
        m.d.comb += rd.addr.eq(Mux(mag > t.depth - 1, t.depth - 1, mag))
        neg_d = Signal()
        valid_d = Signal()
        m.d.sync += [neg_d.eq(neg), valid_d.eq(valid_i)]
        # Stage 3: the memory word goes straight into a register (no logic behind the block RAM's
        # slow clock-to-output); the symmetry is applied after it, in the consumer's cycle.
        data = Signal.like(rd.data)
        neg_o = Signal()
        m.d.sync += [data.eq(rd.data), neg_o.eq(neg_d), self.o_stream.valid.eq(valid_d)]
        if not self.apply_symmetry:
            value = data
        elif t.function == "sigmoid":
            value = Mux(neg_o, t.one - data, data)
        else:
            value = Mux(neg_o, -data, data)
        m.d.comb += self.o_stream.payload.eq(value)
        return m
