"""``rnnaccel sweep``: points, failed rows, CSV, Pareto front and plot, exit codes, one real synthesis."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from rnnaccel.golden.model import ConfigError, Formats, Model, random_weights, save
from rnnaccel.hdl import perf
from rnnaccel.scripts import sweep
from rnnaccel.scripts.cli import main

X = H = 4


def tiny_model(**kw):
    return Model("lstm", X, H, random_weights(X, H, scale=0.3, seed=2), name="tiny4", **kw)


@pytest.fixture
def tiny_config(tmp_path):
    """A TOML config of an X = H = 4 LSTM (random weights, default formats, PE = SIMD = 1)."""
    return save(tiny_model(), tmp_path / "cfg" / "tiny4.toml")


@pytest.fixture
def runner():
    return CliRunner()


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# -- inputs --------------------------------------------------------------------------------------------

def test_parse_int_list():
    assert sweep.parse_int_list("1,2,4") == [1, 2, 4]
    assert sweep.parse_int_list(" 4, 2,4 ,1") == [4, 2, 1]          # duplicates dropped, order kept
    assert sweep.parse_int_list("8") == [8]
    for bad in ("1,x", "0", "-1", "", "1,,2", "2.5"):
        with pytest.raises(ValueError, match="is not a positive integer"):
            sweep.parse_int_list(bad, "--pe")


def test_presets_validate_at_the_reference_size():
    for name, fmts in sweep.PRESETS.items():
        m = Model("lstm", 32, 32, random_weights(32, 32, scale=0.3), formats=fmts, pe=8, simd=4)
        assert m.formats == fmts, name
    assert sweep.PRESETS["16bit"] == Formats()
    assert {f.width for f in (sweep.PRESETS["8bit"].data, sweep.PRESETS["8bit"].weight)} == {8}


def test_resolve_formats_presets_and_files(tmp_path):
    fs = sweep.resolve_formats("8bit")
    assert (fs.name, fs.formats) == ("8bit", sweep.PRESETS["8bit"])
    f = tmp_path / "w10 bits.toml"
    f.write_text('[formats]\nweight = "s10.8"\n')
    fs = sweep.resolve_formats(f)
    assert fs.name == "w10_bits"                                      # usable as a directory name
    assert str(fs.formats.weight) == "s10.8" and fs.formats.data == Formats().data   # others: defaults
    with pytest.raises(ConfigError, match="neither a preset.*16bit.*nor an existing TOML file"):
        sweep.resolve_formats("12bit")
    (tmp_path / "none.toml").write_text('[model]\ncell = "lstm"\n')
    with pytest.raises(ConfigError, match="no \\[formats\\] table"):
        sweep.resolve_formats(tmp_path / "none.toml")
    (tmp_path / "bad.toml").write_text('[formats]\nweight = "q8"\n')
    with pytest.raises(ConfigError, match="weight"):
        sweep.resolve_formats(tmp_path / "bad.toml")
    (tmp_path / "broken.toml").write_text("[formats\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        sweep.resolve_formats(tmp_path / "broken.toml")


def test_make_points_is_the_cross_product_with_unique_ids(tmp_path):
    a = sweep.resolve_formats("16bit")
    b = sweep.FormatsSet("16bit", sweep.PRESETS["8bit"], "file")     # same name, other formats
    pts = sweep.make_points([1, 2], [2, 4, 8], [a, b])
    assert len(pts) == 2 * 3 * 2
    assert len({p.id for p in pts}) == len(pts)
    assert {(p.pe, p.simd) for p in pts} == {(pe, s) for pe in (1, 2) for s in (2, 4, 8)}
    assert {p.formats.name for p in pts} == {"16bit", "16bit-2"}
    assert pts[0].id == "pe1-simd2-16bit"


def test_default_jobs(monkeypatch):
    assert sweep.default_jobs(10, synth=False) == 1
    monkeypatch.setattr(sweep.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(sweep, "_available_memory", lambda: None)
    assert sweep.default_jobs(3) == 3 and sweep.default_jobs(20) == 8
    monkeypatch.setattr(sweep, "_available_memory", lambda: 5 * 1024 ** 3)      # two jobs of 2 GB
    assert sweep.default_jobs(20) == 2
    monkeypatch.setattr(sweep, "_available_memory", lambda: 1024 ** 3)          # less than one job
    assert sweep.default_jobs(20) == 1


# -- Pareto front ------------------------------------------------------------------------------------------

def test_pareto_front_hand_checked():
    #          0        1       2       3       4       5       6
    pts = [(1, 10), (2, 5), (3, 5), (2, 8), (4, 1), (4, 1), (5, 1)]
    xs, ys = zip(*pts)
    # (3,5) and (2,8) are beaten by (2,5); (5,1) by (4,1); the two (4,1) tie and both stay.
    assert sweep.pareto_front(xs, ys) == [0, 1, 4, 5]
    assert sweep.pareto_front([3], [7]) == [0]
    assert sweep.pareto_front([], []) == []
    assert sweep.pareto_front([1, 2, 3], [3, 2, 1]) == [0, 1, 2]          # a strict trade-off
    assert sweep.pareto_front([3, 2, 1], [3, 2, 1]) == [2]                # one point beats all


# -- the sweep without synthesis ---------------------------------------------------------------------------

def test_sweep_no_synth_rows_csv_and_plot(runner, tiny_config, tmp_path):
    out = tmp_path / "sweep"
    r = runner.invoke(main, ["sweep", str(tiny_config), "--pe", "1,2,3", "--simd", "2,4", "--formats", "16bit",
                             "--formats", "8bit", "--no-synth", "-o", str(out)])
    assert r.exit_code == 0, r.output
    progress = [ln for ln in r.stdout.splitlines() if ln.startswith("[")]
    assert len(progress) == 12 and progress[-1].startswith("[12/12]")
    assert sum("FAILED (invalid)" in ln for ln in progress) == 4        # pe = 3 does not divide H = 4
    assert "8 of 12 points succeeded" in r.stdout

    rows = read_rows(out / "sweep.csv")
    assert list(rows[0]) == sweep.CSV_FIELDS
    assert [(int(x["pe"]), int(x["simd"]), x["formats"]) for x in rows] == [
        (pe, simd, f) for pe in (1, 2, 3) for simd in (2, 4) for f in ("16bit", "8bit")]
    base = tiny_model()
    errs = {}
    for row in rows:
        if row["pe"] == "3":
            assert row["status"] == "invalid"
            assert "pe = 3" in row["message"] and "divide hidden_size = 4" in row["message"]
            assert row["cycles_per_timestep"] == ""
            continue
        assert row["status"] == "ok" and row["message"] == ""
        m = base.with_formats(**sweep.PRESETS[row["formats"]].as_dict()).with_hardware(
            pe=int(row["pe"]), simd=int(row["simd"]))
        assert int(row["cycles_per_timestep"]) == perf.cycles_per_timestep(m)
        assert int(row["multipliers_predicted"]) == perf.multiplier_count(m)["total"]
        assert int(row["memory_bits_predicted"]) == perf.memory_bits(m)["total"]
        for col in ("dsp_used", "logic_cells", "fmax_mhz", "latency_us_per_step"):
            assert row[col] == "", col
        errs.setdefault(row["formats"], set()).add(float(row["max_abs_err"]))
        assert (out / "points" / row["id"] / "model.toml").is_file()
        assert json.loads((out / "points" / row["id"] / "point.json").read_text())["status"] == "ok"
    # The golden model does not depend on the parallelism: one error per formats set.
    assert all(len(v) == 1 for v in errs.values())
    e16, e8 = errs["16bit"].pop(), errs["8bit"].pop()
    assert 0 < e16 <= 2 ** -7 < e8                 # 16 bits within the design's bound, 8 bits coarser
    png = (out / "pareto.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_sweep_defaults_to_the_configs_parallelism_and_formats(runner, tmp_path):
    cfg = save(tiny_model(pe=2, simd=3), tmp_path / "c.toml")
    r = runner.invoke(main, ["sweep", str(cfg), "--no-synth", "-o", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    (row,) = read_rows(tmp_path / "o" / "sweep.csv")
    assert (row["id"], row["pe"], row["simd"], row["formats"], row["status"]) == ("pe2-simd3-config", "2", "3",
                                                                                 "config", "ok")


def test_all_points_failing_exits_1_and_still_writes_the_outputs(runner, tiny_config, tmp_path):
    out = tmp_path / "sweep"
    r = runner.invoke(main, ["sweep", str(tiny_config), "--pe", "3", "--simd", "2,100", "--no-synth", "-o", str(out)])
    assert r.exit_code == 1, r.output
    rows = read_rows(out / "sweep.csv")
    assert [x["status"] for x in rows] == ["invalid", "invalid"]
    assert "0 of 2 points succeeded" in r.stdout
    assert (out / "pareto.png").stat().st_size > 0


@pytest.mark.parametrize("args,message", [
    (["--pe", "1,x"], "'x' is not a positive integer"),
    (["--simd", "0"], "'0' is not a positive integer"),
    (["--formats", "12bit"], "neither a preset"),
    (["--formats", "missing.toml"], "neither a preset"),
    (["--jobs", "0"], "--jobs"),
    (["--target", "ecp5-12k"], "--target"),
], ids=["pe", "simd", "preset", "file", "jobs", "target"])
def test_bad_input_exits_2_with_one_line(runner, tiny_config, tmp_path, args, message):
    r = runner.invoke(main, ["sweep", str(tiny_config), "--no-synth", "-o", str(tmp_path / "o")] + args)
    assert r.exit_code == 2, r.output
    assert message in r.stderr
    assert r.stderr.startswith("rnnaccel: error:") and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "sweep.csv").exists()


def test_bad_config_target_and_output_exit_2(runner, tiny_config, tmp_path):
    r = runner.invoke(main, ["sweep", str(tmp_path / "nope.toml"), "--no-synth", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "does not exist" in r.stderr
    r = runner.invoke(main, ["sweep", str(tiny_config), "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--target is required unless --no-synth" in r.stderr
    (tmp_path / "file").write_text("")
    r = runner.invoke(main, ["sweep", str(tiny_config), "--no-synth", "-o", str(tmp_path / "file")])
    assert r.exit_code == 2 and "is a file" in r.stderr


def test_worker_processes_give_the_same_rows(tmp_path):
    pts = sweep.make_points([1, 2, 3], [4], [sweep.resolve_formats("8bit")])
    serial = sweep.run_sweep(tiny_model(), pts, tmp_path / "a", None, synth=False, jobs=1)
    lines = []
    parallel = sweep.run_sweep(tiny_model(), pts, tmp_path / "b", None, synth=False, jobs=2, progress=lines.append)
    assert parallel == serial
    assert [s["status"] for s in serial] == ["ok", "ok", "invalid"]
    assert sorted(ln.split("]")[0] for ln in lines) == ["[1/3", "[2/3", "[3/3"]


def test_an_exception_in_a_point_is_a_row(tmp_path, monkeypatch):
    def broken(model):
        raise RuntimeError("estimate exploded\nsecond line")
    monkeypatch.setattr(perf, "estimate", broken)
    pts = sweep.make_points([1], [2], [sweep.resolve_formats("8bit")])
    (row,) = sweep.run_sweep(tiny_model(), pts, tmp_path, None, synth=False, jobs=1)
    assert row["status"] == "error" and row["message"] == "RuntimeError: estimate exploded"
    assert sweep.progress_line(row, 1, 1) == "[1/1] pe=1 simd=2 fmt=8bit: FAILED (error): RuntimeError: estimate exploded"


def test_progress_line_of_a_synthesised_point():
    row = dict.fromkeys(sweep.CSV_FIELDS) | {
        "pe": 2, "simd": 4, "formats": "16bit", "status": "ok", "cycles_per_timestep": 1040, "dsp_used": 14,
        "logic_cells": 4521, "fmax_mhz": 98.12, "latency_us_per_step": 10.6, "max_abs_err": 1.9e-3}
    assert sweep.progress_line(row, 3, 12) == (
        "[3/12] pe=2 simd=4 fmt=16bit: 1040 cyc/step, 14 DSP, 4521 LCs, 98.1 MHz, 10.6 us/step, err 1.9e-03")


def test_plot_with_no_successful_point(tmp_path):
    row = dict.fromkeys(sweep.CSV_FIELDS) | {"id": "x", "status": "invalid"}
    p = sweep.plot_pareto([row], tmp_path / "p.png")
    assert p.read_bytes().startswith(b"\x89PNG")


def test_plot_of_synthesised_points(tmp_path):
    rows = []
    for i, (dsp, lcs, fmax, err) in enumerate([(5, 1500, 40.0, 1e-3), (7, 1600, 45.0, 4e-2), (14, 3000, 30.0, 2e-3)]):
        cyc = 100 - 20 * i
        rows.append(dict.fromkeys(sweep.CSV_FIELDS) | {
            "id": f"p{i}", "status": "ok", "cycles_per_timestep": cyc, "dsp_used": dsp, "logic_cells": lcs,
            "fmax_mhz": fmax, "latency_us_per_step": cyc / fmax, "max_abs_err": err})
    p = sweep.plot_pareto(rows, tmp_path / "p.png", title="t")
    assert p.stat().st_size > 10_000


# -- one real synthesis point ------------------------------------------------------------------------------

def test_real_synth_point_on_up5k(runner, tiny_config, tmp_path):
    """X = H = 4, 8-bit formats, PE = 1, SIMD = 2 on UP5K (about 15 s), beside an invalid point."""
    out = tmp_path / "sweep"
    r = runner.invoke(main, ["sweep", str(tiny_config), "--pe", "1,3", "--simd", "2", "--formats", "8bit",
                             "--target", "ice40-up5k", "--jobs", "1", "-o", str(out)])
    assert r.exit_code == 0, r.output
    ok, bad = read_rows(out / "sweep.csv")
    assert bad["status"] == "invalid"
    assert ok["status"] == "ok", ok["message"]
    assert ok["target"] == "ice40-up5k" and ok["wrapper"] == "serial"
    report = json.loads((out / "points" / ok["id"] / "report.json").read_text())
    assert report["fits"]
    u = report["utilisation"]
    assert int(ok["dsp_used"]) == u["dsp"]["used"] == int(ok["multipliers_predicted"])
    assert int(ok["logic_cells"]) == u["logic"]["used"] > 0 and int(ok["bram_used"]) == u["bram"]["used"]
    assert int(ok["ff"]) == u["ff"]["used"] > 0
    fmax = float(ok["fmax_mhz"])
    assert fmax == pytest.approx(report["fmax"], abs=0.01) and fmax > 0
    assert float(ok["latency_us_per_step"]) == pytest.approx(int(ok["cycles_per_timestep"]) / fmax, rel=1e-3)
    assert f"{ok['dsp_used']} DSP" in r.stdout and "MHz" in r.stdout
    assert "Pareto front (latency_us_per_step vs dsp_used): pe1-simd2-8bit" in r.stdout
    assert (out / "pareto.png").stat().st_size > 10_000
    assert np.isfinite(float(ok["max_abs_err"]))
