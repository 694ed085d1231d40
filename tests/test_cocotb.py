"""cocotb on the generated Verilog (Verilator and Icarus), bit-exact against the golden model.

Each (configuration, simulator) builds in its own directory. The default set sends a few short
sequences back to back (random idle cycles in, random backpressure out) and measures the cycles
per timestep with the streams free-running; ``-m slow`` runs the full requirement: 20 sequences of
10-50 steps per configuration on both simulators.
"""

from __future__ import annotations

import json

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
