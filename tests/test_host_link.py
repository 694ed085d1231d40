"""The host link: encoder/decoder and flow control (no hardware), a serial Host against a fake
device, and the end-to-end simulation

    host encoder -> UART line (bit level) -> BoardTop (UART RX, FIFO, deframer, Accelerator,
    framer, UART TX) -> UART line -> host decoder

bit-exact against :func:`rnnaccel.golden.network.run_codes`, with the clock 16x the baud rate
and random gaps between the host's bytes.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from rnnaccel.golden.model import Formats, Model, random_weights
from rnnaccel.golden.network import run_codes
from rnnaccel.hdl.board import BoardTop
from rnnaccel.hdl.top import in_payload_bits
from rnnaccel.hdl.uart import link_format
from rnnaccel.host import (
    Host, LinkError, LinkTimeout, OutputDecoder, decode_inputs, decode_outputs, encode_frame, encode_sequence,
    expected_outputs, plan_transfers,
)
from rnnaccel.sim.vectors import Vectors

from test_uart import line_recv, line_send

SMALL = Formats(data="s8.5", weight="s8.6", cell="s10.6", sigmoid_in="s7.3", sigmoid_out="u8.8",
                tanh_in="s7.4", tanh_out="s8.7")


def make_model(cell="lstm", X=4, H=4, *, formats=SMALL, seed=1, head_size=0, pe=1, simd=2, **kw):
    w = random_weights(X, H, scale=0.5, seed=seed, cell=cell, head_size=head_size)
    return Model(cell, X, H, w, formats=formats, pe=pe, simd=simd, head_size=head_size, name=f"{cell}{X}x{H}", **kw)


def random_inputs(model, lengths, seed=0):
    rng = np.random.default_rng(seed)
    f = model.formats.data
    return [rng.integers(f.min_code, f.max_code + 1, (T, model.input_size)) for T in lengths]


def random_states(model, count, seed=0):
    rng = np.random.default_rng(seed)
    n = model.num_layers * model.directions
    d, c = model.formats.data, model.formats.cell
    h0 = [rng.integers(d.min_code // 2, d.max_code // 2, (n, model.state_size)) for _ in range(count)]
    c0 = [rng.integers(c.min_code // 2, c.max_code // 2, (n, model.hidden_size)) for _ in range(count)]
    return h0, (c0 if model.cell_spec.has_cell_state else [None] * count)


def golden(model, seqs, h0=None, c0=None):
    h0 = h0 or [None] * len(seqs)
    c0 = c0 or [None] * len(seqs)
    return [run_codes(model, x, h0=h, c0=c).h_codes for x, h, c in zip(seqs, h0, c0)]


# -- encoder -----------------------------------------------------------------------------------------------

def test_frame_layout_8_and_16_bit():
    m8 = make_model()
    assert encode_frame(m8, [1, -1, 2, -128], last=False) == bytes([0xA0, 0x01, 0xFF, 0x02, 0x80])
    assert encode_frame(m8, [0, 0, 0, 127], last=True) == bytes([0xA1, 0, 0, 0, 0x7F])
    m16 = make_model("gru", X=2, formats=Formats())
    assert encode_frame(m16, [0x1234, -2], last=True) == bytes([0xA1, 0x34, 0x12, 0xFE, 0xFF])
    seq = encode_sequence(m8, [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]])
    assert seq[0::5] == bytes([0xA0, 0xA0, 0xA1]) and len(seq) == 15


def test_state_frame_is_the_wide_tdata():
    """x_t then h0 (data width) then c0 (cell width, 10 bits here): the AXI4-Stream tdata bits."""
    model = make_model(initial_state=True)
    h0, c0 = random_states(model, 1, seed=3)
    x = random_inputs(model, [2], seed=4)[0]
    data = encode_sequence(model, x, h0=h0[0], c0=c0[0])
    f = link_format(model)
    assert (f.x_bits + f.state_bits, in_payload_bits(model)) == (104, 104)
    first, second = data[:f.in_state_frame_bytes], data[f.in_state_frame_bytes:]
    assert first[0] == 0xA2 and second[0] == 0xA1 and len(second) == f.in_frame_bytes
    vec = Vectors(x_codes=x, lengths=np.array([2]), h_codes=np.zeros((2, 4), dtype=np.int64),
                  h0_codes=h0[0][None], c0_codes=c0[0][None])
    tdata = vec.input_rows(0, model.formats.data.width, model.formats.cell.width)[0]
    assert int.from_bytes(first[1:], "little") == tdata


def test_initial_state_defaults_to_zeros_and_round_trips():
    model = make_model("gru", initial_state=True)                # no cell state
    x = random_inputs(model, [3, 1], seed=5)
    h0, _ = random_states(model, 2, seed=6)
    data = encode_sequence(model, x[0]) + encode_sequence(model, x[1], h0=h0[1])
    seqs = decode_inputs(model, data)
    assert len(seqs) == 2 and set(seqs[0]) == {"x", "h0"}
    assert (seqs[0]["x"] == x[0]).all() and (seqs[0]["h0"] == 0).all()
    assert (seqs[1]["x"] == x[1]).all() and (seqs[1]["h0"] == h0[1]).all()


def test_encoder_rejects_bad_input():
    model = make_model()
    with pytest.raises(ValueError, match=r"x_codes must have shape \(T, 4\)"):
        encode_sequence(model, np.zeros((3, 5), dtype=int))
    with pytest.raises(ValueError, match=r"x_codes: code 128 is outside the format s8.5"):
        encode_sequence(model, [[0, 0, 0, 128]])
    with pytest.raises(ValueError, match="has no initial_state: h0/c0 cannot be sent"):
        encode_sequence(model, [[0, 0, 0, 0]], h0=[[0, 0, 0, 0]])
    with pytest.raises(ValueError, match="must be integer codes"):
        encode_sequence(model, [[0.5, 0, 0, 0]])
    with pytest.raises(TypeError, match="expected a rnnaccel Model"):
        encode_sequence("model", [[0, 0, 0, 0]])
    st = make_model(initial_state=True)
    with pytest.raises(ValueError, match=r"h0 must have shape \(1, 4\)"):
        encode_sequence(st, [[0, 0, 0, 0]], h0=[1, 2, 3])
    with pytest.raises(ValueError, match=r"c0: code 600 is outside the format s10.6"):
        encode_sequence(st, [[0, 0, 0, 0]], c0=[600, 0, 0, 0])


# -- decoder -----------------------------------------------------------------------------------------------

def test_decode_outputs_groups_sequences():
    model = make_model(head_size=2)                                  # outputs: 2 codes of 8 bits
    data = bytes([0xB0, 0x01, 0xFF, 0xB1, 0x7F, 0x80, 0xB1, 0x00, 0x02])
    seqs = decode_outputs(model, data)
    assert [s.tolist() for s in seqs] == [[[1, -1], [127, -128]], [[0, 2]]]
    dec = OutputDecoder(model)
    assert [fr.codes.tolist() for fr in dec.feed(data[:4])] == [[1, -1]] and dec.pending == 1
    dec = OutputDecoder(model)
    got = [fr for b in data for fr in dec.feed([b])]                  # byte by byte
    assert [(fr.codes.tolist(), fr.last, fr.h_n) for fr in got] == [([1, -1], False, None), ([127, -128], True, None),
                                                                    ([0, 2], True, None)]


def test_decode_final_states():
    model = make_model(final_state=True)                             # h_n 4 x 8 bits, c_n 4 x 10 bits: 9 bytes
    f = link_format(model)
    assert (f.final_bits, f.out_final_frame_bytes) == (72, 14)
    h_n, c_n = np.array([[1, -2, 3, -4]]), np.array([[500, -512, 0, 7]])
    v = 0
    for k, c in enumerate(list(h_n[0]) + list(c_n[0])):
        v |= (int(c) & (0xFF if k < 4 else 0x3FF)) << (8 * k if k < 4 else 32 + 10 * (k - 4))
    data = bytes([0xB0, 1, 2, 3, 4, 0xB3, 5, 6, 7, 8]) + v.to_bytes(9, "little")
    seqs, finals = decode_outputs(model, data, final_states=True)
    assert [s.tolist() for s in seqs] == [[[1, 2, 3, 4], [5, 6, 7, 8]]]
    assert finals[0]["h_n"].tolist() == h_n.tolist() and finals[0]["c_n"].tolist() == c_n.tolist()
    with pytest.raises(LinkError, match="got 0xB2"):                  # F without L
        decode_outputs(model, bytes([0xB2]) + bytes(13))
    with pytest.raises(LinkError, match=r"\(0xB0/0xB1\), got 0xB3"):    # F for a model without final state
        decode_outputs(make_model(), bytes([0xB3]) + bytes(13))


@pytest.mark.parametrize("data,message", [
    (bytes([0xA0, 0, 0]), r"expected an output header \(0xB0/0xB1\), got 0xA0"),
    (bytes([0xB1, 0x01]), r"the data ends inside a frame \(2 bytes of it\)"),
    (bytes([0xB1, 0, 0, 0xB0, 0, 0]), r"1 output frame\(s\) after the last one marked 'last'"),
])
def test_decode_outputs_errors(data, message):
    with pytest.raises(LinkError, match=message):
        decode_outputs(make_model(head_size=2), data)


# -- flow control ------------------------------------------------------------------------------------------

def test_plan_windows_frames_of_a_per_step_model():
    model = make_model()
    seqs = random_inputs(model, [4, 3])
    plan = plan_transfers(model, seqs, fifo_depth=16)                 # 5-byte frames: window 3
    assert [need for need, _ in plan] == [0, 1, 2, 3, 4]
    assert [len(chunk) for _, chunk in plan] == [15, 5, 5, 5, 5]
    assert b"".join(c for _, c in plan) == encode_sequence(model, seqs[0]) + encode_sequence(model, seqs[1])
    assert plan_transfers(model, seqs) == [(0, b"".join(c for _, c in plan))]     # default: 512 bytes


def test_plan_sends_whole_sequences_when_outputs_come_at_the_end():
    model = make_model(outputs="last")
    seqs = random_inputs(model, [4, 3, 2])
    assert [need for need, _ in plan_transfers(model, seqs)] == [0, 1, 2]
    assert [expected_outputs(model, len(s)) for s in seqs] == [1, 1, 1]
    with pytest.raises(ValueError, match=r"fifo_depth must be at least one input frame \(5 bytes\)"):
        plan_transfers(model, seqs, fifo_depth=4)


# -- Host over a serial-like object -----------------------------------------------------------------------

class FakeBoard:
    """A device double at the protocol level: answers every complete sequence with its golden
    outputs, and hands them out a few bytes per read."""

    def __init__(self, model, chunk=3):
        self.model, self.chunk = model, chunk
        self.format = link_format(model)
        self.rx, self.tx = bytearray(), bytearray()

    def write(self, data):
        self.rx += data
        f, pos = self.format, 0
        while pos < len(self.rx):
            header = self.rx[pos]
            pos += f.in_state_frame_bytes if header & 2 else f.in_frame_bytes
            if header & 1 and pos <= len(self.rx):
                for seq in decode_inputs(self.model, bytes(self.rx[:pos])):
                    h = run_codes(self.model, seq["x"], h0=seq.get("h0"), c0=seq.get("c0")).h_codes
                    for t, row in enumerate(h):
                        self.tx += bytes([0xB0 | (t == len(h) - 1)]) + bytes(int(v) & 0xFF for v in row)
                del self.rx[:pos]
                pos = 0
        return len(data)

    @property
    def in_waiting(self):
        return len(self.tx)

    def read(self, n):
        data = bytes(self.tx[:min(n, self.chunk)])
        del self.tx[:len(data)]
        return data


@pytest.mark.parametrize("kind", ["last-head", "initial-state"])
def test_host_run_against_a_fake_board(kind):
    model = (make_model(head_size=3, outputs="last") if kind == "last-head"
             else make_model(initial_state=True))
    seqs = random_inputs(model, [5, 1, 3], seed=7)
    h0, c0 = (random_states(model, 3, seed=8) if model.initial_state else (None, None))
    board = FakeBoard(model)
    with Host(board, model, timeout=0.5) as host:
        got = host.run(seqs, h0=h0, c0=c0)
    expected = golden(model, seqs, h0, c0)
    assert len(got) == 3 and all((g == e).all() for g, e in zip(got, expected))
    assert [g.shape for g in got] == [e.shape for e in expected]


def test_host_times_out_and_rejects_echoes():
    model = make_model()

    class Silent:
        def write(self, data):
            return len(data)

        def read(self, n):
            return b""

    with pytest.raises(LinkTimeout, match=r"no answer from the device for 0.2 s: received 0 of 2 output frames"):
        Host(Silent(), model, timeout=0.2).run([np.zeros((2, 4), dtype=int)])
    # pyserial's loopback URL echoes the input frames, which are not output frames.
    with Host("loop://", model, timeout=0.5) as host, pytest.raises(LinkError, match="got 0xA0"):
        host.run([np.zeros((2, 4), dtype=int)])
    with pytest.raises(TypeError, match="port must be a port name or an object with read"):
        Host(42, model)


# -- end to end: bit-level UART into the board design in simulation --------------------------------------

def run_board_sim(model, seqs, h0=None, c0=None, *, divisor=16, fifo_depth=None, seed=0, max_gap=40,
                  preamble=None, plan=None):
    """Send ``seqs`` through :class:`BoardTop` over simulated UART lines; returns (outputs per
    sequence as decoded by the host, the board's sticky error flag, cycles)."""
    baud = 115200
    dut = BoardTop(model, divisor * baud, baud, fifo_depth=fifo_depth, plan=plan)
    assert dut.divisor == divisor
    plan = plan_transfers(model, seqs, h0, c0, fifo_depth=dut.fifo_depth)
    total = sum(expected_outputs(model, len(x)) for x in seqs)
    f = dut.format
    nbytes = total * f.out_frame_bytes + len(seqs) * (f.out_final_frame_bytes - f.out_frame_bytes)
    rng = random.Random(seed)
    decoder = OutputDecoder(model)
    frames, received, state = [], bytearray(), {"error": None, "cycles": 0}
    per_byte = 10 * divisor + max_gap
    limit = 4 * (sum(len(c) for _, c in plan) + nbytes) * per_byte + 20000

    sim = Simulator(dut)
    sim.add_clock(1 / (divisor * baud))

    async def host_tx(ctx):
        if preamble is not None:
            await preamble(ctx, dut)
        for need, chunk in plan:
            while len(frames) < need:
                await ctx.tick().repeat(divisor)
            await line_send(ctx, dut.rx, chunk, divisor, gaps=lambda i: rng.choice([0, 0, 0, 1, 7, max_gap]))

    async def host_rx(ctx):
        for _ in range(nbytes):
            byte, stop = await line_recv(ctx, dut.tx, divisor)
            assert stop == 1, "the board sent a byte without its stop bit"
            received.append(byte)
            frames.extend(decoder.feed([byte]))
        await ctx.tick().repeat(2 * divisor)
        state["error"] = ctx.get(dut.error)

    async def watchdog(ctx):
        async for _ in ctx.tick():
            state["cycles"] += 1
            if state["cycles"] > limit:
                raise RuntimeError(f"no progress after {limit} cycles: {len(frames)} of {total} output frames")

    sim.add_testbench(watchdog, background=True)
    sim.add_testbench(host_tx)
    sim.add_testbench(host_rx)
    sim.run()
    outputs, finals = decode_outputs(model, bytes(received), final_states=True)
    state["finals"] = finals
    return outputs, state["error"], state["cycles"], finals


E2E = {
    # 8-bit LSTM, 5-byte frames both ways.
    "lstm-X4-H4-8bit": dict(model=lambda: make_model("lstm"), lengths=[4, 1, 3], fifo_depth=None),
    # 16-bit GRU whose outputs (9-byte frames) are slower than its inputs (5-byte frames), with a
    # 10-byte receive buffer: the host keeps 2 frames ahead of the outputs. (Without the window,
    # a 14-step sequence overflows a 16-byte buffer: bytes are lost and the link hangs.)
    "gru-X2-H4-16bit-window2": dict(model=lambda: make_model("gru", X=2, formats=Formats()),
                                    lengths=[8, 2], fifo_depth=10),
    # Dense head and only the last step's output.
    "lstm-head3-last": dict(model=lambda: make_model("lstm", head_size=3, outputs="last"),
                            lengths=[3, 1, 4], fifo_depth=None),
    # Initial states in the stream: a 14-byte first frame (h0 8-bit, c0 10-bit).
    "lstm-initial-state": dict(model=lambda: make_model("lstm", initial_state=True), lengths=[3, 2],
                               fifo_depth=None),
    # Initial and final states: the last frame of a sequence also carries h_n and c_n (10-bit).
    "lstm-initial-final-state": dict(model=lambda: make_model("lstm", initial_state=True, final_state=True),
                                     lengths=[3, 2], fifo_depth=None),
}


@pytest.mark.parametrize("case", list(E2E), ids=list(E2E))
def test_end_to_end_uart_bit_exact(case):
    c = E2E[case]
    model = c["model"]()
    seqs = random_inputs(model, c["lengths"], seed=11)
    h0, c0 = random_states(model, len(seqs), seed=12) if model.initial_state else (None, None)
    got, error, cycles, finals = run_board_sim(model, seqs, h0, c0, fifo_depth=c["fifo_depth"], seed=13)
    results = [run_codes(model, x, h0=h, c0=cc) for x, h, cc in zip(seqs, h0 or [None] * len(seqs),
                                                                    c0 or [None] * len(seqs))]
    assert [g.shape for g in got] == [r.h_codes.shape for r in results]
    for s, (g, r) in enumerate(zip(got, results)):
        assert (g == r.h_codes).all(), f"sequence {s}: got {g.tolist()}, expected {r.h_codes.tolist()}"
        if getattr(model, "final_state", False):
            assert finals[s]["h_n"].tolist() == r.final_h.tolist()
            assert (finals[s]["c_n"] is None) == (r.final_c is None)
            if r.final_c is not None:
                assert finals[s]["c_n"].tolist() == r.final_c.tolist()
        else:
            assert finals[s] is None
    assert error == 0


def test_end_to_end_recovers_from_a_framing_error():
    """A frame cut short by a byte with a low stop bit is dropped; the link goes on bit-exact."""
    model = make_model("lstm")
    seqs = random_inputs(model, [3, 2], seed=21)

    async def garbage(ctx, dut):
        junk = encode_frame(model, [1, 2, 3, 4], last=True)[:3] + b"\x55"
        await line_send(ctx, dut.rx, junk, 16, stop_bits=[1, 1, 1, 0])
        await ctx.tick().repeat(3 * 16)

    got, error, _, _ = run_board_sim(model, seqs, preamble=garbage, max_gap=5)
    assert all((g == e).all() for g, e in zip(got, golden(model, seqs)))
    assert error == 1                                               # the sticky flag saw it


def test_end_to_end_spram_weights_through_the_weight_frame():
    """Weights in (simulated) SPRAM: the host's weight frame loads them, then the link is bit-exact;
    without the frame the device takes no input and answers nothing."""
    from rnnaccel.hdl.memory_plan import plan_memories, weight_image
    from rnnaccel.host import decode_inputs, encode_weights
    model = make_model("lstm", X=3, pe=2, simd=2)
    plan = plan_memories(model, "ice40-up5k", family="ice40", block_rams=30, sprams=4, storage="spram")
    assert plan.loaded == ((0, 0), (0, 1))
    image = weight_image(model, plan)
    frame = encode_weights(model, image)
    assert len(frame) == 1 + len(image)                  # 8-bit weights: one byte per code
    seqs = random_inputs(model, [3, 2], seed=31)

    async def load(ctx, dut):
        await line_send(ctx, dut.rx, frame, 16)

    got, error, _, _ = run_board_sim(model, seqs, preamble=load, plan=plan, max_gap=5)
    assert all((g == e).all() for g, e in zip(got, golden(model, seqs)))
    assert error == 0
    # The software twin of the deframer skips the weight frame.
    stream = frame + b"".join(encode_sequence(model, x) for x in seqs)
    assert [d["x"].tolist() for d in decode_inputs(model, stream, weight_codes=len(image))] == \
        [x.tolist() for x in seqs]
    with pytest.raises(ValueError, match="the weight image is empty"):
        encode_weights(model, [])


def test_spram_board_without_the_weight_frame_stays_silent():
    """Input frames without the weight frame first: the device takes no step and sends nothing."""
    from rnnaccel.hdl.memory_plan import plan_memories
    model = make_model("lstm", X=3, pe=2, simd=2)
    plan = plan_memories(model, "ice40-up5k", family="ice40", block_rams=30, sprams=4, storage="spram")
    divisor, baud = 16, 115200
    dut = BoardTop(model, divisor * baud, baud, plan=plan)
    data = b"".join(encode_sequence(model, x) for x in random_inputs(model, [2], seed=32))
    seen = {"tx_low": 0}
    sim = Simulator(dut)
    sim.add_clock(1 / (divisor * baud))

    async def host(ctx):
        await line_send(ctx, dut.rx, data, divisor)
        await ctx.tick().repeat(40 * 10 * divisor)        # time for several answers, had there been any

    async def watch(ctx):
        async for _ in ctx.tick():
            seen["tx_low"] += not ctx.get(dut.tx)

    sim.add_testbench(watch, background=True)
    sim.add_testbench(host)
    sim.run()
    assert seen["tx_low"] == 0
