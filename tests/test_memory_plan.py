"""Memory placement (block RAM vs SPRAM) and the run-time weight load path, in Amaranth simulation
bit-exact against the golden model."""

import numpy as np
import pytest

from rnnaccel.golden.model import Formats, Model, random_weights
from rnnaccel.golden.network import quantize_input, run_codes
from rnnaccel.hdl import perf
from rnnaccel.hdl.layer import layer_banks
from rnnaccel.hdl.memory_plan import block_ram_blocks, plan_memories, weight_image
from rnnaccel.hdl.top import Accelerator
from rnnaccel.sim.amaranth_sim import run_stream_dut

UP5K = dict(family="ice40", block_rams=30)


def reference(pe=2, simd=4, n=32):
    return Model("lstm", n, n, random_weights(n, n, scale=0.3, seed=0), formats=Formats(), pe=pe, simd=simd)


def test_block_ram_aspect_ratios():
    # iCE40 EBR: 256 x 16, 512 x 8, 1024 x 4, 2048 x 2.  ECP5 DP16KD: 512 x 36 ... 16384 x 1.
    assert block_ram_blocks(2048, 16, "ice40") == 8          # 2048 x 2 per block, 8 side by side
    assert block_ram_blocks(1024, 64, "ice40") == 16         # 1024 x 4 per block: 16 side by side
    assert block_ram_blocks(64, 32, "ice40") == 2            # 256 x 16, two side by side
    assert block_ram_blocks(2048, 16, "ecp5") == 2           # 1024 x 18, two deep
    assert block_ram_blocks(1024, 64, "ecp5") == 4           # 1024 x 18, four side by side
    with pytest.raises(ValueError, match="unknown FPGA family"):
        block_ram_blocks(1, 1, "gowin")


def test_plan_moves_largest_weights_to_spram_when_ebr_is_short():
    plan = plan_memories(reference(), "ice40-up5k", **UP5K)
    spram = [p for p in plan.placements if p.where == "spram"]
    # Two 1024 x 64 weight memories (16 EBR each); 4 SPRAMs take exactly one of them (64 / 16 wide).
    assert [(p.memory, p.blocks, p.loaded) for p in spram] == [("network.layer0.mvu.weights0", 4, True)]
    assert plan.loaded == ((0, 0),)
    assert plan.spram_used == 4
    # 80 EBR without SPRAM (2 x 16 weights, 6 tables x 8; the biases are tables in logic,
    # hdl/mvu.py: bias_rom), 16 fewer with it.
    assert plan.block_ram_used == 64 and not plan.fits
    assert "loaded at run time" in "\n".join(plan.describe())


def test_plan_keeps_block_ram_when_it_fits_or_when_told():
    small = reference(pe=1, simd=4, n=8)
    assert plan_memories(small, "ice40-up5k", **UP5K).loaded == ()
    assert plan_memories(reference(), "ice40-up5k", storage="rom", **UP5K).loaded == ()
    assert plan_memories(reference(), "ecp5-85k", family="ecp5", block_rams=208).loaded == ()
    forced = plan_memories(small, "ice40-up5k", storage="spram", **UP5K)
    assert forced.loaded == ((0, 0),) and forced.fits
    with pytest.raises(ValueError, match="has no SPRAM"):
        plan_memories(small, "ecp5-25k", family="ecp5", block_rams=56, storage="spram")
    with pytest.raises(ValueError, match="storage must be one of"):
        plan_memories(small, "ice40-up5k", storage="sram", **UP5K)


def test_plan_names_weights_without_a_load_path():
    w = random_weights(16, 16, scale=0.3, seed=0, cell="gru_rb")
    plan = plan_memories(Model("gru_rb", 16, 16, w, pe=1, simd=4), "ice40-up5k", family="ice40", block_rams=2)
    assert plan.loaded == ()
    assert plan.not_movable == ("network.layer0.mvu.weights0",)


def test_spram_count_limits_what_moves():
    model = make("lstm", num_layers=2)       # four 32-bit weight memories, 2 SPRAMs each
    assert plan_memories(model, "ice40-up5k", storage="spram", **UP5K).loaded == ((0, 0), (0, 1))


#: Simulation does not care how many SPRAMs a part has: enough for every weight memory.
MANY = dict(UP5K, sprams=16)


def test_weight_image_is_the_memory_contents_in_load_order():
    model = make("lstm", num_layers=2)
    plan = plan_memories(model, "ice40-up5k", storage="spram", **MANY)
    assert plan.loaded == ((0, 0), (0, 1), (1, 0), (1, 1))
    image = weight_image(model, plan)
    parts = []
    for k in range(2):
        w_banks, _ = layer_banks(model.layer(k))
        parts += [w_banks[p] for p in range(2)]
    assert len(image) == sum(p.size for p in parts) == plan.image_words * model.simd
    # Layer 0, PE 1's first word begins right after PE 0's memory.
    np.testing.assert_array_equal(image[parts[0].size:parts[0].size + model.simd], parts[1][0])


CONFIGS = {
    "lstm-pe2-simd2": dict(cell="lstm"),
    "gru-L2": dict(cell="gru", num_layers=2),
    "rnn_tanh-head2": dict(cell="rnn_tanh", head_size=2),
    "lstm_nf-L2-h0c0-pe1-simd3": dict(cell="lstm_nf", num_layers=2, initial_state=True, pe=1, simd=3),
}


def make(cell, X=5, H=4, pe=2, simd=2, seed=3, **kw):
    w = random_weights(X, H, scale=0.5, seed=seed, cell=cell, num_layers=kw.get("num_layers", 1),
                       head_size=kw.get("head_size", 0))
    return Model(cell, X, H, w, pe=pe, simd=simd, **kw)


def _run(model, plan, seqs, image, pauses=(0.0, 0.0), extra=None, counts=None):
    return run_stream_dut(Accelerator(model, plan), seqs, idle=pauses[0], backpressure=pauses[1], seed=7,
                          max_cycles=200_000, weights=image, extra=extra, out_counts=counts)


@pytest.mark.parametrize("pauses", [(0.0, 0.0), (0.4, 0.4)], ids=["no-pauses", "idle-backpressure"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_loaded_weights_match_golden(name, pauses):
    kw = dict(CONFIGS[name])
    model = make(kw.pop("cell"), **kw)
    plan = plan_memories(model, "ice40-up5k", storage="spram", **MANY)
    assert len(plan.loaded) == model.num_layers * model.pe      # every layer's weights are loaded
    rng = np.random.default_rng(4)
    seqs = [quantize_input(rng.uniform(-2, 2, (T, model.input_size)), model) for T in (3, 1, 4)]
    extra = None
    if model.initial_state:
        f, n = model.formats, model.num_layers
        extra = [{"h0": rng.integers(-200, 200, (n, model.state_size)),
                  "c0": rng.integers(-200, 200, (n, model.hidden_size))} for _ in seqs]
    expected = [run_codes(model, s, **(extra[i] if extra else {})).h_codes for i, s in enumerate(seqs)]
    image = weight_image(model, plan)
    run = _run(model, plan, seqs, image, pauses, extra)
    for exp, got in zip(expected, run.outputs):
        np.testing.assert_array_equal(got, exp)
    # No output before the load: the first one comes after all weight beats and a whole step.
    assert run.out_cycles[0] >= len(image) + perf.layer_cycles(model.layer(0))


def test_wrong_weight_image_changes_the_outputs():
    model = make("lstm")
    plan = plan_memories(model, "ice40-up5k", storage="spram", **MANY)
    seqs = [quantize_input(np.random.default_rng(1).uniform(-2, 2, (4, model.input_size)), model)]
    image = weight_image(model, plan).copy()
    image[len(image) // 2] ^= 0x100           # one weight of PE 1's memory, one bit
    run = _run(model, plan, seqs, image)
    assert not np.array_equal(run.outputs[0], run_codes(model, seqs[0]).h_codes)


def test_loaded_and_rom_accelerators_take_the_same_cycles_per_step():
    model = make("gru", num_layers=2)
    plan = plan_memories(model, "ice40-up5k", storage="spram", **MANY)
    seqs = [quantize_input(np.random.default_rng(2).uniform(-2, 2, (6, model.input_size)), model)]
    rom = run_stream_dut(Accelerator(model), seqs, max_cycles=100_000)
    loaded = _run(model, plan, seqs, weight_image(model, plan))
    np.testing.assert_array_equal(np.diff(loaded.out_cycles), np.diff(rom.out_cycles))
    assert (np.diff(rom.out_cycles) == perf.cycles_per_timestep(model)).all()


def _instances(verilog_text):
    """``Counter((primitive, memory leaf name) -> instances)`` of the DP16KD and PDPW16KD in the Verilog
    (registered_rom names its blocks ``<memory>_bram<k>``)."""
    import re
    from collections import Counter

    found = re.findall(r"^\s*(DP16KD|PDPW16KD)\s*#\(.*?\)\s*(\w+)_bram\d+\s*\(", verilog_text, re.M | re.S)
    return Counter(found)


@pytest.mark.parametrize("config", ["count_mod4-ecp5-25k", "reference-ecp5-85k", "gru-small-tables-ecp5-45k"])
def test_ecp5_plan_counts_the_instantiated_block_rams(config):
    """On ECP5 the plan holds, per memory, exactly the DP16KD/PDPW16KD blocks the Verilog of
    ``generate --target`` / synthesis (``to_verilog(family="ecp5")``) instantiates for it; the other
    memories (small tables: plain memories for Yosys) carry no primitive; the biases are no
    memories (hdl/mvu.py: bias_rom)."""
    from collections import Counter

    from rnnaccel.golden import examples
    from rnnaccel.golden.model import QFormat
    from rnnaccel.hdl.export import to_verilog
    from rnnaccel.scripts.bench import reference_model
    from rnnaccel.scripts.synth import memory_plan

    if config == "count_mod4-ecp5-25k":
        model, target = examples.load("count_mod4"), "ecp5-25k"
    elif config == "reference-ecp5-85k":
        model, target = reference_model("ecp5-85k"), "ecp5-85k"
    else:
        # 1536 x 32 weights (DP16KD, too deep for PDPW16KD); 128-word sigmoid tables (registered_rom
        # below ROM_MIN_DEPTH: plain memories), 2048-word tanh tables (DP16KD)
        w = random_weights(32, 32, scale=0.3, seed=1, cell="gru")
        model = Model("gru", 32, 32, w, formats=Formats(sigmoid_in=QFormat(8, 4)), pe=2, simd=2)
        target = "ecp5-45k"
    plan = memory_plan(model, target)
    built = _instances(to_verilog(model, plan=plan, family="ecp5"))
    planned = Counter()
    for p in plan.placements:
        if p.primitive is not None:
            planned[(p.primitive, p.memory.rsplit(".", 1)[-1])] += p.blocks
    assert built == planned
    assert plan.primitive_blocks == {prim: sum(n for (k, _), n in built.items() if k == prim)
                                     for prim in ("DP16KD", "PDPW16KD") if any(k == prim for k, _ in built)}
    assert {p.memory.rsplit(".", 1)[-1].rstrip("0123456789") for p in plan.placements if p.primitive is None} \
        == ({"mem"} if config.startswith("gru") else set())
    if config == "count_mod4-ecp5-25k":           # 256 x 128 weights: 4 PDPW16KD each (16 DP16KD before)
        assert plan.primitive_blocks == {"PDPW16KD": 16, "DP16KD": 24} and plan.block_ram_used == 40
    elif config == "reference-ecp5-85k":          # 256 x 64 weights: 2 PDPW16KD each
        assert plan.primitive_blocks == {"PDPW16KD": 16, "DP16KD": 48} and plan.block_ram_used == 64
    else:
        assert "PDPW16KD" not in plan.primitive_blocks and ("DP16KD", "weights0") in planned
    assert "instantiated" in plan.describe()[-1]


def test_ice40_plan_has_no_primitives():
    """iCE40: registered_rom builds plain memories there, so no placement names a primitive."""
    plan = plan_memories(reference(), "ice40-up5k", **UP5K)
    assert all(p.primitive is None for p in plan.placements) and plan.primitive_blocks == {}


@pytest.mark.parametrize("lanes", [1, 3], ids=["lanes1", "lanes3"])
@pytest.mark.parametrize("depths", [(1,), (3,), (2, 1, 4), (1, 1)], ids=lambda d: "depths" + "-".join(map(str, d)))
@pytest.mark.parametrize("gaps", [0.0, 0.5], ids=["back-to-back", "idle"])
def test_weight_loader_writes_every_word_once_in_order(depths, lanes, gaps):
    """The loader's bus writes, read off cycle by cycle, are the codes' words in load order; it is
    ready for exactly ``sum(depths) * lanes`` beats and ``done`` follows the last write."""
    import random

    from amaranth.sim import Simulator

    from rnnaccel.hdl.spram import WeightLoader

    bits = 5
    dut = WeightLoader(depths, lanes, bits)
    rng = random.Random(11)
    codes = [rng.randrange(-16, 16) for _ in range(sum(depths) * lanes)]
    expected = []
    i = 0
    for sel, d in enumerate(depths):
        for addr in range(d):
            word = 0
            for lane in range(lanes):
                word |= (codes[i] & 0x1F) << (lane * bits)
                i += 1
            expected.append((sel, addr, word))
    writes, done_at, last_write, image_last = [], [], [], []

    async def producer(ctx):
        for c in codes:
            while rng.random() < gaps:
                await ctx.tick()
            ctx.set(dut.w_stream.payload, c)
            ctx.set(dut.w_stream.valid, 1)
            await ctx.tick().until(dut.w_stream.ready)
            ctx.set(dut.w_stream.valid, 0)
        # After the last beat the loader never takes another.
        ctx.set(dut.w_stream.valid, 1)
        for _ in range(5):
            await ctx.tick()
            assert not ctx.get(dut.w_stream.ready)

    async def monitor(ctx):
        for cycle in range(len(codes) * 4 + 20):
            await ctx.tick()
            if ctx.get(dut.load.en):
                writes.append((ctx.get(dut.load.sel), ctx.get(dut.load.addr), ctx.get(dut.load.word)))
                last_write.append(cycle)
            if ctx.get(dut.done) and not done_at:
                done_at.append(cycle)

    async def handshakes(ctx):
        async for _, _, valid, ready, flag in ctx.tick().sample(dut.w_stream.valid, dut.w_stream.ready,
                                                                 dut.image_last):
            if valid and ready:
                image_last.append(flag)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(monitor, background=True)
    sim.add_testbench(handshakes, background=True)
    sim.run_until(1e-6 * (len(codes) * 4 + 30))
    assert writes == expected
    assert image_last == [0] * (len(codes) - 1) + [1]         # high on the last beat's handshake only
    # The bus write is registered: the memory writes at the edge after ``en`` shows, and ``done``
    # rises at the edge after that (never a read in the cycle of the last write).
    assert done_at and done_at[0] == last_write[-1] + 2
