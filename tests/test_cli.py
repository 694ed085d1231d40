"""The ``rnnaccel`` command line and the generate flow behind it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from rnnaccel.golden.fixed import QFormat, to_float
from rnnaccel.golden.lstm import quantize_input, run_codes
from rnnaccel.golden.model import Formats, Model, load, save
from rnnaccel.golden.reference import lstm_float
from rnnaccel.hdl.perf import estimate
from rnnaccel.scripts import flow
from rnnaccel.scripts.cli import main
from rnnaccel.sim.vectors import load_vectors

COMMANDS = [[], ["generate"], ["simulate"], ["demo"], ["examples"]]


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def tiny_config(tmp_path):
    """A TOML config (plus weights) of a tiny LSTM: X=3, H=2, PE=2, SIMD=5, 8-bit data."""
    rng = np.random.default_rng(0)
    X, H = 3, 2
    w = {"weight_ih_l0": rng.uniform(-0.7, 0.7, (4 * H, X)), "weight_hh_l0": rng.uniform(-0.7, 0.7, (4 * H, H)),
         "bias_ih_l0": rng.uniform(-0.7, 0.7, 4 * H), "bias_hh_l0": rng.uniform(-0.7, 0.7, 4 * H)}
    model = Model("lstm", X, H, w, formats=Formats(data=QFormat(8, 6), weight=QFormat(8, 6)), pe=2, simd=5,
                  name="tiny")
    return save(model, tmp_path / "cfg" / "tiny.toml")


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "rnnaccel")
def test_help(runner, cmd):
    r = runner.invoke(main, cmd + ["--help"])
    assert r.exit_code == 0, r.output
    assert "Usage:" in r.output
    if cmd == ["generate"]:
        for opt in ("--sequences", "--min-len", "--max-len", "--seed", "--pe", "--simd", "-o"):
            assert opt in r.output
    if cmd == ["simulate"]:
        for opt in ("--sim", "--json", "--seed", "--idle", "--backpressure"):
            assert opt in r.output


def test_generate_writes_a_self_contained_build(runner, tiny_config, tmp_path):
    out = tmp_path / "build"
    r = runner.invoke(main, ["generate", str(tiny_config), "-o", str(out), "--sequences", "3",
                             "--min-len", "2", "--max-len", "5", "--seed", "7"])
    assert r.exit_code == 0, r.output
    assert "cycles/step" in r.stdout and "tiny" in r.stdout
    for f in ("rnnaccel_top.v", "model.toml", "model.npz", "vectors.npz", "summary.json"):
        assert (out / f).is_file(), f
    assert "module rnnaccel_top" in (out / "rnnaccel_top.v").read_text()

    model = load(tiny_config)
    rebuilt = load(out / "model.toml")             # the build directory holds the model itself
    assert rebuilt.summary() == model.summary()
    for k in model.weights:
        np.testing.assert_array_equal(rebuilt.weights[k], model.weights[k])

    s = json.loads((out / "summary.json").read_text())
    assert s["model"] == json.loads(json.dumps(model.summary()))
    assert s["perf"] == json.loads(json.dumps(estimate(model)))
    assert s["axis"] == {"s_axis_tdata_width": 24, "m_axis_tdata_width": 16}

    v = load_vectors(out)
    assert v.sequences == 3 == s["vectors"]["sequences"]
    assert v.timesteps == s["vectors"]["timesteps"] == len(v.x_codes) == len(v.h_codes)
    assert 2 <= v.lengths.min() and v.lengths.max() <= 5
    assert v.x_codes.shape[1] == 3 and v.h_codes.shape[1] == 2
    assert s["vectors"]["source"] == "uniform[-1,1]"
    assert np.abs(v.x_float).max() <= 1
    # expected outputs are the golden model, each sequence from zero state; floats are the reference
    err = 0.0
    for i in range(v.sequences):
        seq = v.sequence(i)
        np.testing.assert_array_equal(v.x_codes[seq], quantize_input(v.x_float[seq], model))
        np.testing.assert_array_equal(v.h_codes[seq], run_codes(model, v.x_codes[seq]).h_codes)
        np.testing.assert_allclose(v.h_float[seq], lstm_float(model, v.x_float[seq])[0])
        err = max(err, np.abs(to_float(v.h_codes[seq], model.formats.data) - v.h_float[seq]).max())
    assert s["golden"]["max_abs_error_vs_float"] == pytest.approx(err)
    assert isinstance(s["golden"]["saturation"], dict) and s["golden"]["saturation_total"] >= 0


def test_generate_same_seed_same_vectors(tiny_config, tmp_path):
    flow.generate(tiny_config, tmp_path / "a", sequences=2, min_len=2, max_len=3, seed=5)
    flow.generate(tiny_config, tmp_path / "b", sequences=2, min_len=2, max_len=3, seed=5)
    a, b = load_vectors(tmp_path / "a"), load_vectors(tmp_path / "b")
    np.testing.assert_array_equal(a.x_codes, b.x_codes)
    np.testing.assert_array_equal(a.h_codes, b.h_codes)


def test_generate_overrides_parallelism(runner, tiny_config, tmp_path):
    out = tmp_path / "build"
    r = runner.invoke(main, ["generate", str(tiny_config), "-o", str(out), "--sequences", "1",
                             "--min-len", "2", "--max-len", "2", "--pe", "1", "--simd", "1"])
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    assert (s["model"]["pe"], s["model"]["simd"]) == (1, 1)
    assert s["perf"] == json.loads(json.dumps(estimate(load(tiny_config).with_hardware(pe=1, simd=1))))


def test_generate_with_given_inputs(tiny_config, tmp_path):
    xs = [np.full((4, 3), 0.25), np.linspace(-1, 1, 6).reshape(2, 3)]
    s = flow.generate(tiny_config, tmp_path / "b", inputs=xs)
    v = load_vectors(tmp_path / "b")
    assert s["vectors"]["source"] == "given" and list(v.lengths) == [4, 2]
    np.testing.assert_array_equal(v.x_float, np.concatenate(xs))


def _one_line_error(r, *words):
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, err


def test_generate_missing_config(runner, tmp_path):
    r = runner.invoke(main, ["generate", str(tmp_path / "nope.toml"), "-o", str(tmp_path / "o")])
    _one_line_error(r, "nope.toml", "does not exist")


def test_generate_unknown_name(runner, tmp_path):
    r = runner.invoke(main, ["generate", "no-such-example", "-o", str(tmp_path / "o")])
    _one_line_error(r, "no-such-example")


def test_generate_bad_config_value(runner, tiny_config, tmp_path):
    text = tiny_config.read_text().replace("pe = 2", "pe = 3")
    bad = tiny_config.with_name("bad.toml")
    bad.write_text(text)
    r = runner.invoke(main, ["generate", str(bad), "-o", str(tmp_path / "o")])
    _one_line_error(r, "hardware.pe")
    assert not (tmp_path / "o" / "rnnaccel_top.v").exists()


def test_generate_bad_toml(runner, tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text("[model\ncell = lstm\n")
    r = runner.invoke(main, ["generate", str(bad), "-o", str(tmp_path / "o")])
    _one_line_error(r, "broken.toml", "TOML")


def test_generate_bad_override(runner, tiny_config, tmp_path):
    r = runner.invoke(main, ["generate", str(tiny_config), "-o", str(tmp_path / "o"), "--simd", "99"])
    _one_line_error(r, "simd")


def test_generate_bad_lengths(runner, tiny_config, tmp_path):
    r = runner.invoke(main, ["generate", str(tiny_config), "-o", str(tmp_path / "o"), "--min-len", "9",
                             "--max-len", "3"])
    _one_line_error(r, "min_len")


def test_simulate_missing_dir(runner, tmp_path):
    r = runner.invoke(main, ["simulate", str(tmp_path / "nothing"), "--sim", "icarus"])
    _one_line_error(r, "nothing", "does not exist")


def test_simulate_incomplete_dir(runner, tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "summary.json").write_text("{}")
    r = runner.invoke(main, ["simulate", str(tmp_path / "half")])
    _one_line_error(r, "rnnaccel_top.v", "vectors.npz")


def test_simulate_bad_option(runner, tmp_path):
    r = runner.invoke(main, ["simulate", str(tmp_path), "--sim", "modelsim"])
    _one_line_error(r, "--sim")
    r = runner.invoke(main, ["simulate", str(tmp_path), "--idle", "1.5"])
    _one_line_error(r, "--idle")


def test_examples_lists_names(runner):
    r = runner.invoke(main, ["examples"])
    assert r.exit_code == 0, r.output
    for name in flow.example_names():
        assert name in r.stdout


def test_demo_unknown_example(runner, tmp_path):
    r = runner.invoke(main, ["demo", "--example", "no-such-example", "-o", str(tmp_path / "d")])
    _one_line_error(r, "no-such-example")


def test_generate_then_simulate_json(runner, tiny_config, tmp_path):
    """End to end through the CLI on Icarus: JSON only on stdout, exit 0, bit-exact."""
    out = tmp_path / "build"
    r = runner.invoke(main, ["generate", str(tiny_config), "-o", str(out), "--sequences", "4",
                             "--min-len", "2", "--max-len", "6"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["simulate", str(out), "--sim", "icarus", "--json", "--seed", "3"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    for key in ("mismatches", "timesteps", "sequences", "cycles_per_timestep", "cycles_per_timestep_model",
                "max_abs_error_vs_float", "simulator", "first_mismatches"):
        assert key in res, key
    assert res["simulator"] == "icarus" and res["mismatches"] == 0 and res["sequences"] == 4
    assert res["cycles_per_timestep"] == res["cycles_per_timestep_model"]
    r = runner.invoke(main, ["simulate", str(out), "--sim", "icarus", "--idle", "0", "--backpressure", "0"])
    assert r.exit_code == 0, r.output
    assert "PASSED" in r.stdout and "cycles/step" in r.stdout and "mismatches   0" in r.stdout


def test_simulate_exits_1_on_mismatch(runner, tiny_config, tmp_path):
    out = tmp_path / "build"
    flow.generate(tiny_config, out, sequences=2, min_len=2, max_len=3)
    v = load_vectors(out)
    np.savez(out / "vectors.npz", x_codes=v.x_codes, lengths=v.lengths, h_codes=v.h_codes + 1,
             x_float=v.x_float, h_float=v.h_float)
    r = runner.invoke(main, ["simulate", str(out), "--sim", "icarus"])
    assert r.exit_code == 1, r.output
    assert "FAILED" in r.stdout and "mismatch" in r.stdout


@pytest.mark.skipif(not flow.example_names(), reason="no built-in examples")
def test_generate_example_by_name(runner, tmp_path):
    name = flow.example_names()[0]
    out = tmp_path / "ex"
    r = runner.invoke(main, ["generate", name, "-o", str(out), "--sequences", "2", "--min-len", "2",
                             "--max-len", "3"])
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    assert s["vectors"]["source"] == f"example:{name}"
    assert s["model"]["name"] == name


def test_figures_and_synth_help():
    from click.testing import CliRunner
    from rnnaccel.scripts.cli import main
    for cmd in ("figures", "synth"):
        r = CliRunner().invoke(main, [cmd, "--help"])
        assert r.exit_code == 0, r.output
        assert "Usage:" in r.output


def test_synth_rejects_non_build_dir(tmp_path):
    from click.testing import CliRunner
    from rnnaccel.scripts.cli import main
    r = CliRunner().invoke(main, ["synth", str(tmp_path), "--target", "ecp5-25k"])
    assert r.exit_code == 2
    assert "no model.toml" in r.output


def test_figures_reports_exact_cycles(tmp_path):
    import json as _json
    from click.testing import CliRunner
    from rnnaccel.golden.model import Model, save
    from rnnaccel.scripts.cli import main
    rng = np.random.default_rng(0)
    X, H = 4, 8
    w = {"weight_ih_l0": rng.uniform(-.3, .3, (4 * H, X)), "weight_hh_l0": rng.uniform(-.3, .3, (4 * H, H)),
         "bias_ih_l0": rng.uniform(-.3, .3, 4 * H), "bias_hh_l0": rng.uniform(-.3, .3, 4 * H)}
    cfg = save(Model("lstm", X, H, w, name="fig"), tmp_path / "fig.toml")
    r = CliRunner().invoke(main, ["figures", str(cfg), "--json"])
    assert r.exit_code == 0, r.output
    d = _json.loads(r.output[r.output.index("{"):])
    assert [(c["pe"], c["simd"]) for c in d["cycles"]] == [(1, 1), (2, 4), (8, 4)]
    assert all(c["exact"] for c in d["cycles"])
    assert d["accuracy"][0]["max_abs_error"] > 0


def test_generate_then_simulate_stacked_bidirectional_gru(runner, tmp_path):
    """`generate` and `simulate` from a config file work for other cells and topologies too."""
    from rnnaccel.golden.model import Model, random_weights, save

    w = random_weights(3, 4, cell="gru", scale=0.5, seed=2, num_layers=2, bidirectional=True, head_size=2)
    cfg = save(Model("gru", 3, 4, w, num_layers=2, bidirectional=True, head_size=2, pe=2, simd=2, max_len=8,
                     name="grubi"), tmp_path / "grubi.toml")
    r = runner.invoke(main, ["generate", str(cfg), "-o", str(tmp_path / "b"), "--sequences", "3",
                             "--min-len", "2", "--max-len", "5"])
    assert r.exit_code == 0, r.output
    assert "GRU X=3 H=4 (2 layers, bidirectional, head 2)" in r.output
    r = runner.invoke(main, ["generate", str(cfg), "-o", str(tmp_path / "c"), "--max-len", "9"])
    assert r.exit_code == 2 and "exceeds the bidirectional model's sequence buffers (hardware.max_len = 8)" in r.output
    r = runner.invoke(main, ["simulate", str(tmp_path / "b"), "--sim", "icarus", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output[r.output.index("{"):])
    assert res["passed"] and res["mismatches"] == 0 and res["outputs"] == res["timesteps"]
    assert res["cycles_per_sequence"] == res["cycles_per_sequence_model"]


def test_generate_places_weights_in_spram_for_the_up5k(runner, tiny_config, tmp_path):
    out = tmp_path / "b"
    r = runner.invoke(main, ["generate", str(tiny_config), "-o", str(out), "--sequences", "1",
                             "--target", "ice40-up5k", "--storage", "spram"])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    plan = summary["memory_plan"]
    assert plan["target"] == "ice40-up5k" and plan["loaded_weight_memories"]
    assert "loaded at run time" in r.output
    from rnnaccel.sim.vectors import load_vectors
    assert len(load_vectors(out).w_image) == summary["axis"]["weight_image_codes"]
    assert "s_axis_weights_tdata" in (out / "rnnaccel_top.v").read_text()


@pytest.mark.parametrize("args, message", [
    (["--storage", "spram"], "needs a target"),
    (["--target", "ecp5-25k", "--storage", "spram"], "has no SPRAM"),
], ids=["spram-without-target", "spram-on-ecp5"])
def test_generate_storage_errors(runner, tiny_config, tmp_path, args, message):
    r = runner.invoke(main, ["generate", str(tiny_config), "-o", str(tmp_path / "o"), "--sequences", "1"] + args)
    assert r.exit_code == 2 and message in r.output
