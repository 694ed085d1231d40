"""The whole network in hardware: stacked layers as pipeline stages, bidirectional layers with
their sequence buffers, the dense head, and the output selection.

::

    x_t -> [layer 0] -> [layer 1] -> ... -> [dense head] -> [last-step filter] -> y_t

Each stage is a component with the same stream payload (:func:`~rnnaccel.hdl.layer.vector_layout`)
and a one-deep output register, so layer ``k + 1`` works on step ``t`` while layer ``k`` works on
step ``t + 1``: a stack takes the slowest stage's cycles per timestep
(:func:`~rnnaccel.hdl.perf.cycles_per_timestep`).
"""

from __future__ import annotations

import math

from amaranth.hdl import Cat, Const, Module, Signal, signed
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from rnnaccel.golden import network as golden_network
from rnnaccel.golden.model import Model

from .fixed import requantize, shape_of
from .layer import build_layer, input_layout, output_register, vector_chunk, vector_layout
from .mvu import MatrixVectorUnit, fold_counter, pack_banks
from .perf import head_parallelism, mvu_latency
from ._util import checked_init

__all__ = ["DenseHead", "BidirectionalLayer", "Network", "network_input_layout", "rotating_output"]


def rotating_output(model: Model) -> bool:
    """Whether the network's output register can be read out element by element by rotation
    (``o_rotate``, :class:`~rnnaccel.hdl.compact.CompactLSTMLayer`): one compact layer, no head,
    no final states; the output payload is then that layer's ``h_t`` register."""
    return (model.schedule == "compact" and model.num_layers == 1 and not model.bidirectional
            and not model.head_size and not model.final_state)


def final_state_fields(model: Model, n: int) -> dict:
    """Payload fields of ``n`` final states: ``h_n`` (``n`` x ``state_size`` codes of ``data``) and for
    LSTMs ``c_n`` (``n`` x ``hidden_size`` codes of ``cell``)."""
    fm = model.formats
    fields = {"h_n": data.ArrayLayout(data.ArrayLayout(shape_of(fm.data), model.state_size), n)}
    if model.cell_spec.has_cell_state:
        fields["c_n"] = data.ArrayLayout(data.ArrayLayout(shape_of(fm.cell), model.hidden_size), n)
    return fields


def network_output_layout(model: Model) -> data.StructLayout:
    """Output payload of the accelerator: the output vector and ``last``, and with
    ``model.final_state`` the final states of every layer and direction (``h_n``, and ``c_n`` for
    LSTMs, PyTorch's order), valid on the last beat of each sequence."""
    fields = dict(vector_layout(model.formats.data.width, model.output_size).members)
    if model.final_state:
        fields |= final_state_fields(model, model.num_layers * model.directions)
    return data.StructLayout(fields)


def network_input_layout(model: Model) -> data.StructLayout:
    """Input payload of the accelerator: ``x_t`` (``data``), ``last``, and with
    ``model.initial_state`` the initial states of every layer and direction, ``h0`` (and ``c0`` for
    LSTMs) as arrays of ``num_layers * directions`` vectors (PyTorch's ``h_0`` order), read on the
    first step of each sequence."""
    fm = model.formats
    fields = {"data": data.ArrayLayout(signed(fm.data.width), model.input_size), "last": 1}
    if model.initial_state:
        n = model.num_layers * model.directions
        fields["h0"] = data.ArrayLayout(data.ArrayLayout(shape_of(fm.data), model.state_size), n)
        if model.cell_spec.has_cell_state:
            fields["c0"] = data.ArrayLayout(data.ArrayLayout(shape_of(fm.cell), model.hidden_size), n)
    return data.StructLayout(fields)


class DenseHead(wiring.Component):
    """``y = requantize(W_y v + b_y, data)`` per timestep; mirrors :func:`rnnaccel.golden.network.dense_head`.

    Parameters
    ----------
    model : Model
        The network (``head.weight``, ``head.bias``, ``head_accumulator``).

    Attributes
    ----------
    i_stream : In(stream.Signature(vector_layout(data.width, state_size * directions)))
    o_stream : Out(stream.Signature(vector_layout(data.width, head_size)))

    Notes
    -----
    A matrix-vector unit of :func:`~rnnaccel.hdl.perf.head_parallelism` (PE, SIMD). One step takes
    :func:`~rnnaccel.hdl.perf.head_cycles` cycles: accept, ``rows/PE * ceil(N/SIMD)`` beats, the unit's
    latency and one requantisation register. One-deep output register, as the layers.
    """

    @checked_init
    def __init__(self, model: Model):
        if not model.head_size:
            raise ValueError("DenseHead needs a model with head_size > 0")
        self.model = model
        self.n_in = model.state_size * model.directions
        self.pe, self.simd = head_parallelism(model)
        w = model.formats.data.width
        super().__init__({"i_stream": In(stream.Signature(vector_layout(w, self.n_in))),
                          "o_stream": Out(stream.Signature(vector_layout(w, model.head_size)))})

    def elaborate(self, platform):
        m = Module()
        model, fm = self.model, self.model.formats
        N, O, pe, simd = self.n_in, model.head_size, self.pe, self.simd
        F, R = math.ceil(N / simd), O // pe
        wq, bq, _ = golden_network.head_parameters(model)
        w_banks, b_banks = pack_banks(wq, bq, pe, simd)
        m.submodules.mvu = mvu = MatrixVectorUnit(w_banks, b_banks, data_fmt=fm.data, weight_fmt=fm.weight,
                                                  acc_fmt=model.head_accumulator, bias_fmt=model.bias)
        dshape = shape_of(fm.data)
        v = [Signal(dshape, name=f"v{i}") for i in range(N)]
        y = [Signal(dshape, name=f"y{j}") for j in range(O)]
        vec = v + [Const(0, dshape)] * (F * simd - N)
        mac = Signal()
        k, _, r, _, row_last = fold_counter(m, ((0, F),), R, mac, prefix="head_")
        m.d.comb += [mvu.i_stream.payload[s].eq(v) for s, v in enumerate(vector_chunk(vec, k, simd, F))]
        m.d.comb += mvu.i_stream.valid.eq(mac)
        # Requantisation register: PE p's accumulator of local row r is output row r * pe + p.
        done_rows = Signal(range(R + 1))
        out_row = mvu.o_stream.payload.row
        for p in range(pe):
            q = requantize(mvu.o_stream.payload.acc[p], model.head_accumulator, fm.data, model.rounding,
                           model.overflow)
            for rr in range(R):
                with m.If(mvu.o_stream.valid & (out_row == rr)):
                    m.d.sync += y[rr * pe + p].eq(q)
        with m.If(mvu.o_stream.valid):
            m.d.sync += done_rows.eq(done_rows + 1)

        cur_last = Signal()
        o_valid, slot_free = output_register(m, self.o_stream)

        def accept():
            m.d.comb += self.i_stream.ready.eq(1)
            with m.If(self.i_stream.valid):
                m.d.sync += [vi.eq(self.i_stream.payload.data[i]) for i, vi in enumerate(v)]
                m.d.sync += cur_last.eq(self.i_stream.payload.last)
                m.next = "MAC"

        with m.FSM():
            with m.State("IDLE"):
                accept()
            with m.State("MAC"):
                m.d.comb += mac.eq(1)
                with m.If(row_last & (r == R - 1)):
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(done_rows == R):
                    m.next = "DONE"
            with m.State("DONE"):
                with m.If(slot_free):
                    m.d.sync += [o_valid.eq(1), self.o_stream.payload.last.eq(cur_last), done_rows.eq(0)]
                    m.d.sync += [self.o_stream.payload.data[j].eq(y[j]) for j in range(O)]
                    m.next = "IDLE"
                    accept()
        return m


class BidirectionalLayer(wiring.Component):
    """A forward and a backward layer over the same sequence, outputs ``[h_fwd(t); h_bwd(t)]`` in time order.

    The backward direction needs the last input first, so the layer buffers the sequence: the
    forward layer consumes ``x_t`` as it arrives while ``x_t`` is also written to an input buffer;
    after the sequence's ``last`` beat, the backward layer runs over the buffer in reverse; both
    layers' outputs go to output buffers; then the outputs are streamed in time order.

    Parameters
    ----------
    forward, backward : Model
        One-layer models (:meth:`~rnnaccel.golden.model.Model.layer`).
    max_len : int
        Longest sequence the buffers hold. A longer sequence is a protocol error: its step
        ``max_len`` is treated as the last and the ``overflow`` flag stays set.
    initial_state : bool
        ``h0`` (and ``c0``) as a 2-vector array (forward, backward) on the first beat.

    Attributes
    ----------
    i_stream : In(stream.Signature(...))
        ``x_t``, ``last`` (and ``h0``/``c0`` with ``initial_state``).
    o_stream : Out(stream.Signature(vector_layout(data.width, 2 * state_size)))
    overflow : Out(1)

    Notes
    -----
    Latency and throughput per sequence of ``T`` steps: :func:`~rnnaccel.hdl.perf.sequence_cycles`
    (the forward pass overlaps the input, then the backward pass, then ``2 T`` cycles of output:
    a synchronous buffer read and an output register per beat). The next sequence is accepted
    after the last output. Memory: ``max_len * (X + 2 * state_size) * data.width`` bits in three
    buffers.
    """

    @checked_init
    def __init__(self, forward: Model, backward: Model, *, max_len: int, initial_state: bool = False,
                 state_out: bool = False):
        self.fwd_model, self.bwd_model = forward, backward
        self.max_len = int(max_len)
        if self.max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        self.initial_state = bool(initial_state)
        self.state_out = bool(state_out)
        fm = forward.formats
        fields = {"data": data.ArrayLayout(signed(fm.data.width), forward.input_size), "last": 1}
        if self.initial_state:
            fields["h0"] = data.ArrayLayout(data.ArrayLayout(shape_of(fm.data), forward.state_size), 2)
            if forward.cell_spec.has_cell_state:
                fields["c0"] = data.ArrayLayout(data.ArrayLayout(shape_of(fm.cell), forward.hidden_size), 2)
        out = dict(vector_layout(fm.data.width, 2 * forward.state_size).members)
        if self.state_out:
            out |= final_state_fields(forward, 2)
        super().__init__({"i_stream": In(stream.Signature(data.StructLayout(fields))),
                          "o_stream": Out(stream.Signature(data.StructLayout(out))),
                          "overflow": Out(1)})

    def elaborate(self, platform):
        m = Module()
        fwd_m, fm = self.fwd_model, self.fwd_model.formats
        X, S, L = fwd_m.input_size, fwd_m.state_size, self.max_len
        w = fm.data.width
        m.submodules.fwd = fwd = build_layer(fwd_m, initial_state=self.initial_state, state_out=self.state_out)
        m.submodules.bwd = bwd = build_layer(self.bwd_model, initial_state=self.initial_state,
                                             state_out=self.state_out)
        if self.state_out:
            # Final states: the forward layer's last output (t = T-1), the backward layer's last
            # output (t = 0); held until the next sequence's, which come after this one's outputs.
            for d, layer in enumerate((fwd, bwd)):
                with m.If(layer.o_stream.valid & layer.o_stream.payload.last):
                    m.d.sync += self.o_stream.payload.h_n[d].eq(layer.o_stream.payload.data)
                    if fwd_m.cell_spec.has_cell_state:
                        m.d.sync += self.o_stream.payload.c_n[d].eq(layer.o_stream.payload.c)
        xlay = data.ArrayLayout(signed(w), X)
        hlay = data.ArrayLayout(signed(w), S)
        m.submodules.xbuf = xbuf = memory.Memory(shape=xlay, depth=L, init=[])
        m.submodules.fbuf = fbuf = memory.Memory(shape=hlay, depth=L, init=[])
        m.submodules.bbuf = bbuf = memory.Memory(shape=hlay, depth=L, init=[])
        xw, xr = xbuf.write_port(), xbuf.read_port()
        fw, fr = fbuf.write_port(), fbuf.read_port()
        bw, br = bbuf.write_port(), bbuf.read_port()

        t_in = Signal(range(L + 1))       # steps received
        length = Signal(range(L + 1))     # T of the current sequence
        f_out = Signal(range(L + 1))      # forward outputs stored
        b_out = Signal(range(L + 1))      # backward outputs stored
        b_in = Signal(range(L + 1))       # backward inputs sent
        e_idx = Signal(range(L + 1))      # outputs emitted
        p = self.i_stream.payload

        # Initial states for the backward layer are kept from the first beat.
        if self.initial_state:
            bh0 = Signal(hlay)
            m.d.comb += fwd.i_stream.payload.h0.eq(p.h0[0])
            m.d.comb += bwd.i_stream.payload.h0.eq(bh0)
            if fwd_m.cell_spec.has_cell_state:
                bc0 = Signal(data.ArrayLayout(shape_of(fm.cell), fwd_m.hidden_size))
                m.d.comb += [fwd.i_stream.payload.c0.eq(p.c0[0]), bwd.i_stream.payload.c0.eq(bc0)]

        # Forward outputs -> fbuf; backward outputs -> bbuf (reverse time order).
        m.d.comb += [fwd.o_stream.ready.eq(1), bwd.o_stream.ready.eq(1),
                     fw.addr.eq(f_out), fw.data.eq(fwd.o_stream.payload.data),
                     fw.en.eq(fwd.o_stream.valid),
                     bw.addr.eq(length - 1 - b_out), bw.data.eq(bwd.o_stream.payload.data),
                     bw.en.eq(bwd.o_stream.valid)]
        with m.If(fwd.o_stream.valid):
            m.d.sync += f_out.eq(f_out + 1)
        with m.If(bwd.o_stream.valid):
            m.d.sync += b_out.eq(b_out + 1)

        # Backward input: xbuf read at length - 1 - b_in, one beat every 2 cycles.
        b_pending = Signal()
        m.d.comb += [bwd.i_stream.payload.data.eq(xr.data), bwd.i_stream.payload.last.eq(b_in == length - 1)]
        e_valid = Signal()

        with m.FSM():
            with m.State("RECEIVE"):
                last_step = p.last | (t_in == L - 1)
                m.d.comb += [fwd.i_stream.payload.data.eq(p.data), fwd.i_stream.payload.last.eq(last_step),
                             fwd.i_stream.valid.eq(self.i_stream.valid),
                             self.i_stream.ready.eq(fwd.i_stream.ready),
                             xw.addr.eq(t_in), xw.data.eq(p.data),
                             xw.en.eq(self.i_stream.valid & fwd.i_stream.ready)]
                with m.If(self.i_stream.valid & fwd.i_stream.ready):
                    m.d.sync += t_in.eq(t_in + 1)
                    if self.initial_state:
                        with m.If(t_in == 0):
                            m.d.sync += bh0.eq(p.h0[1])
                            if fwd_m.cell_spec.has_cell_state:
                                m.d.sync += bc0.eq(p.c0[1])
                    with m.If(last_step):
                        with m.If(~p.last):
                            m.d.sync += self.overflow.eq(1)
                        m.d.sync += [length.eq(t_in + 1), b_in.eq(0)]
                        m.next = "BACKWARD"
            with m.State("BACKWARD"):
                m.d.comb += xr.addr.eq(length - 1 - b_in)
                with m.If(b_in != length):
                    with m.If(~b_pending):
                        m.d.sync += b_pending.eq(1)       # address presented: data valid next cycle
                    with m.Else():
                        m.d.comb += bwd.i_stream.valid.eq(1)
                        with m.If(bwd.i_stream.ready):
                            m.d.sync += [b_pending.eq(0), b_in.eq(b_in + 1)]
                with m.If((b_out == length) & (f_out == length)):
                    m.d.sync += [e_idx.eq(0), b_pending.eq(0)]
                    m.next = "EMIT"
            with m.State("EMIT"):
                m.d.comb += [fr.addr.eq(e_idx), br.addr.eq(e_idx)]
                # e_valid: the read of e_idx is in flight (data next cycle) or held in the output register.
                with m.If(~e_valid):
                    m.d.sync += e_valid.eq(1)
                with m.Else():
                    m.d.comb += self.o_stream.valid.eq(1)
                    with m.If(self.o_stream.ready):
                        m.d.sync += [e_valid.eq(0), e_idx.eq(e_idx + 1)]
                        with m.If(e_idx == length - 1):
                            m.d.sync += [t_in.eq(0), f_out.eq(0), b_out.eq(0)]
                            m.next = "RECEIVE"
        m.d.comb += [self.o_stream.payload.data.as_value().eq(Cat(fr.data.as_value(), br.data.as_value())),
                     self.o_stream.payload.last.eq(e_idx == length - 1)]
        return m


class Network(wiring.Component):
    """The accelerator's datapath: every layer (stacked, bidirectional), the dense head, and the
    ``outputs = "last"`` filter, behind the network's streams.

    Parameters
    ----------
    model : Model
    plan : MemoryPlan, optional
        :func:`~rnnaccel.hdl.memory_plan.plan_memories`'s placement; its loaded weight memories are
        written through ``load``.

    Attributes
    ----------
    load : In(plan.load_layout())
        Only if the plan loads weight memories: the load bus, broadcast to their layers.
    i_stream : In(stream.Signature(network_input_layout(model)))
    o_stream : Out(stream.Signature(vector_layout(data.width, output_size)))
    o_rotate : In(1)
        Only if :func:`rotating_output`: the compact layer's output read-out rotation.

    Notes
    -----
    Stages are chained stream to stream; a stage's extra payload (initial states of the layers
    above it) travels beside it in a 2-deep FIFO, pushed when the stage takes a step and popped
    when it hands the step on (a stage holds at most two steps: one computing, one in its output
    register). Throughput: :func:`~rnnaccel.hdl.perf.cycles_per_timestep`.
    """

    @checked_init
    def __init__(self, model: Model, plan=None):
        if not isinstance(model, Model):
            raise TypeError(f"Network needs a rnnaccel Model, got {type(model).__name__}")
        self.model = model
        self.plan = plan
        self.load_layout = plan.load_layout() if plan is not None else None
        ports = {"load": In(self.load_layout)} if self.load_layout is not None else {}
        if rotating_output(model):
            ports["o_rotate"] = In(1)
        super().__init__(ports | {
            "i_stream": In(stream.Signature(network_input_layout(model))),
            "o_stream": Out(stream.Signature(network_output_layout(model))),
        })

    def elaborate(self, platform):
        m = Module()
        model = self.model
        init = model.initial_state
        dirs = model.directions
        stages = []
        for k, directions in enumerate(model.layers()):
            if model.bidirectional:
                st = BidirectionalLayer(directions[0], directions[1], max_len=model.max_len, initial_state=init,
                                        state_out=model.final_state)
            else:
                loaded = self.plan.loaded_pes(k) if self.load_layout is not None else None
                st = build_layer(directions[0], initial_state=init, state_out=model.final_state,
                                 loaded=loaded, load_layout=self.load_layout)
                if loaded:
                    m.d.comb += st.load.eq(self.load)
            m.submodules[f"layer{k}"] = st
            stages.append(st)
        if model.head_size:
            m.submodules.head = head = DenseHead(model)
            stages.append(head)

        # Initial states of layer k: slice k of h0/c0. Layer 0 reads them from the input payload;
        # deeper layers from a side FIFO that follows the stream through the stages below.
        p = self.i_stream.payload

        def states_of(src, k):
            """Assignments of layer k's h0/c0 fields from an object with h0/c0 arrays (src[k*dirs+d])."""
            st = stages[k]
            out = []
            if dirs == 1:
                out.append(st.i_stream.payload.h0.eq(src["h0"][k]))
                if "c0" in src:
                    out.append(st.i_stream.payload.c0.eq(src["c0"][k]))
            else:
                for d in range(2):
                    out.append(st.i_stream.payload.h0[d].eq(src["h0"][k * 2 + d]))
                    if "c0" in src:
                        out.append(st.i_stream.payload.c0[d].eq(src["c0"][k * 2 + d]))
            return out

        src_stream = self.i_stream
        src_states = {"h0": p.h0, "c0": p.c0} if init and model.cell_spec.has_cell_state else \
            ({"h0": p.h0} if init else None)
        n_layers = model.num_layers
        for k, st in enumerate(stages):
            m.d.comb += [st.i_stream.payload.data.eq(src_stream.payload.data),
                         st.i_stream.payload.last.eq(src_stream.payload.last),
                         st.i_stream.valid.eq(src_stream.valid), src_stream.ready.eq(st.i_stream.ready)]
            if init and k < n_layers:
                m.d.comb += states_of(src_states, k)
                if k + 1 < n_layers:
                    # Carry the states of the layers above through this stage: pushed with the first
                    # step of a sequence, popped when the stage hands on its first output of it.
                    flat = Cat(*(src_states[n].as_value() for n in ("h0", "c0") if n in src_states))
                    m.submodules[f"side_fifo{k}"] = sf = fifo.SyncFIFO(width=len(flat), depth=2)
                    in_first = Signal(init=1, name=f"in_first{k}")
                    out_first = Signal(init=1, name=f"out_first{k}")
                    took = st.i_stream.valid & st.i_stream.ready
                    gave = st.o_stream.valid & stages[k + 1].i_stream.ready
                    with m.If(took):
                        m.d.sync += in_first.eq(st.i_stream.payload.last)
                    with m.If(gave):
                        m.d.sync += out_first.eq(st.o_stream.payload.last)
                    m.d.comb += [sf.w_data.eq(flat), sf.w_en.eq(took & in_first), sf.r_en.eq(gave & out_first)]
                    view_layout = data.StructLayout({n: src_states[n].shape() for n in ("h0", "c0")
                                                     if n in src_states})
                    view = data.View(view_layout, sf.r_data)
                    src_states = {n: view[n] for n in ("h0", "c0") if n in src_states}
            src_stream = st.o_stream

        if rotating_output(model):
            m.d.comb += stages[0].o_rotate.eq(self.o_rotate)
        # Output selection.
        out = self.o_stream
        m.d.comb += [out.payload.data.eq(src_stream.payload.data), out.payload.last.eq(src_stream.payload.last)]
        if model.outputs == "last":
            m.d.comb += [out.valid.eq(src_stream.valid & src_stream.payload.last),
                         src_stream.ready.eq(out.ready | ~src_stream.payload.last)]
        else:
            m.d.comb += [out.valid.eq(src_stream.valid), src_stream.ready.eq(out.ready)]

        # Final states: every layer's, from its last output beat of a sequence, wait in a FIFO
        # until the network hands out that sequence's last beat (at most one sequence end per
        # step held in each stage after it: depth 2 per later stage, plus 2).
        if model.final_state:
            done = out.valid & out.ready & out.payload.last
            for k in range(model.num_layers):
                st = stages[k]
                p_ = st.o_stream.payload
                if model.bidirectional:
                    parts = {"h_n": p_.h_n} | ({"c_n": p_.c_n} if "c_n" in p_.shape().members else {})
                else:
                    parts = {"h_n": p_.data} | ({"c_n": p_.c} if "c" in p_.shape().members else {})
                if k + 1 == len(stages):
                    view = parts          # the last stage's last beat is the network's: no wait
                else:
                    flat = Cat(*(v.as_value() for v in parts.values()))
                    depth = 2 * (len(stages) - k) + 2
                    m.submodules[f"final_fifo{k}"] = ff = fifo.SyncFIFO(width=len(flat), depth=depth)
                    m.d.comb += [ff.w_data.eq(flat), ff.r_en.eq(done),
                                 ff.w_en.eq(st.o_stream.valid & stages[k + 1].i_stream.ready & p_.last)]
                    view = data.View(data.StructLayout({n: v.shape() for n, v in parts.items()}), ff.r_data)
                for d in range(model.directions):
                    i = k * model.directions + d
                    if model.bidirectional:
                        m.d.comb += out.payload.h_n[i].eq(view["h_n"][d])
                        if "c_n" in parts:
                            m.d.comb += out.payload.c_n[i].eq(view["c_n"][d])
                    else:
                        m.d.comb += out.payload.h_n[i].eq(view["h_n"])
                        if "c_n" in parts:
                            m.d.comb += out.payload.c_n[i].eq(view["c_n"])
        return m
