"""cocotb on the generated Verilog (Verilator and Icarus), bit-exact against the golden model.

Each (configuration, simulator) builds in its own directory. The default set sends a few short
sequences back to back (random idle cycles in, random backpressure out) and measures the cycles
per timestep with the streams free-running; ``-m slow`` runs the full requirement: 20 sequences of
10-50 steps per configuration on both simulators.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from rnnaccel.golden.fixed import QFormat
from rnnaccel.golden.model import Formats, Model, random_weights
from rnnaccel.golden.network import run_codes
from rnnaccel.hdl.perf import cycles_per_timestep, sequence_cycles
from rnnaccel.scripts.flow import generate, simulate
from rnnaccel.sim.vectors import load_vectors, save_vectors

#: (X, H, PE, SIMD, weight format, data format)
CONFIGS = {
    "x4h4-pe2-simd4-w8.6-d8.6": (4, 4, 2, 4, "s8.6", "s8.6"),
    "x4h4-pe2-simd4-w8.6-d16.12": (4, 4, 2, 4, "s8.6", "s16.12"),
    "x8h8-pe4-simd2-w16.12-d16.12": (8, 8, 4, 2, "s16.12", "s16.12"),
    "x32h32-pe4-simd8-w16.12-d16.12": (32, 32, 4, 8, "s16.12", "s16.12"),
}
SIMULATORS = ("verilator", "icarus")

#: Default (fast) traffic per configuration: sequences, min_len, max_len.
QUICK = {"x32h32-pe4-simd8-w16.12-d16.12": (4, 3, 8)}
QUICK_DEFAULT = (6, 3, 12)
#: The full requirement.
FULL = (20, 10, 50)


def make_model(X, H, pe, simd, weight, data, seed=0) -> Model:
    """An LSTM with PyTorch's default initialisation, uniform(-1/sqrt(H), 1/sqrt(H))."""
    rng = np.random.default_rng(seed)
    s = 1 / np.sqrt(H)
    w = {"weight_ih_l0": rng.uniform(-s, s, (4 * H, X)), "weight_hh_l0": rng.uniform(-s, s, (4 * H, H)),
         "bias_ih_l0": rng.uniform(-s, s, 4 * H), "bias_hh_l0": rng.uniform(-s, s, 4 * H)}
    formats = Formats(data=QFormat.parse(data), weight=QFormat.parse(weight))
    return Model("lstm", X, H, w, formats=formats, pe=pe, simd=simd, name=f"x{X}h{H}")


#: Left out of the default set (Verilator builds are the slow part): the same sizes as the 8-bit one.
QUICK_SKIP = {("x4h4-pe2-simd4-w8.6-d16.12", "verilator")}


def _params(full: bool):
    marks = [pytest.mark.slow] if full else []
    return [pytest.param(cfg, sim, id=f"{cfg}-{sim}", marks=marks) for cfg in CONFIGS for sim in SIMULATORS
            if full or (cfg, sim) not in QUICK_SKIP]


def _check(results: dict, model: Model, build):
    summary = json.loads((build / "summary.json").read_text())
    v = load_vectors(build)
    assert results["passed"], results["errors"]
    assert results["simulator"] in SIMULATORS
    assert results["sequences"] == v.sequences and results["timesteps"] == v.timesteps
    assert results["mismatches"] == 0, results["first_mismatches"]
    assert results["element_mismatches"] == 0
    assert results["tlast_errors"] == 0 and results["frame_errors"] == 0
    # throughput: every interval between consecutive output beats equals the analytic model
    cpt = cycles_per_timestep(model)
    assert results["cycles_per_timestep_model"] == cpt
    assert results["cycles_per_timestep_min"] == results["cycles_per_timestep_max"] == cpt
    assert results["cycles_per_timestep"] == cpt
    # consecutive copies of a sequence of T steps end T * cycles_per_timestep apart
    assert results["cycles_per_sequence"] == results["cycles_per_sequence_model"] == cpt * v.lengths[0]
    # bit-exact, so the hardware's error against float is the golden model's
    assert results["max_abs_error_vs_float"] == summary["golden"]["max_abs_error_vs_float"]
    if model.formats.data.width == 16 and model.hidden_size == 32:
        assert results["max_abs_error_vs_float"] < 2 ** -7


def _run(cfg, sim, tmp_path, traffic):
    model = make_model(*CONFIGS[cfg])
    sequences, min_len, max_len = traffic
    build = tmp_path / cfg
    generate(model, build, sequences=sequences, min_len=min_len, max_len=max_len, seed=1)
    results = simulate(build, sim, seed=2, idle=0.3, backpressure=0.3, json_out=tmp_path / "results.json")
    assert json.loads((tmp_path / "results.json").read_text())["mismatches"] == results["mismatches"]
    assert (build / f"sim_{sim}" / "results.json").exists()
    return model, build, results


@pytest.mark.parametrize("cfg, sim", _params(full=False))
def test_quick(cfg, sim, tmp_path):
    model, build, results = _run(cfg, sim, tmp_path, QUICK.get(cfg, QUICK_DEFAULT))
    assert results["sequences"] >= 4
    _check(results, model, build)


@pytest.mark.parametrize("cfg, sim", _params(full=True))
def test_full(cfg, sim, tmp_path):
    model, build, results = _run(cfg, sim, tmp_path, FULL)
    assert results["sequences"] >= 20
    lengths = load_vectors(build).lengths
    assert lengths.min() >= 10 and lengths.max() <= 50
    _check(results, model, build)


def test_scoreboard_reports_a_wrong_expectation(tmp_path):
    """The bench must notice a single wrong element and say where it is (sequence, step, element)."""
    model = make_model(*CONFIGS["x4h4-pe2-simd4-w8.6-d8.6"])
    build = tmp_path / "b"
    generate(model, build, sequences=4, min_len=3, max_len=6, seed=3)
    v = load_vectors(build)
    # golden model agrees with the vectors file before we tamper with it
    for s in range(v.sequences):
        np.testing.assert_array_equal(run_codes(model, v.x_codes[v.sequence(s)]).h_codes, v.h_codes[v.sequence(s)])
    h = v.h_codes.copy()
    row = v.sequence(2).start + 1
    h[row, 3] += 1
    save_vectors(build / "vectors.npz", v.x_codes, v.lengths, h, v.x_float, v.h_float)
    results = simulate(build, "icarus", seed=0)
    assert not results["passed"]
    assert results["mismatches"] >= 1 and results["element_mismatches"] >= 1
    first = results["first_mismatches"][0]
    assert (first["sequence"], first["step"], first["elements"]) == (2, 1, [3])
    assert first["expected"][0] == first["got"][0] + 1


# -- every cell and topology ----------------------------------------------------------------------------
#: (cell, model options); X=H=4 (P=2 with a projection), PE=2, SIMD=2 unless given.
CELL_CONFIGS = {
    "gru": ("gru", {}),
    "gru_rb": ("gru_rb", {}),
    "lstm_nf": ("lstm_nf", {}),
    "lstm_peephole": ("lstm_peephole", {}),
    "lstm-proj2": ("lstm", {"proj_size": 2}),
    "jordan-p3": ("jordan", {"proj_size": 3}),
    "rnn_tanh-hard": ("rnn_tanh", {"cand_activation": "hard_tanh"}),
    "rnn_relu-last": ("rnn_relu", {"outputs": "last"}),
    "lstm-hardsig-softsign": ("lstm", {"gate_activation": "hard_sigmoid", "cand_activation": "softsign"}),
    "gru-L3-head3": ("gru", {"num_layers": 3, "head_size": 3}),
    "lstm-L2-h0c0": ("lstm", {"num_layers": 2, "initial_state": True}),
    "gru-bi": ("gru", {"bidirectional": True}),
    "lstm-bi-L2-head3-h0c0": ("lstm", {"bidirectional": True, "num_layers": 2, "head_size": 3, "initial_state": True}),
    "rnn_tanh-bi-L2-last": ("rnn_tanh", {"bidirectional": True, "num_layers": 2, "outputs": "last"}),
    "lstm-L2-head2-final": ("lstm", {"num_layers": 2, "head_size": 2, "final_state": True}),
    "gru-bi-final-h0": ("gru", {"bidirectional": True, "final_state": True, "initial_state": True}),
}
#: In the default run: every cell and topology on Icarus (fast to build for these small designs), a
#: few on Verilator; ``-m slow`` runs all on both.
QUICK_VERILATOR = ("gru", "lstm-bi-L2-head3-h0c0", "jordan-p3", "lstm-L2-head2-final")


def make_cell_model(cfg, seed=1) -> Model:
    cell, kw = CELL_CONFIGS[cfg]
    X, H = 4, 4
    shape_kw = {k: kw[k] for k in ("num_layers", "bidirectional", "head_size", "proj_size") if k in kw}
    w = random_weights(X, H, scale=0.5, seed=seed, cell=cell, **shape_kw)
    return Model(cell, X, H, w, pe=2, simd=2, max_len=16, name=cfg.replace("-", "_"), **kw)


def _cell_params(full: bool):
    out = []
    for cfg in CELL_CONFIGS:
        for sim in SIMULATORS:
            quick = sim == "icarus" or cfg in QUICK_VERILATOR
            if full or quick:
                out.append(pytest.param(cfg, sim, id=f"{cfg}-{sim}", marks=[pytest.mark.slow] if full else []))
    return out


def _run_cell(cfg, sim, tmp_path, traffic):
    model = make_cell_model(cfg)
    sequences, min_len, max_len = traffic
    build = tmp_path / cfg
    summary = generate(model, build, sequences=sequences, min_len=min_len, max_len=max_len, seed=1)
    results = simulate(build, sim, seed=2, idle=0.3, backpressure=0.3)
    v = load_vectors(build)
    assert results["passed"], results["errors"]
    assert results["sequences"] == v.sequences >= 10
    assert results["outputs"] == v.out_timesteps
    assert results["mismatches"] == 0 and results["element_mismatches"] == 0, results["first_mismatches"]
    assert results["tlast_errors"] == 0 and results["frame_errors"] == 0
    assert results["final_state_mismatches"] == (0 if model.final_state else None)
    # the analytic cycle model: per sequence for every model, per timestep where it has one
    assert results["cycles_per_sequence"] == results["cycles_per_sequence_model"] == sequence_cycles(model, v.lengths[0])
    if not model.bidirectional:
        assert results["cycles_per_timestep_model"] == cycles_per_timestep(model)
        if model.outputs == "sequence":
            assert results["cycles_per_timestep"] == cycles_per_timestep(model)
    # the vectors are the golden model's (recomputed here from the saved codes)
    for s in range(v.sequences):
        kw = {}
        if v.h0_codes is not None:
            kw["h0"] = v.h0_codes[s]
        if v.c0_codes is not None:
            kw["c0"] = v.c0_codes[s]
        np.testing.assert_array_equal(run_codes(model, v.x_codes[v.sequence(s)], **kw).h_codes,
                                      v.h_codes[v.out_sequence(s)])
    assert results["max_abs_error_vs_float"] == summary["golden"]["max_abs_error_vs_float"]
    return results


@pytest.mark.parametrize("cfg, sim", _cell_params(full=False))
def test_cells_quick(cfg, sim, tmp_path):
    """10 short sequences (3-8 steps) per cell/topology, idles and backpressure, bit-exact."""
    _run_cell(cfg, sim, tmp_path, (10, 3, 8))


@pytest.mark.parametrize("cfg, sim", _cell_params(full=True))
def test_cells_full(cfg, sim, tmp_path):
    """20 sequences of 10-16 steps per cell/topology on both simulators."""
    _run_cell(cfg, sim, tmp_path, (20, 10, 16))


@pytest.mark.parametrize("sim", SIMULATORS)
def test_spram_weights_loaded_through_the_weight_port(sim, tmp_path):
    """``generate --target ice40-up5k --storage spram``: SB_SPRAM256KA instances (simulated with Yosys'
    model of the primitive), the weight image sent through s_axis_weights first, then bit-exact outputs."""
    model = make_model(4, 4, 2, 2, "s8.6", "s8.6", seed=5)
    build = tmp_path / "build"
    summary = generate(model, build, sequences=4, min_len=3, max_len=8, seed=1, target="ice40-up5k",
                       storage="spram")
    assert summary["memory_plan"]["loaded_weight_memories"] == [[0, 0], [0, 1]]
    assert (build / "rnnaccel_top.v").read_text().count("SB_SPRAM256KA") == 2    # one 16-bit SPRAM per PE
    results = simulate(build, sim, seed=2, idle=0.3, backpressure=0.3)
    _check(results, model, build)
    assert results["weight_image_codes"] == len(load_vectors(build).w_image) == summary["axis"]["weight_image_codes"]
    assert results["weight_load_cycles"] >= results["weight_image_codes"]


@pytest.mark.parametrize("sim", SIMULATORS)
def test_compact_schedule_on_the_up5k_primitives(sim, tmp_path):
    """``generate --target ice40-up5k`` of a compact LSTM (hdl/compact.py: one table, the serial
    element-wise stage, h_{t-1} in memories) with SB_MAC16 multipliers and SPRAM weights, simulated
    with Yosys' models of both: bit-exact, cycles as the model."""
    model = make_model(8, 8, 2, 1, "s8.6", "s8.6", seed=5).with_hardware(schedule="compact")
    build = tmp_path / "build"
    generate(model, build, sequences=4, min_len=3, max_len=6, seed=1, target="ice40-up5k", storage="spram")
    text = (build / "rnnaccel_top.v").read_text()
    # the matrix-vector unit's multipliers only: the element-wise products are bit-serial
    assert len(re.findall(r"^\s*SB_MAC16\b", text, re.M)) == model.pe * model.simd
    assert len(re.findall(r"^\s*SB_SPRAM256KA\b", text, re.M)) == model.pe
    results = simulate(build, sim, seed=2, idle=0.3, backpressure=0.3)
    _check(results, model, build)


def test_spram_design_with_a_wrong_weight_image_fails(tmp_path):
    model = make_model(4, 4, 2, 2, "s8.6", "s8.6", seed=5)
    build = tmp_path / "build"
    generate(model, build, sequences=2, min_len=3, max_len=4, seed=1, target="ice40-up5k", storage="spram")
    v = load_vectors(build)
    w = v.w_image.copy()
    w[3] = (w[3] + 37) % 64                  # still a valid s8.6 code, a different weight
    save_vectors(build / "vectors.npz", v.x_codes, v.lengths, v.h_codes, v.x_float, v.h_float,
                 out_lengths=v.out_lengths, seq_cycles=v.seq_cycles, w_image=w)
    results = simulate(build, "icarus", seed=0)
    assert not results["passed"] and results["mismatches"] > 0


# -- ECP5 primitives: generate --target ecp5-* ----------------------------------------------------------
#: (X, H, PE, SIMD, weight format, data format) with 16-bit data: every activation table (2048 words)
#: is DP16KD blocks; with X = 8, H = 16 each PE's weight memory holds R*F = 32 * 12 = 384 words of
#: 32 bits (>= hdl/dsp.py ROM_MIN_DEPTH, <= 512) and is one PDPW16KD; every multiplier is a MULT18X18D.
ECP5_CONFIG = (8, 16, 2, 2, "s16.12", "s16.12")
#: A smaller one (tables only) for the tests that expect a failure.
ECP5_SMALL = (4, 4, 2, 2, "s16.12", "s16.12")


def _bram_instances(verilog_text: str) -> list:
    """``[(primitive, instance name, read width, read REGMODE)]`` of the DP16KD (port A) and PDPW16KD
    instances in Amaranth's Verilog (names repeat across modules: each activation table's blocks are
    ``mem_bram<k>``)."""
    out = []
    for m in re.finditer(r"^\s*(DP16KD|PDPW16KD)\s*#\((.*?)\)\s*(\S+)\s*\(", verilog_text, re.M | re.S):
        params = dict(re.findall(r"\.(\w+)\(([^()]*)\)", m.group(2)))
        width, regmode = ("DATA_WIDTH_A", "REGMODE_A") if m.group(1) == "DP16KD" else ("DATA_WIDTH_R", "REGMODE")
        out.append((m.group(1), m.group(3), int(params[width].split("'d")[-1]), params[regmode].strip('"')))
    return out


@pytest.mark.parametrize("sim", SIMULATORS)
def test_ecp5_primitives_simulated_bit_exact(sim, tmp_path):
    """``generate --target ecp5-25k``: the Verilog synthesis gets (MULT18X18D for every multiplier,
    DP16KD with the output register for the tables, PDPW16KD with the output register for the
    weight memories), simulated with the primitives' models and compared bit-exactly with the golden
    model, idles and backpressure."""
    model = make_model(*ECP5_CONFIG, seed=7)
    build = tmp_path / "build"
    summary = generate(model, build, sequences=4, min_len=3, max_len=6, seed=1, target="ecp5-25k")
    text = (build / "rnnaccel_top.v").read_text()
    n_mult = len(re.findall(r"^\s*MULT18X18D\b", text, re.M))
    assert n_mult == summary["perf"]["multipliers"]["total"] == 10
    brams = _bram_instances(text)
    assert {regmode for *_, regmode in brams} == {"OUTREG"}
    weights = sorted((prim, name, w) for prim, name, w, _ in brams if name.startswith("weights"))
    # 384 x 32-bit words: one 512 x 36 PDPW16KD each (two DP16KD of 18 + 14 bits before)
    assert weights == [("PDPW16KD", f"weights{p}_bram0", 36) for p in range(2)]
    tables = [(prim, name, w) for prim, name, w, _ in brams if not name.startswith("weights")]
    # 2048 x 16-bit tables: two 2048 x 9 blocks each
    assert tables and len(tables) % 2 == 0 and set(tables) == {("DP16KD", "mem_bram0", 9), ("DP16KD", "mem_bram1", 9)}
    assert summary["primitives"] == {"family": "ecp5", "instances": {"MULT18X18D": n_mult, "DP16KD": len(tables),
                                                                     "PDPW16KD": len(weights)}}
    # the memory plan counts exactly these blocks (and, besides, the biases Yosys maps itself)
    planned = {m["memory"].rsplit(".", 1)[-1]: (m["primitive"], m["blocks"])
               for m in summary["memory_plan"]["memories"]}
    assert all(planned[f"weights{p}"] == ("PDPW16KD", 1) for p in range(2))
    assert sum(m["blocks"] for m in summary["memory_plan"]["memories"] if m["primitive"]) == len(brams)
    results = simulate(build, sim, seed=2, idle=0.3, backpressure=0.3)
    assert results["primitive_models"] == ["MULT18X18D", "DP16KD", "PDPW16KD"]
    _check(results, model, build)


def test_ecp5_target_changes_only_the_primitives():
    """Without a family the export is plain Verilog; ``family="ecp5"`` instantiates the primitives;
    an unknown family is refused with the valid ones named."""
    from rnnaccel.hdl.export import to_verilog

    model = make_model(*ECP5_SMALL, seed=7)
    plain = to_verilog(model)
    assert not re.search(r"^\s*(MULT18X18D|DP16KD|PDPW16KD)\b", plain, re.M)
    ecp5 = to_verilog(model, family="ecp5")
    assert re.search(r"^\s*MULT18X18D\b", ecp5, re.M) and re.search(r"^\s*DP16KD\b", ecp5, re.M)
    with pytest.raises(ValueError, match=r"'ecp6'.*'ecp5'"):
        to_verilog(model, family="ecp6")


def _replacing(*pairs):
    """A mutation of a primitive's behaviour text: each ``(old, new)`` replaced (each must occur)."""
    def mutation(behaviour):
        def mutated(declaration):
            text = behaviour(declaration)
            for old, new in pairs:
                assert old in text, old
                text = text.replace(old, new)
            return text
        return mutated
    return mutation


_unsigned_multiplier = _replacing(("{rnn_a_q[18] & rnn_a_q[17], ", "{1'b0, "),
                                  ("{rnn_b_q[18] & rnn_b_q[17], ", "{1'b0, "))
_no_output_register = _replacing(('== "OUTREG" ?', '== "NO_SUCH_MODE" ?'))
_halves_swapped = _replacing(("{rnn_rows[{rnn_n, 1'b1}], rnn_rows[{rnn_n, 1'b0}]}",
                              "{rnn_rows[{rnn_n, 1'b0}], rnn_rows[{rnn_n, 1'b1}]}"))


@pytest.mark.parametrize("prim, mutate", [
    pytest.param("MULT18X18D", _unsigned_multiplier, id="mult18x18d-operands-unsigned"),
    pytest.param("DP16KD", _no_output_register, id="dp16kd-output-register-ignored"),
    pytest.param("PDPW16KD", _no_output_register, id="pdpw16kd-output-register-ignored"),
    pytest.param("PDPW16KD", _halves_swapped, id="pdpw16kd-word-halves-swapped"),
])
def test_ecp5_bench_fails_with_a_wrong_primitive_model(prim, mutate, tmp_path, monkeypatch):
    """The ECP5 bench really runs through the primitives: a model that is wrong in one respect
    (operands unsigned; REGMODE_A / REGMODE = "OUTREG" read one cycle early; the two 18-bit halves
    of a 36-bit word swapped) makes the outputs mismatch. PDPW16KD: the weight memories of
    ECP5_CONFIG (ECP5_SMALL's are too shallow for block RAM)."""
    from rnnaccel.sim import runner

    monkeypatch.setitem(runner.PRIMITIVE_BEHAVIOUR, prim, mutate(runner.PRIMITIVE_BEHAVIOUR[prim]))
    model = make_model(*(ECP5_CONFIG if prim == "PDPW16KD" else ECP5_SMALL), seed=7)
    build = tmp_path / "build"
    generate(model, build, sequences=2, min_len=3, max_len=4, seed=1, target="ecp5-25k")
    results = simulate(build, "icarus", seed=0)
    assert prim in results["primitive_models"]
    assert not results["passed"] and results["mismatches"] > 0


#: ROMs (depth, width) that Yosys maps onto DP16KD at each port width (18, 9, 4, 2, 1 bits and, for
#: the two widest, 36: its 36-bit mode), and multipliers (operand bits, signed) it maps onto MULT18X18D.
_XCHECK_ROMS = ((1024, 16), (2048, 16), (4096, 8), (8192, 4), (16384, 2), (512, 36), (256, 64))
_XCHECK_MULS = ((18, True), (16, False))


def test_ecp5_models_match_yosys_mapping(tmp_path):
    """The MULT18X18D, DP16KD and PDPW16KD models against Yosys' own ECP5 mapping: ROMs and
    multipliers synthesised with ``synth_ecp5`` (up to its block RAM mapping; Yosys writes DP16KD
    contents and address wiring, in the 36-bit mode also the output wiring, MULT18X18D operand
    wiring and signedness, without the primitives' registers), simulated on Icarus with the models:
    every word of every ROM at each DP16KD width and 2000 products (random and extreme operands) as
    the ROMs and ``*`` define them. Beside them, in the same netlist, the 512 x 36 and 256 x 64 tables
    as ``registered_rom`` builds them on ECP5 (PDPW16KD with the output register, the contents of
    ``dp16kd_initvals``): each word as Yosys' 36-bit mapping reads it, one cycle later."""
    import shutil
    import subprocess

    from amaranth.back import rtlil
    from amaranth.hdl import Module, signed, unsigned
    from amaranth.lib import memory, wiring
    from amaranth.lib.wiring import In, Out

    from rnnaccel.hdl.dsp import dsp_primitives, registered_rom, rom_config
    from rnnaccel.scripts import synth as synth_flow
    from rnnaccel.sim.runner import primitive_model

    rng = np.random.default_rng(11)
    tables = [[int(v) for v in rng.integers(0, 1 << w, d)] if w < 63 else
              [sum(int(p) << (16 * k) for k, p in enumerate(row)) for row in rng.integers(0, 1 << 16, (d, w // 16))]
              for d, w in _XCHECK_ROMS]
    ours = [i for i, (d, w) in enumerate(_XCHECK_ROMS) if rom_config(d, w).primitive == "PDPW16KD"]
    assert [_XCHECK_ROMS[i] for i in ours] == [(512, 36), (256, 64)]

    class Top(wiring.Component):
        def __init__(self):
            ports = {}
            for i, (d, w) in enumerate(_XCHECK_ROMS):
                ports |= {f"addr{i}": In(range(d)), f"data{i}": Out(w)}
            for i in ours:
                ports |= {f"rdata{i}": Out(_XCHECK_ROMS[i][1])}
            for i, (w, s) in enumerate(_XCHECK_MULS):
                shape = signed if s else unsigned
                ports |= {f"a{i}": In(shape(w)), f"b{i}": In(shape(w)), f"p{i}": Out(shape(2 * w))}
            super().__init__(ports)

        def elaborate(self, platform):
            m = Module()
            for i, (d, w) in enumerate(_XCHECK_ROMS):
                m.submodules[f"rom{i}"] = mem = memory.Memory(shape=unsigned(w), depth=d, init=tables[i])
                rd = mem.read_port()
                m.d.comb += [rd.addr.eq(getattr(self, f"addr{i}")), getattr(self, f"data{i}").eq(rd.data)]
            for i in ours:
                data = registered_rom(m, tables[i], unsigned(_XCHECK_ROMS[i][1]), getattr(self, f"addr{i}"),
                                      name=f"ours{i}")
                m.d.comb += getattr(self, f"rdata{i}").eq(data)
            for i in range(len(_XCHECK_MULS)):
                m.d.comb += getattr(self, f"p{i}").eq(getattr(self, f"a{i}") * getattr(self, f"b{i}"))
            return m

    # RTLIL keeps each memory's contents in one cell (Yosys reads Verilog initialisers slowly)
    with dsp_primitives("ecp5"):
        (tmp_path / "top.il").write_text(rtlil.convert(Top(), name="top", emit_src=False))
    argv = synth_flow._tool_argv("yosys") + [
        "-q", "-p", "read_rtlil top.il; synth_ecp5 -top top -run begin:map_ffram; write_verilog -noattr net.v"]
    subprocess.run(argv, cwd=tmp_path, check=True, capture_output=True, timeout=900)
    net = (tmp_path / "net.v").read_text()
    cells = set(re.findall(r"^\s*(\\?\$?\w+)\s+(?:#\(|\\?\S+\s*\()", net, re.M)) - {"module"}
    assert cells == {"DP16KD", "MULT18X18D", "PDPW16KD"}, f"Yosys left other cells: {sorted(cells)}"
    assert set(int(w) for w in re.findall(r"\.DATA_WIDTH_A\(32'd(\d+)\)", net)) == {1, 2, 4, 9, 18, 36}
    assert len(re.findall(r"\.DATA_WIDTH_B\(32'd36\)", net)) == 3           # 512 x 36: one, 256 x 64: two
    assert len(re.findall(r"^\s*PDPW16KD\b", net, re.M)) == 3
    assert set(re.findall(r"\.SIGNEDA\(1'h(\d)\)", net)) == {"0", "1"}

    stride, n_words = 4093, max(d for d, _ in _XCHECK_ROMS)          # odd: a permutation of each ROM
    corners = [(-(1 << 17), -(1 << 17)), (-(1 << 17), (1 << 17) - 1), ((1 << 17) - 1, (1 << 17) - 1), (-1, -1),
               (0, -1), (-1, 1)]
    pairs = corners + [tuple(int(v) for v in rng.integers(-(1 << 17), 1 << 17, 2)) for _ in range(2000 - len(corners))]
    decl = [f"  reg [{d.bit_length() - 2}:0] addr{i}; wire [{w - 1}:0] data{i};" for i, (d, w) in enumerate(_XCHECK_ROMS)]
    decl += [f"  wire [{_XCHECK_ROMS[i][1] - 1}:0] rdata{i};" for i in ours]
    decl += [f"  reg [{w - 1}:0] a{i}, b{i}; wire [{2 * w - 1}:0] p{i};" for i, (w, _) in enumerate(_XCHECK_MULS)]
    decls = "\n".join(decl)
    conns = [f".{n}{i}({n}{i})" for i in range(len(_XCHECK_ROMS)) for n in ("addr", "data")]
    conns += [f".rdata{i}(rdata{i})" for i in ours]
    conns += [f".{n}{i}({n}{i})" for i in range(len(_XCHECK_MULS)) for n in ("a", "b", "p")]
    conns += [".clk(clk)"] + ([".rst(1'b0)"] if re.search(r"\binput\s+rst\b", net) else [])
    rom_steps = "\n".join(f"      addr{i} = (j * {stride}) % {d};" for i, (d, _) in enumerate(_XCHECK_ROMS))
    outs = [f"data{i}" for i in range(len(_XCHECK_ROMS))] + [f"rdata{i}" for i in ours]
    mul_steps = "\n".join(
        f"      a0 = {a & 0x3FFFF}; b0 = {b & 0x3FFFF}; a1 = {a & 0xFFFF}; b1 = {b & 0xFFFF};\n"
        f'      #1 $display("M %0d %0d", p0, p1);' for a, b in pairs)
    (tmp_path / "tb.v").write_text(f"""`timescale 1ns/1ps
module tb;
  reg clk = 0;
  integer j;
{decls}
  top dut({", ".join(conns)});
  initial begin
    for (j = 0; j < {n_words}; j = j + 1) begin
{rom_steps}
      #1 clk = 1; #1 clk = 0;
      $display("R {" ".join(["%0d"] * len(outs))}", {", ".join(outs)});
    end
{mul_steps}
    $finish;
  end
endmodule
""")
    prims = ("MULT18X18D", "DP16KD", "PDPW16KD")
    for prim in prims:
        (tmp_path / f"{prim}_sim.v").write_text(primitive_model(prim))
    assert shutil.which("iverilog"), "iverilog not found: install Icarus Verilog (apt-get install -y iverilog)"
    subprocess.run(["iverilog", "-g2005", "-o", "tb.vvp", "tb.v", "net.v", *(f"{p}_sim.v" for p in prims)],
                   cwd=tmp_path, check=True, capture_output=True, text=True, timeout=300)
    out = subprocess.run(["vvp", "-n", "tb.vvp"], cwd=tmp_path, check=True, capture_output=True, text=True,
                         timeout=300).stdout.split("\n")
    rom_lines = [ln.split()[1:] for ln in out if ln.startswith("R ")]
    mul_lines = [ln.split()[1:] for ln in out if ln.startswith("M ")]
    assert len(rom_lines) == n_words and len(mul_lines) == len(pairs), out[-5:]
    for i, (d, _) in enumerate(_XCHECK_ROMS):
        got = [int(ln[i]) for ln in rom_lines]
        want = [tables[i][(j * stride) % d] for j in range(n_words)]
        bad = next((j for j in range(n_words) if got[j] != want[j]), None)
        assert bad is None, f"ROM {d} x {_XCHECK_ROMS[i][1]}: address {(bad * stride) % d} read {got[bad]}, holds {want[bad]}"
    for col, i in enumerate(ours, start=len(_XCHECK_ROMS)):
        d = _XCHECK_ROMS[i][0]
        got = [int(ln[col]) for ln in rom_lines[1:]]            # the output register: one cycle later
        want = [tables[i][(j * stride) % d] for j in range(n_words - 1)]
        bad = next((j for j in range(n_words - 1) if got[j] != want[j]), None)
        assert bad is None, (f"PDPW16KD {d} x {_XCHECK_ROMS[i][1]}: address {(bad * stride) % d} read {got[bad]}, "
                             f"holds {want[bad]}")
    for (a, b), (p0, p1) in zip(pairs, mul_lines):
        assert int(p0) == (a * b) & ((1 << 36) - 1), (a, b, p0)
        assert int(p1) == (a & 0xFFFF) * (b & 0xFFFF), (a, b, p1)
