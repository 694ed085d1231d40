"""The compact LSTM schedule (hdl/compact.py): bit-serial products, the shared table, the layer
bit-exact against the golden model (values) and the cycle model (timing)."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from rnnaccel.golden import layer as gl
from rnnaccel.golden.activation import activation, make_table, shared_gate_offset
from rnnaccel.golden.fixed import QFormat
from rnnaccel.golden.model import ConfigError, Formats, Model, random_weights
from rnnaccel.golden.network import quantize_input, run_codes
from rnnaccel.hdl import perf
from rnnaccel.hdl.compact import CompactLSTMLayer, serial_product
from rnnaccel.hdl.layer import build_layer
from rnnaccel.hdl.memory_plan import plan_memories, weight_image
from rnnaccel.hdl.top import Accelerator
from rnnaccel.sim.amaranth_sim import run_stream_dut
from rnnaccel.sim.streams import stream_get, stream_put

SMALL_FORMATS = Formats(data="s8.5", weight="s8.6", cell="s10.6", sigmoid_in="s7.3", sigmoid_out="u8.8",
                        tanh_in="s7.4", tanh_out="s8.7")


def compact_model(cell="lstm", X=8, H=8, pe=2, simd=1, seed=3, **kw):
    w = random_weights(X, H, scale=0.5, seed=seed, cell=cell, num_layers=kw.get("num_layers", 1))
    return Model(cell, X, H, w, pe=pe, simd=simd, schedule="compact", **kw)


# ---- bit-serial product ----------------------------------------------------------------------------

@pytest.mark.parametrize("a_shape,b_shape", [(signed(8), unsigned(6)), (signed(6), signed(5)),
                                             (unsigned(5), signed(4)), (signed(16), unsigned(16))],
                         ids=["s8xu6", "s6xs5", "u5xs4", "s16xu16"])
def test_serial_product_is_exact(a_shape, b_shape):
    """Products of extreme and random operands, each started while the previous one is held."""
    def codes(shape, n, rng):
        lo, hi = (-(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1) if shape.signed else (0, (1 << shape.width) - 1)
        return [lo, hi, 0, -1 if shape.signed else 1] + [int(v) for v in rng.integers(lo, hi + 1, n)]
    rng = np.random.default_rng(0)
    pairs = [(a, b) for a in codes(a_shape, 3, rng)[:4] for b in codes(b_shape, 3, rng)[:4]]
    pairs += list(zip(codes(a_shape, 40, rng)[4:], codes(b_shape, 40, rng)[4:]))
    m = Module()
    a, b, start = Signal(a_shape), Signal(b_shape), Signal()
    product, busy = serial_product(m, a, b, start, name="t")
    got = []

    async def bench(ctx):
        for x, y in pairs:
            ctx.set(a, x)
            ctx.set(b, y)
            ctx.set(start, 1)
            await ctx.tick()
            ctx.set(start, 0)
            ctx.set(a, 0)              # sampled at the start only
            ctx.set(b, 0)
            cycles = 0
            while ctx.get(busy):
                await ctx.tick()
                cycles += 1
            assert cycles == b_shape.width
            got.append(ctx.get(product))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    np.testing.assert_array_equal(np.array(got), np.array([x * y for x, y in pairs]))


# ---- the shared table ----------------------------------------------------------------------------

def test_default_formats_share_one_table():
    """sigmoid(i) = 2**15 + tanh(i) for every index code of the default formats (checked
    independently here over the whole index range)."""
    f = Formats()
    gate, cand = make_table("sigmoid", f.sigmoid_in, f.sigmoid_out), make_table("tanh", f.tanh_in, f.tanh_out)
    assert shared_gate_offset(gate, cand) == 1 << 15
    i = np.arange(-2048, 2048)
    np.testing.assert_array_equal(activation(i, gate), (1 << 15) + activation(i, cand))


def test_formats_that_do_not_match_keep_two_tables():
    f = Formats()
    gate = make_table("sigmoid", f.sigmoid_in, f.sigmoid_out)
    assert shared_gate_offset(gate, make_table("tanh", QFormat.parse("s12.8"), f.tanh_out)) is None     # same frac: x, not x/2
    assert shared_gate_offset(gate, make_table("softsign", f.tanh_in, f.tanh_out)) is None
    assert shared_gate_offset(gate, make_table("tanh", f.tanh_in, QFormat.parse("s16.14"))) is None    # output scale differs


# ---- the layer -------------------------------------------------------------------------------------

LAYER_CONFIGS = {
    "lstm-X8-H8-pe2-simd1-default16": dict(cell="lstm"),
    "lstm-X6-H8-pe1-simd2-small8": dict(cell="lstm", X=6, H=8, pe=1, simd=2, formats=SMALL_FORMATS),
    "lstm_nf-X9-H6-pe1-simd1-small8-TRN-WRAP": dict(cell="lstm_nf", X=9, H=6, pe=1, simd=1,
                                                    formats=SMALL_FORMATS, rounding="TRN", overflow="WRAP"),
    "lstm-X12-H8-pe2-simd1-hard-activations": dict(cell="lstm", X=12, H=8, formats=SMALL_FORMATS,
                                                   gate_activation="hard_sigmoid", cand_activation="hard_tanh"),
    "lstm-X7-H6-pe3-simd1-softsign-small8": dict(cell="lstm", X=20, H=6, pe=3, formats=SMALL_FORMATS,
                                                 cand_activation="softsign"),
    # Biases in the h_{t-1} memories (2 x 16 bits across 4 lanes of 8) rather than in logic.
    "lstm-X26-H18-pe2-simd4-small8-biases-in-memory": dict(cell="lstm", X=26, H=18, pe=2, simd=4,
                                                           formats=SMALL_FORMATS),
}
#: The configurations whose biases live in the h_{t-1} memories (the others: tables in logic).
BIASES_IN_MEMORY = {"lstm-X6-H8-pe1-simd2-small8", "lstm-X26-H18-pe2-simd4-small8-biases-in-memory"}


def _inputs(model, lengths, seed):
    rng = np.random.default_rng(seed)
    return [quantize_input(rng.uniform(-2, 2, (T, model.input_size)), model) for T in lengths]


@pytest.mark.parametrize("pauses", [(0.0, 0.0), (0.4, 0.4)], ids=["no-pauses", "idle-backpressure"])
@pytest.mark.parametrize("cfg", list(LAYER_CONFIGS))
def test_compact_layer_matches_golden(cfg, pauses):
    model = compact_model(**LAYER_CONFIGS[cfg])
    layer = build_layer(model)
    assert isinstance(layer, CompactLSTMLayer)
    assert perf.compact_biases_in_memory(model) == (cfg in BIASES_IN_MEMORY)
    seqs = _inputs(model, [3, 1, 4], seed=4)
    run = run_stream_dut(layer, seqs, idle=pauses[0], backpressure=pauses[1], seed=5,
                         max_cycles=50 * perf.layer_cycles(model))
    for seq, got, lasts in zip(seqs, run.outputs, run.lasts):
        np.testing.assert_array_equal(got, run_codes(model, seq).h_codes)
        np.testing.assert_array_equal(lasts, [0] * (len(seq) - 1) + [1])
    if pauses == (0.0, 0.0):
        np.testing.assert_array_equal(np.diff(run.out_cycles), perf.layer_cycles(model))


def test_compact_layer_waits_for_a_slow_consumer_and_a_late_producer():
    """h_t is the output register and x_t is read from the input payload: a consumer that takes
    h_t long after it is valid and inputs that come long after the layer is ready change nothing
    (the random pauses of the other tests are shorter than a step, so they never hold the layer)."""
    model = compact_model(formats=SMALL_FORMATS)
    step = perf.layer_cycles(model)
    seqs = _inputs(model, [4, 3], seed=6)
    layer = CompactLSTMLayer(model)
    got, out_cycles, in_cycles = [], [], []
    count = [0]
    sim = Simulator(layer)
    sim.add_clock(1e-8)

    async def clock(ctx):
        async for _ in ctx.tick():
            count[0] += 1
            assert count[0] < 40 * step, "the layer hangs"

    async def producer(ctx):
        for i, seq in enumerate(seqs):
            for t, x in enumerate(seq):
                await ctx.tick().repeat(step // 2 if (i + t) % 2 else 1)
                await stream_put(ctx, layer.i_stream, {"data": [int(v) for v in x], "last": int(t == len(seq) - 1)})
                in_cycles.append(count[0])

    async def consumer(ctx):
        for i in range(sum(len(s) for s in seqs)):
            await ctx.tick().until(layer.o_stream.valid)
            await ctx.tick().repeat(2 * step if i % 2 == 0 else 3)      # h_t waits, valid, for a long time
            payload = await stream_get(ctx, layer.o_stream)
            got.append([int(v) for v in payload.data])
            out_cycles.append(count[0])

    sim.add_testbench(clock, background=True)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    expected = np.concatenate([run_codes(model, s).h_codes for s in seqs])
    np.testing.assert_array_equal(np.array(got), expected)
    # A step takes its input only after the previous h_t is taken: the long waits did hold the layer.
    assert np.diff(out_cycles).max() > 2 * step


def test_compact_accelerator_with_loaded_weights_matches_golden():
    """The UP5K path: a two-layer compact stack whose weights are written at run time (SPRAM)."""
    model = compact_model(X=8, H=8, num_layers=2, formats=SMALL_FORMATS)
    plan = plan_memories(model, "ice40-up5k", family="ice40", block_rams=1, storage="spram")
    assert len(plan.loaded) == model.num_layers * model.pe
    seqs = _inputs(model, [3, 2], seed=8)
    image = weight_image(model, plan)
    run = run_stream_dut(Accelerator(model, plan), seqs, idle=0.3, backpressure=0.3, seed=9,
                         max_cycles=100_000, weights=image)
    for seq, got in zip(seqs, run.outputs):
        np.testing.assert_array_equal(got, run_codes(model, seq).h_codes)


def test_compact_predicts_no_elementwise_multipliers_and_one_table():
    pipelined = Model("lstm", 32, 32, random_weights(32, 32, seed=0), pe=2, simd=4)
    compact = pipelined.with_hardware(schedule="compact")
    assert perf.multiplier_count(compact)["total"] == 8
    assert perf.multiplier_count(pipelined)["total"] == 8 + 2 * 3
    assert perf.memory_bits(compact)["tables"] == 2048 * 16
    assert perf.memory_bits(pipelined)["tables"] == 2 * 3 * 2048 * 16
    # Cycles: the registered start, the matrix-vector bound, the two input registers, the
    # matrix-vector unit with its split accumulators (the biases are in memory), and the drain of
    # the last unit group (hdl/perf.compact_drain).
    assert perf.compact_biases_in_memory(compact)
    assert perf.layer_cycles(compact) == 1 + 1024 + 2 + perf.mvu_latency(4) + 1 + perf.compact_drain(compact)
    # The UP5K reference keeps its 2 x 32-bit biases in the h_{t-1} memories (4 lanes of 16 bits).
    assert compact.bias.width == 32 and perf.compact_biases_in_memory(compact)


@pytest.mark.parametrize("kw,match", [
    (dict(cell="gru"), r"builds cells lstm, lstm_nf, not 'gru'"),
    (dict(initial_state=True), r"has no initial_state"),
    (dict(X=2, H=2, pe=2, simd=2), r"2 chunks per row .* pe = 2"),
    (dict(X=8, H=8, pe=4, simd=1), r"4 units every 64 cycles is too fast"),
])
def test_compact_rejects_what_it_cannot_build(kw, match):
    with pytest.raises(ConfigError, match=match):
        compact_model(**kw)


def test_schedule_round_trips_through_the_config(tmp_path):
    from rnnaccel.golden.model import load, save
    model = compact_model()
    path = save(model, tmp_path / "m.toml")
    assert "schedule" in path.read_text()
    assert load(path).schedule == "compact"
    with pytest.raises(ConfigError, match=r"hardware.schedule: unknown 'fast'"):
        compact_model().with_hardware(schedule="fast")
