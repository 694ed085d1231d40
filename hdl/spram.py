"""Run-time loaded weight memories: iCE40 SPRAM in synthesis, a plain memory in simulation, and the
loader that fills them from the accelerator's weight stream.

SPRAM (``SB_SPRAM256KA``, 16K x 16 bits, single port) has no initial contents, so the weights placed
there (:mod:`rnnaccel.hdl.memory_plan`) are written after reset. :class:`WeightLoader` turns the
weight stream (one code per beat, :func:`~rnnaccel.hdl.memory_plan.weight_image` order) into word
writes on a *load bus* that every matrix-vector unit with a loaded memory listens to;
:class:`LoadableMemory` is one such memory. Inside :func:`ram_primitives` ``("ice40")`` (entered by
the synthesis flow) it instantiates ``ceil(width / 16)`` ``SB_SPRAM256KA`` side by side; elsewhere it
is an Amaranth memory with a read and a write port on one address, behaving the same way.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager

from amaranth.hdl import Array, Cat, ClockSignal, Const, Instance, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ._util import checked_init

__all__ = ["ram_primitives", "load_bus_layout", "LoadableMemory", "WeightLoader"]

_FAMILY: contextvars.ContextVar = contextvars.ContextVar("rnnaccel_ram_family", default=None)


@contextmanager
def ram_primitives(family: str | None):
    """Within this context :class:`LoadableMemory` instantiates ``family``'s single-port RAM
    (``"ice40"``: ``SB_SPRAM256KA``); ``None`` or another family: a plain Amaranth memory."""
    token = _FAMILY.set(family if family == "ice40" else None)
    try:
        yield
    finally:
        _FAMILY.reset(token)


def load_bus_layout(memories: int, depth: int, width: int) -> data.StructLayout:
    """The load bus: ``en`` writes ``word`` at ``addr`` of memory ``sel``."""
    return data.StructLayout({"en": 1, "sel": range(max(memories, 1)), "addr": range(max(depth, 2)),
                              "word": unsigned(width)})


class LoadableMemory(wiring.Component):
    """A single-port memory without initial contents, read synchronously, written at load time.

    Parameters
    ----------
    depth, width : int
        Words and bits per word; ``depth <= 16384`` (one SPRAM deep).

    Attributes
    ----------
    addr : In(range(depth))
        Read or write address.
    rd_data : Out(width)
        ``mem[addr]`` of the previous cycle (one cycle of read latency); undefined after a write cycle.
    wr_en : In(1), wr_data : In(width)
        Write ``wr_data`` at ``addr`` (no read in that cycle).
    """

    @checked_init
    def __init__(self, depth: int, width: int):
        if not 1 <= depth <= 16384:
            raise ValueError(f"a loadable memory holds 1..16384 words (one SPRAM deep), got depth {depth}")
        self.depth, self.width = depth, width
        super().__init__({"addr": In(range(max(depth, 2))), "rd_data": Out(width),
                          "wr_en": In(1), "wr_data": In(width)})

    def elaborate(self, platform):
        m = Module()
        if _FAMILY.get() == "ice40":
            for i in range(-(-self.width // 16)):
                hi = min(16 * i + 16, self.width)
                dout = Signal(16, name=f"spram{i}_dout")
                m.submodules[f"spram{i}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=self.addr.as_unsigned()[:14] if len(self.addr) >= 14 else Cat(self.addr, Const(0, 14 - len(self.addr))),
                    i_DATAIN=Cat(self.wr_data[16 * i:hi], Const(0, 16 - (hi - 16 * i))),
                    i_MASKWREN=Const(0b1111, 4), i_WREN=self.wr_en, i_CHIPSELECT=Const(1, 1),
                    i_CLOCK=ClockSignal("sync"), i_STANDBY=Const(0, 1), i_SLEEP=Const(0, 1),
                    i_POWEROFF=Const(1, 1), o_DATAOUT=dout)
                m.d.comb += self.rd_data[16 * i:hi].eq(dout[:hi - 16 * i])
            return m
        m.submodules.mem = mem = memory.Memory(shape=unsigned(self.width), depth=self.depth, init=[])
        rd = mem.read_port()
        wr = mem.write_port()
        m.d.comb += [rd.addr.eq(self.addr), rd.en.eq(~self.wr_en), self.rd_data.eq(rd.data),
                     wr.addr.eq(self.addr), wr.en.eq(self.wr_en), wr.data.eq(self.wr_data)]
        return m


class WeightLoader(wiring.Component):
    """Weight stream -> load bus: collects the SIMD lanes of each word, writes it, walks the memories.

    Parameters
    ----------
    depths : sequence of int
        Words of each loaded memory, in load order.
    lanes, lane_width : int
        Codes per word and bits per code (every loaded memory has the same word shape).

    Attributes
    ----------
    w_stream : In(stream.Signature(signed(lane_width)))
        One weight code per beat; ready until the last word is written (then never again until reset).
    load : Out(load_bus_layout(len(depths), max(depths), lanes * lane_width))
    image_last : Out(1)
        The next beat taken is the image's last (for a consumer that keeps its own copy of
        ``w_stream.ready``: it falls at the edge that takes that beat).
    done : Out(1)
        All words written, two cycles after the last beat (the write cycle and one more, so that a
        single-port memory is never read in the cycle of its last write).

    Notes
    -----
    Throughput one code per cycle; ``sum(depths) * lanes`` beats in all.
    """

    @checked_init
    def __init__(self, depths, lanes: int, lane_width: int):
        self.depths = tuple(int(d) for d in depths)
        if not self.depths or min(self.depths) < 1:
            raise ValueError(f"WeightLoader needs at least one memory of at least one word, got {self.depths}")
        self.lanes, self.lane_width = int(lanes), int(lane_width)
        self.layout = load_bus_layout(len(self.depths), max(self.depths), self.lanes * self.lane_width)
        super().__init__({"w_stream": In(stream.Signature(signed(self.lane_width))),
                          "load": Out(self.layout), "image_last": Out(1), "done": Out(1)})

    def elaborate(self, platform):
        m = Module()
        n, lanes, bits = len(self.depths), self.lanes, self.lane_width
        sel = Signal(range(max(n, 2)))
        addr = Signal(range(max(max(self.depths), 2)))
        lane = Signal(range(max(lanes, 2)))
        shift = Signal(max((lanes - 1) * bits, 1))
        final = Signal()
        # Flags for the conditions of the next beat, kept as flip-flops (on the UP5K the address
        # comparison in front of ``final``'s enable was the critical path, 26 ns): the beat ends a
        # word, the word is its memory's last, the memory is the last.
        lane_last = Signal(init=int(lanes == 1))
        addr_last = Signal(init=int(self.depths[0] == 1))
        sel_last = Signal(init=int(n == 1))
        # The memory after ``sel``: its last address is 0 (for ``addr_last`` on a memory change).
        next_single = Array(Const(int(d == 1), 1) for d in self.depths[1:] + (1,))[sel] if n > 1 else Const(1, 1)
        # ``addr + 1`` is the memory's last address (for ``addr_last`` on a word).
        before_last = addr == self.depths[0] - 2
        for i, d in enumerate(self.depths[1:], 1):
            before_last = Mux(sel == i, addr == d - 2, before_last)
        s = self.w_stream
        m.d.comb += [s.ready.eq(~self.done & ~final), self.image_last.eq(lane_last & addr_last & sel_last)]
        word = Cat(shift[:(lanes - 1) * bits], s.payload) if lanes > 1 else s.payload.as_unsigned()
        m.d.sync += self.load.en.eq(0)
        with m.If(s.valid & s.ready):
            with m.If(lane_last):
                m.d.sync += [lane.eq(0), lane_last.eq(lanes == 1), self.load.en.eq(1),
                             self.load.sel.eq(sel), self.load.addr.eq(addr), self.load.word.eq(word)]
                with m.If(addr_last):
                    m.d.sync += [addr.eq(0), addr_last.eq(next_single)]
                    with m.If(sel_last):
                        m.d.sync += final.eq(1)
                    with m.Else():
                        m.d.sync += [sel.eq(sel + 1), sel_last.eq(sel == n - 2)]
                with m.Else():
                    m.d.sync += [addr.eq(addr + 1), addr_last.eq(before_last)]
            with m.Else():
                m.d.sync += [lane.eq(lane + 1), lane_last.eq(lane == lanes - 2)]
                if lanes > 1:
                    m.d.sync += shift.eq(Cat(shift[bits:], s.payload) if lanes > 2 else s.payload)
        # ``final`` rises with the last write on the bus; ``done`` a cycle after that write.
        with m.If(final & ~self.load.en):
            m.d.sync += self.done.eq(1)
        return m
