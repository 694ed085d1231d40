"""One recurrent layer in hardware: gate activation, the cells' element-wise stages, the controller.

Every cell of :mod:`rnnaccel.golden.cells` runs on the same engine: a matrix-vector unit computes
the cell's rows for one hidden unit after the other (gate-interleaved, so each PE lane sees all
rows of its units in turn), a :class:`GateActivation` per lane applies each row's activation, and
the cell's element-wise stage (:class:`LSTMElementwise`, :class:`GRUElementwise`,
:class:`RNNElementwise`) turns one unit's row values into ``h_t``. :class:`RecurrentLayer` holds
``[x_t; h_{t-1}]`` and sequences the steps.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rnnaccel.golden import layer as golden_layer
from rnnaccel.golden.fixed import QFormat
from rnnaccel.golden.model import Model

from .activation import activation_unit as _unit
from .dsp import registered_product
from .fixed import align, requantize, requantize_split, shape_of
from .mvu import MatrixVectorUnit, fold_counter, last_beat_flag, pack_banks
from .perf import GATE_LATENCY, TABLE_LATENCY, elementwise_latency
from .peephole import PeepholeLSTMElementwise
from ._util import checked_init

__all__ = ["GateActivation", "LSTMElementwise", "GRUElementwise", "RNNElementwise", "RecurrentLayer",
           "row_order", "vector_layout", "ACT_KINDS"]

#: Row activation kinds, in the order of :class:`GateActivation`'s ``kind`` field.
ACT_KINDS = ("gate", "cand", "relu", "linear", "raw")


def act_shape(model: Model, kind: str):
    """Shape of a row value after its activation."""
    f = model.formats
    return {"gate": shape_of(f.sigmoid_out), "cand": shape_of(f.tanh_out), "relu": shape_of(f.data),
            "linear": shape_of(f.cell), "raw": signed(model.accumulator.width)}[kind]


def _signed_width(shape) -> int:
    return shape.width + (0 if shape.signed else 1)


class GateActivation(wiring.Component):
    """Accumulator -> row value: the row's activation (mirrors :func:`rnnaccel.golden.layer.row_activation`).

    Parameters
    ----------
    model : Model
        A one-layer model; only the activation kinds its cell's rows use are built.

    Attributes
    ----------
    i_stream : In(stream.Signature(StructLayout({"acc": signed(acc.width), "kind": range(5)}), always_ready=True))
        ``kind`` indexes :data:`ACT_KINDS`: ``gate`` (gate unit, e.g. the sigmoid table), ``cand``
        (candidate unit, e.g. tanh), ``relu`` (``max(acc, 0)`` to ``data``), ``linear`` (``acc`` to
        ``cell``, saturating), ``raw`` (``acc`` itself, delayed: the peephole LSTM's gate rows).
    o_stream : Out(stream.Signature(signed(w), always_ready=True))
        The value, in the kind's format; ``w`` holds all of them.

    Notes
    -----
    Latency ``GATE_LATENCY`` = 7 cycles for every kind: the requantisation's adder (one cycle, its
    saturation feeding the units' index registers), the unit (``TABLE_LATENCY``), an output
    register after the choice between kinds (relu and linear values are requantised and delayed to
    match); throughput one value per cycle. One table memory per table unit used.
    """

    def __init__(self, model: Model):
        self.model = model
        self.latency = GATE_LATENCY
        self.kinds = tuple(k for k in ACT_KINDS if any(r.act == k for r in model.cell_spec.rows))
        width = max(_signed_width(act_shape(model, k)) for k in self.kinds)
        super().__init__({
            "i_stream": In(stream.Signature(data.StructLayout({
                "acc": signed(model.accumulator.width), "kind": range(len(ACT_KINDS))}), always_ready=True)),
            "o_stream": Out(stream.Signature(signed(width), always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        model, fm = self.model, self.model.formats
        units = golden_layer.activation_units(model)
        acc = self.i_stream.payload.acc
        # Stage 1: the requantisation's adder and saturation comparisons (requantize_split), its
        # multiplexer into the table's index register. Stages 2 .. TABLE_LATENCY: the table.
        valid_1 = Signal(name="valid_1")
        m.d.sync += valid_1.eq(self.i_stream.valid)
        outs = {}
        for kind in self.kinds:
            if kind in ("gate", "cand"):
                u = _unit(units[kind])
                m.submodules[kind] = u
                m.d.comb += [u.i_stream.payload.eq(requantize_split(m, acc, model.accumulator, units[kind].in_fmt,
                                                                    model.rounding, "SAT", name=f"{kind}_rq")),
                             u.i_stream.valid.eq(valid_1)]
                outs[kind] = u.o_stream.payload
            else:
                if kind == "relu":
                    v = requantize_split(m, Mux(acc < 0, 0, acc), model.accumulator, fm.data, model.rounding,
                                         model.overflow, name="relu_rq")
                elif kind == "raw":   # the accumulator itself, only delayed (peephole LSTM gates)
                    v = Signal.like(acc, name="raw_d", reset_less=True)
                    m.d.sync += v.eq(acc)
                else:
                    v = requantize_split(m, acc, model.accumulator, fm.cell, model.rounding, "SAT", name="linear_rq")
                for i in range(TABLE_LATENCY):
                    reg = Signal(act_shape(model, kind), name=f"{kind}{i}", reset_less=True)
                    m.d.sync += reg.eq(v)
                    v = reg
                outs[kind] = v
        kind_d = Signal.like(self.i_stream.payload.kind)
        valid_d = Signal()
        for i in range(1 + TABLE_LATENCY):
            k_n, v_n = Signal.like(kind_d, name=f"kind_d{i}"), Signal(name=f"valid_d{i}")
            m.d.sync += [k_n.eq(self.i_stream.payload.kind if i == 0 else kind_d),
                         v_n.eq(self.i_stream.valid if i == 0 else valid_d)]
            kind_d, valid_d = k_n, v_n
        value = outs[self.kinds[0]]
        for kind in self.kinds[1:]:
            value = Mux(kind_d == ACT_KINDS.index(kind), outs[kind], value)
        # Output register: the symmetry of the table and this multiplexer end here, so the routes
        # from the table's block RAM and to the consumers (other lanes' registers, a DSP block) are
        # separate register-to-register paths.
        out, out_valid = Signal(signed(len(self.o_stream.payload)), name="out", reset_less=True), Signal(name="out_valid")
        m.d.sync += [out.eq(value), out_valid.eq(valid_d)]
        m.d.comb += [self.o_stream.payload.eq(out), self.o_stream.valid.eq(out_valid)]
        return m


class _Elementwise(wiring.Component):
    """Common ports: ``i_stream`` (one unit's row values + ``unit``), ``o_stream`` (``h``, ``unit``),
    and for cells with a state chain ``load`` / ``load_data`` (parallel load of the chain)."""

    state_fmt_name: str | None = None

    def __init__(self, model: Model, units: int, fields: dict):
        self.model = model
        self.units = units
        self.latency = elementwise_latency(model.cell)
        fm = model.formats
        sig = {"i_stream": In(stream.Signature(data.StructLayout(fields | {"unit": range(units)}),
                                               always_ready=True)),
               "o_stream": Out(stream.Signature(data.StructLayout({
                   "h": shape_of(fm.data), "unit": range(units)}), always_ready=True))}
        if self.state_fmt_name:
            shape = data.ArrayLayout(shape_of(getattr(fm, self.state_fmt_name)), units)
            sig |= {"load": In(1), "load_data": In(shape), "state": Out(shape)}
        super().__init__(sig)

    def _chain(self, m, name):
        """A rotating register chain of the lane's states: the current unit's is always ``chain[0]``.

        ``state`` shows the chain; between timesteps (all units done) ``state[u]`` is unit ``u``'s."""
        fmt = getattr(self.model.formats, self.state_fmt_name)
        chain = [Signal(shape_of(fmt), name=f"{name}{u}") for u in range(self.units)]
        m.d.comb += [self.state[u].eq(chain[u]) for u in range(self.units)]
        return chain


class LSTMElementwise(_Elementwise):
    """Element-wise LSTM stage of one PE lane, holding the cell states of its hidden units.

    Units must arrive in order ``0, 1, .., units-1`` (every timestep visits each unit once, as the
    matrix-vector unit produces them), at most one every 3 cycles (an LSTM layer's units come one
    every ``rows * folds >= 3`` cycles): the cell states rotate through a register chain, so the
    current unit's state is always at its head, and a unit's new state is written back 5 cycles
    after its old one was read.

    ``c = requantize(f*c_prev + i*g, cell)`` (``c_prev + i*g`` without a forget gate),
    ``h = requantize(o * tanh(c), data)``; mirrors :func:`rnnaccel.golden.layer.lstm_elementwise`.

    Parameters
    ----------
    model : Model
        A one-layer ``lstm`` or ``lstm_nf`` model.
    units : int
        Hidden units of this lane (cell-state registers).

    Attributes
    ----------
    i_stream : In(stream.Signature(StructLayout({"i", ["f",] "g", "o", "unit"}), always_ready=True))
    o_stream : Out(stream.Signature(StructLayout({"h", "unit"}), always_ready=True))
    load, load_data : In(1), In(ArrayLayout(cell, units))
        Loads every cell state at once (the start of a sequence: zeros or ``c0``).

    Notes
    -----
    Latency ``elementwise_latency("lstm")`` = 14 cycles: products (input and product registers),
    exact sum f*c + i*g, cell state (its rounding adder, then its saturation), the requantisation
    of the candidate unit's index (1),
    candidate unit (``TABLE_LATENCY``), o*phi(c) product (input and product registers), hidden
    state. Throughput
    one unit every 3 cycles (see above). Three multipliers (two without a forget gate), one candidate unit;
    their input and product registers are :func:`~rnnaccel.hdl.dsp.registered_product`'s (on ECP5
    the ``MULT18X18D``'s input and output registers).
    """

    state_fmt_name = "cell"

    def __init__(self, model: Model, units: int):
        f = model.formats
        self.forget = model.cell == "lstm"
        fields = {"i": shape_of(f.sigmoid_out)} | ({"f": shape_of(f.sigmoid_out)} if self.forget else {}) \
            | {"g": shape_of(f.tanh_out), "o": shape_of(f.sigmoid_out)}
        super().__init__(model, units, fields)

    def elaborate(self, platform):
        m = Module()
        model, fm = self.model, self.model.formats
        p = self.i_stream.payload
        cells = self._chain(m, "c")
        sf = fm.sigmoid_out.frac
        fc_frac = sf + fm.cell.frac if self.forget else fm.cell.frac
        ig_frac = sf + fm.tanh_out.frac
        frac = max(fc_frac, ig_frac)

        # Stages 0 and 1: products with both operands registered first (on ECP5 the MULT18X18D's
        # input and output registers: the gate registers and the chain's head may sit far from the
        # DSP block, and that route then ends in a register, not in the multiplier).
        if self.forget:
            fc = registered_product(m, p.f, cells[0], name="fc", input_regs=True)
        else:
            fc0, fc = Signal(shape_of(fm.cell), name="fc0"), Signal(shape_of(fm.cell), name="fc")
            m.d.sync += [fc0.eq(cells[0]), fc.eq(fc0)]
        ig = registered_product(m, p.i, p.g, name="ig", input_regs=True)
        o0, unit0, v0 = Signal.like(p.o, name="o0"), Signal.like(p.unit, name="unit0"), Signal(name="v0")
        o1, unit1, v1 = Signal.like(p.o), Signal.like(p.unit), Signal()
        m.d.sync += [o0.eq(p.o), unit0.eq(p.unit), v0.eq(self.i_stream.valid),
                     o1.eq(o0), unit1.eq(unit0), v1.eq(v0)]

        # Stage 2: the exact sum f*c_prev + i*g. Stages 3 and 4: cell state, its one rounding in two
        # cycles (requantize_split: the rounding adder and the saturation tests, then the
        # saturating multiplexer), then written back from its register. The chain rotates with the
        # sum register (stage 2; the unit's state went into the multiplier's input register a
        # cycle before), which leaves the unit's state in the tail slot; the new state overwrites
        # it three cycles later, and before the unit comes round again (U - 1 more units later;
        # with one unit, in the next step). Units come at most one every 3 cycles (a unit has at
        # least 3 rows), so the next unit's rotation may fall in that very cycle: it moves the
        # tail slot to the one before it, and the new state goes there.
        s2 = Signal(signed(max(len(fc) + frac - fc_frac, len(ig) + frac - ig_frac) + 1), name="c_sum")
        o2, unit2, v2 = Signal.like(o1), Signal.like(unit1), Signal()
        m.d.sync += [s2.eq(align(fc, fc_frac, frac) + align(ig, ig_frac, frac)),
                     o2.eq(o1), unit2.eq(unit1), v2.eq(v1)]
        c_new = requantize_split(m, s2, QFormat(63, frac), fm.cell, model.rounding, model.overflow, name="c_rnd")
        o2b, unit2b, v2b = Signal.like(o2, name="o2b"), Signal.like(unit2, name="unit2b"), Signal(name="v2b")
        m.d.sync += [o2b.eq(o2), unit2b.eq(unit2), v2b.eq(v2)]
        c3, o3, unit3, v3 = Signal(shape_of(fm.cell)), Signal.like(o2), Signal.like(unit2), Signal()
        o3_neg = Signal(signed(fm.sigmoid_out.width + 1), name="o3_neg", reset_less=True)
        m.d.sync += [c3.eq(c_new), o3.eq(o2b), o3_neg.eq(-o2b), unit3.eq(unit2b), v3.eq(v2b)]
        with m.If(self.load):
            m.d.sync += [cells[u].eq(self.load_data[u]) for u in range(self.units)]
        with m.Elif(v1):
            m.d.sync += [cells[u].eq(cells[(u + 1) % self.units]) for u in range(self.units)]
            if self.units > 1:
                with m.If(v3):
                    m.d.sync += cells[-2].eq(c3)
        with m.Elif(v3):
            m.d.sync += cells[-1].eq(c3)

        # Stages 4 .. 3 + unit latency: |phi(c)|; o and unit wait beside it. The unit's sign goes
        # onto o instead: o * (-|t|) = (-o) * |t| exactly, and c < 0 exactly when the index is
        # negative or zero (where |t| = phi(0) = 0), so o takes the sign of c on entry and the
        # multiplier sees two registers.
        cand = golden_layer.activation_units(model)["cand"]
        m.submodules.cand = tanh = _unit(cand, apply_symmetry=False)
        # The index's requantisation takes a cycle of its own (requantize_split) before the unit's
        # index register; o and unit wait beside it.
        v_q = Signal(name="v_q")
        m.d.sync += v_q.eq(v3)
        m.d.comb += [tanh.i_stream.payload.eq(requantize_split(m, c3, fm.cell, cand.in_fmt, model.rounding, "SAT",
                                                                name="c_rq")),
                     tanh.i_stream.valid.eq(v_q)]
        o_signed = Signal(signed(fm.sigmoid_out.width + 1), name="o_signed", reset_less=True)
        m.d.sync += o_signed.eq(Mux(c3 < 0, o3_neg, o3))
        o4, unit4 = o_signed, unit3
        for i in range(1 + tanh.latency):
            unit_n = Signal.like(unit3, name=f"unit_t{i}")
            m.d.sync += unit_n.eq(unit4)
            unit4 = unit_n
            if i > 0:
                o_n = Signal.like(o_signed, name=f"o_t{i}")
                m.d.sync += o_n.eq(o4)
                o4 = o_n

        # Stages 4 + unit latency and 5 + unit latency: o * phi(c) with both operands registered
        # first (on ECP5 the MULT18X18D's input registers: the table's block RAM and the DSP block
        # may sit far apart, and that route then ends in a register, not in the multiplier). Then
        # the hidden state.
        ot = registered_product(m, o4, tanh.o_stream.payload, name="ot", input_regs=True)
        unit_m, v_m = Signal.like(unit3, name="unit_m"), Signal(name="v_m")
        unit5, v5 = Signal.like(unit3), Signal()
        m.d.sync += [unit_m.eq(unit4), v_m.eq(tanh.o_stream.valid), unit5.eq(unit_m), v5.eq(v_m)]
        out = self.o_stream.payload
        m.d.sync += [out.h.eq(requantize(ot, QFormat(63, ig_frac), fm.data, model.rounding, model.overflow)),
                     out.unit.eq(unit5), self.o_stream.valid.eq(v5)]
        return m


class GRUElementwise(_Elementwise):
    """Element-wise GRU stage of one PE lane (reset after the recurrent product, as ``torch.nn.GRU``).

    ``n = phi(requantize(nx + r*nh, tanh_in, SAT))``, ``h = requantize((1-z)*n + z*h_prev, data)``;
    mirrors :func:`rnnaccel.golden.layer.gru_elementwise`. ``h_prev`` of the lane's units sits in a
    register chain that is loaded at the start of every step and rotates with the units (which
    must arrive in order ``0 .. units-1``).

    Attributes
    ----------
    i_stream : In(stream.Signature(StructLayout({"r", "z", "nx", "nh", "unit"}), always_ready=True))
    o_stream : Out(stream.Signature(StructLayout({"h", "unit"}), always_ready=True))
    load, load_data : In(1), In(ArrayLayout(data, units))
        Loads ``h_{t-1}`` of the lane's units (every step).

    Notes
    -----
    Latency 8 cycles: r*nh product, candidate unit (``TABLE_LATENCY``), the products (1-z)*n and z*h_prev, hidden
    state. Throughput one unit per cycle. Three multipliers, one candidate unit.
    """

    state_fmt_name = "data"

    def __init__(self, model: Model, units: int):
        f = model.formats
        super().__init__(model, units, {"r": shape_of(f.sigmoid_out), "z": shape_of(f.sigmoid_out),
                                        "nx": shape_of(f.cell), "nh": shape_of(f.cell)})

    def elaborate(self, platform):
        m = Module()
        model, fm = self.model, self.model.formats
        p = self.i_stream.payload
        chain = self._chain(m, "h_prev")
        sf = fm.sigmoid_out.frac
        with m.If(self.load):
            m.d.sync += [chain[u].eq(self.load_data[u]) for u in range(self.units)]
        with m.Elif(self.i_stream.valid):
            m.d.sync += [chain[u].eq(chain[(u + 1) % self.units]) for u in range(self.units)]

        # Stage 1: r * nh.
        rn = Signal(signed(fm.sigmoid_out.width + fm.cell.width + 1))
        nx1, z1, hp1, unit1, v1 = (Signal.like(p.nx), Signal.like(p.z), Signal.like(chain[0]),
                                   Signal.like(p.unit), Signal())
        m.d.sync += [rn.eq(p.r * p.nh), nx1.eq(p.nx), z1.eq(p.z), hp1.eq(chain[0]), unit1.eq(p.unit),
                     v1.eq(self.i_stream.valid)]

        # Stages 2 .. 1 + unit latency: n = phi(nx + r*nh); 1 - z, z, h_prev and unit wait beside it.
        cand = golden_layer.activation_units(model)["cand"]
        m.submodules.cand = phi = _unit(cand)
        pre_frac = sf + fm.cell.frac
        m.d.comb += [phi.i_stream.payload.eq(requantize(align(nx1, fm.cell.frac, pre_frac) + rn,
                                                        QFormat(63, pre_frac), cand.in_fmt, model.rounding, "SAT")),
                     phi.i_stream.valid.eq(v1)]
        one = 1 << sf
        omz = Signal(signed(fm.sigmoid_out.width + 2), name="omz")
        m.d.sync += omz.eq(one - z1)
        omz_d, z_d, hp_d, unit_d = omz, z1, hp1, unit1
        for i in range(phi.latency):
            z_n, hp_n, unit_n = (Signal.like(z1, name=f"z_t{i}"), Signal.like(hp1, name=f"hp_t{i}"),
                                 Signal.like(unit1, name=f"unit_t{i}"))
            m.d.sync += [z_n.eq(z_d), hp_n.eq(hp_d), unit_n.eq(unit_d)]
            z_d, hp_d, unit_d = z_n, hp_n, unit_n
            if i > 0:
                omz_n = Signal.like(omz, name=f"omz_t{i}")
                m.d.sync += omz_n.eq(omz_d)
                omz_d = omz_n

        # Products, then the hidden state.
        a_frac, b_frac = sf + fm.tanh_out.frac, sf + fm.data.frac
        frac = max(a_frac, b_frac)
        a = Signal(signed(fm.sigmoid_out.width + 2 + fm.tanh_out.width))
        b = Signal(signed(fm.sigmoid_out.width + 1 + fm.data.width))
        unit5, v5 = Signal.like(unit1), Signal()
        m.d.sync += [a.eq(omz_d * phi.o_stream.payload), b.eq(z_d * hp_d), unit5.eq(unit_d),
                     v5.eq(phi.o_stream.valid)]
        out = self.o_stream.payload
        m.d.sync += [out.h.eq(requantize(align(a, a_frac, frac) + align(b, b_frac, frac), QFormat(63, frac),
                                         fm.data, model.rounding, model.overflow)),
                     out.unit.eq(unit5), self.o_stream.valid.eq(v5)]
        return m


class RNNElementwise(_Elementwise):
    """Elman RNN output stage of one PE lane: the candidate value (``tanh_out``) requantised to
    ``data``, or the relu row's value (already ``data``) registered.

    Mirrors :func:`rnnaccel.golden.layer.rnn_elementwise`. Latency 1 cycle, throughput one unit per
    cycle, no multipliers.
    """

    def __init__(self, model: Model, units: int):
        kind = "relu" if model.cell == "rnn_relu" else "cand"
        self.kind = kind
        super().__init__(model, units, {"h": act_shape(model, kind)})

    def elaborate(self, platform):
        m = Module()
        model, fm = self.model, self.model.formats
        p = self.i_stream.payload
        h = p.h if self.kind == "relu" else requantize(p.h, fm.tanh_out, fm.data, model.rounding, model.overflow)
        m.d.sync += [self.o_stream.payload.h.eq(h), self.o_stream.payload.unit.eq(p.unit),
                     self.o_stream.valid.eq(self.i_stream.valid)]
        return m


def vector_chunk(vec, k, simd: int, folds: int) -> list:
    """Lane values of chunk ``k`` of the vector ``vec`` (``folds * simd`` values): lane ``s`` is
    ``vec[k * simd + s]``, one multiplexer per lane over the chunks."""
    lanes = []
    for s in range(simd):
        lane = [vec[kk * simd + s] for kk in range(folds)]
        lanes.append(Array(lane)[k] if folds > 1 else lane[0])
    return lanes


#: Bits of the matrix-vector input multiplexer that one copy of the chunk counter drives
#: (:func:`vector_feed`).
FEED_GROUP_BITS = 8


def vector_feed(m: Module, vec, fold_ranges, rows: int, enable, simd: int, folds: int, *, prefix: str = "ctl_"):
    """The matrix-vector unit's input beats: chunk ``k`` of ``vec`` for every row, ``k`` walking the
    fold ranges (:func:`~rnnaccel.hdl.mvu.fold_counter`) on ``enable``.

    Like :func:`vector_chunk` with one counter, but every :data:`FEED_GROUP_BITS` output bits
    have a counter of their own (identical copies, each feeding back only into itself, so
    synthesis keeps them apart): one counter driving the whole multiplexer
    (``simd * data.width`` outputs of ``folds`` inputs) has a fan-out of hundreds of LUTs, and
    its routing was the critical path on ECP5.

    Returns
    -------
    lanes : list of Value
        ``simd`` lane values (unsigned bit patterns of the elements).
    r : Signal
        Local row of the current beat.
    last : Value
        The current beat is the last chunk of its row.
    """
    k, _, r, _, last = fold_counter(m, fold_ranges, rows, enable, prefix=prefix)
    if folds == 1:
        return [vec[s] for s in range(simd)], r, last
    width = len(vec[0])
    lanes, copies = [], 0
    for s in range(simd):
        lane = [vec[kk * simd + s] for kk in range(folds)]
        parts = []
        for lo in range(0, width, FEED_GROUP_BITS):
            kc = k if copies == 0 else fold_counter(m, fold_ranges, rows, enable, prefix=f"{prefix}copy{copies}_")[0]
            copies += 1
            parts.append(Array(v[lo:lo + FEED_GROUP_BITS] for v in lane)[kc])
        lanes.append(Cat(*parts))
    return lanes, r, last


def output_register(m: Module, o_stream):
    """A one-deep output register on ``o_stream`` (its payload is the register): returns
    ``(o_valid, slot_free)``; ``slot_free`` is true when a new beat may be loaded this cycle: the
    register is empty. (Not "or its beat is being taken": that would make a combinational path
    from the consumer's ``ready`` through the controller, which accepts the next input in the same
    cycle, to the producer's handshake -- the critical path on ECP5. A consumer that takes every
    beat at once never holds the register when the next one is ready, so throughput is the same;
    under backpressure a new beat waits one cycle more.) Load it with ``o_valid.eq(1)`` and the
    payload."""
    o_valid = Signal(name="o_valid")
    slot_free = ~o_valid
    m.d.comb += o_stream.valid.eq(o_valid)
    with m.If(o_stream.ready):
        m.d.sync += o_valid.eq(0)
    return o_valid, slot_free


_ELEMENTWISE = {"lstm": LSTMElementwise, "lstm_nf": LSTMElementwise, "gru": GRUElementwise,
                "rnn_tanh": RNNElementwise, "rnn_relu": RNNElementwise}
_ELEMENTWISE["lstm_peephole"] = PeepholeLSTMElementwise      # hdl/peephole.py


def row_order(model: Model) -> np.ndarray:
    """``order[p, r]``: the row of the golden row-block matrix that PE ``p`` computes as local row ``r``.

    Rows are unit-interleaved: local row ``r = P*u + g`` is row ``g`` of the cell (``P`` rows per
    unit) of local unit ``u``, i.e. hidden unit ``j = u * pe + p``, matrix row ``g * H + j``.
    """
    H, pe = model.hidden_size, model.pe
    ng = len(model.gates)
    order = np.zeros((pe, model.rows_per_pe), dtype=np.int64)
    for p in range(pe):
        for u in range(H // pe):
            for g in range(ng):
                order[p, ng * u + g] = g * H + u * pe + p
    return order


def layer_banks(model: Model):
    """Weight and bias memory contents of a one-layer model's matrix-vector unit
    (:func:`~rnnaccel.hdl.mvu.pack_banks` of its quantised parameters, :func:`row_order`)."""
    params = golden_layer.quantized_parameters(model)
    return pack_banks(params.weights, params.bias, model.pe, model.simd, row_order(model), model.fold_ranges)


def vector_layout(width: int, n: int) -> data.StructLayout:
    """Stream payload of a layer: ``n`` codes of ``width`` bits plus ``last``."""
    return data.StructLayout({"data": data.ArrayLayout(signed(width), n), "last": 1})


def layer_signature(model: Model, initial_state: bool = False, state_out: bool = False,
                    load_layout=None) -> dict:
    """The ports every layer component has (see :func:`build_layer`), plus the weight load bus
    (:func:`~rnnaccel.hdl.spram.load_bus_layout`) if ``load_layout`` is given."""
    ports = {"load": In(load_layout)} if load_layout is not None else {}
    return ports | {"i_stream": In(stream.Signature(input_layout(model, initial_state))),
                    "o_stream": Out(stream.Signature(output_layout(model, state_out)))}


def output_layout(model: Model, state_out: bool = False) -> data.StructLayout:
    """Output payload of a layer: :func:`vector_layout` of ``state_size`` codes, plus with
    ``state_out`` the cell states ``c`` after the step (LSTMs), so that the final ``c`` of a
    sequence can be read with its last output."""
    fields = dict(vector_layout(model.formats.data.width, model.state_size).members)
    if state_out and model.cell_spec.has_cell_state:
        fields["c"] = data.ArrayLayout(shape_of(model.formats.cell), model.hidden_size)
    return data.StructLayout(fields)


def input_layout(model: Model, initial_state: bool = False) -> data.StructLayout:
    """Input payload of a layer: ``x_t`` and ``last``, plus ``h0`` (and ``c0``) with ``initial_state``."""
    fields = {"data": data.ArrayLayout(signed(model.formats.data.width), model.input_size), "last": 1}
    if initial_state:
        fields["h0"] = data.ArrayLayout(shape_of(model.formats.data), model.state_size)
        if model.cell_spec.has_cell_state:
            fields["c0"] = data.ArrayLayout(shape_of(model.formats.cell), model.hidden_size)
    return data.StructLayout(fields)


class RecurrentLayer(wiring.Component):
    """One recurrent layer (any cell of :mod:`rnnaccel.golden.cells`) behind valid/ready streams.

    Parameters
    ----------
    model : Model
        A one-layer model (:meth:`~rnnaccel.golden.model.Model.layer`).
    initial_state : bool
        Take ``h0`` (and ``c0`` for LSTMs) from the input payload on the first step of every
        sequence (ignored on the other steps); otherwise every sequence starts from zero.
    state_out : bool
        Put the cell states after each step on the output (``c``, LSTMs).
    loaded : dict of int to int, optional
        PEs whose weight memory is written at run time through ``load`` (``{pe: select}``, see
        :class:`~rnnaccel.hdl.mvu.MatrixVectorUnit`), with ``load_layout`` the bus layout.

    Attributes
    ----------
    load : In(load_layout)
        Only with ``loaded``: the weight load bus. Give the layer no input before the load is done.
    i_stream : In(stream.Signature(input_layout(model, initial_state)))
        One beat per timestep; ``last`` marks the final step of a sequence: after it the state
        returns to zero (or the next ``h0``/``c0``) for the next sequence.
    o_stream : Out(stream.Signature(vector_layout(data.width, H)))
        ``h_t`` for every step, ``last`` copied from the input.

    Notes
    -----
    One timestep takes :func:`~rnnaccel.hdl.perf.layer_cycles` cycles when the input is always
    valid and the output always ready: the cycle that accepts ``x_t`` (the same cycle that hands
    ``h_{t-1}`` to the output register), the matrix-vector beats, and the pipeline drain
    (matrix-vector unit, gate activation, element-wise stage). The output is a one-deep register:
    the layer computes step t+1 while h_t waits, and stalls only if h_t has not been taken when
    h_{t+1} is ready. ``x_t`` and ``h_{t-1}`` live in registers (the vector ``[x_t; h_{t-1}]``, a
    ring that turns one chunk per beat when every row reads all of it, otherwise read through a
    multiplexer); ``h_t`` is collected in a second register bank, per lane a shift register.

    For clock rate, no controller signal drives hundreds of flip-flops: the matrix-vector input
    multiplexer has a copy of the chunk counter per byte (:func:`vector_feed`), the ``x_t`` and
    ``h_{t-1}`` registers follow their next values outside the matrix-vector beats with enables
    from per-group flag copies, and each lane's element-wise state load (two cycles after the
    accept) comes from a toggle flip-flop of its own.
    """

    @checked_init
    def __init__(self, model: Model, *, initial_state: bool = False, state_out: bool = False,
                 loaded=None, load_layout=None):
        if not isinstance(model, Model):
            raise TypeError(f"RecurrentLayer needs a rnnaccel Model, got {type(model).__name__}")
        if not model.is_single_layer:
            raise ValueError(f"RecurrentLayer builds one layer; take model.layer(k) of this "
                             f"{model.num_layers}-layer model")
        if model.proj_size:
            raise ValueError(f"RecurrentLayer has no projection pass (cell {model.cell!r}, proj_size "
                             f"{model.proj_size}); use rnnaccel.hdl.projected.ProjectedLayer or build_layer(model)")
        own = LAYER_CLASSES.get(model.cell)
        if own is not None and not (isinstance(own, type) and isinstance(self, own)):
            raise ValueError(f"RecurrentLayer does not build cell {model.cell!r} (its own schedule: "
                             f"{LAYER_CLASSES[model.cell].__name__}); use build_layer(model)")
        self.model = model
        self.initial_state = bool(initial_state)
        self.state_out = bool(state_out)
        self.loaded = dict(loaded or {})
        if self.loaded and load_layout is None:
            raise ValueError("loaded weight memories need the load bus layout (load_layout)")
        self.load_layout = load_layout
        super().__init__(layer_signature(model, self.initial_state, self.state_out,
                                         load_layout if self.loaded else None))

    def elaborate(self, platform):
        m = Module()
        model, fm = self.model, self.model.formats
        X, H, pe, simd = model.input_size, model.hidden_size, model.pe, model.simd
        R, F, U = model.rows_per_pe, model.folds, H // pe
        rows = model.cell_spec.rows
        ng = len(rows)
        ranges = model.fold_ranges

        w_banks, b_banks = layer_banks(model)
        m.submodules.mvu = mvu = MatrixVectorUnit(w_banks, b_banks, data_fmt=fm.data, weight_fmt=fm.weight,
                                                  acc_fmt=model.accumulator, bias_fmt=model.bias,
                                                  fold_ranges=ranges, loaded=self.loaded,
                                                  load_layout=self.load_layout)
        if self.loaded:
            m.d.comb += mvu.load.eq(self.load)

        dshape = shape_of(fm.data)
        x_reg = [Signal(dshape, name=f"x{i}", reset_less=True) for i in range(X)]
        h_prev = [Signal(dshape, name=f"h_prev{j}", reset_less=True) for j in range(H)]
        h_next = [Signal(dshape, name=f"h_next{j}", reset_less=True) for j in range(H)]
        first = Signal(init=1)       # the next step to start is the first of a sequence
        cur_last = Signal()          # the current step is the last of a sequence

        # Matrix-vector beats: chunk k of [x; h_prev] for every local row. When every row visits all
        # F chunks (LSTM, Elman RNN), the vector is a ring of registers that turns by one chunk per
        # beat (F beats, a whole turn, per row), so chunk 0's registers are the beat: no
        # multiplexer and no counter fan-out. Otherwise (rows over parts of the vector, GRU) a
        # multiplexer picks chunk k (vector_feed).
        mac = Signal()
        rotate = F > 1 and all(rng == (0, F) for rng in ranges)
        if rotate:
            pad = [Signal(dshape, name=f"pad{i}", reset_less=True) for i in range(F * simd - X - H)]
            vec = x_reg + h_prev + pad
            _, _, r, _, row_last = fold_counter(m, ranges, R, mac, prefix="ctl_")
            lanes = vec[:simd]
        else:
            pad = []
            vec = x_reg + h_prev + [Const(0, dshape)] * (F * simd - X - H)
            lanes, r, row_last = vector_feed(m, vec, ranges, R, mac, simd, F)
        m.d.comb += [mvu.i_stream.payload[s].eq(v) for s, v in enumerate(lanes)]
        m.d.comb += mvu.i_stream.valid.eq(mac)

        # Per-PE lanes: row activation, row collection, element-wise stage.
        gate_rows = [Signal(range(R), name=f"gate_row{i}") for i in range(GATE_LATENCY)]
        m.d.sync += gate_rows[0].eq(mvu.o_stream.payload.row)
        for i in range(1, GATE_LATENCY):
            m.d.sync += gate_rows[i].eq(gate_rows[i - 1])
        unit = gate_rows[-1] // ng if ng > 1 else gate_rows[-1]
        kinds = [ACT_KINDS.index(row.act) for row in rows]
        out_row = mvu.o_stream.payload.row
        kind_now = Array(Const(v, range(len(ACT_KINDS))) for v in kinds)[out_row % ng] if ng > 1 else kinds[0]

        state_load = Signal()
        state_values = []            # per lane: the values the element-wise chain loads
        ew_units = []
        lane_states = []             # per lane: the element-wise chain (cell states), for state_out
        Elementwise = _ELEMENTWISE[model.cell]
        for p in range(pe):
            act = GateActivation(model)
            ew = Elementwise(model, U)
            if hasattr(ew, "lane"):      # lane-specific contents (the peephole weights of its units)
                ew.lane = p
            m.submodules[f"gate{p}"] = act
            m.submodules[f"elementwise{p}"] = ew
            m.d.comb += [act.i_stream.valid.eq(mvu.o_stream.valid),
                         act.i_stream.payload.acc.eq(mvu.o_stream.payload.acc[p]),
                         act.i_stream.payload.kind.eq(kind_now)]
            value = act.o_stream.payload
            # Which row the lane's activated value is: a one-hot ring of the lane's own, turned by
            # every value (the rows of a unit come in order, and a step is whole units), rather than
            # a decoding of the shared row counter that would drive every lane's enables.
            if ng > 1:
                sel = Signal(ng, init=1, name=f"row_sel{p}")
                with m.If(act.o_stream.valid):
                    m.d.sync += sel.eq(sel.rotate_left(1))
            else:
                sel = Const(1, 1)
            held = {}
            for gi, row in enumerate(rows[:-1]):
                held[row.name] = Signal(ew.i_stream.payload[row.name].shape(), name=f"{row.name}_held{p}", reset_less=True)
                with m.If(act.o_stream.valid & sel[gi]):
                    m.d.sync += held[row.name].eq(value)
            m.d.comb += [ew.i_stream.valid.eq(act.o_stream.valid & sel[ng - 1]),
                         ew.i_stream.payload.unit.eq(unit)]
            for row in rows[:-1]:
                m.d.comb += ew.i_stream.payload[row.name].eq(held[row.name])
            m.d.comb += ew.i_stream.payload[rows[-1].name].eq(value)
            if Elementwise.state_fmt_name:
                # The load reaches the chain two cycles later, from registers: the chains of all
                # lanes are hundreds of flip-flops, too many for one cycle from the controller's
                # state. The chain is next used after the matrix-vector and gate latencies (> 2
                # cycles). Each lane's load pulse is the change of a toggle flip-flop of its own
                # (a plain register of state_load per lane would be one flip-flop after synthesis
                # merges the identical copies, driving every lane's chain), registered again so
                # that the chain's enable is one LUT of three flip-flops (load, rotate, write).
                load_data = Signal.like(ew.load_data, name=f"load_data{p}")
                toggle, toggle_d = Signal(name=f"state_load_t{p}"), Signal(name=f"state_load_td{p}")
                load_p = Signal(name=f"state_load_p{p}")
                load_data_r = Signal.like(ew.load_data, name=f"load_data_r{p}", reset_less=True)
                load_data_r2 = Signal.like(ew.load_data, name=f"load_data_rr{p}", reset_less=True)
                m.d.sync += [toggle.eq(toggle ^ state_load), toggle_d.eq(toggle), load_p.eq(toggle ^ toggle_d),
                             load_data_r.eq(load_data), load_data_r2.eq(load_data_r)]
                m.d.comb += [ew.load.eq(load_p), ew.load_data.eq(load_data_r2)]
                state_values.append(load_data)
            # The lane's units come out in order 0 .. U-1, once per step: its h_next elements are a
            # shift register that takes one at every output (no decoding of ``unit``).
            out = ew.o_stream
            lane_h = [h_next[u * pe + p] for u in range(U)]
            with m.If(out.valid):
                m.d.sync += [lane_h[u].eq(lane_h[u + 1]) for u in range(U - 1)]
                m.d.sync += lane_h[-1].eq(out.payload.h)
            ew_units.append(out)
            if self.state_out and model.cell_spec.has_cell_state:
                lane_states.append(ew.state)

        def lane_values(vector):
            return [[vector[u * pe + p] for u in range(U)] for p in range(pe)]

        o_valid, slot_free = output_register(m, self.o_stream)

        done_units = Signal(range(U + 1))
        with m.If(ew_units[0].valid):
            m.d.sync += done_units.eq(done_units + 1)

        payload = self.i_stream.payload
        zeros_h = [Const(0, dshape)] * H

        def accept(starts_sequence):
            """Take x_t; ``starts_sequence``: the step it starts is the first of a sequence."""
            m.d.comb += self.i_stream.ready.eq(1)
            with m.If(self.i_stream.valid):
                # x_reg and h_prev take their values in this cycle through the vector loads below.
                m.d.comb += accepted.eq(1)
                m.d.sync += cur_last.eq(payload.last)
                m.next = "MAC"
                h0 = [payload.h0[j] for j in range(H)] if self.initial_state else zeros_h
                with m.If(starts_sequence):
                    if model.cell_spec.has_cell_state:
                        c0 = ([payload.c0[j] for j in range(H)] if self.initial_state
                              else [Const(0, shape_of(fm.cell))] * H)
                        m.d.comb += state_load.eq(1)
                        for p, vals in enumerate(lane_values(c0)):
                            m.d.comb += [state_values[p][u].eq(v) for u, v in enumerate(vals)]
                    elif model.cell == "gru":
                        m.d.comb += state_load.eq(1)
                        for p, vals in enumerate(lane_values(h0)):
                            m.d.comb += [state_values[p][u].eq(v) for u, v in enumerate(vals)]

        # Vector loads. x_reg and h_prev are read only by the matrix-vector beats (MAC), so outside
        # MAC they simply follow their next values every cycle and hold the ones of the cycle that
        # accepts x_t (in the ring, they turn during MAC and are back in place at its end). Their
        # load enables are copies of one "not in MAC" flag, each for a group of elements (flags that
        # feed back into themselves, so synthesis keeps them apart), and the choice between h0 and
        # h_{t-1} likewise: no controller signal fans out to all of them.
        accepted = Signal()
        mac_done = Signal()
        h0_all = [payload.h0[j] for j in range(H)] if self.initial_state else zeros_h
        group = max(1, FEED_GROUP_BITS * 8 // dshape.width)
        targets = [(xr, payload.data[i], None) for i, xr in enumerate(x_reg)] + \
                  [(hp, h_next[j], h0_all[j]) for j, hp in enumerate(h_prev)] + \
                  [(pd, Const(0, dshape), None) for pd in pad]
        for g0 in range(0, len(targets), group):
            in_mac_c = Signal(name=f"in_mac_copy{g0 // group}")    # a copy of ``mac``
            start_c = Signal(init=1, name=f"starts_copy{g0 // group}")
            m.d.sync += in_mac_c.eq(Mux(in_mac_c, ~mac_done, accepted))
            m.d.sync += start_c.eq(Mux(accepted, payload.last, start_c))
            for i, (reg, value, h0_value) in enumerate(targets[g0:g0 + group], g0):
                load = value if h0_value is None else Mux(start_c, h0_value, value)
                if rotate:
                    m.d.sync += reg.eq(Mux(in_mac_c, vec[(i + simd) % len(vec)], load))
                else:
                    with m.If(~in_mac_c):
                        m.d.sync += reg.eq(load)

        # Output register: it becomes valid when the step is DONE and the register is empty (the
        # FSM's condition below). Each group of elements has its own copies of "DONE" and of the
        # register's valid flag (flags that feed back into themselves, so synthesis keeps them
        # apart and no single enable drives all H * width flip-flops).
        enter_done = Signal()
        out_group = max(1, FEED_GROUP_BITS * 4 // dshape.width)      # 32 bits per copy
        for g0 in range(0, H, out_group):
            done_c = Signal(name=f"done_copy{g0 // out_group}")
            valid_c = Signal(name=f"o_valid_copy{g0 // out_group}")
            load_c = done_c & ~valid_c
            m.d.sync += [done_c.eq(Mux(done_c, valid_c, enter_done)),
                         valid_c.eq(Mux(load_c, 1, Mux(self.o_stream.ready, 0, valid_c)))]
            # While empty, the group simply follows h_next (the payload of an empty register is never
            # looked at), so it holds h_t from the cycle the register is filled: its enable is the
            # valid copy alone.
            with m.If(~valid_c):
                m.d.sync += [self.o_stream.payload.data[j].eq(h_next[j]) for j in range(g0, min(H, g0 + out_group))]

        # ``mac``: the FSM is in MAC, as a flip-flop of its own (it is the matrix-vector unit's
        # valid and drives its counters, so no state decoding lies in front of them).
        m.d.sync += mac.eq(Mux(mac, ~mac_done, accepted))
        # ``mac_done`` (the step's last beat, which the vector loads' copies of ``mac`` wait for) is
        # a flip-flop too, from a count of the beats left: the fold and row counters' comparisons
        # and the FSM's state lay in front of those copies' long routes.
        beats = sum(ranges[i % len(ranges)][1] - ranges[i % len(ranges)][0] for i in range(R))
        m.d.comb += mac_done.eq(last_beat_flag(m, beats, accepted, mac, name="mac_last"))

        with m.FSM():
            with m.State("IDLE"):
                accept(first)
            with m.State("MAC"):
                with m.If(mac_done):
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(ew_units[0].valid & (done_units == U - 1)):
                    m.d.comb += enter_done.eq(1)
                    m.next = "DONE"
            with m.State("DONE"):
                with m.If(slot_free):
                    m.d.sync += [o_valid.eq(1), self.o_stream.payload.last.eq(cur_last), done_units.eq(0),
                                 first.eq(cur_last)]
                    for p, st in enumerate(lane_states):      # all units done: state[u] is unit u's c
                        m.d.sync += [self.o_stream.payload.c[u * pe + p].eq(st[u]) for u in range(U)]
                    if model.cell == "gru":
                        # The GRU's element-wise chain holds h_{t-1} of every step.
                        m.d.comb += state_load.eq(1)
                        for p, vals in enumerate(lane_values(h_next)):
                            m.d.comb += [state_values[p][u].eq(v) for u, v in enumerate(vals)]
                    m.next = "IDLE"
                    accept(cur_last)
        return m


#: Layer components of cells that do not run on :class:`RecurrentLayer` (cell name -> class taking
#: ``(model, initial_state=...)``), e.g. cells with a different step schedule.
LAYER_CLASSES: dict = {}


def build_layer(model: Model, *, initial_state: bool = False, state_out: bool = False, loaded=None,
                load_layout=None) -> wiring.Component:
    """The hardware of a one-layer model: :class:`RecurrentLayer` or the cell's own class.

    Every layer component has the same ports: ``i_stream`` with :func:`input_layout` and
    ``o_stream`` with :func:`output_layout` (``state_size`` codes of ``data``, and with
    ``state_out`` the cell states after the step for LSTMs). ``loaded`` weight memories (see
    :class:`RecurrentLayer`) exist only on :class:`RecurrentLayer`.
    """
    if model.schedule == "compact":
        from .compact import CompactLSTMLayer
        return CompactLSTMLayer(model, initial_state=initial_state, state_out=state_out, loaded=loaded,
                                load_layout=load_layout)
    if loaded and (model.proj_size or model.cell == "jordan" or model.cell in LAYER_CLASSES):
        raise ValueError(f"cell {model.cell!r}{' with proj_size' if model.proj_size else ''} has no run-time "
                         f"weight load path; keep its weights in block RAM (storage 'rom')")
    if loaded:
        return RecurrentLayer(model, initial_state=initial_state, state_out=state_out, loaded=loaded,
                              load_layout=load_layout)
    if model.proj_size or model.cell == "jordan":
        # LSTM with projection, Jordan RNN: a second matrix-vector pass per step.
        from .projected import ProjectedLayer
        return ProjectedLayer(model, initial_state=initial_state, state_out=state_out)
    cls = LAYER_CLASSES.get(model.cell, RecurrentLayer)
    return cls(model, initial_state=initial_state, state_out=state_out)


# Cells with their own layer class register it in LAYER_CLASSES when imported. They import names
# of this module, so they come last: gru_rb (reset before the recurrent product, two phases).
from . import gru_rb as _gru_rb  # noqa: E402,F401
