"""UART (8N1) receiver and transmitter, and the byte framing of the accelerator's host link.

The host link carries the accelerator's streams over a plain two-wire UART (no flow-control
wires: the iCEBreaker and ULX3S FTDI bridges connect RX and TX only). :class:`UARTReceiver` and
:class:`UARTTransmitter` move bytes; :class:`InputDeframer` turns the received bytes into the
accelerator's input payload and :class:`OutputFramer` its output payload into bytes.
:class:`rnnaccel.hdl.board.BoardTop` puts them together; :mod:`rnnaccel.host` is the host side.

Wire protocol
-------------
Every byte is 8N1 (one start bit, eight data bits least significant first, one stop bit, no
parity), idle high. Both directions are sequences of *frames*: a header byte, then a payload.

Host to device, one frame per timestep (one input beat of the accelerator)::

    header   0xA0 | S << 1 | L          L = last (this x_t ends its sequence), S = state follows
    x_t      ceil(X * W / 8) bytes      the codes packed as hdl/wrapper.py pack_vector packs them:
                                        element k in bits [k*W + W-1 : k*W] (two's complement),
                                        zero-padded, least significant byte first
    state    ceil(S_bits / 8) bytes     only if S: h0 of every layer and direction (data width),
                                        then c0 (cell width, LSTMs), packed the same way; exactly
                                        the bits that follow x_t in the wide AXI4-Stream tdata

Weight frame (only for designs whose weights sit in SPRAM, :mod:`rnnaccel.hdl.memory_plan`; sent
once after reset, before any input frame)::

    header   0xC0
    weights  N * ceil(W_w / 8) bytes     the N codes of memory_plan.weight_image, each in its own
                                        ceil(W_w / 8) bytes (two's complement, least significant
                                        byte first)

The device takes input frames only once every weight is written. A ``0xC0`` on a device without
loaded weights, or after the load, is a protocol error like any other bad header. An error marker
inside the weight frame leaves the load incomplete: reset the device and send the frame again.

``S`` is allowed only for models with ``initial_state``. The device keeps the last state
received (zeros after reset) and hands it to the accelerator with every beat; the accelerator
reads it on the first beat of a sequence, so a host sends ``S = 1`` on the first frame of each
sequence (or once, to reuse the same initial state). Any other byte where a header is expected
(e.g. ``0xA4``, or ``0xA2`` for a model without initial state) is dropped and flagged as a
protocol error; the next header byte is looked for in the following bytes.

Device to host, one frame per output of the accelerator (every timestep, or the last timestep of
each sequence with ``outputs = "last"``)::

    header   0xB0 | F << 1 | L          L = last output of its sequence, F = final state follows
    y_t      ceil(Y * W / 8) bytes      the output codes (h_t of the last layer or the head's),
                                        packed as above
    final    ceil(F_bits / 8) bytes     only if F: h_n of every layer and direction (data width),
                                        then c_n (cell width, LSTMs), packed as above

``F`` is set on the last frame of each sequence of models with ``final_state``, and only there.

Errors: a byte whose stop bit is low (framing error; a line *break* is one) or a byte lost
because the receive buffer was full (overrun) puts an error marker into the byte stream. The
marker aborts a partly received input frame (its bytes are discarded; complete frames already
received are processed); the deframer then waits for a header. A host can therefore
re-synchronise by sending a break and then starting a frame. All errors also set a sticky error
flag (an LED on the boards).

Flow control is the host's job (the UART has no backpressure): the device buffers
``fifo_depth`` received bytes (:attr:`LinkFormat.fifo_depth`), and the host keeps at most
:attr:`LinkFormat.window` input frames whose outputs have not arrived yet (see
:func:`rnnaccel.host.plan_transfers`), which bounds the buffer's contents even when the output
direction is the slower one.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import cdc, data, stream, wiring
from amaranth.lib.wiring import In, Out

from rnnaccel.golden.model import Model

from ._util import checked_init

__all__ = ["baud_divisor", "UARTReceiver", "UARTTransmitter", "InputDeframer", "OutputFramer",
           "LinkFormat", "link_format", "output_layout", "rx_layout", "IN_HEADER", "OUT_HEADER", "WEIGHT_HEADER", "HEADER_LAST",
           "HEADER_STATE", "MIN_DIVISOR", "MAX_BAUD_ERROR"]

#: Header byte of a host-to-device frame (ORed with :data:`HEADER_STATE` and :data:`HEADER_LAST`).
IN_HEADER = 0xA0
#: Header byte of the weight frame (host to device, designs with run-time loaded weights).
WEIGHT_HEADER = 0xC0
#: Header byte of a device-to-host frame (ORed with :data:`HEADER_LAST`).
OUT_HEADER = 0xB0
#: Header bit: the frame's beat ends its sequence.
HEADER_LAST = 0x01
#: Header bit: the initial-state bytes follow ``x_t`` (host to device), the final-state bytes
#: follow ``y_t`` (device to host).
HEADER_STATE = 0x02

#: Smallest clock cycles per bit: the receiver's synchroniser and mid-bit sampling need 4.
MIN_DIVISOR = 4
#: Largest relative baud-rate error of the divisor accepted by :func:`baud_divisor` (8N1 tolerates
#: about 4.5 % between both ends together; this leaves the rest to the other end's clock).
MAX_BAUD_ERROR = 0.02

#: Smallest receive buffer of :func:`link_format` (one iCE40 EBR holds 512 bytes).
_MIN_FIFO_DEPTH = 512


def baud_divisor(clk_freq: float, baud: float, *, tolerance: float = MAX_BAUD_ERROR) -> int:
    """Clock cycles per UART bit for ``baud`` at ``clk_freq`` Hz: ``round(clk_freq / baud)``.

    Raises
    ------
    ValueError
        If the divisor is below :data:`MIN_DIVISOR` or its baud rate is off by more than
        ``tolerance`` (relative), e.g. 115200 baud from a 1 MHz clock (divisor 9, 3.5 % off).
    """
    for name, v in (("clock frequency", clk_freq), ("baud rate", baud)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ValueError(f"{name} must be a positive number, got {v!r}")
    divisor = round(clk_freq / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"baud rate {baud:g} is too high for a {clk_freq / 1e6:g} MHz clock: "
                         f"{clk_freq / baud:.2f} cycles per bit, the UART needs at least {MIN_DIVISOR}")
    error = abs(clk_freq / divisor - baud) / baud
    if error > tolerance:
        raise ValueError(f"baud rate {baud:g} cannot be made from a {clk_freq / 1e6:g} MHz clock: divisor "
                         f"{divisor} gives {clk_freq / divisor:.1f} baud, {100 * error:.2f} % off "
                         f"(at most {100 * tolerance:g} % allowed)")
    return divisor


def _check_divisor(divisor) -> int:
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < MIN_DIVISOR:
        raise ValueError(f"divisor must be an integer number of clock cycles per bit >= {MIN_DIVISOR}, "
                         f"got {divisor!r}")
    return divisor


def rx_layout() -> data.StructLayout:
    """Payload of :class:`UARTReceiver`'s stream: ``data`` (the byte) and ``error`` (see there)."""
    return data.StructLayout({"data": 8, "error": 1})


class UARTReceiver(wiring.Component):
    """8N1 UART receiver with a two-flip-flop synchroniser and mid-bit sampling.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (:func:`baud_divisor`), at least :data:`MIN_DIVISOR`.

    Attributes
    ----------
    rx : In(1)
        The line (asynchronous; idle high).
    o_stream : Out(stream.Signature(rx_layout()))
        One beat per received byte. ``error = 1`` marks a break in the byte stream: either this
        byte's stop bit was low (framing error, ``data`` as sampled), or bytes were lost before it
        because ``o_stream`` was not ready (overrun). Consumers discard such a beat's data.
    frame_error, overrun : Out(1)
        One-cycle pulses when a stop bit is sampled low / a byte is lost.

    Notes
    -----
    The line passes a 2-FF synchroniser (:class:`amaranth.lib.cdc.FFSynchronizer`, reset high so
    that a line idle at start-up is not a start bit). A low level starts a byte; the start bit is
    checked again at its middle (a shorter glitch is ignored); then the 8 data bits and the stop
    bit are sampled at their middles, every ``divisor`` cycles. The line is sampled ``(divisor -
    3) // 2 + 1`` to ``+ 2`` cycles after each bit's start (the falling edge is seen 2 to 3 cycles
    late through the synchroniser), within one cycle of the bit's centre, so the link tolerates
    the usual +-4 % between both ends. After a framing error the receiver waits for
    the line to go high before looking for the next start bit (a break is reported once).

    Latency: ``o_stream`` is valid 2 cycles after the stop bit is sampled, about ``9.5 * divisor
    + 2`` cycles after the start bit's falling edge. Throughput: one byte per ``10 * divisor``
    cycles (back-to-back bytes); the receiver returns to idle at the middle of the stop bit, so a
    sender up to half a bit faster over the byte is still received. ``o_stream`` holds one byte:
    it must be taken within a byte time.
    """

    @checked_init
    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__({
            "rx": In(1, init=1),
            "o_stream": Out(stream.Signature(rx_layout())),
            "frame_error": Out(1),
            "overrun": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        line = Signal(init=1)
        m.submodules.sync = cdc.FFSynchronizer(self.rx, line, init=1)

        cnt = Signal(range(d))
        bits = Signal(range(9))
        shreg = Signal(8)
        lost = Signal()                     # bytes were lost since the last delivered beat
        done = Signal()                     # a byte (good or bad) completes this cycle
        done_error = Signal()
        o = self.o_stream

        with m.If(o.valid & o.ready):
            m.d.sync += o.valid.eq(0)
        with m.If(done):
            with m.If(~o.valid | o.ready):
                m.d.sync += [o.valid.eq(1), o.payload.data.eq(shreg),
                             o.payload.error.eq(done_error | lost), lost.eq(0)]
            with m.Else():
                m.d.sync += lost.eq(1)
                m.d.comb += self.overrun.eq(1)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += cnt.eq((d - 3) // 2)
                    m.next = "START"
            with m.State("START"):
                with m.If(cnt == 0):
                    with m.If(line):        # a glitch, not a start bit
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [cnt.eq(d - 1), bits.eq(8)]
                        m.next = "DATA"
                with m.Else():
                    m.d.sync += cnt.eq(cnt - 1)
            with m.State("DATA"):
                with m.If(cnt == 0):
                    m.d.sync += [cnt.eq(d - 1), shreg.eq(Cat(shreg[1:], line)), bits.eq(bits - 1)]
                    with m.If(bits == 1):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += cnt.eq(cnt - 1)
            with m.State("STOP"):
                with m.If(cnt == 0):
                    m.d.comb += [done.eq(1), done_error.eq(~line)]
                    with m.If(line):
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.frame_error.eq(1)
                        m.next = "BREAK"
                with m.Else():
                    m.d.sync += cnt.eq(cnt - 1)
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m


class UARTTransmitter(wiring.Component):
    """8N1 UART transmitter.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (:func:`baud_divisor`), at least :data:`MIN_DIVISOR`.

    Attributes
    ----------
    i_stream : In(stream.Signature(8))
        Bytes to send.
    tx : Out(1)
        The line, registered (glitch-free), idle high.

    Notes
    -----
    Latency: the start bit begins on ``tx`` the cycle after a byte is accepted. Throughput: one
    byte per ``10 * divisor`` cycles: a waiting byte is accepted in the last cycle of the previous
    stop bit, so back-to-back bytes have no idle time between them.
    """

    @checked_init
    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__({
            "i_stream": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        busy = Signal()
        cnt = Signal(range(d))
        bits = Signal(range(10))            # bits still to send after the current one
        shreg = Signal(9)                   # data bits, then the stop bit
        i = self.i_stream
        finishing = busy & (cnt == 0) & (bits == 0)
        m.d.comb += i.ready.eq(~busy | finishing)

        with m.If(i.valid & i.ready):
            m.d.sync += [self.tx.eq(0), shreg.eq(Cat(i.payload, Const(1, 1))), bits.eq(9), cnt.eq(d - 1), busy.eq(1)]
        with m.Elif(finishing):
            m.d.sync += busy.eq(0)
        with m.Elif(busy):
            with m.If(cnt == 0):
                m.d.sync += [self.tx.eq(shreg[0]), shreg.eq(shreg >> 1), bits.eq(bits - 1), cnt.eq(d - 1)]
            with m.Else():
                m.d.sync += cnt.eq(cnt - 1)
        return m


# -- framing ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LinkFormat:
    """Frame sizes of a model's host link (see the module docstring).

    Attributes
    ----------
    code_width, cell_width : int
        Bits of a data code and of a cell-state code.
    x_bits, state_bits, out_bits, final_bits : int
        Bits of ``x_t``, of the initial state (``h0`` and ``c0`` of every layer; 0 without
        ``initial_state``), of an output vector and of the final state (``h_n``, ``c_n``; 0
        without ``final_state``).
    x_bytes, state_bytes, out_bytes, final_bytes : int
        The same in whole bytes.
    in_frame_bytes, in_state_frame_bytes, out_frame_bytes, out_final_frame_bytes : int
        Input frame without / with the initial state, output frame without / with the final
        state; headers included.
    fifo_depth : int
        Default receive buffer of the device in bytes: at least 512 and at least two of the
        largest input frames (a power of two).
    window : int
        Input frames a host may send ahead of their outputs with this buffer:
        ``fifo_depth // in_state_frame_bytes``.
    """

    code_width: int
    cell_width: int
    x_bits: int
    state_bits: int
    out_bits: int
    fifo_depth: int
    final_bits: int = 0

    @property
    def x_bytes(self) -> int:
        return -(-self.x_bits // 8)

    @property
    def state_bytes(self) -> int:
        return -(-self.state_bits // 8)

    @property
    def out_bytes(self) -> int:
        return -(-self.out_bits // 8)

    @property
    def final_bytes(self) -> int:
        return -(-self.final_bits // 8)

    @property
    def in_frame_bytes(self) -> int:
        return 1 + self.x_bytes

    @property
    def in_state_frame_bytes(self) -> int:
        return 1 + self.x_bytes + self.state_bytes

    @property
    def out_frame_bytes(self) -> int:
        return 1 + self.out_bytes

    @property
    def out_final_frame_bytes(self) -> int:
        return 1 + self.out_bytes + self.final_bytes

    @property
    def window(self) -> int:
        return self.window_for(self.fifo_depth)

    def window_for(self, fifo_depth: int) -> int:
        """Input frames that fit a receive buffer of ``fifo_depth`` bytes (at least 1)."""
        return max(1, fifo_depth // self.in_state_frame_bytes)


def link_format(model: Model) -> LinkFormat:
    """The :class:`LinkFormat` of ``model``."""
    if not isinstance(model, Model):
        raise TypeError(f"link_format needs a rnnaccel Model, got {type(model).__name__}")
    w = model.formats.data.width
    wc = model.formats.cell.width
    n = model.num_layers * model.directions
    states = n * model.state_size * w + (n * model.hidden_size * wc if model.cell_spec.has_cell_state else 0)
    state = states if model.initial_state else 0
    final = states if getattr(model, "final_state", False) else 0
    x_bits = model.input_size * w
    largest = 1 + -(-x_bits // 8) + -(-state // 8)
    depth = _MIN_FIFO_DEPTH
    while depth < 2 * largest:
        depth *= 2
    return LinkFormat(code_width=w, cell_width=wc, x_bits=x_bits, state_bits=state,
                      out_bits=model.output_size * w, fifo_depth=depth, final_bits=final)


def output_layout(model: Model) -> data.StructLayout:
    """The accelerator's output payload: ``data``, ``last`` and, with ``final_state``, ``h_n``/``c_n``."""
    try:
        from .network import network_output_layout
    except ImportError:                 # a version of the network without final states
        from .layer import vector_layout
        return vector_layout(model.formats.data.width, model.output_size)
    return network_output_layout(model)


def _state_bits(payload):
    """A payload's state fields (``h0``/``c0`` or ``h_n``/``c_n``) as one value, or None."""
    names = [n for n in payload.shape().members if n not in ("data", "last")]
    return Cat(*(payload[n].as_value() for n in names)) if names else None


class InputDeframer(wiring.Component):
    """Host-link bytes -> the accelerator's input payload (``x_t``, ``last``, ``h0``/``c0``).

    Parameters
    ----------
    model : Model
    weight_codes : int
        Codes of the weight frame (:func:`~rnnaccel.hdl.memory_plan.weight_image`); 0: no weight frame.

    Attributes
    ----------
    i_stream : In(stream.Signature(rx_layout()))
        Received bytes with their error marker (:class:`UARTReceiver`, usually through a FIFO).
    o_stream : Out(stream.Signature(network_input_layout(model)))
        One beat per complete input frame; connects to :class:`~rnnaccel.hdl.top.Accelerator`.
    w_stream : Out(stream.Signature(signed(weight.width)))
        Only with ``weight_codes``: the codes of the weight frame, to the accelerator's ``w_stream``.
        A weight header is accepted only while ``w_stream.ready`` is high (the load is not done).
    header_error : Out(1)
        One-cycle pulse when a byte where a header was expected is not a valid header (dropped).
    line_error : Out(1)
        One-cycle pulse when an error marker arrives (a partly received frame is discarded).

    Notes
    -----
    Takes one byte per cycle while receiving a frame (``x_t`` and state into shift registers of
    ``x_bytes`` / ``state_bytes`` bytes); after the frame's last byte ``o_stream`` is valid the
    next cycle and bytes wait (``i_stream.ready`` low) until the accelerator takes the beat.
    The state register keeps its value between frames (reset: zero).
    Latency: 1 cycle from the frame's last byte to ``o_stream.valid``. Throughput: one frame per
    ``frame bytes + 1`` cycles.
    """

    @checked_init
    def __init__(self, model: Model, weight_codes: int = 0):
        from .network import network_input_layout
        if not isinstance(model, Model):
            raise TypeError(f"InputDeframer needs a rnnaccel Model, got {type(model).__name__}")
        self.model = model
        self.format = link_format(model)
        self.weight_codes = int(weight_codes)
        self.weight_bytes = -(-model.formats.weight.width // 8)
        ports = ({"w_stream": Out(stream.Signature(signed(model.formats.weight.width)))}
                 if self.weight_codes else {})
        super().__init__(ports | {
            "i_stream": In(stream.Signature(rx_layout())),
            "o_stream": Out(stream.Signature(network_input_layout(model))),
            "header_error": Out(1),
            "line_error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        f = self.format
        i, o = self.i_stream, self.o_stream
        x_buf = Signal(f.x_bytes * 8)
        st_buf = Signal(max(f.state_bytes, 1) * 8)
        idx = Signal(range(max(f.x_bytes, f.state_bytes, 1)))
        last = Signal()
        with_state = Signal()
        byte = i.payload.data
        state_ok = Const(int(self.model.initial_state), 1)
        if self.weight_codes:
            w_buf = Signal(8 * self.weight_bytes)
            w_idx = Signal(range(max(self.weight_bytes, 2)))
            w_count = Signal(range(self.weight_codes))
            m.d.comb += self.w_stream.payload.eq(w_buf[:self.model.formats.weight.width])

        m.d.comb += [o.payload.data.as_value().eq(x_buf[:f.x_bits]), o.payload.last.eq(last)]
        st = _state_bits(o.payload)
        if st is not None:
            m.d.comb += st.eq(st_buf[:f.state_bits])

        with m.FSM():
            with m.State("HEADER"):
                m.d.comb += i.ready.eq(1)
                with m.If(i.valid):
                    with m.If(i.payload.error):
                        m.d.comb += self.line_error.eq(1)
                    with m.Elif(((byte & 0xFC) == IN_HEADER) & (~byte[1] | state_ok)):
                        m.d.sync += [last.eq(byte[0]), with_state.eq(byte[1]), idx.eq(0)]
                        m.next = "X"
                    if self.weight_codes:
                        with m.Elif((byte == WEIGHT_HEADER) & self.w_stream.ready):
                            m.d.sync += [w_idx.eq(0), w_count.eq(0)]
                            m.next = "W"
                    with m.Else():
                        m.d.comb += self.header_error.eq(1)
            with m.State("X"):
                m.d.comb += i.ready.eq(1)
                with m.If(i.valid):
                    with m.If(i.payload.error):
                        m.d.comb += self.line_error.eq(1)
                        m.next = "HEADER"
                    with m.Else():
                        m.d.sync += [x_buf.eq(Cat(x_buf[8:], byte)), idx.eq(idx + 1)]
                        with m.If(idx == f.x_bytes - 1):
                            m.d.sync += idx.eq(0)
                            if f.state_bytes:
                                with m.If(with_state):
                                    m.next = "STATE"
                                with m.Else():
                                    m.next = "FULL"
                            else:
                                m.next = "FULL"
            if f.state_bytes:
                with m.State("STATE"):
                    m.d.comb += i.ready.eq(1)
                    with m.If(i.valid):
                        with m.If(i.payload.error):
                            # The state register is partly overwritten: the next frame with S fixes it.
                            m.d.comb += self.line_error.eq(1)
                            m.next = "HEADER"
                        with m.Else():
                            m.d.sync += [st_buf.eq(Cat(st_buf[8:], byte)), idx.eq(idx + 1)]
                            with m.If(idx == f.state_bytes - 1):
                                m.next = "FULL"
            with m.State("FULL"):
                m.d.comb += o.valid.eq(1)
                with m.If(o.ready):
                    m.next = "HEADER"
            if self.weight_codes:
                nb = self.weight_bytes
                with m.State("W"):
                    m.d.comb += i.ready.eq(1)
                    with m.If(i.valid):
                        with m.If(i.payload.error):
                            m.d.comb += self.line_error.eq(1)     # the load stays incomplete
                            m.next = "HEADER"
                        with m.Else():
                            m.d.sync += [w_buf.eq(Cat(w_buf[8:], byte)) if nb > 1 else w_buf.eq(byte),
                                         w_idx.eq(w_idx + 1)]
                            with m.If(w_idx == nb - 1):
                                m.d.sync += w_idx.eq(0)
                                m.next = "WFULL"
                with m.State("WFULL"):
                    m.d.comb += self.w_stream.valid.eq(1)
                    with m.If(self.w_stream.ready):
                        m.d.sync += w_count.eq(w_count + 1)
                        with m.If(w_count == self.weight_codes - 1):
                            m.next = "HEADER"
                        with m.Else():
                            m.next = "W"
        return m


class OutputFramer(wiring.Component):
    """The accelerator's output payload -> host-link bytes (header, the packed vector, and on the
    last frame of a sequence of a ``final_state`` model the final states).

    Parameters
    ----------
    model : Model

    Attributes
    ----------
    i_stream : In(stream.Signature(output_layout(model)))
        The accelerator's ``o_stream``.
    o_stream : Out(stream.Signature(8))
        Bytes for :class:`UARTTransmitter`.

    Notes
    -----
    No register of its own: byte ``i`` of the frame is selected from the accelerator's output
    register (stable while it waits, as the stream contract requires) and the output is taken
    with the frame's final byte. Latency: combinational (0 cycles). Throughput: one byte per
    cycle (the UART sets the pace: ``out_frame_bytes * 10 * divisor`` cycles per output).
    """

    @checked_init
    def __init__(self, model: Model):
        if not isinstance(model, Model):
            raise TypeError(f"OutputFramer needs a rnnaccel Model, got {type(model).__name__}")
        self.model = model
        self.format = link_format(model)
        super().__init__({
            "i_stream": In(stream.Signature(output_layout(model))),
            "o_stream": Out(stream.Signature(8)),
        })

    def elaborate(self, platform):
        m = Module()
        f = self.format
        i, o = self.i_stream, self.o_stream
        n, nf = f.out_frame_bytes, f.out_final_frame_bytes
        frame = Signal(nf * 8)
        idx = Signal(range(nf))
        final_state = _state_bits(i.payload)
        with_final = Signal()
        if final_state is not None and f.final_bits:
            m.d.comb += with_final.eq(i.payload.last)
        final = idx == Mux(with_final, nf - 1, n - 1)
        header = Cat(i.payload.last, with_final, Const(OUT_HEADER >> 2, 6))
        parts = [header, i.payload.data.as_value()]
        pad = f.out_bytes * 8 - f.out_bits
        if pad:
            parts.append(Const(0, pad))
        if final_state is not None and f.final_bits:
            parts.append(final_state)
        m.d.comb += [
            frame.eq(Cat(*parts)),
            o.payload.eq(frame.word_select(idx, 8)),
            o.valid.eq(i.valid),
            i.ready.eq(o.ready & final),
        ]
        with m.If(o.valid & o.ready):
            m.d.sync += idx.eq(Mux(final, 0, idx + 1))
        return m
