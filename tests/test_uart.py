"""UART receiver/transmitter and the link's framing blocks (Amaranth simulation, bit level).

The line model drives and samples the pins bit by bit with the clock a small multiple of the
baud rate (16 cycles per bit, as in the end-to-end test of the board design).
"""

from __future__ import annotations

import gc
import random

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from rnnaccel.golden.model import Formats, Model, random_weights
from rnnaccel.hdl.uart import (
    IN_HEADER, MIN_DIVISOR, OUT_HEADER, InputDeframer, OutputFramer, UARTReceiver, UARTTransmitter, baud_divisor,
    link_format,
)
from rnnaccel.host import decode_inputs, decode_outputs, encode_frame, encode_sequence
from rnnaccel.sim.streams import Pauses, stream_get, stream_put

D = 16          # clock cycles per bit in these tests

SMALL = Formats(data="s8.5", weight="s8.6", cell="s10.6", sigmoid_in="s7.3", sigmoid_out="u8.8",
                tanh_in="s7.4", tanh_out="s8.7")


# -- the line model ----------------------------------------------------------------------------------------

async def line_send(ctx, pin, data, period: float = D, *, gaps=None, stop_bits=None):
    """Drive ``pin`` with 8N1 bytes. ``period`` may be fractional (baud mismatch): bit edges fall
    on the nearest cycle of the ideal times. ``gaps(i)`` idle cycles before byte ``i``;
    ``stop_bits[i]`` the stop-bit level of byte ``i`` (0: a framing error)."""
    for i, byte in enumerate(data):
        gap = gaps(i) if gaps else 0
        if gap:
            await ctx.tick().repeat(gap)
        bits = [0] + [(byte >> k) & 1 for k in range(8)] + [1 if stop_bits is None else stop_bits[i]]
        t = 0.0
        for b in bits:
            ctx.set(pin, b)
            n = round(t + period) - round(t)
            t += period
            await ctx.tick().repeat(n)
        ctx.set(pin, 1)


async def line_recv(ctx, pin, period: int = D):
    """Sample one 8N1 byte from ``pin`` at the bit centres; returns (byte, stop bit level)."""
    await ctx.tick().until(pin == 0)
    await ctx.tick().repeat(period // 2)
    assert ctx.get(pin) == 0, "start bit shorter than half a bit"
    byte = 0
    for k in range(8):
        await ctx.tick().repeat(period)
        byte |= ctx.get(pin) << k
    await ctx.tick().repeat(period)
    return byte, ctx.get(pin)


def _watchdog(limit):
    async def watchdog(ctx):
        n = 0
        async for _ in ctx.tick():
            n += 1
            if n > limit:
                raise RuntimeError(f"no progress after {limit} cycles")
    return watchdog


# -- baud divisor ------------------------------------------------------------------------------------------

def test_baud_divisors_of_the_boards():
    assert baud_divisor(12e6, 115200) == 104           # iCEBreaker: 115384.6 baud, +0.16 %
    assert baud_divisor(25e6, 115200) == 217           # ULX3S: 115207.4 baud, +0.006 %
    assert baud_divisor(12e6, 1_000_000) == 12
    assert baud_divisor(16 * 115200, 115200) == 16


def test_baud_divisor_errors():
    with pytest.raises(ValueError, match=r"divisor 9 gives 111111.1 baud, 3.55 % off"):
        baud_divisor(1e6, 115200)
    with pytest.raises(ValueError, match=r"too high for a 12 MHz clock: 3.00 cycles per bit"):
        baud_divisor(12e6, 4_000_000)
    with pytest.raises(ValueError, match="baud rate must be a positive number"):
        baud_divisor(12e6, 0)
    assert baud_divisor(1e6, 115200, tolerance=0.04) == 9


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_uart_components_reject_bad_divisors():
    for cls in (UARTReceiver, UARTTransmitter):
        with pytest.raises(ValueError, match=f"divisor must be an integer number of clock cycles per bit >= {MIN_DIVISOR}, got 3"):
            cls(3)
        with pytest.raises(ValueError, match="got 16.0"):
            cls(16.0)
    gc.collect()


# -- transmitter -------------------------------------------------------------------------------------------

def test_transmitter_bytes_and_bit_timing():
    dut = UARTTransmitter(D)
    data = [0x00, 0xFF, 0x55, 0xA3, 0x01, 0x80]
    got, starts = [], []
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    cycle = [0]

    async def counter(ctx):
        async for _ in ctx.tick():
            cycle[0] += 1

    async def producer(ctx):
        assert ctx.get(dut.tx) == 1                         # idle high out of reset
        for b in data:
            await stream_put(ctx, dut.i_stream, b)

    async def receiver(ctx):
        for _ in data:
            byte, stop = await line_recv(ctx, dut.tx)
            starts.append(cycle[0])
            got.append((byte, stop))

    sim.add_testbench(counter, background=True)
    sim.add_testbench(_watchdog(20 * D * len(data)), background=True)
    sim.add_testbench(producer)
    sim.add_testbench(receiver)
    sim.run()
    assert got == [(b, 1) for b in data]
    # Back to back: exactly 10 bit times per byte, no idle cycle between stop and start bits.
    assert np.diff(starts).tolist() == [10 * D] * (len(data) - 1)


# -- receiver ----------------------------------------------------------------------------------------------

def _run_rx(send, *, count, ready=None, divisor=D, limit=None):
    """Run the receiver with the testbench ``send(ctx, dut)``; returns (beats, frame errors, overruns)."""
    dut = UARTReceiver(divisor)
    beats, pulses = [], {"frame_error": 0, "overrun": 0}
    sim = Simulator(dut)
    sim.add_clock(1e-6)

    async def monitor(ctx):
        async for _, _, fe, ov in ctx.tick().sample(dut.frame_error, dut.overrun):
            pulses["frame_error"] += fe
            pulses["overrun"] += ov

    async def consumer(ctx):
        if ready is not None:
            await ready(ctx, dut)
        for _ in range(count):
            p = await stream_get(ctx, dut.o_stream)
            beats.append((int(p.data), int(p.error)))

    async def sender(ctx):
        await send(ctx, dut)

    sim.add_testbench(monitor, background=True)
    sim.add_testbench(_watchdog(limit or 20 * divisor * (count + 4)), background=True)
    sim.add_testbench(sender)
    sim.add_testbench(consumer)
    sim.run()
    return beats, pulses["frame_error"], pulses["overrun"]


@pytest.mark.parametrize("period", [D, D * 0.97, D * 1.03, 16.5], ids=["exact", "fast-3pct", "slow-3pct", "16.5"])
def test_receiver_bytes_with_gaps_and_baud_mismatch(period):
    rng = random.Random(1)
    data = [rng.randrange(256) for _ in range(24)] + [0x00, 0xFF]

    async def send(ctx, dut):
        await line_send(ctx, dut.rx, data, period, gaps=lambda i: rng.choice([0, 0, 1, 3, 17]))

    beats, fe, ov = _run_rx(send, count=len(data))
    assert beats == [(b, 0) for b in data]
    assert (fe, ov) == (0, 0)


def test_receiver_framing_error_is_an_error_beat():
    data = [0x12, 0x34, 0x56, 0x78]

    async def send(ctx, dut):
        await line_send(ctx, dut.rx, data, stop_bits=[1, 0, 1, 1], gaps=lambda i: 2 * D if i == 2 else 0)

    beats, fe, ov = _run_rx(send, count=4)
    # The byte with the low stop bit is delivered marked (data as sampled); the receiver waits for
    # the line to go high before the next start bit.
    assert beats == [(0x12, 0), (0x34, 1), (0x56, 0), (0x78, 0)]
    assert (fe, ov) == (1, 0)


def test_receiver_break_is_one_error_then_recovers():
    async def send(ctx, dut):
        ctx.set(dut.rx, 0)                          # a break: 3 byte times low
        await ctx.tick().repeat(30 * D)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(D)
        await line_send(ctx, dut.rx, [0xA5])

    beats, fe, ov = _run_rx(send, count=2)
    assert beats == [(0x00, 1), (0xA5, 0)]
    assert (fe, ov) == (1, 0)


def test_receiver_ignores_a_glitch():
    async def send(ctx, dut):
        ctx.set(dut.rx, 0)                          # shorter than half a bit: not a start bit
        await ctx.tick().repeat(D // 2 - 3)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3 * D)
        await line_send(ctx, dut.rx, [0x3C])

    beats, fe, ov = _run_rx(send, count=1)
    assert beats == [(0x3C, 0)] and (fe, ov) == (0, 0)


def test_receiver_overrun_marks_the_next_byte():
    data = [0x11, 0x22, 0x33, 0x44]

    async def send(ctx, dut):
        await line_send(ctx, dut.rx, data[:3])
        await ctx.tick().repeat(4 * D)              # the consumer starts taking bytes here
        await line_send(ctx, dut.rx, data[3:])

    async def late(ctx, dut):
        await ctx.tick().repeat(32 * D)             # 0x11 waits; 0x22 and 0x33 are lost

    beats, fe, ov = _run_rx(send, count=2, ready=late)
    assert beats == [(0x11, 0), (0x44, 1)]          # 0x44 carries the marker of the lost bytes
    assert (fe, ov) == (0, 2)


class _Loopback(wiring.Component):
    def __init__(self, divisor):
        self.divisor = divisor
        super().__init__({"rx": wiring.In(1, init=1), "tx": wiring.Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.urx = urx = UARTReceiver(self.divisor)
        m.submodules.utx = utx = UARTTransmitter(self.divisor)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx), utx.i_stream.payload.eq(urx.o_stream.payload.data),
                     utx.i_stream.valid.eq(urx.o_stream.valid), urx.o_stream.ready.eq(utx.i_stream.ready)]
        return m


@pytest.mark.parametrize("divisor", [4, 5, 16])
def test_rx_tx_round_trip(divisor):
    """Line -> receiver -> transmitter -> line, back to back and with random gaps."""
    rng = random.Random(divisor)
    data = [rng.randrange(256) for _ in range(40)]
    dut = _Loopback(divisor)
    got = []
    sim = Simulator(dut)
    sim.add_clock(1e-6)

    async def sender(ctx):
        await line_send(ctx, dut.rx, data, divisor, gaps=lambda i: rng.choice([0, 0, 0, 5, 2 * divisor]))

    async def receiver(ctx):
        for _ in data:
            got.append(await line_recv(ctx, dut.tx, divisor))

    sim.add_testbench(_watchdog(15 * divisor * len(data) + 200), background=True)
    sim.add_testbench(sender)
    sim.add_testbench(receiver)
    sim.run()
    assert got == [(b, 1) for b in data]


# -- framing blocks ----------------------------------------------------------------------------------------

def _model(cell="lstm", **kw):
    return Model(cell, 4, 4, random_weights(4, 4, seed=2, cell=cell), formats=SMALL, **kw)


def test_link_format_sizes():
    f = link_format(_model())
    assert (f.x_bytes, f.state_bytes, f.out_bytes) == (4, 0, 4)
    assert (f.in_frame_bytes, f.out_frame_bytes, f.fifo_depth, f.window) == (5, 5, 512, 102)
    # h0: 4 x 8 bits, c0: 4 x 10 bits -> 72 bits, 9 bytes.
    g = link_format(_model(initial_state=True))
    assert (g.state_bits, g.state_bytes, g.in_state_frame_bytes) == (72, 9, 14)
    h = link_format(Model("gru", 3, 5, random_weights(3, 5, cell="gru", head_size=2), formats=Formats(), head_size=2))
    assert (h.x_bytes, h.out_bytes, h.out_frame_bytes) == (6, 4, 5)


def _run_deframer(model, beats, count, *, consumer_pauses=0.0):
    """Feed (byte, error) beats to an InputDeframer and take ``count`` payloads; returns
    (payloads, header errors, line errors)."""
    dut = InputDeframer(model)
    out, errors = [], {"header": 0, "line": 0}
    sim = Simulator(dut)
    sim.add_clock(1e-6)

    async def monitor(ctx):
        async for _, _, he, le in ctx.tick().sample(dut.header_error, dut.line_error):
            errors["header"] += he
            errors["line"] += le

    async def producer(ctx):
        for b, e in beats:
            await stream_put(ctx, dut.i_stream, {"data": b, "error": e})
        await ctx.tick().repeat(10)

    async def consumer(ctx):
        pauses = Pauses(consumer_pauses, 3)
        for _ in range(count):
            p = await stream_get(ctx, dut.o_stream, pauses)
            d = {"x": [int(v) for v in p.data], "last": int(p.last)}
            if model.initial_state:
                d["h0"] = [[int(v) for v in row] for row in p.h0]
                if model.cell_spec.has_cell_state:
                    d["c0"] = [[int(v) for v in row] for row in p.c0]
            out.append(d)

    sim.add_testbench(monitor, background=True)
    sim.add_testbench(consumer)
    sim.add_testbench(producer)
    sim.run()
    return out, errors["header"], errors["line"]


def test_deframer_matches_the_software_decoder():
    model = _model(initial_state=True)
    rng = np.random.default_rng(0)
    seqs = [rng.integers(-128, 128, (T, 4)) for T in (3, 1, 2)]
    h0s = [rng.integers(-128, 128, (1, 4)) for _ in seqs]
    c0s = [rng.integers(-512, 512, (1, 4)) for _ in seqs]
    data = b"".join(encode_sequence(model, x, h0=h, c0=c) for x, h, c in zip(seqs, h0s, c0s))
    expected = []
    for seq in decode_inputs(model, data):
        for t, x in enumerate(seq["x"]):
            expected.append({"x": x.tolist(), "last": int(t == len(seq["x"]) - 1),
                             "h0": seq["h0"].tolist(), "c0": seq["c0"].tolist()})
    out, he, le = _run_deframer(model, [(b, 0) for b in data], len(expected), consumer_pauses=0.5)
    assert (he, le) == (0, 0)
    assert out == expected
    assert [d["x"] for d in out[:3]] == seqs[0].tolist() and out[0]["c0"] == c0s[0].tolist()


def test_deframer_skips_bad_headers_and_aborts_on_line_errors():
    model = _model()
    f1 = encode_frame(model, [1, 2, 3, 4], last=False)
    f2 = encode_frame(model, [5, 6, 7, 8], last=True)
    f3 = encode_frame(model, [-1, -2, -3, -4], last=True)
    beats = ([(0x00, 0), (0xA2, 0)]                         # junk; a state frame for a model without state
             + [(b, 0) for b in f1]
             + [(b, 0) for b in f2[:3]] + [(0x00, 1)]      # line error: f2 is dropped
             + [(b, 0) for b in f3])
    out, he, le = _run_deframer(model, beats, 2)
    assert out == [{"x": [1, 2, 3, 4], "last": 0}, {"x": [-1, -2, -3, -4], "last": 1}]
    assert (he, le) == (2, 1)
    assert IN_HEADER == 0xA0


def test_framer_bytes_match_the_decoder():
    model = Model("gru", 4, 4, random_weights(4, 4, cell="gru"), formats=Formats())      # 16-bit codes
    dut = OutputFramer(model)
    rng = np.random.default_rng(1)
    vectors = [(rng.integers(-2**15, 2**15, 4), t % 3 == 2) for t in range(6)]
    data = bytearray()
    sim = Simulator(dut)
    sim.add_clock(1e-6)

    async def producer(ctx):
        for v, last in vectors:
            await stream_put(ctx, dut.i_stream, {"data": [int(c) for c in v], "last": int(last)}, Pauses(0.3, 1))

    async def consumer(ctx):
        pauses = Pauses(0.3, 2)
        for _ in range(len(vectors) * link_format(model).out_frame_bytes):
            data.append(int(await stream_get(ctx, dut.o_stream, pauses)))

    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert data[0] == OUT_HEADER and data[2 * 9] == OUT_HEADER | 1
    seqs = decode_outputs(model, bytes(data))
    assert [s.tolist() for s in seqs] == [[v.tolist() for v, _ in vectors[:3]], [v.tolist() for v, _ in vectors[3:]]]
