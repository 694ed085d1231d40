"""Pin-limited wrapper: the accelerator behind narrow (byte) AXI4-Stream ports.

:class:`SerialisedTop` exists so that a design whose vector ports are hundreds of bits wide can be
placed on small packages (iCE40 UP5K-SG48 has 39 I/O, ECP5 CABGA381 about 200) for synthesis
measurements and board builds. It is a separate component around an unchanged
:class:`rnnaccel.hdl.top.Accelerator`; nothing in the accelerator knows about it.

Wire format (``width`` = 8 by default)
--------------------------------------
A vector of ``n`` codes of ``W`` bits is first packed exactly as the wide
:class:`~rnnaccel.hdl.top.AxiStreamTop` packs ``tdata`` -- element ``k`` in bits
``[k*W + W-1 : k*W]``, two's complement -- then zero-padded to ``ceil(n*W / width)`` words and sent
least significant word first, one word per beat::

    beat b carries packed[b*width + width-1 : b*width]

so with ``width = 8`` and 16-bit data, beat 0 is the low byte of ``x[0]``, beat 1 its high byte,
beat 2 the low byte of ``x[1]``, ...

An AXI4-Stream *packet* is one *sequence*: ``tlast`` is set on the final beat of the final vector
of a sequence (``m_axis_tlast`` likewise on the final beat of that sequence's last ``h_t``).
Vector boundaries follow from the beat count alone; ``s_axis_tlast`` is sampled only on the final
beat of each vector (on other beats it is ignored). The padding bits of the final beat are ignored
on input and zero on output.

With run-time loaded weight memories (``plan``, :mod:`rnnaccel.hdl.memory_plan`) the same input
stream first carries the weight image after reset: every code of
:func:`~rnnaccel.hdl.memory_plan.weight_image` in ``ceil(W_w / width)`` beats (``pack_vector`` of the
one code, least significant beat first, ``tlast`` ignored), then the sequences as above.

Ports: ``s_axis_tdata[width-1:0]``, ``s_axis_tvalid``, ``s_axis_tready``, ``s_axis_tlast``,
``m_axis_tdata[width-1:0]``, ``m_axis_tvalid``, ``m_axis_tready``, ``m_axis_tlast``, plus ``clk``
and ``rst`` (synchronous): ``2 * width + 8`` pins, 24 for bytes.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring

from rnnaccel.golden.model import Model

from .top import Accelerator, _payload_bits, axis_ports, in_payload_bits, out_payload_bits
from ._util import checked_init

__all__ = ["SerialisedTop", "serial_beats", "pack_vector", "unpack_vector", "serial_ports"]

#: Bits of the output shift register per copy of its busy flag.
OUT_GROUP_BITS = 64


def serial_beats(n: int, code_width: int, width: int = 8) -> int:
    """Beats of ``width`` bits that carry one vector of ``n`` codes of ``code_width`` bits."""
    return -(-n * code_width // width)


def serial_ports(width: int = 8) -> int:
    """Top-level pins of :class:`SerialisedTop` (data, handshakes, ``clk``, ``rst``)."""
    return 2 * (width + 3) + 2


def pack_vector(codes, code_width: int, width: int = 8) -> list[int]:
    """Beats (unsigned ints of ``width`` bits) that carry the vector ``codes`` on the wire.

    The software twin of the wrapper's deserialiser, for testbenches and the host side.
    """
    codes = [int(c) for c in codes]
    mask = (1 << code_width) - 1
    packed = 0
    for k, c in enumerate(codes):
        if not -(1 << (code_width - 1)) <= c < (1 << (code_width - 1)):
            raise ValueError(f"code {c} at index {k} does not fit signed({code_width})")
        packed |= (c & mask) << (k * code_width)
    wmask = (1 << width) - 1
    return [(packed >> (b * width)) & wmask for b in range(serial_beats(len(codes), code_width, width))]


def unpack_vector(beats, n: int, code_width: int, width: int = 8) -> list[int]:
    """Signed codes of a vector of ``n`` codes from its beats (inverse of :func:`pack_vector`)."""
    beats = [int(b) for b in beats]
    if len(beats) != serial_beats(n, code_width, width):
        raise ValueError(f"a vector of {n} codes of {code_width} bits takes "
                         f"{serial_beats(n, code_width, width)} beats of {width} bits, got {len(beats)}")
    packed = 0
    for b, v in enumerate(beats):
        packed |= (v & ((1 << width) - 1)) << (b * width)
    out = []
    for k in range(n):
        c = (packed >> (k * code_width)) & ((1 << code_width) - 1)
        out.append(c - (1 << code_width) if c >> (code_width - 1) else c)
    return out


class SerialisedTop(wiring.Component):
    """:class:`~rnnaccel.hdl.top.Accelerator` behind ``width``-bit AXI4-Stream ports.

    Parameters
    ----------
    model : Model
    width : int
        Bits per beat of both streams (default 8). See the module docstring for the wire format.
    plan : MemoryPlan, optional
        Memory placement of the accelerator; with loaded weight memories the input stream carries
        the weight image first.

    Attributes
    ----------
    s_axis_tdata : In(width)
    s_axis_tvalid, s_axis_tlast : In(1)
    s_axis_tready : Out(1)
    m_axis_tdata : Out(width)
    m_axis_tvalid, m_axis_tlast : Out(1)
    m_axis_tready : In(1)
    in_beats, out_beats : int
        Beats per ``x_t`` / ``h_t`` vector.
    rotating : bool
        The rotating read-out is used (below).
    cycles_per_timestep : int
        Cycles per timestep with free-running streams (the throughput below).

    Notes
    -----
    Deserialiser: a register of ``in_beats * width`` bits filled one beat per cycle
    (``s_axis_tready`` is high while filling); after the final beat it offers the vector to the
    accelerator and holds ``s_axis_tready`` low until the accelerator takes it (the accelerator's
    ``x_t`` register frees it in the cycle it starts the step, so the next vector streams in while
    the step computes). Serialiser: a shift register of ``out_beats * width`` bits that takes
    ``h_t`` from the accelerator's output register whenever it is empty (its ``ready`` is a
    register, so no combinational path runs from the wrapper's beat counters into the
    accelerator) and sends one beat per cycle. The accelerator computes the next step meanwhile
    and stalls only if that step finishes before the ``out_beats`` beats have left.
    Throughput: one timestep per ``max(cycles_per_timestep, in_beats + 1, out_beats + 1)`` cycles
    when the streams run freely; latency adds ``in_beats + 1`` cycles in front of the accelerator
    and one behind it. Cost beside the accelerator: ``(in_beats + out_beats) * width`` flip-flops
    with their enables, a one-hot input beat position and an output beat counter.

    Rotating read-out (``rotating``: one compact layer, :func:`~rnnaccel.hdl.network.rotating_output`,
    and whole beats per code): no shift register of ``h_t``. The serialiser copies element 0 of the
    accelerator's output register into a one-element register, rotates the output register by one
    element (``o_rotate``) and repeats; after the last element it takes the output (``ready``, a
    register). The accelerator's next step waits for that: ``max(beats per code, 2) * (H - 1) + 1``
    cycles more per step (on the UP5K reference 63 of 1184, for about 1,000 fewer logic cells).
    """

    @checked_init
    def __init__(self, model: Model, width: int = 8, plan=None):
        if not isinstance(model, Model):
            raise TypeError(f"SerialisedTop needs a rnnaccel Model, got {type(model).__name__}")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer number of bits per beat, got {width!r}")
        self.model = model
        self.width = width
        self.code_width = model.formats.data.width
        self.in_bits = in_payload_bits(model)             # x_t (and initial states)
        self.out_bits = out_payload_bits(model)           # y_t (and final states)
        self.in_beats = -(-self.in_bits // width)
        self.out_beats = -(-self.out_bits // width)
        self.plan = plan
        self.weight_code_beats = -(-model.formats.weight.width // width)
        # Read-out by rotation of the accelerator's output register (one compact layer, whole
        # beats per code): no copy of h_t in the wrapper.
        from .network import rotating_output
        self.rotating = rotating_output(model) and self.code_width % width == 0
        self.cycles_per_timestep = self._cycles_per_timestep()
        super().__init__(axis_ports(width, width))

    def _cycles_per_timestep(self) -> int:
        """Cycles per timestep with free-running streams: the accelerator's, or a vector transfer if
        longer; with the rotating read-out the accelerator also waits for its output to be read
        (one element every ``max(beats per code, 2)`` cycles, the last one then taken)."""
        from . import perf
        step = perf.cycles_per_timestep(self.model)
        if self.rotating:
            k, n = self.code_width // self.width, self.out_bits // self.code_width
            step += max(k, 2) * (n - 1) + 1
        return max(step, self.in_beats + 1, self.out_beats + 1)

    def elaborate(self, platform):
        m = Module()
        m.submodules.accel = acc = Accelerator(self.model, self.plan)
        w = self.width

        # -- weight image (loaded memories only): code beats -> w_stream, until the load is done ------
        loading = Const(0)
        if "w_stream" in acc.signature.members:
            nb = self.weight_code_beats
            # The wrapper's own copy of the loader's ``ready`` (falls at the edge that takes the
            # last code): the loader's flag, across the chip, drove the byte path's enables on the UP5K.
            loading = Signal(init=1, name="loading")
            with m.If(acc.w_stream.valid & acc.w_stream.ready & acc.w_last):
                m.d.sync += loading.eq(0)
            w_buf = Signal(nb * w, reset_less=True)
            w_idx = Signal(range(max(nb, 2)))
            w_full = Signal()
            m.d.comb += [acc.w_stream.valid.eq(w_full),
                         acc.w_stream.payload.eq(w_buf[:self.model.formats.weight.width])]
            with m.If(loading & self.s_axis_tvalid & ~w_full):
                m.d.sync += w_buf.word_select(w_idx, w).eq(self.s_axis_tdata)
                with m.If(w_idx == nb - 1):
                    m.d.sync += [w_idx.eq(0), w_full.eq(1)]
                with m.Else():
                    m.d.sync += w_idx.eq(w_idx + 1)
            with m.If(acc.w_stream.valid & acc.w_stream.ready):
                m.d.sync += w_full.eq(0)

        # -- deserialiser: x_t beats -> one wide beat ------------------------------------------
        in_buf = Signal(self.in_beats * w, reset_less=True)      # data: no reset (its flags have one)
        # One-hot beat position: each beat's register enable is one bit of ``in_pos`` and the
        # accept condition (a decoded binary counter in front of 2 x in_beats enables was the
        # critical path on ECP5).
        in_pos = Signal(self.in_beats, init=1)
        in_full = Signal()
        in_last = Signal()
        m.d.comb += [
            self.s_axis_tready.eq(Mux(loading, ~w_full, ~in_full) if "w_stream" in acc.signature.members
                                  else ~in_full),
            acc.i_stream.valid.eq(in_full),
            _payload_bits(acc.i_stream.payload).eq(in_buf[:self.in_bits]),
            acc.i_stream.payload.last.eq(in_last),
        ]
        with m.If(self.s_axis_tvalid & ~in_full & ~loading):
            for k in range(self.in_beats):
                with m.If(in_pos[k]):
                    m.d.sync += in_buf[k * w:(k + 1) * w].eq(self.s_axis_tdata)
            m.d.sync += in_pos.eq(in_pos.rotate_left(1))
            with m.If(in_pos[-1]):
                m.d.sync += [in_full.eq(1), in_last.eq(self.s_axis_tlast)]
        with m.If(acc.i_stream.valid & acc.i_stream.ready):
            m.d.sync += in_full.eq(0)

        if self.rotating:
            self._rotating_serialiser(m, acc)
            return m
        # -- serialiser: h_t -> a shift register of its own -> beats ---------------------------------
        # The wrapper takes h_t from the accelerator's output register as soon as its own shift
        # register is free (``ready`` is a register: no path from the beat counter or the output
        # handshake into the accelerator's control), then shifts it out one beat per cycle.
        out_buf = Signal(self.out_beats * w, reset_less=True)
        out_idx = Signal(range(self.out_beats))
        out_busy = Signal()
        out_last = Signal()
        final = out_idx == self.out_beats - 1
        m.d.comb += [
            acc.o_stream.ready.eq(~out_busy),
            self.m_axis_tdata.eq(out_buf[:w]),
            self.m_axis_tvalid.eq(out_busy),
            self.m_axis_tlast.eq(out_last & final),
        ]
        with m.If(out_busy):
            with m.If(self.m_axis_tready):
                m.d.sync += out_idx.eq(Mux(final, 0, out_idx + 1))
                with m.If(final):
                    m.d.sync += out_busy.eq(0)
        with m.Elif(acc.o_stream.valid):
            m.d.sync += [out_last.eq(acc.o_stream.payload.last), out_busy.eq(1)]
        # The shift register's enables: every OUT_GROUP_BITS bits have their own copy of ``out_busy``
        # (flags that feed back into themselves, so synthesis keeps them apart; one flag driving the
        # enables of the whole register was the critical path on ECP5).
        packed = acc.o_stream.payload.data.as_value()
        for lo in range(0, len(out_buf), OUT_GROUP_BITS):
            hi = min(len(out_buf), lo + OUT_GROUP_BITS)
            busy_c = Signal(name=f"out_busy_copy{lo // OUT_GROUP_BITS}")
            shifted = Cat(out_buf, Const(0, w))[lo + w:hi + w]
            with m.If(busy_c):
                with m.If(self.m_axis_tready):
                    m.d.sync += out_buf[lo:hi].eq(shifted)
                    with m.If(final):
                        m.d.sync += busy_c.eq(0)
            with m.Else():
                # Idle: follow the accelerator's output register (whatever it holds), so the beat
                # is in place in the cycle it is offered; only the busy flag looks at ``valid``.
                m.d.sync += out_buf[lo:hi].eq(packed[lo:hi] if lo < len(packed) else 0)
                with m.If(acc.o_stream.valid):
                    m.d.sync += busy_c.eq(1)
        return m

    def _rotating_serialiser(self, m, acc):
        """Serialiser without a copy of h_t (see the class notes): element 0 of the accelerator's
        output register into a one-element register, the register rotated (``o_rotate``) after each
        element but the last, and the output taken (``ready``) after the last."""
        w, cw = self.width, self.code_width
        k = cw // w                                   # beats per element
        n = self.out_bits // cw                       # elements
        packed = acc.o_stream.payload.data.as_value()
        elem = Signal(cw, name="out_elem", reset_less=True)
        have = Signal(name="out_have")                # elem holds unsent beats
        beat = Signal(range(max(k, 2)), name="out_beat")
        taken = Signal(range(n + 1), name="out_taken")  # elements taken from the register
        all_taken = Signal(name="out_all_taken")      # taken == n (a flag: fewer logic levels)
        rot = Signal(name="out_rotate")               # the register rotates at this edge
        free = Signal(name="out_free")                # ready: every element taken
        just = Signal(name="out_just_loaded")         # rot | free: no load in this cycle
        last_elem = Signal(name="out_last_elem")
        out_last = Signal(name="out_last")
        beat_last = (beat == k - 1) if k > 1 else Const(1)
        m.d.comb += [
            acc.o_rotate.eq(rot), acc.o_stream.ready.eq(free),
            self.m_axis_tdata.eq(elem.word_select(beat, w) if k > 1 else elem),
            self.m_axis_tvalid.eq(have),
            self.m_axis_tlast.eq(out_last & last_elem & beat_last),
        ]
        m.d.sync += [rot.eq(0), free.eq(0), just.eq(0)]
        sent_last = have & self.m_axis_tready & beat_last
        with m.If(have & self.m_axis_tready):
            m.d.sync += beat.eq(Mux(beat_last, 0, beat + 1))
            with m.If(beat_last):
                m.d.sync += have.eq(0)
        # The next element: element 0 is the right one once the previous rotation has happened.
        with m.If(acc.o_stream.valid & ~just & ~all_taken & (~have | sent_last)):
            m.d.sync += [elem.eq(packed[:cw]), have.eq(1), beat.eq(0), taken.eq(taken + 1),
                         last_elem.eq(taken == n - 1), all_taken.eq(taken == n - 1), just.eq(1)]
            with m.If(taken == 0):
                m.d.sync += out_last.eq(acc.o_stream.payload.last)
            with m.If(taken == n - 1):
                m.d.sync += free.eq(1)
            with m.Else():
                m.d.sync += rot.eq(1)
        with m.If(free):
            m.d.sync += [taken.eq(0), all_taken.eq(0)]
