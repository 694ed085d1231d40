"""The accelerator behind a UART host link, and its placement on development boards.

:class:`BoardTop` is the whole board design as a component with three pins (``rx``, ``tx``,
``error``), independent of any board::

    rx -> UARTReceiver -> byte FIFO -> InputDeframer -> Accelerator -> OutputFramer -> UARTTransmitter -> tx

(:mod:`rnnaccel.hdl.uart` defines the blocks and the wire protocol). :class:`BoardDesign` puts it
on an Amaranth platform: the board's oscillator clocks everything (no PLL), the UART pins are the
board's USB-serial bridge, LED 0 shows the sticky error flag. :data:`BOARDS` lists the supported
boards (platforms from ``amaranth-boards``).

========================  ===================  ==========  =====================================
board (``--board``)       part                 clock       UART (FPGA pins)
========================  ===================  ==========  =====================================
``icebreaker``            iCE40UP5K-SG48       12 MHz      FTDI channel B: RX 6, TX 9; LED red 11
``ulx3s-85f``             LFE5U-85F-6BG381C    25 MHz      FTDI: RX M1, TX L4; LED 0 B2
========================  ===================  ==========  =====================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from amaranth.hdl import Elaboratable, Module
from amaranth.lib import fifo, io, wiring
from amaranth.lib.wiring import In, Out

from rnnaccel.golden.model import Model

from ._util import checked_init
from .top import Accelerator
from .uart import InputDeframer, OutputFramer, UARTReceiver, UARTTransmitter, baud_divisor, link_format

__all__ = ["BoardTop", "BoardDesign", "Board", "BOARDS", "board"]


class BoardTop(wiring.Component):
    """:class:`~rnnaccel.hdl.top.Accelerator` behind a UART host link (see :mod:`rnnaccel.hdl.uart`).

    Parameters
    ----------
    model : Model
    clk_freq : float
        Frequency of the ``sync`` clock in Hz.
    baud : int
        UART baud rate (8N1). The divisor ``round(clk_freq / baud)`` must be within 2 % of it
        and at least 4 (:func:`~rnnaccel.hdl.uart.baud_divisor`).
    fifo_depth : int, optional
        Bytes of the receive buffer (default :attr:`~rnnaccel.hdl.uart.LinkFormat.fifo_depth`);
        the host must be told the same (``rnnaccel.host.Host(fifo_depth=...)``).
    plan : MemoryPlan, optional
        Memory placement; with weights in SPRAM the host sends the weight frame first
        (``rnnaccel.host.Host.load_weights``).

    Attributes
    ----------
    rx : In(1)
        UART line from the host (asynchronous, idle high).
    tx : Out(1)
        UART line to the host.
    error : Out(1)
        Sticky: a framing error, a receive overrun or a bad header happened since reset.
    divisor : int
        Clock cycles per bit.
    format : LinkFormat

    Notes
    -----
    The frames carry everything the accelerator's streams do: ``x_t``, ``last``, ``h0``/``c0``
    in, outputs, ``last`` and (``final_state``) ``h_n``/``c_n`` out. Throughput is the UART's: ``in_frame_bytes * 10 * divisor`` cycles per timestep in and
    ``out_frame_bytes * 10 * divisor`` out (the accelerator's own cycles per timestep are far
    fewer). Latency of one timestep: its input frame, the receiver's ~``0.5 * divisor``, the
    FIFO (2 cycles), the deframer (1), the accelerator's step, then its output frame on the line.
    Cost beside the accelerator: two UARTs (about 40 flip-flops each), a ``fifo_depth`` x 9-bit
    FIFO (block RAM), the deframer's ``x_bytes + state_bytes`` byte registers and the framer's
    byte multiplexer.
    """

    @checked_init
    def __init__(self, model: Model, clk_freq: float, baud: int = 115200, *, fifo_depth: int | None = None,
                 plan=None):
        if not isinstance(model, Model):
            raise TypeError(f"BoardTop needs a rnnaccel Model, got {type(model).__name__}")
        self.model = model
        self.plan = plan
        self.weight_codes = plan.image_words * model.simd if plan is not None and plan.loaded else 0
        self.clk_freq = clk_freq
        self.baud = baud
        self.divisor = baud_divisor(clk_freq, baud)
        self.format = link_format(model)
        if fifo_depth is None:
            fifo_depth = self.format.fifo_depth
        if isinstance(fifo_depth, bool) or not isinstance(fifo_depth, int) or fifo_depth < self.format.in_state_frame_bytes:
            raise ValueError(f"fifo_depth must be an integer of at least one input frame "
                             f"({self.format.in_state_frame_bytes} bytes), got {fifo_depth!r}")
        self.fifo_depth = fifo_depth
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = UARTReceiver(self.divisor)
        m.submodules.fifo = buf = fifo.SyncFIFOBuffered(width=9, depth=self.fifo_depth)
        m.submodules.deframer = dfr = InputDeframer(self.model, self.weight_codes)
        m.submodules.accel = acc = Accelerator(self.model, self.plan)
        if self.weight_codes:
            wiring.connect(m, dfr.w_stream, acc.w_stream)
        m.submodules.framer = fr = OutputFramer(self.model)
        m.submodules.tx = tx = UARTTransmitter(self.divisor)

        m.d.comb += [
            rx.rx.eq(self.rx),
            self.tx.eq(tx.tx),
            # receiver -> FIFO (9 bits: the byte and its error marker)
            buf.w_data.eq(rx.o_stream.payload.as_value()),
            buf.w_en.eq(rx.o_stream.valid),
            rx.o_stream.ready.eq(buf.w_rdy),
            # FIFO -> deframer
            dfr.i_stream.payload.as_value().eq(buf.r_data),
            dfr.i_stream.valid.eq(buf.r_rdy),
            buf.r_en.eq(dfr.i_stream.ready),
        ]
        wiring.connect(m, dfr.o_stream, acc.i_stream)
        wiring.connect(m, acc.o_stream, fr.i_stream)
        wiring.connect(m, fr.o_stream, tx.i_stream)
        with m.If(rx.frame_error | rx.overrun | dfr.header_error | dfr.line_error):
            m.d.sync += self.error.eq(1)
        return m


# -- boards ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Board:
    """A development board as the board flow drives it.

    Attributes
    ----------
    name : str
        Name on the command line.
    description : str
    family : {"ice40", "ecp5"}
    platform : callable
        Returns a fresh ``amaranth-boards`` platform.
    clock_mhz : float
        The board oscillator that clocks the design.
    bitstream : str
        Suffix of the bitstream file (``.bin`` for iCE40, ``.bit`` for ECP5).
    program : str
        How to load the bitstream (shown in the summary).
    """

    name: str
    description: str
    family: str
    platform: Callable
    clock_mhz: float
    bitstream: str
    program: str


def _icebreaker():
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    return ICEBreakerPlatform()


def _ulx3s_85f():
    from amaranth_boards.ulx3s import ULX3S_85F_Platform
    return ULX3S_85F_Platform()


BOARDS = {
    "icebreaker": Board("icebreaker", "1BitSquared iCEBreaker (iCE40UP5K-SG48)", "ice40", _icebreaker, 12.0,
                        ".bin", "iceprog {file}  (or openFPGALoader -b ice40_generic {file})"),
    "ulx3s-85f": Board("ulx3s-85f", "Radiona ULX3S (LFE5U-85F-6BG381C)", "ecp5", _ulx3s_85f, 25.0,
                       ".bit", "openFPGALoader -b ulx3s {file}  (or fujprog {file})"),
}


def board(name) -> Board:
    """The :class:`Board` called ``name`` (or ``name`` itself if it is one)."""
    if isinstance(name, Board):
        return name
    if name not in BOARDS:
        raise ValueError(f"unknown board {name!r}; choose one of {', '.join(BOARDS)}")
    return BOARDS[name]


class BoardDesign(Elaboratable):
    """:class:`BoardTop` on an Amaranth platform: board clock, UART pins and LED 0.

    Parameters
    ----------
    model : Model
    baud : int
    fifo_depth : int, optional
    plan : MemoryPlan, optional
        Memory placement (weights in SPRAM: loaded through the link's weight frame).

    Notes
    -----
    The ``sync`` domain is the platform's default: the board oscillator (``default_clk``), with
    the platform's power-on reset (on iCE40 it also waits for the block RAMs to become readable).
    LED 0 (the iCEBreaker's red LED) lights on any link error; boards without it have no LED.
    After elaboration ``top`` is the :class:`BoardTop` instance (its ``divisor``, ``format``).
    """

    def __init__(self, model: Model, baud: int = 115200, *, fifo_depth: int | None = None, plan=None):
        self.model = model
        self.baud = baud
        self.fifo_depth = fifo_depth
        self.plan = plan
        self.top = None

    def elaborate(self, platform):
        from amaranth.build import ResourceError
        if platform is None or getattr(platform, "default_clk_frequency", None) is None:
            raise ValueError("BoardDesign needs a platform with a default clock")
        m = Module()
        m.submodules.link = top = BoardTop(self.model, platform.default_clk_frequency, self.baud,
                                           fifo_depth=self.fifo_depth, plan=self.plan)
        self.top = top
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx_buf = io.Buffer("o", uart.tx)
        m.d.comb += [top.rx.eq(rx_buf.i), tx_buf.o.eq(top.tx)]
        try:
            led = platform.request("led", 0, dir="-")
        except ResourceError:
            led = None
        if led is not None:
            m.submodules.led = led_buf = io.Buffer("o", led)
            m.d.comb += led_buf.o.eq(top.error)
        return m
