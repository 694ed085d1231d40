"""The compact LSTM layer: one activation table and one element-wise stage for all PE lanes.

For small parts (iCE40 UP5K: 5280 logic cells, 30 block RAMs, 8 DSPs) the pipelined
:class:`~rnnaccel.hdl.layer.RecurrentLayer` is too big: every PE lane has its own gate and
candidate tables and its own element-wise stage with three multipliers, and the layer keeps four
vectors (``x_t``, ``h_{t-1}``, ``h_t``, the output register) in flip-flops. The compact schedule
(``[hardware] schedule = "compact"``, cells ``lstm`` and ``lstm_nf``) keeps the same
matrix-vector unit and runs everything after it serially, which the matrix-vector unit's pace
allows: a row of every PE completes only every ``F`` beats, a hidden unit of every PE every
``rows * F`` beats.

* **One activation unit** (:class:`CompactLSTMLayer`): the ``pe`` accumulators of a row go
  through it one per cycle, and the element-wise stage's ``tanh(c)`` look-ups take the cycles in
  between. Where :func:`~rnnaccel.golden.activation.shared_gate_offset` proves that the gate
  (sigmoid) table equals the candidate (tanh) table plus a constant -- the default formats -- the
  unit is that one table: ``sigmoid(i) = 2**15 + tanh(i)`` for the same index code.
* **One element-wise stage** with bit-serial multipliers (:func:`serial_product`: one bit of the
  gate value per cycle, a ``w + 2``-bit adder, no DSP block): products ``f*c`` and ``i*g``, the
  cell state (in a memory of ``H`` words, not flip-flops), its ``tanh`` look-up, ``o*tanh(c)``.
  Two stages (A: the cell state, B: the hidden state) work on consecutive units.
* **Fewer vectors**: ``x_t`` is read from the input stream's payload, which the producer holds
  (the input is taken only at the end of the step's matrix-vector beats), through a multiplexer
  in two registered halves; ``h_{t-1}`` (and, where they fit, the biases) from one small memory
  per SIMD lane, written as ``h_t``'s elements come; ``h_t`` is collected in a shift register
  that *is* the output payload (the next step starts when it has been taken), which a byte
  wrapper can read out element by element by rotating it (``o_rotate``).
* **Flip-flops in front of every fan-out** (found on the UP5K, where routes dominate): the step
  start, the last beat, the stages' states (one flip-flop each), per-lane copies of the chunk
  counters; sums of three terms as one adder (:func:`~rnnaccel.hdl.fixed.add_with_carry`); the matrix-vector unit's
  accumulators split in two halves when the biases come from memory.

The values are those of the golden model (:mod:`rnnaccel.golden.layer`), bit for bit: only the
schedule differs. Cycles per step: :func:`rnnaccel.hdl.perf.layer_cycles` (the registered start,
the MAC bound, the input registers, the matrix-vector latency, and the drain of the last unit
group through the serial stages, :func:`compact_drain`).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In

from rnnaccel.golden import layer as golden_layer
from rnnaccel.golden.activation import shared_gate_offset
from rnnaccel.golden.fixed import QFormat
from rnnaccel.golden.model import ConfigError, Model

from .activation import activation_unit as _unit
from .fixed import add_with_carry, align, extend, requantize, requantize_split, shape_of
from .mvu import MatrixVectorUnit, fold_counter, last_beat_flag
from .perf import GATE_LATENCY, compact_biases_in_memory, compact_drain, compact_timing, mvu_latency
from ._util import checked_init

__all__ = ["CompactLSTMLayer", "serial_product", "check_compact_model", "COMPACT_CELLS"]

#: Cells the compact schedule builds.
COMPACT_CELLS = ("lstm", "lstm_nf")


def check_compact_model(model: Model) -> None:
    """Raise :class:`~rnnaccel.golden.model.ConfigError` unless the compact schedule can build ``model``.

    Conditions: cell ``lstm`` or ``lstm_nf``, no projection, no initial or final states, not
    bidirectional; every row visits all ``F`` chunks of ``[x; h]``; the ``pe`` accumulators of a row
    go through the shared activation unit before the next row's come (``F > pe``); and stage B
    (the slowest) finishes the ``pe`` units of a unit group before the next group's come
    (``pe * (b + slot_wait) <= rows * F``), so that nothing waits longer than a group.
    """
    if model.cell not in COMPACT_CELLS:
        raise ConfigError(f"hardware.schedule = 'compact' builds cells {', '.join(COMPACT_CELLS)}, not "
                          f"{model.cell!r}; use schedule 'pipelined'")
    for field, bad in (("proj_size", model.proj_size), ("initial_state", model.initial_state),
                       ("final_state", model.final_state), ("bidirectional", model.bidirectional)):
        if bad:
            raise ConfigError(f"hardware.schedule = 'compact' has no {field} (model.{field} = {bad!r}); "
                              f"use schedule 'pipelined'")
    for k in range(model.num_layers):
        lay = model.layer(k)
        F, pe, ng = lay.folds, lay.pe, len(lay.cell_spec.rows)
        if any(rng != (0, F) for rng in lay.fold_ranges):
            raise ConfigError(f"hardware.schedule = 'compact': layer {k}'s rows do not all read the whole "
                              f"vector (fold ranges {lay.fold_ranges}); use schedule 'pipelined'")
        if F <= pe:
            raise ConfigError(
                f"hardware.schedule = 'compact': layer {k} has {F} chunks per row (simd = {lay.simd}) for "
                f"pe = {pe} accumulators per row through one activation unit; it needs more chunks than PEs: "
                f"choose a smaller simd or pe")
        t = compact_timing(lay)
        if pe * (t["b"] + t["slot_wait"]) > ng * F:
            raise ConfigError(
                f"hardware.schedule = 'compact': layer {k}'s serial element-wise stage takes "
                f"{t['b'] + t['slot_wait']} cycles per unit, {pe} units every {ng * F} cycles is too fast "
                f"(pe * {t['b'] + t['slot_wait']} > {ng} rows * {F} chunks); choose a smaller pe or simd")


def serial_product(m: Module, a, b, start, *, name: str):
    """``a * b`` by shift and add, one bit of ``b`` per cycle (no multiplier).

    ``a`` and ``b`` are sampled in the cycle ``start`` is high; the product is valid (and held) from
    ``len(b)`` cycles later, until the next start. ``b`` may be signed (its sign bit is
    subtracted). Returns ``(product, busy)``: ``product`` has the shape of ``a * b``; ``busy`` is
    high in the ``len(b)`` cycles after a start (a start while busy begins anew).

    Logic: an adder of ``len(a) + 2`` bits and ``len(a) + len(b) + 1`` flip-flops for the partial
    product (its high part, and ``b``'s bits shifting out of the low part as the product's bits
    shift in), plus ``a`` and a bit counter.
    """
    a_shape, b_shape = a.shape(), b.shape()
    wa, wb = a_shape.width + (0 if a_shape.signed else 1), b_shape.width
    a_r = Signal(signed(wa), name=f"{name}_a", reset_less=True)
    hi = Signal(signed(wa + 1), name=f"{name}_hi", reset_less=True)
    lo = Signal(wb, name=f"{name}_lo", reset_less=True)
    count = Signal(range(wb + 1), name=f"{name}_count")
    # ``busy`` and ``last`` (the final bit) are flip-flops beside the count: on the UP5K the count
    # comparisons in front of the stages' state enables were critical paths.
    busy = Signal(name=f"{name}_busy")
    last = Signal(name=f"{name}_last")
    # hi + a (a bit of b set), hi - a (b's sign bit set), or hi: one adder, the subtraction as
    # ~a with a carry into bit 0 (no negation's carry chain in front of the adder's).
    n = wa + 2
    sub = (lo[0] & last) if b_shape.signed else Const(0)
    addend = Signal(n, name=f"{name}_addend")
    m.d.comb += addend.eq(Mux(lo[0], extend(a_r, n) ^ Mux(sub, (1 << n) - 1, 0), 0))
    s = Signal(signed(n), name=f"{name}_sum")
    m.d.comb += s.eq(add_with_carry(hi, addend, sub, n))
    with m.If(start):
        m.d.sync += [a_r.eq(a), hi.eq(0), lo.eq(b), count.eq(wb), busy.eq(1), last.eq(wb == 1)]
    with m.Elif(busy):
        m.d.sync += [hi.eq(s >> 1), lo.eq(Cat(lo[1:], s[0])), count.eq(count - 1), last.eq(count == 2),
                     busy.eq(~last)]
    product = Signal((a * b).shape(), name=f"{name}_p")
    m.d.comb += product.eq(Cat(lo, hi).as_signed())
    return product, busy


class CompactLSTMLayer(wiring.Component):
    """An LSTM layer with one shared activation unit and a serial element-wise stage (see the module).

    Parameters
    ----------
    model : Model
        A one-layer ``lstm`` / ``lstm_nf`` model that :func:`check_compact_model` accepts.
    loaded : dict of int to int, optional
        PEs whose weight memory is written at run time through ``load`` (as
        :class:`~rnnaccel.hdl.layer.RecurrentLayer`), with ``load_layout`` the bus layout.

    Attributes
    ----------
    load : In(load_layout)
        Only with ``loaded``: the weight load bus. Give the layer no input before the load is done.
    i_stream : In(stream.Signature(input_layout(model)))
        One beat per timestep. The payload is read during the step's matrix-vector beats and taken
        (``ready``) at their end: the producer must hold it, as a stream's producer does until ready.
    o_stream : Out(stream.Signature(vector_layout(data.width, H)))
        ``h_t`` for every step, ``last`` copied from the input.
    o_rotate : In(1)
        Serial read-out of the output register: while ``o_stream.valid``, rotate ``h_t`` by one
        element (element ``j + 1`` moves to ``j``, element 0 to ``H - 1``) at the clock edge. ``H``
        rotations restore it. A byte wrapper reads element 0 after each rotation instead of copying
        the whole vector (:class:`~rnnaccel.hdl.wrapper.SerialisedTop`); tie it low otherwise.

    Notes
    -----
    One timestep takes :func:`~rnnaccel.hdl.perf.layer_cycles` cycles with the input always valid
    and the output always ready: the start (a cycle after its condition), ``R*F`` matrix-vector
    beats, the two input registers, the matrix-vector latency (one more with the biases in
    memory: split accumulators), and the drain of the last unit group through the activation
    unit and the element-wise stages (:func:`compact_drain`). A step starts only when the
    previous ``h_t`` has been taken (or is being taken). Multipliers: the matrix-vector unit's
    ``pe * simd``, nothing else. Memories: the matrix-vector unit's, one table (two when the gate
    table is not the candidate table shifted), ``H`` cell states, one ``h_{t-1}`` memory per lane.
    """

    @checked_init
    def __init__(self, model: Model, *, initial_state: bool = False, state_out: bool = False,
                 loaded=None, load_layout=None):
        from .layer import layer_signature
        if not isinstance(model, Model):
            raise TypeError(f"CompactLSTMLayer needs a rnnaccel Model, got {type(model).__name__}")
        if not model.is_single_layer:
            raise ValueError(f"CompactLSTMLayer builds one layer; take model.layer(k) of this "
                             f"{model.num_layers}-layer model")
        if initial_state or state_out:
            raise ValueError("the compact schedule has no initial_state / state_out ports; use schedule 'pipelined'")
        check_compact_model(model)
        self.model = model
        self.loaded = dict(loaded or {})
        if self.loaded and load_layout is None:
            raise ValueError("loaded weight memories need the load bus layout (load_layout)")
        self.load_layout = load_layout
        units = golden_layer.activation_units(model)
        self.gate_offset = shared_gate_offset(units["gate"], units["cand"])
        super().__init__(layer_signature(model, False, False, load_layout if self.loaded else None)
                         | {"o_rotate": In(1)})

    def elaborate(self, platform):
        from .layer import layer_banks
        m = Module()
        model, fm = self.model, self.model.formats
        X, H, pe, simd = model.input_size, model.hidden_size, model.pe, model.simd
        R, F = model.rows_per_pe, model.folds
        rows = model.cell_spec.rows
        ng = len(rows)
        forget = model.cell == "lstm"

        w_banks, b_banks = layer_banks(model)
        dw, bw = fm.data.width, model.bias.width
        # The biases live in the h_{t-1} memories, after their two halves (one word per row, the
        # PEs' biases side by side across the lanes), read in the cycle before each row's first
        # beat: that beat is an x_t chunk, so the memories' read ports are free then. Otherwise
        # (too few lanes, x_t narrower than a chunk, rows shorter than the matrix-vector
        # pipeline) the matrix-vector unit has its own tables in logic.
        ext_bias = compact_biases_in_memory(model)
        m.submodules.mvu = mvu = MatrixVectorUnit(w_banks, b_banks, data_fmt=fm.data, weight_fmt=fm.weight,
                                                  acc_fmt=model.accumulator, bias_fmt=model.bias,
                                                  fold_ranges=model.fold_ranges, loaded=self.loaded,
                                                  load_layout=self.load_layout, external_bias=ext_bias)
        if self.loaded:
            m.d.comb += mvu.load.eq(self.load)

        # ---- vectors and the matrix-vector beats -----------------------------------------------
        # Element i of [x; h_{t-1}; 0] is lane s = i % simd of chunk k = i // simd. x_t comes from the
        # input payload (held by the producer) through a multiplexer per lane; h_{t-1} from a memory
        # per lane (one block RAM each), written with h_t as its elements come out of stage B, two
        # halves used in turn (step parity), read a cycle ahead of each beat. The first step of a
        # sequence masks h_{t-1} to zero.
        dshape = shape_of(fm.data)
        payload = self.i_stream.payload
        # h_t, collected in place (a shift register that is the output payload; data without a reset).
        h_out = Signal.like(self.o_stream.payload.data, name="h_out", reset_less=True)
        m.d.comb += self.o_stream.payload.data.eq(h_out)
        mac = Signal()
        k, _, r, _, row_last = fold_counter(m, model.fold_ranges, R, mac, prefix="ctl_")
        cur_first = Signal(name="cur_first")             # the current step is the first of a sequence
        parity = Signal(name="h_parity")                 # the half h_t is written to (h_{t-1}: the other)
        h_wr_lane = Signal(range(simd), name="h_wr_lane")
        h_wr_k = Signal(range(F), name="h_wr_k")
        h_write = Signal(name="h_write")
        h_val = Signal(dshape, name="h_val", reset_less=True)
        bias_words = [[0] * R for _ in range(simd)]
        if ext_bias:
            for r_ in range(R):
                word = sum((int(b_banks[p_][r_]) & ((1 << bw) - 1)) << (p_ * bw) for p_ in range(pe))
                for s in range(simd):
                    v = (word >> (s * dw)) & ((1 << dw) - 1)
                    bias_words[s][r_] = v - (1 << dw) if v >> (dw - 1) else v
        bias_read = Signal(name="bias_read")     # this beat is a row's first: its biases are read
        m.d.comb += bias_read.eq(mac & (k == 0))
        # Addresses are bit fields, no adders (the read address was a critical path on the UP5K):
        # chunk k of half j at j * 2**kb + k, row r's biases at 2**hb + r.
        kb = max((F - 1).bit_length(), 1)
        hb = max(kb + 1, (R - 1).bit_length())
        h_depth = (1 << hb) + R if ext_bias else 2 << kb
        bias_rd = []
        for s in range(simd):
            # Every lane has its own copy of the chunk and row counters (they feed back into
            # themselves, so synthesis keeps them apart): one counter drove all lanes' x_t
            # multiplexers and memory addresses, across the chip on the UP5K.
            ks, _, rs, _, _ = fold_counter(m, model.fold_ranges, R, mac, prefix=f"lane{s}_")
            hmem = memory.Memory(shape=dshape, depth=h_depth,
                                 init=[0] * (1 << hb) + bias_words[s] if ext_bias else [])
            m.submodules[f"h_prev{s}"] = hmem
            rd, wr = hmem.read_port(), hmem.write_port()
            # Read with the beat (the data is used a cycle later, beside the x_t multiplexer's
            # second half): chunk k of h_{t-1}, or in a row's first beat (an x_t chunk) its biases.
            h_addr = Cat(ks[:kb], ~parity)
            m.d.comb += [rd.addr.eq(Mux(ks == 0, Cat(rs, Const(0, hb - len(rs)), 1), h_addr)
                                    if ext_bias else h_addr),
                         wr.addr.eq(Cat(h_wr_k[:kb], parity)),
                         wr.data.eq(h_val), wr.en.eq(h_write & (h_wr_lane == s))]
            bias_rd.append(rd.data)
            x_chunks = -(-(X - s) // simd)                # chunks in which lane s holds an x element
            h_chunks = -(-(X + H - s) // simd)            # ... an x or h element
            xs = [payload.data[kk * simd + s] for kk in range(x_chunks)]
            # The x_t multiplexer in two registered halves (COMPACT_INPUT_REG): 4-to-1 of every four
            # chunks, then one of those beside h_{t-1} (on the UP5K the whole multiplexer, the
            # chunk counter's fan-out and the route to the DSP blocks were one path).
            xq = []
            for gi in range(0, len(xs), 4):
                grp = xs[gi:gi + 4]
                q = Signal(dshape, name=f"x{s}_q{gi // 4}", reset_less=True)
                m.d.sync += q.eq(Array(grp)[ks[:2]] if len(grp) > 1 else grp[0])
                xq.append(q)
            k_d = Signal.like(ks, name=f"lane{s}_k_d")
            m.d.sync += k_d.eq(ks)
            x_lane = Array(xq)[k_d >> 2] if len(xq) > 1 else (xq[0] if xq else Const(0, dshape))
            lane = Mux(k_d < x_chunks, x_lane, Mux((k_d < h_chunks) & ~cur_first, rd.data, 0))
            lane_r = Signal(dshape, name=f"lane{s}", reset_less=True)
            m.d.sync += lane_r.eq(lane)
            m.d.comb += mvu.i_stream.payload[s].eq(lane_r)
        mac_d, mac_dd = Signal(name="mac_d"), Signal(name="mac_dd")
        m.d.sync += [mac_d.eq(mac), mac_dd.eq(mac_d)]
        m.d.comb += mvu.i_stream.valid.eq(mac_dd)
        if ext_bias:
            # Row r's biases: read with its first beat (c), held in bias_reg from c + 2 to c + F + 1;
            # the row's first beat reaches the matrix-vector unit in c + 2 (COMPACT_INPUT_REG), whose
            # accumulator halves take them in c + mvu_latency and c + mvu_latency + 1 (<= c + F + 1).
            bias_d = Signal(name="bias_read_d")
            bias_reg = Signal(pe * bw, name="bias_reg", reset_less=True)
            m.d.sync += bias_d.eq(bias_read)
            with m.If(bias_d):
                m.d.sync += bias_reg.eq(Cat(*bias_rd)[:pe * bw])
            m.d.comb += [mvu.bias_in[p_].eq(bias_reg[p_ * bw:(p_ + 1) * bw]) for p_ in range(pe)]

        # ---- the shared activation unit ------------------------------------------------------------
        # Row accumulators: the pe values of a row are shifted out one per cycle (lane 0 first).
        acc_fmt = model.accumulator
        sh = [Signal(signed(acc_fmt.width), name=f"acc_sh{p}", reset_less=True) for p in range(pe)]
        sh_count = Signal(range(pe + 1), name="acc_count")
        sh_lane = Signal(range(pe), name="acc_lane")
        sh_row = Signal(range(ng), name="acc_row")    # the row's gate (position in the unit)
        mvu_row = mvu.o_stream.payload.row
        with m.If(mvu.o_stream.valid):
            m.d.sync += [sh[p].eq(mvu.o_stream.payload.acc[p]) for p in range(pe)]
            m.d.sync += [sh_count.eq(pe), sh_lane.eq(0), sh_row.eq(mvu_row % ng if ng > 1 else 0)]
        with m.Elif(sh_count != 0):
            m.d.sync += [sh[p].eq(sh[p + 1]) for p in range(pe - 1)]
            m.d.sync += [sh_count.eq(sh_count - 1), sh_lane.eq(sh_lane + 1)]
        gate_req = sh_count != 0
        req_kind_gate = Array(Const(int(row.act == "gate"), 1) for row in rows)[sh_row]

        units = golden_layer.activation_units(model)
        shared = self.gate_offset is not None
        cand = _unit(units["cand"])
        m.submodules.cand = cand
        gate_unit = None
        if not shared:
            m.submodules.gate = gate_unit = _unit(units["gate"])

        # Request cycle Q: the accumulator's requantisation (two cycles, requantize_split) or the
        # element-wise stage's index (registered here to match); Q+1: the unit's index register;
        # Q+1+TABLE_LATENCY: the unit's output; the value register at Q + GATE_LATENCY.
        ew_req = Signal(name="ew_req")
        ew_idx = Signal(signed(units["cand"].in_fmt.width), name="ew_idx")
        ew_grant = ew_req & ~gate_req
        gate_idx = requantize_split(m, sh[0], acc_fmt, units["gate"].in_fmt, model.rounding, "SAT", name="gate_rq")
        cand_idx = requantize_split(m, sh[0], acc_fmt, units["cand"].in_fmt, model.rounding, "SAT", name="cand_rq")
        ew_idx_d = Signal.like(ew_idx, name="ew_idx_d", reset_less=True)
        tag = {"valid": 1, "ew": 1, "gate": 1, "lane": range(pe), "row": range(ng)}
        tags = []
        t0 = {key: Signal(shape, name=f"tag0_{key}") for key, shape in tag.items()}
        m.d.sync += [t0["valid"].eq(gate_req | ew_grant), t0["ew"].eq(~gate_req), t0["gate"].eq(gate_req & req_kind_gate),
                     t0["lane"].eq(sh_lane), t0["row"].eq(sh_row), ew_idx_d.eq(ew_idx)]
        tags.append(t0)
        # Stage Q+1: the index into the unit(s).
        gi = Mux(t0["gate"], gate_idx, cand_idx) if shared else cand_idx
        m.d.comb += [cand.i_stream.payload.eq(Mux(t0["ew"], ew_idx_d, gi)),
                     cand.i_stream.valid.eq(t0["valid"] & (t0["ew"] | ~t0["gate"] | shared))]
        if gate_unit is not None:
            m.d.comb += [gate_unit.i_stream.payload.eq(gate_idx),
                         gate_unit.i_stream.valid.eq(t0["valid"] & ~t0["ew"] & t0["gate"])]
        for i in range(cand.latency):
            tn = {key: Signal(shape, name=f"tag{i + 1}_{key}") for key, shape in tag.items()}
            m.d.sync += [tn[key].eq(tags[-1][key]) for key in tag]
            tags.append(tn)
        tq = tags[-1]                # the unit's output cycle
        value_shape = signed(max(fm.sigmoid_out.width + (0 if fm.sigmoid_out.signed else 1),
                                 fm.tanh_out.width + (0 if fm.tanh_out.signed else 1)))
        val = Signal(value_shape, name="act_value", reset_less=True)
        val_valid, val_ew = Signal(name="act_valid"), Signal(name="act_ew")
        val_lane, val_row = Signal(range(pe), name="act_lane"), Signal(range(ng), name="act_row")
        if shared:
            v = Mux(tq["gate"], cand.o_stream.payload + self.gate_offset, cand.o_stream.payload)
        else:
            v = Mux(tq["gate"], gate_unit.o_stream.payload, cand.o_stream.payload)
        m.d.sync += [val.eq(v), val_valid.eq(tq["valid"]), val_ew.eq(tq["ew"]), val_lane.eq(tq["lane"]),
                     val_row.eq(tq["row"])]

        # ---- gate values of the lanes' units -----------------------------------------------------
        # held[p][g]: gate g (< ng - 1) of lane p's current unit; when its last gate comes, the unit's
        # values move to unit[p] and it is pending for stage A (which takes it within a unit group).
        gshape = {row.name: shape_of(fm.sigmoid_out if row.act == "gate" else fm.tanh_out) for row in rows}
        held = [[Signal(gshape[row.name], name=f"{row.name}_held{p}", reset_less=True) for row in rows[:-1]]
                for p in range(pe)]
        unit_vals = [{row.name: Signal(gshape[row.name], name=f"{row.name}_unit{p}", reset_less=True) for row in rows}
                     for p in range(pe)]
        pending = [Signal(name=f"pending{p}") for p in range(pe)]
        gate_val = val_valid & ~val_ew
        for p in range(pe):
            with m.If(gate_val & (val_lane == p)):
                for gi_, row in enumerate(rows[:-1]):
                    with m.If(val_row == gi_):
                        m.d.sync += held[p][gi_].eq(val)
                with m.If(val_row == ng - 1):
                    m.d.sync += [unit_vals[p][row.name].eq(held[p][gi_]) for gi_, row in enumerate(rows[:-1])]
                    m.d.sync += [unit_vals[p][rows[-1].name].eq(val), pending[p].eq(1)]

        # ---- element-wise stage A: cell state ----------------------------------------------------
        sf = fm.sigmoid_out.frac
        fc_frac = sf + fm.cell.frac if forget else fm.cell.frac     # without f: c_prev itself
        ig_frac = sf + fm.tanh_out.frac
        frac = max(fc_frac, ig_frac)
        cshape = shape_of(fm.cell)
        cmem = memory.Memory(shape=cshape, depth=H, init=[])
        m.submodules.cell_state = cmem
        c_rd = cmem.read_port()
        c_wr = cmem.write_port()
        a_lane = Signal(range(pe), name="a_lane")
        a_unit = Signal(range(H), name="a_unit")         # hidden unit j of stage A, 0 .. H-1 per step
        a_vals = {row.name: Signal(gshape[row.name], name=f"a_{row.name}", reset_less=True) for row in rows}
        c_prev = Mux(cur_first, 0, c_rd.data)
        start_a = Signal(name="a_start")
        ig, ig_busy = serial_product(m, a_vals["g"], a_vals["i"], start_a, name="ig")
        if forget:
            fc, _ = serial_product(m, c_prev, a_vals["f"], start_a, name="fc")
        else:
            fc = Signal(cshape, name="c_prev_r", reset_less=True)
            with m.If(start_a):
                m.d.sync += fc.eq(c_prev)
        c_sum = Signal(signed(max(len(fc) + frac - fc_frac, len(ig) + frac - ig_frac) + 1), name="c_sum", reset_less=True)
        c_new = Signal(cshape, name="c_new", reset_less=True)
        # c_sum in two cycles, low half (and its carry) first: one carry chain of len(c_sum) bits
        # was a critical path on the UP5K.
        fc_al, ig_al = align(fc, fc_frac, frac), align(ig, ig_frac, frac)
        lo_bits = len(c_sum) // 2
        c_lo = Signal(lo_bits + 1, name="c_sum_lo", reset_less=True)
        # The cell state's requantisation in two cycles too (requantize_split).
        c_rq = requantize_split(m, c_sum, QFormat(63, frac), fm.cell, model.rounding, model.overflow, name="c_rq")
        a_idx = Signal(signed(units["cand"].in_fmt.width), name="a_idx", reset_less=True)
        a_o = Signal(gshape[rows[-1].name], name="a_o_out", reset_less=True)
        a_hand = Signal(name="a_hand")             # stage A offers its unit to stage B
        b_idle = Signal(name="b_idle")
        b_take = a_hand & b_idle
        m.d.comb += [c_rd.addr.eq(a_unit), c_wr.addr.eq(a_unit), c_wr.data.eq(c_new)]
        step_start = Signal(name="step_start")
        with m.If(step_start):
            m.d.sync += [a_unit.eq(0), a_lane.eq(0)]
        # One flip-flop per state (stage A and B both): the binary-coded state machines' enables
        # were the UP5K's critical path (every transition condition in front of one register).
        a_idle = Signal(init=1, name="a_idle")
        a_load, a_mul, a_sum, a_cell, a_cell2, a_index, a_held = (
            Signal(name=f"a_{n}") for n in ("load", "mul", "sum", "cell", "cell2", "index", "held"))
        with m.If(a_idle & Array(pending)[a_lane]):
            # Read c_{t-1} of the unit (memory data in the next cycle), take the gate values.
            for p in range(pe):
                with m.If(a_lane == p):
                    m.d.sync += [a_vals[row.name].eq(unit_vals[p][row.name]) for row in rows]
                    m.d.sync += pending[p].eq(0)
            m.d.sync += [a_lane.eq(Mux(a_lane == pe - 1, 0, a_lane + 1)), a_idle.eq(0), a_load.eq(1)]
        m.d.comb += start_a.eq(a_load)
        with m.If(a_load):
            m.d.sync += [a_load.eq(0), a_mul.eq(1)]
        with m.If(a_mul & ~ig_busy):
            m.d.sync += [c_lo.eq(fc_al[:lo_bits] + ig_al[:lo_bits]), a_mul.eq(0), a_sum.eq(1)]
        with m.If(a_sum):
            # The high half with the low half's carry (the products are held), one adder.
            m.d.sync += [c_sum.eq(Cat(c_lo[:lo_bits], add_with_carry(fc_al >> lo_bits, ig_al >> lo_bits, c_lo[lo_bits],
                                                                     len(c_sum) - lo_bits))),
                         a_sum.eq(0), a_cell.eq(1)]
        with m.If(a_cell):
            # The requantisation's registers take c_sum in this cycle.
            m.d.sync += [a_cell.eq(0), a_cell2.eq(1)]
        with m.If(a_cell2):
            m.d.sync += [c_new.eq(c_rq), a_cell2.eq(0), a_index.eq(1)]
        with m.If(a_index):
            m.d.comb += c_wr.en.eq(1)
            m.d.sync += [a_idx.eq(requantize(c_new, fm.cell, units["cand"].in_fmt, model.rounding, "SAT")),
                         a_o.eq(a_vals[rows[-1].name]), a_index.eq(0), a_held.eq(1)]
        m.d.comb += a_hand.eq(a_held)
        with m.If(a_held & b_take):
            m.d.sync += [a_unit.eq(a_unit + 1), a_held.eq(0), a_idle.eq(1)]

        # ---- element-wise stage B: hidden state -------------------------------------------------
        b_idx = Signal.like(a_idx, name="b_idx", reset_less=True)
        b_o = Signal.like(a_o, name="b_o", reset_less=True)
        b_t = Signal(shape_of(fm.tanh_out), name="b_t", reset_less=True)
        start_b = Signal(name="b_start")
        ot, ot_busy = serial_product(m, b_t, b_o, start_b, name="ot")
        h_valid = Signal(name="h_valid")
        m.d.comb += ew_idx.eq(b_idx)
        b_idle_s = Signal(init=1, name="b_idle_s")
        b_req, b_look, b_start_s, b_mul = (Signal(name=f"b_{n}") for n in ("req", "look", "start_s", "mul"))
        m.d.comb += [b_idle.eq(b_idle_s), ew_req.eq(b_req), start_b.eq(b_start_s)]
        with m.If(b_take):
            m.d.sync += [b_idx.eq(a_idx), b_o.eq(a_o), b_idle_s.eq(0), b_req.eq(1)]
        with m.If(ew_grant):
            m.d.sync += [b_req.eq(0), b_look.eq(1)]
        with m.If(b_look & val_valid & val_ew):
            m.d.sync += [b_t.eq(val), b_look.eq(0), b_start_s.eq(1)]
        with m.If(b_start_s):
            m.d.sync += [b_start_s.eq(0), b_mul.eq(1)]
        with m.If(b_mul & ~ot_busy):
            m.d.sync += [h_val.eq(requantize(ot, QFormat(63, ig_frac), fm.data, model.rounding, model.overflow)),
                         h_valid.eq(1), b_mul.eq(0), b_idle_s.eq(1)]
        with m.If(h_valid):
            m.d.sync += h_valid.eq(0)

        # ---- control ----------------------------------------------------------------------------
        o_valid = Signal(name="o_valid")
        m.d.comb += self.o_stream.valid.eq(o_valid)
        with m.If(self.o_stream.ready):
            m.d.sync += o_valid.eq(0)
        first = Signal(init=1)         # the next step to start is the first of a sequence
        cur_last = Signal()
        done = Signal(range(H + 1), name="h_count")
        m.d.comb += h_write.eq(h_valid)
        # h_out shifts by one element for a new h_t element or a read-out rotation (o_rotate, only
        # while the output is valid, when no element comes): one multiplexer, at the tail.
        with m.If(h_valid | self.o_rotate):
            m.d.sync += [h_out[j].eq(h_out[j + 1]) for j in range(H - 1)]
            m.d.sync += h_out[H - 1].eq(Mux(h_valid, h_val, h_out[0]))
        with m.If(h_valid):
            m.d.sync += done.eq(done + 1)
            m.d.sync += [h_wr_lane.eq(Mux(h_wr_lane == simd - 1, 0, h_wr_lane + 1)),
                         h_wr_k.eq(Mux(h_wr_lane == simd - 1, h_wr_k + 1, h_wr_k))]
        # The step's last beat and its last h_t element are flip-flops (a count of the beats left,
        # a look-ahead on the element count): on the UP5K the comparisons in front of the FSM's
        # state were its critical path (with the state's long routes, 26 ns).
        mac_last = last_beat_flag(m, R * F, step_start, mac, name="mac_last")
        h_last = Signal(name="h_last")     # the next h_t element is the step's last
        with m.If(step_start):
            m.d.sync += h_last.eq(H == 1)
        with m.Elif(h_valid):
            m.d.sync += h_last.eq(done == H - 2)
        m.d.sync += mac.eq(Mux(mac, ~mac_last, step_start))
        # The last beat (only ever in state MAC): the input payload has been read, take it. A
        # flip-flop, not the state decoded (the wrapper's input flags were a critical path).
        m.d.comb += self.i_stream.ready.eq(mac_last)
        # The step starts the cycle after its condition (COMPACT_START): a flip-flop drives the
        # many resets of a start (from the stream handshakes these were the UP5K's critical path).
        # The condition holds: the producer holds its input until ready, and the output taken
        # (o_valid & ready) leaves o_valid low.
        go = Signal(name="step_go")
        m.d.comb += step_start.eq(go)
        m.d.sync += go.eq(0)
        with m.FSM(name="control"):
            with m.State("IDLE"):
                with m.If(go):
                    m.d.sync += [cur_first.eq(first), done.eq(0), h_wr_lane.eq(X % simd), h_wr_k.eq(X // simd)]
                    m.next = "MAC"
                with m.Elif(self.i_stream.valid & (~o_valid | self.o_stream.ready)):
                    m.d.sync += go.eq(1)
            with m.State("MAC"):
                with m.If(mac_last):
                    m.d.sync += cur_last.eq(payload.last)
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(h_valid & h_last):
                    m.d.sync += [o_valid.eq(1), self.o_stream.payload.last.eq(cur_last), first.eq(cur_last),
                                 parity.eq(~parity)]
                    m.next = "IDLE"
        return m
