"""LSTM layer hardware: gate activation, element-wise stage with the cell state, and the controller."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rnnaccel.golden import lstm as golden_lstm
from rnnaccel.golden.fixed import QFormat
from rnnaccel.golden.model import Model

from .activation import ActivationTable
from .fixed import align, requantize, shape_of
from .mvu import MatrixVectorUnit, pack_banks
from .perf import ELEMENTWISE_LATENCY, GATE_LATENCY
from ._util import checked_init

__all__ = ["GateActivation", "LSTMElementwise", "LSTMLayer", "row_order", "vector_layout"]


def _gate_shape(model: Model):
    f = model.formats
    width = max(f.sigmoid_out.width + (0 if f.sigmoid_out.signed else 1), f.tanh_out.width)
    return signed(width)


class GateActivation(wiring.Component):
    """Accumulator -> gate value: requantise into the table index, sigmoid or tanh table.

    Mirrors :func:`rnnaccel.golden.lstm.gate_activation`.

    Attributes
    ----------
    i_stream : In(stream.Signature(StructLayout({"acc": signed(acc.width), "tanh": 1}), always_ready=True))
        ``tanh`` selects tanh (gate g) instead of sigmoid (gates i, f, o).
    o_stream : Out(stream.Signature(signed(w), always_ready=True))
        Code in ``sigmoid_out`` or ``tanh_out``; ``w`` holds both.

    Notes
    -----
    Latency ``GATE_LATENCY`` = 3 cycles (the requantisation feeds the tables' index registers);
    throughput one value per cycle. Two table memories.
    """

    def __init__(self, model: Model):
        self.model = model
        self.latency = GATE_LATENCY
        super().__init__({
            "i_stream": In(stream.Signature(data.StructLayout({
                "acc": signed(model.accumulator.width), "tanh": 1}), always_ready=True)),
            "o_stream": Out(stream.Signature(_gate_shape(model), always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        model = self.model
        tables = golden_lstm.tables(model)
        m.submodules.sigmoid = sig = ActivationTable(tables["sigmoid"])
        m.submodules.tanh = tanh = ActivationTable(tables["tanh"])
        acc = self.i_stream.payload.acc
        for unit in (sig, tanh):
            m.d.comb += [
                unit.i_stream.payload.eq(requantize(acc, model.accumulator, unit.table.in_fmt,
                                                    model.rounding, "SAT")),
                unit.i_stream.valid.eq(self.i_stream.valid),
            ]
        sel = Signal(GATE_LATENCY)
        m.d.sync += sel.eq((sel << 1) | self.i_stream.payload.tanh)
        m.d.comb += [
            self.o_stream.payload.eq(Mux(sel[-1], tanh.o_stream.payload, sig.o_stream.payload)),
            self.o_stream.valid.eq(sig.o_stream.valid),
        ]
        return m


class LSTMElementwise(wiring.Component):
    """Element-wise LSTM stage of one PE lane, holding the cell states of its hidden units.

    Units must arrive in order ``0, 1, .., units-1`` (every timestep visits each unit once, as the
    matrix-vector unit produces them), at most one every 2 cycles: the cell states rotate
    through a register chain, so the current unit's state is always at its head.

    ``c = requantize(f*c_prev + i*g, cell)``, ``h = requantize(o * tanh(c), data)``; mirrors
    :func:`rnnaccel.golden.lstm.lstm_elementwise`. ``first`` makes ``c_prev`` zero (the first step
    of a sequence).

    Parameters
    ----------
    model : Model
    units : int
        Hidden units of this lane (cell-state registers).

    Attributes
    ----------
    i_stream : In(stream.Signature(StructLayout({"i","f","g","o","unit","first"}), always_ready=True))
    o_stream : Out(stream.Signature(StructLayout({"h", "c", "unit"}), always_ready=True))

    Notes
    -----
    Latency ``ELEMENTWISE_LATENCY`` = 7 cycles: products, cell state, tanh table (3), o*tanh(c)
    product, hidden state. Throughput one unit per cycle. Three multipliers, one tanh table.
    """

    def __init__(self, model: Model, units: int):
        self.model = model
        self.units = units
        self.latency = ELEMENTWISE_LATENCY
        f = model.formats
        super().__init__({
            "i_stream": In(stream.Signature(data.StructLayout({
                "i": shape_of(f.sigmoid_out), "f": shape_of(f.sigmoid_out), "g": shape_of(f.tanh_out),
                "o": shape_of(f.sigmoid_out), "unit": range(units), "first": 1}), always_ready=True)),
            "o_stream": Out(stream.Signature(data.StructLayout({
                "h": shape_of(f.data), "c": shape_of(f.cell), "unit": range(units)}), always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        model, fm = self.model, self.model.formats
        p = self.i_stream.payload
        # Cell states as a rotating register: units arrive in order 0 .. units-1, so the current
        # unit's state is always cells[0] (no read multiplexer, no fan-out of the unit index).
        cells = [Signal(shape_of(fm.cell), name=f"c{u}") for u in range(self.units)]

        fc_frac = fm.sigmoid_out.frac + fm.cell.frac
        ig_frac = fm.sigmoid_out.frac + fm.tanh_out.frac
        frac = max(fc_frac, ig_frac)

        # Stage 1: products.
        c_prev = Mux(p.first, 0, cells[0])
        fc = Signal(signed(fm.sigmoid_out.width + fm.cell.width + 1))
        ig = Signal(signed(fm.sigmoid_out.width + fm.tanh_out.width + 1))
        o1 = Signal.like(p.o)
        unit1 = Signal.like(p.unit)
        v1 = Signal()
        m.d.sync += [fc.eq(p.f * c_prev), ig.eq(p.i * p.g), o1.eq(p.o), unit1.eq(p.unit),
                     v1.eq(self.i_stream.valid)]

        # Stage 2: cell state (one rounding of the exact sum), written back.
        c2 = Signal(shape_of(fm.cell))
        o2 = Signal.like(o1)
        unit2 = Signal.like(unit1)
        v2 = Signal()
        c_new = requantize(align(fc, fc_frac, frac) + align(ig, ig_frac, frac), QFormat(63, frac), fm.cell,
                           model.rounding, model.overflow)
        m.d.sync += [c2.eq(c_new), o2.eq(o1), unit2.eq(unit1), v2.eq(v1)]
        with m.If(v1):
            m.d.sync += [cells[u].eq(cells[u + 1]) for u in range(self.units - 1)]
            m.d.sync += cells[-1].eq(c_new)

        # Stages 3 .. 2 + TABLE_LATENCY: |tanh(c)|; o, c and unit wait beside it. The table's sign
        # goes onto o instead: o * (-|t|) = (-o) * |t| exactly, and c < 0 exactly when the table
        # index is negative or zero (where |t| = tanh(0) = 0), so o takes the sign of c on entry
        # and the multiplier sees two registers.
        m.submodules.tanh = tanh = ActivationTable(golden_lstm.tables(model)["tanh"], apply_symmetry=False)
        m.d.comb += [tanh.i_stream.payload.eq(requantize(c2, fm.cell, fm.tanh_in, model.rounding, "SAT")),
                     tanh.i_stream.valid.eq(v2)]
        o_signed = Signal(signed(fm.sigmoid_out.width + 1), name="o_signed")
        m.d.sync += o_signed.eq(Mux(c2 < 0, -o2, o2))
        o4, c4, unit4 = o_signed, c2, unit2          # o_signed is the first stage's register of o
        for i in range(tanh.latency):
            c_n, unit_n = Signal.like(c2, name=f"c_t{i}"), Signal.like(unit2, name=f"unit_t{i}")
            m.d.sync += [c_n.eq(c4), unit_n.eq(unit4)]
            c4, unit4 = c_n, unit_n
            if i > 0:
                o_n = Signal.like(o_signed, name=f"o_t{i}")
                m.d.sync += o_n.eq(o4)
                o4 = o_n

        # Stage 5: o * tanh(c).  Stage 6: hidden state.
        ot = Signal(signed(fm.sigmoid_out.width + fm.tanh_out.width + 1))
        c5, unit5, v5 = Signal.like(c2), Signal.like(unit2), Signal()
        m.d.sync += [ot.eq(o4 * tanh.o_stream.payload), c5.eq(c4), unit5.eq(unit4), v5.eq(tanh.o_stream.valid)]
        out = self.o_stream.payload
        m.d.sync += [out.h.eq(requantize(ot, QFormat(63, ig_frac), fm.data, model.rounding, model.overflow)),
                     out.c.eq(c5), out.unit.eq(unit5), self.o_stream.valid.eq(v5)]
        return m


def row_order(model: Model) -> np.ndarray:
    """``order[p, r]``: the PyTorch row of the gate matrix that PE ``p`` computes as local row ``r``.

    Rows are gate-interleaved: local row ``r = 4u + g`` is gate ``g`` (i, f, g, o) of local unit ``u``,
    i.e. hidden unit ``j = u * pe + p``, PyTorch row ``g * H + j``.
    """
    H, pe = model.hidden_size, model.pe
    ng = len(model.gates)
    order = np.zeros((pe, model.rows_per_pe), dtype=np.int64)
    for p in range(pe):
        for u in range(H // pe):
            for g in range(ng):
                order[p, ng * u + g] = g * H + u * pe + p
    return order


def vector_layout(width: int, n: int) -> data.StructLayout:
    """Stream payload of the layer: ``n`` codes of ``width`` bits plus ``last``."""
    return data.StructLayout({"data": data.ArrayLayout(signed(width), n), "last": 1})


class LSTMLayer(wiring.Component):
    """One LSTM layer behind valid/ready streams: x_t in, h_t out.

    Parameters
    ----------
    model : Model

    Attributes
    ----------
    i_stream : In(stream.Signature(vector_layout(data.width, X)))
        One beat per timestep; ``last`` marks the final step of a sequence: after it the state
        (h and c) returns to zero for the next sequence.
    o_stream : Out(stream.Signature(vector_layout(data.width, H)))
        ``h_t`` for every step, ``last`` copied from the input.

    Notes
    -----
    One timestep takes :func:`~rnnaccel.hdl.perf.cycles_per_timestep` cycles when the input is
    always valid and the output always ready: the cycle that accepts ``x_t`` (the same cycle that
    hands ``h_{t-1}`` to the output register), ``R*F`` matrix-vector beats, and the pipeline drain
    (matrix-vector unit, gate activation, element-wise stage). The output is a one-deep register:
    the layer computes step t+1 while h_t waits, and stalls only if h_t has not been taken when
    h_{t+1} is ready. ``x_t`` and ``h_{t-1}`` live in registers (the vector ``[x_t; h_{t-1}]``);
    ``h_t`` is collected in a second register bank.
    """

    @checked_init
    def __init__(self, model: Model):
        if not isinstance(model, Model):
            raise TypeError(f"LSTMLayer needs a rnnaccel Model, got {type(model).__name__}")
        if model.cell != "lstm":
            raise ValueError(f"LSTMLayer builds cell 'lstm', not {model.cell!r}")
        self.model = model
        w = model.formats.data.width
        super().__init__({
            "i_stream": In(stream.Signature(vector_layout(w, model.input_size))),
            "o_stream": Out(stream.Signature(vector_layout(w, model.hidden_size))),
        })

    def elaborate(self, platform):
        m = Module()
        model, fm = self.model, self.model.formats
        X, H, pe, simd = model.input_size, model.hidden_size, model.pe, model.simd
        R, F, U = model.rows_per_pe, model.folds, H // pe
        ng = len(model.gates)

        params = golden_lstm.quantized_parameters(model)
        w_banks, b_banks = pack_banks(params.weights, params.bias, pe, simd, row_order(model))
        m.submodules.mvu = mvu = MatrixVectorUnit(w_banks, b_banks, data_fmt=fm.data, weight_fmt=fm.weight,
                                                  acc_fmt=model.accumulator, bias_fmt=model.bias)

        dshape = shape_of(fm.data)
        x_reg = [Signal(dshape, name=f"x{i}") for i in range(X)]
        h_prev = [Signal(dshape, name=f"h_prev{j}") for j in range(H)]
        h_next = [Signal(dshape, name=f"h_next{j}") for j in range(H)]
        first = Signal(init=1)       # the current step is the first of a sequence
        cur_last = Signal()          # the current step is the last of a sequence

        # Matrix-vector beats: chunk k of [x; h_prev] for every local row.
        vec = x_reg + h_prev + [Const(0, dshape)] * (F * simd - X - H)
        k = Signal(range(F))
        r = Signal(range(R))
        for s in range(simd):
            lane = [vec[kk * simd + s] for kk in range(F)]
            m.d.comb += mvu.i_stream.payload[s].eq(Array(lane)[k] if F > 1 else lane[0])

        # Per-PE lanes: gate activation, gate collection, element-wise stage.
        gate_row = Signal(range(R))
        gate_rows = [Signal(range(R), name=f"gate_row{i}") for i in range(GATE_LATENCY)]
        m.d.sync += gate_rows[0].eq(mvu.o_stream.payload.row)
        for i in range(1, GATE_LATENCY):
            m.d.sync += gate_rows[i].eq(gate_rows[i - 1])
        m.d.comb += gate_row.eq(gate_rows[-1])
        gate = gate_row % ng
        unit = gate_row // ng
        ew_units = []
        for p in range(pe):
            act = GateActivation(model)
            ew = LSTMElementwise(model, U)
            m.submodules[f"gate{p}"] = act
            m.submodules[f"elementwise{p}"] = ew
            m.d.comb += [act.i_stream.valid.eq(mvu.o_stream.valid),
                         act.i_stream.payload.acc.eq(mvu.o_stream.payload.acc[p]),
                         act.i_stream.payload.tanh.eq(mvu.o_stream.payload.row % ng == 2)]
            held = {name: Signal(ew.i_stream.payload[name].shape(), name=f"{name}_held{p}") for name in "ifg"}
            # A copy of the sequence-start flag per lane (it changes only when a step starts, many
            # cycles before the lane's first beat): no fan-out from one register to every PE's
            # multiplier path.
            first_lane = Signal(name=f"first{p}")
            m.d.sync += first_lane.eq(first)
            value = act.o_stream.payload
            with m.If(act.o_stream.valid):
                for gi, name in enumerate("ifg"):
                    with m.If(gate == gi):
                        m.d.sync += held[name].eq(value)
            m.d.comb += [
                ew.i_stream.valid.eq(act.o_stream.valid & (gate == ng - 1)),
                ew.i_stream.payload.i.eq(held["i"]), ew.i_stream.payload.f.eq(held["f"]),
                ew.i_stream.payload.g.eq(held["g"]), ew.i_stream.payload.o.eq(value),
                ew.i_stream.payload.unit.eq(unit), ew.i_stream.payload.first.eq(first_lane),
            ]
            out = ew.o_stream
            for u in range(U):
                with m.If(out.valid & (out.payload.unit == u)):
                    m.d.sync += h_next[u * pe + p].eq(out.payload.h)
            ew_units.append(out)

        # Output register.
        o_valid = Signal()
        slot_free = ~o_valid | self.o_stream.ready
        m.d.comb += self.o_stream.valid.eq(o_valid)
        with m.If(self.o_stream.ready):
            m.d.sync += o_valid.eq(0)

        done_units = Signal(range(U + 1))
        with m.If(ew_units[0].valid):
            m.d.sync += done_units.eq(done_units + 1)

        def accept():
            m.d.comb += self.i_stream.ready.eq(1)
            with m.If(self.i_stream.valid):
                m.d.sync += [xr.eq(self.i_stream.payload.data[i]) for i, xr in enumerate(x_reg)]
                m.d.sync += [cur_last.eq(self.i_stream.payload.last), k.eq(0), r.eq(0)]
                m.next = "MAC"

        with m.FSM():
            with m.State("IDLE"):
                accept()
            with m.State("MAC"):
                m.d.comb += mvu.i_stream.valid.eq(1)
                with m.If(k == F - 1):
                    m.d.sync += k.eq(0)
                    m.d.sync += r.eq(r + 1)
                    with m.If(r == R - 1):
                        m.next = "DRAIN"
                with m.Else():
                    m.d.sync += k.eq(k + 1)
            with m.State("DRAIN"):
                with m.If(ew_units[0].valid & (done_units == U - 1)):
                    m.next = "DONE"
            with m.State("DONE"):
                with m.If(slot_free):
                    m.d.sync += [o_valid.eq(1), self.o_stream.payload.last.eq(cur_last), done_units.eq(0),
                                 first.eq(cur_last)]
                    m.d.sync += [self.o_stream.payload.data[j].eq(h_next[j]) for j in range(H)]
                    m.d.sync += [h_prev[j].eq(Mux(cur_last, 0, h_next[j])) for j in range(H)]
                    m.next = "IDLE"
                    accept()
        return m
