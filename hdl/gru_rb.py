"""The GRU with the reset gate *before* the recurrent product (cell ``"gru_rb"``): a two-phase step.

Equations and fixed-point definition: :mod:`rnnaccel.golden.gru_rb`. ``n = phi(W_n x + U_n (r*h) + b_n)``
needs ``r*h_{t-1}`` of *every* hidden unit before any ``U_n`` row can be summed, so one timestep
has two matrix-vector phases on the same :class:`~rnnaccel.hdl.mvu.MatrixVectorUnit`:

=======  ===========================================  =============================================
phase    matrix-vector rows (per hidden unit)          what follows the accumulator (per PE lane)
=======  ===========================================  =============================================
1        ``r``, ``z`` over ``[x_t; h_{t-1}]``;         r: :class:`~rnnaccel.hdl.layer.GateActivation`,
         ``nx = W_n x_t + b_n`` over the x chunks      then :class:`ResetProduct` -> ``rh`` register
                                                       bank; z: gate activation -> z register chain;
                                                       nx: exact, -> nx register chain
2        ``nh = U_n rh`` over the h chunks, whose      :class:`GRUResetBeforeElementwise` (with z, nx
         slots now hold ``rh`` instead of ``h_{t-1}``  from the chains) -> ``h_t``
=======  ===========================================  =============================================

Golden twins: :func:`rnnaccel.golden.mvu.matrix_vector`, :func:`rnnaccel.golden.layer.row_activation`,
:func:`rnnaccel.golden.gru_rb.reset_product`, :func:`rnnaccel.golden.gru_rb.gru_rb_elementwise`, and
:func:`rnnaccel.golden.gru_rb.gru_rb_step` for one step of :class:`GRUResetBeforeLayer`.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rnnaccel.golden import layer as golden_layer
from rnnaccel.golden.fixed import QFormat
from rnnaccel.golden.gru_rb import PHASE1_ROWS, PHASE2_ROWS, row_blocks
from rnnaccel.golden.model import Model

from .activation import activation_unit as _unit
from .fixed import align, requantize, shape_of
from .layer import ACT_KINDS, LAYER_CLASSES, GateActivation, layer_signature, output_register, vector_feed
from .mvu import MatrixVectorUnit, fold_counter, pack_banks
from .perf import GATE_LATENCY, RESET_PRODUCT_LATENCY, elementwise_latency, gru_rb_phase_gap, mvu_latency
from ._util import checked_init

__all__ = ["ResetProduct", "GRUResetBeforeElementwise", "GRUResetBeforeLayer", "gru_rb_row_order"]


def _units_arg(units) -> int:
    if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
        raise ValueError(f"units must be a positive integer (hidden units of the PE lane), got {units!r}")
    return int(units)


class ResetProduct(wiring.Component):
    """``rh = requantize(r * h_{t-1}, data)`` for one PE lane (mirrors :func:`rnnaccel.golden.gru_rb.reset_product`).

    Parameters
    ----------
    model : Model
        A one-layer ``gru_rb`` model (formats, rounding, overflow).
    units : int
        Hidden units of the lane (width of the ``unit`` tag).

    Attributes
    ----------
    i_stream : In(stream.Signature(StructLayout({"r": sigmoid_out, "h": data, "unit": range(units)}), always_ready=True))
        The reset gate of a unit and that unit's ``h_{t-1}``.
    o_stream : Out(stream.Signature(StructLayout({"rh": data, "unit": range(units)}), always_ready=True))

    Notes
    -----
    Latency :data:`~rnnaccel.hdl.perf.RESET_PRODUCT_LATENCY` = 3 cycles: multiplier input registers,
    product register, requantised ``rh`` register. Throughput one unit per cycle. One multiplier.
    """

    @checked_init
    def __init__(self, model: Model, units: int):
        if not isinstance(model, Model):
            raise TypeError(f"ResetProduct needs a rnnaccel Model, got {type(model).__name__}")
        self.model = model
        self.units = _units_arg(units)
        self.latency = RESET_PRODUCT_LATENCY
        f = model.formats
        super().__init__({
            "i_stream": In(stream.Signature(data.StructLayout({
                "r": shape_of(f.sigmoid_out), "h": shape_of(f.data), "unit": range(self.units)}), always_ready=True)),
            "o_stream": Out(stream.Signature(data.StructLayout({
                "rh": shape_of(f.data), "unit": range(self.units)}), always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        model, fm = self.model, self.model.formats
        p = self.i_stream.payload
        # Stage 1: multiplier input registers.
        r1, h1, u1, v1 = Signal.like(p.r, name="r1"), Signal.like(p.h, name="h1"), Signal.like(p.unit), Signal()
        m.d.sync += [r1.eq(p.r), h1.eq(p.h), u1.eq(p.unit), v1.eq(self.i_stream.valid)]
        # Stage 2: the exact product.
        prod = Signal(signed(fm.sigmoid_out.width + fm.data.width + 1), name="rh_exact")
        u2, v2 = Signal.like(u1), Signal()
        m.d.sync += [prod.eq(r1 * h1), u2.eq(u1), v2.eq(v1)]
        # Stage 3: the one rounding, to the matrix-vector unit's input format.
        out = self.o_stream.payload
        m.d.sync += [out.rh.eq(requantize(prod, QFormat(63, fm.sigmoid_out.frac + fm.data.frac), fm.data,
                                          model.rounding, model.overflow)),
                     out.unit.eq(u2), self.o_stream.valid.eq(v2)]
        return m


class GRUResetBeforeElementwise(wiring.Component):
    """Element-wise stage of ``gru_rb`` for one PE lane (mirrors :func:`rnnaccel.golden.gru_rb.gru_rb_elementwise`).

    ``n = phi(requantize(nx + nh, tanh_in, SAT))``, ``h = requantize((1-z)*n + z*h_prev, data)``,
    with ``nx`` and ``nh`` exact accumulators.

    Parameters
    ----------
    model : Model
        A one-layer ``gru_rb`` model.
    units : int
        Hidden units of the lane (width of the ``unit`` tag).

    Attributes
    ----------
    i_stream : In(stream.Signature(StructLayout({"z", "nx", "nh", "h", "unit"}), always_ready=True))
        ``z`` in ``sigmoid_out``; ``nx``, ``nh`` in the accumulator format; ``h`` = ``h_{t-1}`` in ``data``.
    o_stream : Out(stream.Signature(StructLayout({"h": data, "unit": range(units)}), always_ready=True))

    Notes
    -----
    Latency ``elementwise_latency("gru_rb")`` = 6 cycles: the candidate unit (4; its index register
    takes ``requantize(nx + nh)``), the products ``(1-z)*n`` and ``z*h_prev``, the hidden state.
    Throughput one unit per cycle. Two multipliers, one candidate unit.
    """

    @checked_init
    def __init__(self, model: Model, units: int):
        if not isinstance(model, Model):
            raise TypeError(f"GRUResetBeforeElementwise needs a rnnaccel Model, got {type(model).__name__}")
        self.model = model
        self.units = _units_arg(units)
        self.latency = elementwise_latency("gru_rb")
        f = model.formats
        acc = signed(model.accumulator.width)
        super().__init__({
            "i_stream": In(stream.Signature(data.StructLayout({
                "z": shape_of(f.sigmoid_out), "nx": acc, "nh": acc, "h": shape_of(f.data),
                "unit": range(self.units)}), always_ready=True)),
            "o_stream": Out(stream.Signature(data.StructLayout({
                "h": shape_of(f.data), "unit": range(self.units)}), always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        model, fm = self.model, self.model.formats
        p = self.i_stream.payload
        sf = fm.sigmoid_out.frac

        # n = phi(nx + nh): the exact sum is requantised into the candidate unit's index register.
        cand = golden_layer.activation_units(model)["cand"]
        m.submodules.cand = phi = _unit(cand)
        if self.latency != phi.latency + 2:  # pragma: no cover - perf and this pipeline must agree
            raise RuntimeError(f"elementwise_latency('gru_rb') = {self.latency} != {phi.latency} + 2")
        m.d.comb += [phi.i_stream.payload.eq(requantize(p.nx + p.nh, QFormat(63, model.accumulator.frac),
                                                        cand.in_fmt, model.rounding, "SAT")),
                     phi.i_stream.valid.eq(self.i_stream.valid)]

        # 1 - z, z, h_prev and unit wait beside the candidate unit.
        omz = Signal(signed(fm.sigmoid_out.width + 2), name="omz")
        z_d, hp_d, unit_d = (Signal.like(p.z, name="z_t0"), Signal.like(p.h, name="hp_t0"),
                             Signal.like(p.unit, name="unit_t0"))
        m.d.sync += [omz.eq((1 << sf) - p.z), z_d.eq(p.z), hp_d.eq(p.h), unit_d.eq(p.unit)]
        for i in range(1, phi.latency):
            omz_n, z_n, hp_n, unit_n = (Signal.like(omz, name=f"omz_t{i}"), Signal.like(z_d, name=f"z_t{i}"),
                                        Signal.like(hp_d, name=f"hp_t{i}"), Signal.like(unit_d, name=f"unit_t{i}"))
            m.d.sync += [omz_n.eq(omz), z_n.eq(z_d), hp_n.eq(hp_d), unit_n.eq(unit_d)]
            omz, z_d, hp_d, unit_d = omz_n, z_n, hp_n, unit_n

        # Products, then the hidden state (one rounding of the exact sum).
        a_frac, b_frac = sf + fm.tanh_out.frac, sf + fm.data.frac
        frac = max(a_frac, b_frac)
        a = Signal(signed(fm.sigmoid_out.width + 2 + fm.tanh_out.width), name="omz_n")
        b = Signal(signed(fm.sigmoid_out.width + 1 + fm.data.width), name="z_h")
        unit5, v5 = Signal.like(unit_d), Signal()
        m.d.sync += [a.eq(omz * phi.o_stream.payload), b.eq(z_d * hp_d), unit5.eq(unit_d),
                     v5.eq(phi.o_stream.valid)]
        out = self.o_stream.payload
        m.d.sync += [out.h.eq(requantize(align(a, a_frac, frac) + align(b, b_frac, frac), QFormat(63, frac),
                                         fm.data, model.rounding, model.overflow)),
                     out.unit.eq(unit5), self.o_stream.valid.eq(v5)]
        return m


def gru_rb_row_order(model: Model) -> tuple[np.ndarray, tuple[tuple[int, int], ...]]:
    """Local rows of every PE and their chunk ranges, for :func:`~rnnaccel.hdl.mvu.pack_banks`.

    PE ``p`` computes, with ``U = H / pe`` local units (hidden unit ``j = u*pe + p``): first the
    phase-1 rows ``r, z, nx`` of unit 0, of unit 1, ... (local rows ``3u + g``), then the phase-2
    rows ``nh`` of units ``0 .. U-1`` (local rows ``3U + u``).

    Returns
    -------
    order : numpy.ndarray, shape (pe, 4U)
        ``order[p, local row]`` = row of :func:`~rnnaccel.golden.layer.quantized_parameters`.
    ranges : tuple of (start, stop)
        Chunk range of every local row (one period of ``4U`` rows): ``xh``, ``xh``, ``x`` per unit,
        then ``h`` per unit.
    """
    H, pe = model.hidden_size, model.pe
    U = H // pe
    blk = row_blocks(model)
    part = dict(zip(model.gates, model.fold_ranges))
    names = [n for _ in range(U) for n in PHASE1_ROWS] + [n for _ in range(U) for n in PHASE2_ROWS]
    units = [u for u in range(U) for _ in PHASE1_ROWS] + [u for u in range(U) for _ in PHASE2_ROWS]
    order = np.array([[blk[n].start + u * pe + p for n, u in zip(names, units)] for p in range(pe)],
                     dtype=np.int64)
    return order, tuple(part[n] for n in names)


class GRUResetBeforeLayer(wiring.Component):
    """One ``gru_rb`` layer (reset before the recurrent product) behind valid/ready streams.

    Same ports and stream behaviour as :class:`rnnaccel.hdl.layer.RecurrentLayer` (built by
    :func:`rnnaccel.hdl.layer.build_layer` for ``cell = "gru_rb"``); one step is
    :func:`rnnaccel.golden.gru_rb.gru_rb_step`.

    Parameters
    ----------
    model : Model
        A one-layer ``gru_rb`` model.
    initial_state : bool
        Take ``h0`` from the input payload on the first step of every sequence; otherwise zeros.

    Attributes
    ----------
    i_stream : In(stream.Signature(input_layout(model, initial_state)))
    o_stream : Out(stream.Signature(vector_layout(data.width, H)))

    Notes
    -----
    Schedule of one timestep (``U = H/pe`` units per PE, ``F``, ``F_x``, ``F_h`` the chunk counts of
    the whole vector, of its x part and of its h part, ``L`` = ``mvu_latency``)::

        cycle 0           accept x_t (the cycle that hands h_{t-1} to the output register)
        phase 1           U*(2F + F_x) beats: rows r, z, nx of unit 0, 1, ..  over [x_t; h_{t-1}]
                          r -> gate activation (GATE_LATENCY) -> ResetProduct (3) -> rh bank
                          z -> gate activation (GATE_LATENCY) -> z chain;  nx (exact) -> nx chain
        gap               until rh of the last unit is in the bank: gru_rb_phase_gap(model) cycles
                          = max(0, L + GATE_LATENCY + 3 - (F + F_x)) (its z, nx rows hide part of the wait)
        phase 2           U*F_h beats: rows nh over [x_t; rh] (the h slots switch to the rh bank)
                          nh (exact) + z, nx from the chains -> element-wise stage (2 + TABLE_LATENCY) -> h_t bank
        drain             L + 2 + TABLE_LATENCY cycles

    so :func:`~rnnaccel.hdl.perf.layer_cycles` = ``1 + U*(2F + F_x + F_h) + gap + L + 5`` cycles per
    step, exactly (with the input always valid and the output always ready; otherwise the layer
    waits for the input in cycle 0 and for the output register to be free at the end).

    One matrix-vector unit serves both phases: its local rows are the phase-1 rows of every unit,
    then the phase-2 rows (:func:`gru_rb_row_order`; one period of ``4U`` chunk ranges). Two units
    (one per phase) would double the ``pe*simd`` multipliers for no cycle: phase 2 needs ``rh`` of
    all units, and phase 1 of step t+1 needs ``h_t``, so the two phases never overlap and each
    unit would idle while the other works. The same beats ``U*(2F + F_x + F_h)`` also bound the
    alternative of one ``n`` row over ``[x; rh]`` in phase 2 (``F_x + F_h >= F``); computing
    ``W_n x`` in phase 1 instead lets the ``nx`` row hide the reset product's latency.

    Resources per PE lane: one :class:`~rnnaccel.hdl.layer.GateActivation` (gate unit),
    :class:`ResetProduct` (1 multiplier), :class:`GRUResetBeforeElementwise` (2 multipliers, one
    candidate unit); register chains of ``U`` entries for ``h_{t-1}`` (``data``), ``z``
    (``sigmoid_out``) and ``nx`` (accumulator width: ``nx`` stays exact). The layer holds
    ``x_t``, ``h_{t-1}``, ``rh`` and ``h_t`` (``H`` codes of ``data`` each) in registers.
    """

    @checked_init
    def __init__(self, model: Model, *, initial_state: bool = False, state_out: bool = False):
        # state_out: a GRU has no state besides h, and the last output of a sequence is its final h.
        if not isinstance(model, Model):
            raise TypeError(f"GRUResetBeforeLayer needs a rnnaccel Model, got {type(model).__name__}")
        if model.cell != "gru_rb":
            raise ValueError(f"GRUResetBeforeLayer builds the 'gru_rb' cell, not {model.cell!r}; "
                             f"use rnnaccel.hdl.layer.build_layer(model)")
        if not model.is_single_layer:
            raise ValueError(f"GRUResetBeforeLayer builds one layer; take model.layer(k) of this "
                             f"{model.num_layers}-layer model")
        self.model = model
        self.initial_state = bool(initial_state)
        super().__init__(layer_signature(model, self.initial_state))

    def _check_schedule(self, ranges):
        """The chains rely on the schedule: every phase-1 value is stored (and the state chain's
        phase-1 rotations are done) before the first phase-2 accumulator reads them."""
        model = self.model
        U = model.hidden_size // model.pe
        L = mvu_latency(model.simd)
        beats = [b - a for a, b in ranges]
        f_r, f_z, f_x, f_h = beats[0], beats[1], beats[2], beats[3 * U]
        p1 = U * (f_r + f_z + f_x)
        first_nh = 1 + p1 + gru_rb_phase_gap(model) + f_h - 1 + L
        last_r, last_z, last_nx = p1 - f_z - f_x + L + GATE_LATENCY, p1 - f_x + L + GATE_LATENCY, p1 + L
        if first_nh <= max(last_r, last_z, last_nx):  # pragma: no cover - a schedule invariant
            raise RuntimeError(f"gru_rb schedule: phase 2 reads the chains at cycle {first_nh}, before "
                               f"phase 1 finishes them (r {last_r}, z {last_z}, nx {last_nx})")

    def elaborate(self, platform):
        m = Module()
        model, fm = self.model, self.model.formats
        X, H, pe, simd = model.input_size, model.hidden_size, model.pe, model.simd
        U, F = H // pe, model.folds
        R1 = len(PHASE1_ROWS) * U                # phase-1 local rows per PE
        R = R1 + len(PHASE2_ROWS) * U            # all local rows per PE

        order, ranges = gru_rb_row_order(model)
        self._check_schedule(ranges)
        params = golden_layer.quantized_parameters(model)
        w_banks, b_banks = pack_banks(params.weights, params.bias, pe, simd, order, ranges)
        m.submodules.mvu = mvu = MatrixVectorUnit(w_banks, b_banks, data_fmt=fm.data, weight_fmt=fm.weight,
                                                  acc_fmt=model.accumulator, bias_fmt=model.bias,
                                                  fold_ranges=ranges)

        dshape = shape_of(fm.data)
        x_reg = [Signal(dshape, name=f"x{i}") for i in range(X)]
        h_prev = [Signal(dshape, name=f"h_prev{j}") for j in range(H)]
        rh = [Signal(dshape, name=f"rh{j}") for j in range(H)]
        h_next = [Signal(dshape, name=f"h_next{j}") for j in range(H)]
        first = Signal(init=1)       # the next step to start is the first of a sequence
        cur_last = Signal()          # the current step is the last of a sequence
        phase2 = Signal()            # the vector's h slots read the rh bank
        rh_done = Signal()           # rh of every unit is in the bank

        # Matrix-vector beats: chunk k of [x_t; h_{t-1}] (phase 1) or [x_t; rh] (phase 2).
        vec = x_reg + [Mux(phase2, rh[j], h_prev[j]) for j in range(H)] + [Const(0, dshape)] * (F * simd - X - H)
        mac = Signal()
        lanes, r, row_last = vector_feed(m, vec, ranges, R, mac, simd, F)
        m.d.comb += [mvu.i_stream.payload[s].eq(v) for s, v in enumerate(lanes)]
        m.d.comb += mvu.i_stream.valid.eq(mac)

        # Which row leaves the matrix-vector unit: phase-1 row g (r, z, nx) of unit u, or phase 2.
        out = mvu.o_stream
        o_ph2, o_g, o_u = Signal(name="o_phase2"), Signal(range(len(PHASE1_ROWS)), name="o_g"), Signal(range(U), name="o_u")
        with m.If(out.valid):
            with m.If(o_ph2):
                with m.If(o_u == U - 1):
                    m.d.sync += [o_u.eq(0), o_ph2.eq(0)]
                with m.Else():
                    m.d.sync += o_u.eq(o_u + 1)
            with m.Elif(o_g == len(PHASE1_ROWS) - 1):
                m.d.sync += o_g.eq(0)
                with m.If(o_u == U - 1):
                    m.d.sync += [o_u.eq(0), o_ph2.eq(1)]
                with m.Else():
                    m.d.sync += o_u.eq(o_u + 1)
            with m.Else():
                m.d.sync += o_g.eq(o_g + 1)
        g_r, g_z, g_nx = (PHASE1_ROWS.index(n) for n in ("r", "z", "nx"))
        to_gate = out.valid & ~o_ph2 & ((o_g == g_r) | (o_g == g_z))
        nx_now = out.valid & ~o_ph2 & (o_g == g_nx)
        ew_now = out.valid & o_ph2

        # Row tags beside the gate activation.
        is_r, unit_g = o_g == g_r, o_u
        for i in range(GATE_LATENCY):
            is_r_n, unit_n = Signal(name=f"gate_is_r{i}"), Signal.like(o_u, name=f"gate_unit{i}")
            m.d.sync += [is_r_n.eq(is_r), unit_n.eq(unit_g)]
            is_r, unit_g = is_r_n, unit_n

        state_load = Signal()
        state_values = []            # per lane: the values the h_{t-1} chain loads
        rps, ews = [], []
        acc_shape = signed(model.accumulator.width)
        for p in range(pe):
            act = GateActivation(model)
            rp = ResetProduct(model, U)
            ew = GRUResetBeforeElementwise(model, U)
            m.submodules[f"gate{p}"] = act
            m.submodules[f"reset{p}"] = rp
            m.submodules[f"elementwise{p}"] = ew
            acc = out.payload.acc[p]
            m.d.comb += [act.i_stream.valid.eq(to_gate), act.i_stream.payload.acc.eq(acc),
                         act.i_stream.payload.kind.eq(ACT_KINDS.index("gate"))]
            value = act.o_stream.payload
            r_now = act.o_stream.valid & is_r
            z_now = act.o_stream.valid & ~is_r

            # Register chains of the lane's units. h_chain rotates once per use (the units come in
            # order 0 .. U-1 in phase 1 and again in phase 2), so the current unit's h_{t-1} is at its
            # head; z and nx are pushed at the tail in phase 1 and taken from the head in phase 2.
            h_chain = [Signal(dshape, name=f"h_chain{p}_{u}") for u in range(U)]
            z_chain = [Signal(shape_of(fm.sigmoid_out), name=f"z_chain{p}_{u}") for u in range(U)]
            nx_chain = [Signal(acc_shape, name=f"nx_chain{p}_{u}") for u in range(U)]
            for chain, push, new in ((z_chain, z_now, value), (nx_chain, nx_now, acc)):
                with m.If(push | ew_now):
                    m.d.sync += [chain[u].eq(chain[u + 1]) for u in range(U - 1)]
                with m.If(push):
                    m.d.sync += chain[-1].eq(new)
            load_data = [Signal(dshape, name=f"h_load{p}_{u}") for u in range(U)]
            with m.If(state_load):
                m.d.sync += [h_chain[u].eq(load_data[u]) for u in range(U)]
            with m.Elif(r_now | ew_now):
                m.d.sync += [h_chain[u].eq(h_chain[(u + 1) % U]) for u in range(U)]
            state_values.append(load_data)

            m.d.comb += [rp.i_stream.valid.eq(r_now), rp.i_stream.payload.r.eq(value),
                         rp.i_stream.payload.h.eq(h_chain[0]), rp.i_stream.payload.unit.eq(unit_g)]
            for u in range(U):
                with m.If(rp.o_stream.valid & (rp.o_stream.payload.unit == u)):
                    m.d.sync += rh[u * pe + p].eq(rp.o_stream.payload.rh)

            m.d.comb += [ew.i_stream.valid.eq(ew_now), ew.i_stream.payload.z.eq(z_chain[0]),
                         ew.i_stream.payload.nx.eq(nx_chain[0]), ew.i_stream.payload.nh.eq(acc),
                         ew.i_stream.payload.h.eq(h_chain[0]), ew.i_stream.payload.unit.eq(o_u)]
            for u in range(U):
                with m.If(ew.o_stream.valid & (ew.o_stream.payload.unit == u)):
                    m.d.sync += h_next[u * pe + p].eq(ew.o_stream.payload.h)
            rps.append(rp.o_stream)
            ews.append(ew.o_stream)

        # All lanes run in lockstep: lane 0 tells when the last unit's rh / h_t is written.
        with m.If(rps[0].valid & (rps[0].payload.unit == U - 1)):
            m.d.sync += rh_done.eq(1)

        def lane_values(vector):
            return [[vector[u * pe + p] for u in range(U)] for p in range(pe)]

        def load_state(vector):
            m.d.comb += state_load.eq(1)
            for p, vals in enumerate(lane_values(vector)):
                m.d.comb += [state_values[p][u].eq(v) for u, v in enumerate(vals)]

        o_valid, slot_free = output_register(m, self.o_stream)

        payload = self.i_stream.payload
        zeros_h = [Const(0, dshape)] * H

        def accept(starts_sequence):
            """Take x_t; ``starts_sequence``: the step it starts is the first of a sequence."""
            m.d.comb += self.i_stream.ready.eq(1)
            with m.If(self.i_stream.valid):
                m.d.sync += [xr.eq(payload.data[i]) for i, xr in enumerate(x_reg)]
                m.d.sync += cur_last.eq(payload.last)
                m.next = "PHASE1"
                h0 = [payload.h0[j] for j in range(H)] if self.initial_state else zeros_h
                with m.If(starts_sequence):
                    m.d.sync += [h_prev[j].eq(h0[j]) for j in range(H)]
                    load_state(h0)

        with m.FSM():
            with m.State("IDLE"):
                accept(first)
            with m.State("PHASE1"):
                m.d.comb += mac.eq(1)
                with m.If(row_last & (r == R1 - 1)):
                    m.next = "PHASE2"
            with m.State("PHASE2"):
                m.d.comb += [phase2.eq(1), mac.eq(rh_done)]
                with m.If(rh_done & row_last & (r == R - 1)):
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(ews[0].valid & (ews[0].payload.unit == U - 1)):
                    m.next = "DONE"
            with m.State("DONE"):
                with m.If(slot_free):
                    m.d.sync += [o_valid.eq(1), self.o_stream.payload.last.eq(cur_last), first.eq(cur_last),
                                 rh_done.eq(0)]
                    m.d.sync += [self.o_stream.payload.data[j].eq(h_next[j]) for j in range(H)]
                    m.d.sync += [h_prev[j].eq(h_next[j]) for j in range(H)]
                    load_state(h_next)
                    m.next = "IDLE"
                    accept(cur_last)
        return m


LAYER_CLASSES["gru_rb"] = GRUResetBeforeLayer
