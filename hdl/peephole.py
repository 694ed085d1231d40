"""The peephole LSTM's element-wise stage (cell ``"lstm_peephole"``, Gers & Schmidhuber 2000).

The layer is the common :class:`rnnaccel.hdl.layer.RecurrentLayer`: its matrix-vector unit
computes the rows ``i, f, g, o`` of every hidden unit, the gate activation passes ``i``, ``f``,
``o`` through as raw accumulators (row activation ``"raw"``) and applies the candidate unit to
``g``, and :class:`PeepholeLSTMElementwise` adds the peephole products ``p*c`` to the gate
accumulators before the gate units. Equations and fixed-point definition:
:mod:`rnnaccel.golden.peephole`.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, Value, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from rnnaccel.golden import layer as golden_layer
from rnnaccel.golden.fixed import QFormat
from rnnaccel.golden.model import Model
from rnnaccel.golden.peephole import MIN_UNIT_SPACING, peephole_formats, peephole_parameters

from .activation import activation_unit
from .fixed import align, requantize, shape_of
from .perf import TABLE_LATENCY, elementwise_latency
from ._util import checked_init

__all__ = ["PeepholeLSTMElementwise", "STATE_SPACING"]

#: Cycles from reading a unit's cell state (on entry) to the first cycle its new value can be read:
#: peephole products (1), gate units (TABLE_LATENCY), products f*c and i*g (1), cell-state register (1).
STATE_SPACING = 1 + TABLE_LATENCY + 2


class PeepholeLSTMElementwise(wiring.Component):
    """Element-wise peephole LSTM stage of one PE lane, holding the cell states of its hidden units.

    Mirrors :func:`rnnaccel.golden.peephole.peephole_elementwise`::

        i = sigma_unit(requantize(acc_i + p_i*c_prev, sigmoid_in, SAT))     (f likewise)
        c = requantize(f*c_prev + i*g, cell)
        o = sigma_unit(requantize(acc_o + p_o*c, sigmoid_in, SAT))
        h = requantize(o * phi(requantize(c, tanh_in, SAT)), data)

    with every sum exact (``acc`` and ``p*c`` aligned to ``max`` of their fractional bits).

    Units must arrive in order ``0, 1, .., units-1`` (every timestep visits each unit once, as the
    matrix-vector unit produces them) and at least :data:`STATE_SPACING` = 6 cycles apart
    (``rnnaccel.golden.peephole.MIN_UNIT_SPACING``): the cell states rotate through a register
    chain whose head is the current unit's state, and a unit's new state is written at the tail
    6 cycles after its old one was read. The layer delivers a unit every ``beats_per_unit =
    4 * ceil((X + H) / simd)`` cycles, which :class:`~rnnaccel.golden.model.Model` checks.

    Parameters
    ----------
    model : Model
        A one-layer ``lstm_peephole`` model.
    units : int
        Hidden units of this lane: ``hidden_size // pe``.
    lane : int
        The PE lane (0 .. pe-1): local unit ``u`` is hidden unit ``u * pe + lane``, whose peephole
        weights the lane's ROM holds. :class:`~rnnaccel.hdl.layer.RecurrentLayer` sets it before
        elaboration.

    Attributes
    ----------
    i_stream : In(stream.Signature(StructLayout({"i", "f", "g", "o", "unit"}), always_ready=True))
        ``i``, ``f``, ``o``: raw accumulators (``signed(accumulator.width)``); ``g`` in ``tanh_out``.
    o_stream : Out(stream.Signature(StructLayout({"h", "unit"}), always_ready=True))
    load, load_data : In(1), In(ArrayLayout(cell, units))
        Loads every cell state at once (the start of a sequence: zeros or ``c0``) and restarts the
        unit counter of the peephole ROM.

    Notes
    -----
    Latency ``6 + 2 * TABLE_LATENCY`` = 16 cycles
    (:func:`~rnnaccel.hdl.perf.elementwise_latency`): peephole products p_i*c and p_f*c, i and f
    gate units (``TABLE_LATENCY``), products f*c and i*g, cell state (written back to the chain), p_o*c_t, o gate
    unit beside the candidate unit phi(c_t), o*phi(c_t), hidden state. Throughput one unit
    every ``MIN_UNIT_SPACING`` = 8 cycles. Six multipliers (both inputs and the output registered, except the gate and
    candidate unit outputs, which carry their symmetry multiplexer), three gate units, one
    candidate unit, and one ROM of ``units`` words of ``3 * weight.width`` bits (p_i, p_f, p_o),
    read one unit ahead by a counter so its registered output waits for the unit.
    """

    state_fmt_name = "cell"

    @checked_init
    def __init__(self, model: Model, units: int, *, lane: int = 0):
        if not isinstance(model, Model) or model.cell != "lstm_peephole":
            raise ValueError(f"PeepholeLSTMElementwise needs a one-layer 'lstm_peephole' model, got "
                             f"{getattr(model, 'cell', model)!r}")
        if units != model.hidden_size // model.pe:
            raise ValueError(f"units = {units}: a lane holds hidden_size // pe = "
                             f"{model.hidden_size // model.pe} units of this model; pass that")
        if STATE_SPACING != MIN_UNIT_SPACING:   # the pipeline below and the model's check must agree
            raise AssertionError(f"cell-state spacing {STATE_SPACING} != golden MIN_UNIT_SPACING {MIN_UNIT_SPACING}")
        self.model = model
        self.units = units
        self.lane = lane
        self.latency = elementwise_latency(model.cell)
        self.spacing = STATE_SPACING
        fm = model.formats
        acc = signed(model.accumulator.width)
        fields = {"i": acc, "f": acc, "g": shape_of(fm.tanh_out), "o": acc, "unit": range(units)}
        super().__init__({
            "i_stream": In(stream.Signature(data.StructLayout(fields), always_ready=True)),
            "o_stream": Out(stream.Signature(data.StructLayout({"h": shape_of(fm.data), "unit": range(units)}),
                                             always_ready=True)),
            "load": In(1),
            "load_data": In(data.ArrayLayout(shape_of(fm.cell), units)),
            "state": Out(data.ArrayLayout(shape_of(fm.cell), units)),
        })

    def elaborate(self, platform):
        m = Module()
        model, fm, U = self.model, self.model.formats, self.units
        if not (isinstance(self.lane, int) and 0 <= self.lane < model.pe):
            raise ValueError(f"lane = {self.lane!r} must be a PE lane index from 0 to {model.pe - 1}")
        acc_frac = model.accumulator.frac
        pf = peephole_formats(model)
        pc_frac, pre = pf["product"].frac, QFormat(63, pf["pre"].frac)
        act = golden_layer.activation_units(model)
        p, valid = self.i_stream.payload, self.i_stream.valid

        def reg(value, name):
            value = Value.cast(value)
            r = Signal(value.shape(), name=name)
            m.d.sync += r.eq(value)
            return r

        def delay(value, n, name):
            for k in range(n):
                value = reg(value, f"{name}_d{k}")
            return value

        def gate_index(acc, pc):
            """The one rounding of a gate: exact acc + p*c into the gate unit's index format."""
            return requantize(align(acc, acc_frac, pre.frac) + align(pc, pc_frac, pre.frac), pre,
                              act["gate"].in_fmt, model.rounding, "SAT")

        # Peephole weights of the lane's units, read one unit ahead: the ROM address is the
        # counter's next value (the next unit to arrive), so the registered ROM output always holds
        # the weights of the unit the counter points at, from the cycle after a beat or a load on.
        pw = peephole_parameters(model).weights
        wshape = shape_of(fm.weight)
        js = [u * model.pe + self.lane for u in range(U)]
        m.submodules.peepholes = rom = memory.Memory(
            shape=data.StructLayout({"i": wshape, "f": wshape, "o": wshape}), depth=U,
            init=[{"i": int(pw[0, j]), "f": int(pw[1, j]), "o": int(pw[2, j])} for j in js])
        rd = rom.read_port()
        next_unit = Signal(range(U), name="next_unit")
        following = Mux(self.load, 0, Mux(valid, Mux(next_unit == U - 1, 0, next_unit + 1), next_unit))
        m.d.sync += next_unit.eq(following)
        m.d.comb += rd.addr.eq(following)

        cells = [Signal(shape_of(fm.cell), name=f"c{u}") for u in range(U)]
        m.d.comb += [self.state[u].eq(cells[u]) for u in range(U)]     # between steps: unit u's c

        # Stage 1: peephole products on c_{t-1} (registers: the chain head and the ROM output).
        pic, pfc = reg(rd.data.i * cells[0], "pic"), reg(rd.data.f * cells[0], "pfc")
        i1, f1, g1, o1 = reg(p.i, "i_acc1"), reg(p.f, "f_acc1"), reg(p.g, "g1"), reg(p.o, "o_acc1")
        c1, po1, unit1, v1 = reg(cells[0], "c_prev1"), reg(rd.data.o, "p_o1"), reg(p.unit, "unit1"), reg(valid, "v1")

        # Stages 2 .. 1 + TABLE_LATENCY: the i and f gate units; the others wait beside them.
        m.submodules.gate_i = unit_i = activation_unit(act["gate"])
        m.submodules.gate_f = unit_f = activation_unit(act["gate"])
        m.d.comb += [unit_i.i_stream.payload.eq(gate_index(i1, pic)), unit_i.i_stream.valid.eq(v1),
                     unit_f.i_stream.payload.eq(gate_index(f1, pfc)), unit_f.i_stream.valid.eq(v1)]
        n = unit_i.latency
        g4, c4, o4, po4, unit4 = (delay(g1, n, "g"), delay(c1, n, "c_prev"), delay(o1, n, "o_acc"),
                                  delay(po1, n, "p_o"), delay(unit1, n, "unit"))

        # Stage 5: products f*c_{t-1} and i*g.
        fc = reg(unit_f.o_stream.payload * c4, "fc")
        ig = reg(unit_i.o_stream.payload * g4, "ig")
        o5, po5, unit5, v5 = reg(o4, "o_acc5"), reg(po4, "p_o5"), reg(unit4, "unit5"), reg(unit_i.o_stream.valid, "v5")

        # Stage 6: the cell state (one rounding of the exact sum), written back at the chain's tail.
        fc_frac = fm.sigmoid_out.frac + fm.cell.frac
        ig_frac = fm.sigmoid_out.frac + fm.tanh_out.frac
        frac = max(fc_frac, ig_frac)
        c_new = requantize(align(fc, fc_frac, frac) + align(ig, ig_frac, frac), QFormat(63, frac), fm.cell,
                           model.rounding, model.overflow)
        c6 = Signal(shape_of(fm.cell), name="c6")
        m.d.sync += c6.eq(c_new)
        o6, po6, unit6, v6 = reg(o5, "o_acc6"), reg(po5, "p_o6"), reg(unit5, "unit6"), reg(v5, "v6")
        with m.If(self.load):
            m.d.sync += [cells[u].eq(self.load_data[u]) for u in range(U)]
        with m.Elif(v5):
            m.d.sync += [cells[u].eq(cells[u + 1]) for u in range(U - 1)]
            m.d.sync += cells[-1].eq(c_new)

        # Stage 7: p_o * c_t.
        poc = reg(po6 * c6, "poc")
        o7, c7, unit7, v7 = reg(o6, "o_acc7"), reg(c6, "c7"), reg(unit6, "unit7"), reg(v6, "v7")

        # Stages 8 .. 7 + TABLE_LATENCY: the o gate unit beside the candidate unit phi(c_t).
        m.submodules.gate_o = unit_o = activation_unit(act["gate"])
        m.submodules.cand = unit_t = activation_unit(act["cand"])
        m.d.comb += [unit_o.i_stream.payload.eq(gate_index(o7, poc)), unit_o.i_stream.valid.eq(v7),
                     unit_t.i_stream.payload.eq(requantize(c7, fm.cell, act["cand"].in_fmt, model.rounding, "SAT")),
                     unit_t.i_stream.valid.eq(v7)]
        unit10 = delay(unit7, unit_o.latency, "unit_o")

        # Stage 11: o * phi(c_t).  Stage 12: the hidden state.
        ot = reg(unit_o.o_stream.payload * unit_t.o_stream.payload, "ot")
        unit11, v11 = reg(unit10, "unit11"), reg(unit_o.o_stream.valid, "v11")
        out = self.o_stream.payload
        m.d.sync += [out.h.eq(requantize(ot, QFormat(63, ig_frac), fm.data, model.rounding, model.overflow)),
                     out.unit.eq(unit11), self.o_stream.valid.eq(v11)]
        return m
