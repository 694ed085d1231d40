"""Top level: the accelerator behind streams, and its AXI4-Stream-named wrapper for Verilog export."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rnnaccel.golden.model import Model

from ._util import checked_init
from .network import Network
from .spram import WeightLoader

__all__ = ["Accelerator", "AxiStreamTop", "bus_width", "axis_ports", "in_payload_bits", "out_payload_bits"]


class Accelerator(wiring.Component):
    """The recurrent-network accelerator of a model, behind ``amaranth.lib.stream`` ports.

    Parameters
    ----------
    model : Model
    plan : MemoryPlan, optional
        Memory placement (:func:`~rnnaccel.hdl.memory_plan.plan_memories`); default: every memory
        initialised block RAM, no weight stream.

    Attributes
    ----------
    w_stream : In(stream.Signature(signed(weight.width)))
        Only if ``plan`` loads weight memories (SPRAM): the codes of
        :func:`~rnnaccel.hdl.memory_plan.weight_image`, one per beat, after reset. Ready until the
        last one is taken; ``i_stream`` is not ready before the load is complete.
    o_rotate : In(1)
        Only for one compact layer (:func:`~rnnaccel.hdl.network.rotating_output`): rotate the
        output register by one element (see :class:`~rnnaccel.hdl.compact.CompactLSTMLayer`).
    w_last : Out(1)
        Only with ``w_stream``: the next weight beat taken is the last (``w_stream.ready`` falls
        at the edge that takes it), for a wrapper that keeps its own copy of ``ready``.
    i_stream : In(stream.Signature(network_input_layout(model)))
        ``x_t``, one beat per timestep; ``last`` ends a sequence (the state resets after it);
        with ``model.initial_state`` also ``h0`` (and ``c0``) of every layer, read on the first beat.
    o_stream : Out(stream.Signature(StructLayout({"data": ArrayLayout(signed(W), output_size), "last": 1})))
        The network's output for every timestep (or the last one of each sequence with
        ``outputs = "last"``): ``h_t`` of the last layer (``[forward; backward]``) or the head's.

    Notes
    -----
    Throughput one timestep per :func:`~rnnaccel.hdl.perf.cycles_per_timestep` cycles
    (bidirectional: :func:`~rnnaccel.hdl.perf.sequence_cycles` per sequence); see
    :class:`~rnnaccel.hdl.network.Network` and :class:`~rnnaccel.hdl.layer.RecurrentLayer` for the schedule.
    """

    @checked_init
    def __init__(self, model: Model, plan=None):
        if not isinstance(model, Model):
            raise TypeError(f"Accelerator needs a rnnaccel Model, got {type(model).__name__}")
        self.model = model
        self.plan = plan
        self._network = Network(model, plan)
        self._loader = None
        ports = {}
        if self._network.load_layout is not None:
            mems = plan.loaded_placements()
            self._loader = WeightLoader([p.depth for p in mems], model.simd, model.formats.weight.width)
            ports["w_stream"] = self._loader.signature.members["w_stream"]
            ports["w_last"] = self._loader.signature.members["image_last"]
        net = self._network.signature.members
        ports |= {"i_stream": net["i_stream"], "o_stream": net["o_stream"]}
        if "o_rotate" in net:
            ports["o_rotate"] = net["o_rotate"]
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        m.submodules.network = net = self._network
        wiring.connect(m, net.o_stream, wiring.flipped(self.o_stream))
        if "o_rotate" in net.signature.members:
            m.d.comb += net.o_rotate.eq(self.o_rotate)
        if self._loader is None:
            wiring.connect(m, wiring.flipped(self.i_stream), net.i_stream)
            return m
        m.submodules.loader = loader = self._loader
        wiring.connect(m, wiring.flipped(self.w_stream), loader.w_stream)
        m.d.comb += self.w_last.eq(loader.image_last)
        m.d.comb += net.load.eq(loader.load)
        # Inputs wait for the weights.
        m.d.comb += [net.i_stream.payload.eq(self.i_stream.payload),
                     net.i_stream.valid.eq(self.i_stream.valid & loader.done),
                     self.i_stream.ready.eq(net.i_stream.ready & loader.done)]
        return m


def _payload_bits(payload):
    """The input payload's fields except ``last``, concatenated in order (data, then h0, c0)."""
    from amaranth.hdl import Cat
    return Cat(*(payload[name].as_value() for name in payload.shape().members if name != "last"))


def in_payload_bits(model: Model) -> int:
    """Bits of ``s_axis_tdata`` used: ``x_t``, then with ``initial_state`` every layer's ``h0``
    (and ``c0``), element ``k`` of each at ``k*W`` from its field's start."""
    from .network import network_input_layout
    return network_input_layout(model).size - 1


def out_payload_bits(model: Model) -> int:
    """Bits of ``m_axis_tdata`` used: the output vector, then with ``final_state`` every layer's
    ``h_n`` (and ``c_n``), valid on the last beat of a sequence."""
    from .network import network_output_layout
    return network_output_layout(model).size - 1


def bus_width(n: int, width: int) -> int:
    """AXI4-Stream ``tdata`` width for ``n`` codes of ``width`` bits: padded to whole bytes."""
    return -(-n * width // 8) * 8


def axis_ports(in_width: int, out_width: int) -> dict:
    """Signature members of an AXI4-Stream slave ``s_axis_*`` (in) and master ``m_axis_*`` (out)."""
    return {
        "s_axis_tdata": In(in_width), "s_axis_tvalid": In(1), "s_axis_tready": Out(1), "s_axis_tlast": In(1),
        "m_axis_tdata": Out(out_width), "m_axis_tvalid": Out(1), "m_axis_tready": In(1), "m_axis_tlast": Out(1),
    }


class AxiStreamTop(wiring.Component):
    """:class:`Accelerator` with AXI4-Stream port names, for the exported Verilog.

    Ports ``s_axis_tdata/tvalid/tready/tlast`` (x_t in) and ``m_axis_tdata/tvalid/tready/tlast``
    (h_t out). Element ``k`` of a vector occupies ``tdata[k*W + W-1 : k*W]`` (two's complement);
    ``tdata`` is zero-padded to a multiple of 8 bits. Clock ``clk``, synchronous reset ``rst``.
    With run-time loaded weight memories (``plan``) also ``s_axis_weights_tdata/tvalid/tready``:
    one weight code per beat (``tdata[W_w-1:0]``), :func:`~rnnaccel.hdl.memory_plan.weight_image`
    after reset; ``s_axis_tready`` stays low until the load is complete.
    """

    def __init__(self, model: Model, plan=None):
        self.model = model
        self.plan = plan
        self.in_bits = in_payload_bits(model)
        self.out_bits = out_payload_bits(model)
        ports = axis_ports(-(-self.in_bits // 8) * 8, -(-self.out_bits // 8) * 8)
        self.loads_weights = plan is not None and bool(plan.loaded)
        if self.loads_weights:
            ports |= {"s_axis_weights_tdata": In(-(-model.formats.weight.width // 8) * 8),
                      "s_axis_weights_tvalid": In(1), "s_axis_weights_tready": Out(1)}
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        m.submodules.accel = acc = Accelerator(self.model, self.plan)
        if self.loads_weights:
            m.d.comb += [acc.w_stream.payload.eq(self.s_axis_weights_tdata[:self.model.formats.weight.width]),
                         acc.w_stream.valid.eq(self.s_axis_weights_tvalid),
                         self.s_axis_weights_tready.eq(acc.w_stream.ready)]
        m.d.comb += [
            _payload_bits(acc.i_stream.payload).eq(self.s_axis_tdata[:self.in_bits]),
            acc.i_stream.payload.last.eq(self.s_axis_tlast),
            acc.i_stream.valid.eq(self.s_axis_tvalid),
            self.s_axis_tready.eq(acc.i_stream.ready),
            self.m_axis_tdata.eq(_payload_bits(acc.o_stream.payload)),
            self.m_axis_tlast.eq(acc.o_stream.payload.last),
            self.m_axis_tvalid.eq(acc.o_stream.valid),
            acc.o_stream.ready.eq(self.m_axis_tready),
        ]
        return m
