"""Projected recurrent layers in hardware: LSTM with projection and Jordan RNN.

Both cells compute, per step, the usual gate pass and element-wise stage over ``H`` hidden units,
then a *projection pass* of ``P = proj_size`` rows over the ``H`` element-wise results, whose
rounded result is the vector that is output and fed back (equations and rounding points in
:mod:`rnnaccel.golden.projected`):

=====================  ==========================================================================
block                  golden function
=====================  ==========================================================================
gate + projection rows :func:`rnnaccel.golden.mvu.matrix_vector` /
of the one             :func:`rnnaccel.golden.projected.projection`
:class:`~rnnaccel.hdl.mvu.MatrixVectorUnit`
:class:`~rnnaccel.hdl.layer.GateActivation`   :func:`rnnaccel.golden.layer.row_activation`
:class:`~rnnaccel.hdl.layer.LSTMElementwise`  :func:`rnnaccel.golden.layer.lstm_elementwise` (``m_t``)
:class:`~rnnaccel.hdl.layer.RNNElementwise`   :func:`rnnaccel.golden.layer.rnn_elementwise` (Jordan ``h_t``)
:class:`ProjectionOutput`                     :func:`rnnaccel.golden.projected.projection_output`
:class:`ProjectedLayer`                       :func:`rnnaccel.golden.projected.projected_step` per step
=====================  ==========================================================================

The projection rows live in the same weight and bias memories as the gate rows, after them, and
run on the same multipliers: the two passes of a step are sequential anyway (the projection needs
all of ``m_t``, the next gate pass needs ``h_t``), so a second matrix-vector unit would idle half
the time.
"""

from __future__ import annotations

import math

import numpy as np
from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from rnnaccel.golden import layer as golden_layer
from rnnaccel.golden import projected as golden_projected
from rnnaccel.golden.model import Model

from .activation import activation_unit
from .fixed import requantize, shape_of
from .layer import (ACT_KINDS, GateActivation, LSTMElementwise, RNNElementwise, layer_signature,
                    output_register, row_order,
                    vector_chunk)
from .mvu import MatrixVectorUnit, fold_counter, pack_banks
from .perf import GATE_LATENCY, PROJECTION_OUTPUT_LATENCIES
from ._util import checked_init

__all__ = ["ProjectionOutput", "ProjectedLayer", "projection_banks"]

_ELEMENTWISE = {"lstm": LSTMElementwise, "jordan": RNNElementwise}


def _check_model(model, who: str):
    if not isinstance(model, Model):
        raise TypeError(f"{who} needs a rnnaccel Model, got {type(model).__name__}")
    if model.cell not in golden_projected.PROJECTED_CELLS or not model.proj_size:
        raise ValueError(f"{who} builds a layer with a projection (cell 'lstm' with proj_size > 0, or "
                         f"'jordan'); got cell {model.cell!r} with proj_size {model.proj_size}: use "
                         f"rnnaccel.hdl.layer.build_layer(model)")


class ProjectionOutput(wiring.Component):
    """Projection accumulator -> fed-back value in ``data`` (mirrors
    :func:`rnnaccel.golden.projected.projection_output`).

    LSTM: ``h = requantize(acc, data)``. Jordan: ``y = requantize(phi_unit(requantize(acc, tanh_in,
    SAT)), tanh_out -> data)`` with the candidate unit (table or piecewise-linear).

    Parameters
    ----------
    model : Model
        A one-layer ``lstm`` model with ``proj_size`` or a ``jordan`` model.

    Attributes
    ----------
    i_stream : In(stream.Signature(signed(model.projection_accumulator.width), always_ready=True))
        Exact projection sums.
    o_stream : Out(stream.Signature(shape_of(data), always_ready=True))

    Notes
    -----
    Latency ``PROJECTION_OUTPUT_LATENCIES[cell]``: 1 cycle for the LSTM (the requantisation
    register), 4 for Jordan (the unit's index register, table read, data register, then the
    ``data`` register). Throughput one value per cycle. No multipliers (Jordan: one candidate unit).
    """

    @checked_init
    def __init__(self, model: Model):
        _check_model(model, "ProjectionOutput")
        self.model = model
        self.latency = PROJECTION_OUTPUT_LATENCIES[model.cell]
        super().__init__({
            "i_stream": In(stream.Signature(signed(model.projection_accumulator.width), always_ready=True)),
            "o_stream": Out(stream.Signature(shape_of(model.formats.data), always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        model, fm = self.model, self.model.formats
        acc, out = self.i_stream.payload, self.o_stream
        if model.cell == "lstm":
            m.d.sync += [out.payload.eq(requantize(acc, model.projection_accumulator, fm.data, model.rounding,
                                                   model.overflow)),
                         out.valid.eq(self.i_stream.valid)]
            return m
        cand = golden_layer.activation_units(model)["cand"]
        m.submodules.cand = unit = activation_unit(cand)
        m.d.comb += [unit.i_stream.payload.eq(requantize(acc, model.projection_accumulator, cand.in_fmt,
                                                         model.rounding, "SAT")),
                     unit.i_stream.valid.eq(self.i_stream.valid)]
        m.d.sync += [out.payload.eq(requantize(unit.o_stream.payload, fm.tanh_out, fm.data, model.rounding,
                                               model.overflow)),
                     out.valid.eq(unit.o_stream.valid)]
        return m


def _period(ranges: tuple) -> tuple:
    """The shortest prefix of ``ranges`` that repeats to all of it (the MVU's chunk-range pattern)."""
    n = len(ranges)
    for d in range(1, n + 1):
        if n % d == 0 and ranges[:d] * (n // d) == ranges:
            return ranges[:d]
    return ranges  # pragma: no cover - d = n always matches


def projection_banks(model: Model):
    """Memory contents of the layer's matrix-vector unit: gate rows, then projection rows.

    Returns
    -------
    w_banks, b_banks : numpy.ndarray
        (pe, words, simd) weight codes and (pe, R + Rp) bias codes (:func:`~rnnaccel.hdl.mvu.pack_banks`):
        per PE first its ``R = rows_per_pe`` gate rows (unit-interleaved, :func:`~rnnaccel.hdl.layer.row_order`,
        over ``[x_t; h_{t-1}]``), then ``Rp = ceil(P / pe)`` projection rows over the ``H`` results:
        PE ``p``'s projection row ``q`` is output ``q * pe + p`` (zero rows past ``P``).
    fold_ranges : tuple of (start, stop)
        The chunk ranges of every local row (as a repeating pattern) for the unit and the controller.
    """
    H, P, pe, simd = model.hidden_size, model.proj_size, model.pe, model.simd
    rp = math.ceil(P / pe)
    gate = golden_layer.quantized_parameters(model)
    wg, bg = pack_banks(gate.weights, gate.bias, pe, simd, row_order(model), model.fold_ranges)
    proj = golden_projected.projection_parameters(model)
    w = np.zeros((rp * pe, H), dtype=np.int64)
    b = np.zeros(rp * pe, dtype=np.int64)
    w[:P], b[:P] = proj.weights, proj.bias
    wp, bp = pack_banks(w, b, pe, simd)
    ranges = model.fold_ranges * (H // pe) + ((0, math.ceil(H / simd)),) * rp
    return np.concatenate([wg, wp], axis=1), np.concatenate([bg, bp], axis=1), _period(ranges)


class ProjectedLayer(wiring.Component):
    """One projected recurrent layer (``lstm`` with ``proj_size``, ``jordan``) behind valid/ready streams.

    The same ports and stream behaviour as :class:`~rnnaccel.hdl.layer.RecurrentLayer`, with the
    fed-back and output vector of ``P = proj_size`` codes.

    Parameters
    ----------
    model : Model
        A one-layer model (:meth:`~rnnaccel.golden.model.Model.layer`) with a projection.
    initial_state : bool
        Take ``h0`` (``P`` codes of ``data``: ``h_0`` of the LSTM, ``y_0`` of Jordan) and, for the
        LSTM, ``c0`` (``H`` codes of ``cell``) from the first beat of every sequence.

    Attributes
    ----------
    i_stream : In(stream.Signature(input_layout(model, initial_state)))
        One beat per timestep, ``last`` on the final step of a sequence (the state returns to zero,
        or the next ``h0``/``c0``, after it).
    o_stream : Out(stream.Signature(vector_layout(data.width, proj_size)))
        ``h_t`` (LSTM) / ``y_t`` (Jordan) every step, ``last`` copied from the input.

    Notes
    -----
    Step schedule (input always valid, output always ready), :func:`~rnnaccel.hdl.perf.layer_cycles`
    cycles per timestep exactly:

    1. accept ``x_t`` (the same cycle hands ``h_{t-1}`` to the output register);
    2. gate pass: ``mac_cycles`` beats over ``[x_t; h_{t-1}]``, then the drain through the
       matrix-vector unit, :class:`~rnnaccel.hdl.layer.GateActivation` and the element-wise stage
       (``mvu_latency + GATE_LATENCY + elementwise_latency``), which writes ``m_t`` / ``h_t`` (``H``
       registers);
    3. projection pass: ``ceil(P / pe) * ceil(H / simd)`` beats over those registers on the same
       matrix-vector unit, its latency, and :class:`ProjectionOutput` (1 cycle LSTM, 4 Jordan).

    Throughput one step per ``layer_cycles``; the output is a one-deep register, so the layer
    computes step t+1 while h_t waits. Resources: ``pe * simd`` multipliers shared by both passes,
    the element-wise multipliers of the cell, one weight memory per PE holding the gate and the
    projection rows; registers for ``x_t``, ``h_{t-1}`` (P), the ``H`` element-wise results and
    ``h_t`` (P).
    """

    @checked_init
    def __init__(self, model: Model, *, initial_state: bool = False, state_out: bool = False):
        _check_model(model, "ProjectedLayer")
        if not model.is_single_layer:
            raise ValueError(f"ProjectedLayer builds one layer; take model.layer(k) of this "
                             f"{model.num_layers}-layer model")
        self.model = model
        self.initial_state = bool(initial_state)
        self.state_out = bool(state_out)
        super().__init__(layer_signature(model, self.initial_state, self.state_out))

    def elaborate(self, platform):
        m = Module()
        model, fm = self.model, self.model.formats
        X, H, P, pe, simd = model.input_size, model.hidden_size, model.proj_size, model.pe, model.simd
        R, U = model.rows_per_pe, H // pe
        Rp, Fp, Fg = math.ceil(P / pe), math.ceil(H / simd), model.folds
        F = max(Fg, Fp)
        rows = model.cell_spec.rows
        ng = len(rows)
        lstm = model.cell == "lstm"

        w_banks, b_banks, ranges = projection_banks(model)
        acc_fmt = max(model.accumulator, model.projection_accumulator, key=lambda f: f.width)
        m.submodules.mvu = mvu = MatrixVectorUnit(w_banks, b_banks, data_fmt=fm.data, weight_fmt=fm.weight,
                                                  acc_fmt=acc_fmt, bias_fmt=model.bias, fold_ranges=ranges)

        dshape = shape_of(fm.data)
        x_reg = [Signal(dshape, name=f"x{i}") for i in range(X)]
        h_prev = [Signal(dshape, name=f"h_prev{j}") for j in range(P)]
        m_reg = [Signal(dshape, name=f"m{j}") for j in range(H)]        # element-wise results
        h_next = [Signal(dshape, name=f"h_next{j}") for j in range(P)]
        first = Signal(init=1)       # the next step to start is the first of a sequence
        cur_last = Signal()          # the current step is the last of a sequence

        # Matrix-vector beats: chunk k of [x; h_prev] (gate rows) or of m (projection rows).
        mac, proj_phase = Signal(), Signal()
        k, _, r, _, row_last = fold_counter(m, ranges, R + Rp, mac, prefix="ctl_")
        zero = Const(0, dshape)
        vec_g = x_reg + h_prev + [zero] * (F * simd - X - P)
        vec_p = m_reg + [zero] * (F * simd - H)
        for s, (g_val, p_val) in enumerate(zip(vector_chunk(vec_g, k, simd, F), vector_chunk(vec_p, k, simd, F))):
            m.d.comb += mvu.i_stream.payload[s].eq(Mux(proj_phase, p_val, g_val))
        m.d.comb += mvu.i_stream.valid.eq(mac)

        out_row = mvu.o_stream.payload.row
        out_proj = out_row >= R

        # Gate rows: per-PE row activation, row collection, element-wise stage (as RecurrentLayer).
        gate_rows = [Signal(range(R + Rp), name=f"gate_row{i}") for i in range(GATE_LATENCY)]
        m.d.sync += gate_rows[0].eq(out_row)
        for i in range(1, GATE_LATENCY):
            m.d.sync += gate_rows[i].eq(gate_rows[i - 1])
        gate = gate_rows[-1] % ng if ng > 1 else Const(0)
        unit = gate_rows[-1] // ng if ng > 1 else gate_rows[-1]
        kinds = [ACT_KINDS.index(row.act) for row in rows]
        kind_now = Array(Const(v, range(len(ACT_KINDS))) for v in kinds)[out_row % ng] if ng > 1 else kinds[0]

        state_load = Signal()
        state_values = []            # per lane: the cell states the LSTM chain loads
        ew_outs = []
        lane_states = []             # per lane: the cell-state chain, for state_out
        Elementwise = _ELEMENTWISE[model.cell]
        for p in range(pe):
            act = GateActivation(model)
            ew = Elementwise(model, U)
            m.submodules[f"gate{p}"] = act
            m.submodules[f"elementwise{p}"] = ew
            m.d.comb += [act.i_stream.valid.eq(mvu.o_stream.valid & ~out_proj),
                         act.i_stream.payload.acc.eq(mvu.o_stream.payload.acc[p]),   # exact: fits
                         act.i_stream.payload.kind.eq(kind_now)]
            value = act.o_stream.payload
            held = {}
            for gi, row in enumerate(rows[:-1]):
                held[row.name] = Signal(ew.i_stream.payload[row.name].shape(), name=f"{row.name}_held{p}")
                with m.If(act.o_stream.valid & (gate == gi)):
                    m.d.sync += held[row.name].eq(value)
            m.d.comb += [ew.i_stream.valid.eq(act.o_stream.valid & (gate == ng - 1)),
                         ew.i_stream.payload.unit.eq(unit)]
            for row in rows[:-1]:
                m.d.comb += ew.i_stream.payload[row.name].eq(held[row.name])
            m.d.comb += ew.i_stream.payload[rows[-1].name].eq(value)
            if lstm:
                load_data = Signal.like(ew.load_data, name=f"load_data{p}")
                m.d.comb += [ew.load.eq(state_load), ew.load_data.eq(load_data)]
                state_values.append(load_data)
            for u in range(U):
                with m.If(ew.o_stream.valid & (ew.o_stream.payload.unit == u)):
                    m.d.sync += m_reg[u * pe + p].eq(ew.o_stream.payload.h)
            ew_outs.append(ew.o_stream)
            if self.state_out and model.cell_spec.has_cell_state:
                lane_states.append(ew.state)

        # Projection rows: per-PE output stage; PE p's projection row q is h_t[q * pe + p].
        prow = Signal(range(Rp), name="prow")
        m.d.comb += prow.eq(out_row - R)
        prow_d = prow
        po_outs = []
        for p in range(pe):
            po = ProjectionOutput(model)
            m.submodules[f"projection{p}"] = po
            m.d.comb += [po.i_stream.valid.eq(mvu.o_stream.valid & out_proj),
                         po.i_stream.payload.eq(mvu.o_stream.payload.acc[p])]              # exact: fits
            po_outs.append(po.o_stream)
        for i in range(PROJECTION_OUTPUT_LATENCIES[model.cell]):
            nxt = Signal(range(Rp), name=f"prow_d{i}")
            m.d.sync += nxt.eq(prow_d)
            prow_d = nxt
        for p, po_out in enumerate(po_outs):
            for q in range(Rp):
                if q * pe + p < P:
                    with m.If(po_out.valid & (prow_d == q)):
                        m.d.sync += h_next[q * pe + p].eq(po_out.payload)

        o_valid, slot_free = output_register(m, self.o_stream)

        done_units = Signal(range(U + 1))
        with m.If(ew_outs[0].valid):
            m.d.sync += done_units.eq(done_units + 1)

        payload = self.i_stream.payload

        def accept(starts_sequence):
            """Take x_t; ``starts_sequence``: the step it starts is the first of a sequence."""
            m.d.comb += self.i_stream.ready.eq(1)
            with m.If(self.i_stream.valid):
                m.d.sync += [xr.eq(payload.data[i]) for i, xr in enumerate(x_reg)]
                m.d.sync += cur_last.eq(payload.last)
                m.next = "MAC"
                h0 = [payload.h0[j] for j in range(P)] if self.initial_state else [zero] * P
                with m.If(starts_sequence):
                    m.d.sync += [h_prev[j].eq(h0[j]) for j in range(P)]
                    if lstm:
                        c0 = ([payload.c0[j] for j in range(H)] if self.initial_state
                              else [Const(0, shape_of(fm.cell))] * H)
                        m.d.comb += state_load.eq(1)
                        for p in range(pe):
                            m.d.comb += [state_values[p][u].eq(c0[u * pe + p]) for u in range(U)]

        with m.FSM():
            with m.State("IDLE"):
                accept(first)
            with m.State("MAC"):
                m.d.comb += mac.eq(1)
                with m.If(row_last & (r == R - 1)):
                    m.next = "GATE_DRAIN"
            with m.State("GATE_DRAIN"):
                with m.If(ew_outs[0].valid & (done_units == U - 1)):
                    m.d.sync += done_units.eq(0)
                    m.next = "PROJECT"
            with m.State("PROJECT"):
                m.d.comb += [mac.eq(1), proj_phase.eq(1)]
                with m.If(row_last & (r == R + Rp - 1)):
                    m.next = "PROJECT_DRAIN"
            with m.State("PROJECT_DRAIN"):
                with m.If(po_outs[0].valid & (prow_d == Rp - 1)):
                    m.next = "DONE"
            with m.State("DONE"):
                with m.If(slot_free):
                    m.d.sync += [o_valid.eq(1), self.o_stream.payload.last.eq(cur_last), first.eq(cur_last)]
                    m.d.sync += [self.o_stream.payload.data[j].eq(h_next[j]) for j in range(P)]
                    m.d.sync += [h_prev[j].eq(h_next[j]) for j in range(P)]
                    for p, st in enumerate(lane_states):      # all units done: state[u] is unit u's c
                        m.d.sync += [self.o_stream.payload.c[u * pe + p].eq(st[u]) for u in range(U)]
                    m.next = "IDLE"
                    accept(cur_last)
        return m
