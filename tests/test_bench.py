"""``rnnaccel bench``: reference points, verdicts and table (fabricated reports), CLI options, runs."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from rnnaccel.golden.model import Formats, Model, random_weights
from rnnaccel.hdl import perf
from rnnaccel.scripts import bench
from rnnaccel.scripts.cli import main


@pytest.fixture
def runner():
    return CliRunner()


def entry(target, **kw):
    """A fabricated target entry in the shape bench_target returns."""
    e = {"target": target, "pe": 2, "simd": 4, "fmax_goal_mhz": bench.REFERENCE[target]["fmax_goal_mhz"],
         "status": "ok", "message": "", "fits": True, "fmax_mhz": None,
         "dsp": {"used": None, "predicted": 14, "available": 8}, "logic": {"used": None, "available": None},
         "bram": {"used": None, "available": 30}, "over": {}, "cycles_per_timestep": 1040,
         "latency_us_per_step": None}
    e.update(kw)
    e["verdicts"] = bench.verdicts(e)
    return e


def report_of(*entries):
    return {"targets": list(entries),
            "passed": all(v == "PASS" for e in entries for v in e["verdicts"].values())}


# -- reference points --------------------------------------------------------------------------------------

def test_reference_points_are_the_issues():
    # Issue 4: X = H = 32, 16 bits; PE*SIMD = 8 on UP5K (>= 48 MHz), 32 on ECP5-85k (>= 150 MHz).
    for target, pe_x_simd, goal in (("ice40-up5k", 8, 48.0), ("ecp5-85k", 32, 150.0)):
        m = bench.reference_model(target)
        assert (m.input_size, m.hidden_size, m.formats) == (32, 32, Formats())
        assert m.pe * m.simd == pe_x_simd and bench.REFERENCE[target]["fmax_goal_mhz"] == goal
        assert m.weights["weight_hh_l0"].max() <= 0.3 and m.weights["weight_hh_l0"].min() >= -0.3
    # The UP5K point runs the compact schedule (one table, serial element-wise stage), the ECP5 one pipelined.
    assert [bench.reference_model(t).schedule for t in ("ice40-up5k", "ecp5-85k")] == ["compact", "pipelined"]
    ex = bench.reference_model("ecp5-85k", weights="example")
    assert (ex.input_size, ex.hidden_size, ex.pe, ex.simd, ex.formats) == (32, 32, 8, 4, Formats())
    with pytest.raises(ValueError, match="no reference point for target 'ecp5-25k'"):
        bench.reference_model("ecp5-25k")
    with pytest.raises(ValueError, match="weights must be one of random, example"):
        bench.reference_model("ecp5-85k", weights="trained")


# -- verdicts and table from fabricated reports ------------------------------------------------------------

def test_verdicts():
    assert bench.verdicts(entry("ecp5-85k", fmax_mhz=151.0)) == {"fits": "PASS", "fmax": "PASS"}
    assert bench.verdicts(entry("ecp5-85k", fmax_mhz=150.0)) == {"fits": "PASS", "fmax": "PASS"}   # goal is >=
    assert bench.verdicts(entry("ecp5-85k", fmax_mhz=95.3)) == {"fits": "PASS", "fmax": "FAIL"}
    assert bench.verdicts(entry("ice40-up5k", status="does-not-fit", fits=False)) == {"fits": "FAIL", "fmax": "FAIL"}
    # nextpnr placed it but some class is over (fits False): a fast clock does not make it pass.
    assert bench.verdicts(entry("ice40-up5k", fits=False, fmax_mhz=60.0)) == {"fits": "FAIL", "fmax": "FAIL"}
    assert bench.verdicts(entry("ice40-up5k", status="tool-error", fits=None)) == {"fits": "n/a", "fmax": "n/a"}


def test_table_of_a_failing_report():
    up5k = entry("ice40-up5k", status="does-not-fit", fits=False,
                 message="the design does not fit iCE40UP5K SG48: ICESTORM_LC 7543/5280, ICESTORM_DSP 14/8",
                 dsp={"used": 14, "predicted": 14, "available": 8}, logic={"used": 7543, "available": 5280},
                 bram={"used": 80, "available": 30},
                 over={"logic": {"used": 7543, "available": 5280}, "dsp": {"used": 14, "available": 8}})
    ecp5 = entry("ecp5-85k", pe=8, simd=4, fmax_mhz=95.31, cycles_per_timestep=272, latency_us_per_step=2.854,
                 dsp={"used": 56, "predicted": 56, "available": 156}, logic={"used": 9700, "available": 83640},
                 bram={"used": 64, "available": 208})
    text = bench.format_table(report_of(up5k, ecp5))
    lines = text.splitlines()
    row_up5k = next(ln for ln in lines if ln.startswith("ice40-up5k") and "2x4" in ln)
    assert row_up5k.split() == ["ice40-up5k", "2x4", "NO", "-", "48", "14/14/8", "7543/5280", "80/30", "1040", "-"]
    row_ecp5 = next(ln for ln in lines if ln.startswith("ecp5-85k") and "8x4" in ln)
    assert row_ecp5.split() == ["ecp5-85k", "8x4", "yes", "95.3", "150", "56/56/156", "9700/83640", "64/208",
                                "272", "2.85"]
    verdict = [" ".join(ln.split()) for ln in lines if ln.split()[1:2] in (["fits"], ["Fmax"])]
    assert verdict == [
        "ice40-up5k fits FAIL (over: logic 7543/5280, dsp 14/8)",
        "ice40-up5k Fmax >= 48 MHz FAIL (not placed)",
        "ecp5-85k fits PASS",
        "ecp5-85k Fmax >= 150 MHz FAIL (95.3 MHz)",
    ]
    assert "what nextpnr needed" in text
    assert lines[-1] == "some goals FAIL"


def test_table_of_a_passing_report_and_a_tool_error():
    ok = entry("ecp5-85k", pe=8, simd=4, fmax_mhz=160.0, latency_us_per_step=1.7)
    text = bench.format_table(report_of(ok))
    lines = [" ".join(ln.split()) for ln in text.splitlines()]
    assert lines[-1] == "all goals PASS"
    assert "ecp5-85k Fmax >= 150 MHz PASS (160.0 MHz)" in lines and "ecp5-85k fits PASS" in lines
    err = entry("ice40-up5k", status="tool-error", fits=None, message="Yosys failed (exit code 1) for ice40-up5k")
    lines = [" ".join(ln.split()) for ln in bench.format_table(report_of(err)).splitlines()]
    assert "ice40-up5k fits n/a (tool-error: Yosys failed (exit code 1) for ice40-up5k)" in lines
    assert "ice40-up5k Fmax >= 48 MHz n/a (tool-error: Yosys failed (exit code 1) for ice40-up5k)" in lines
    assert lines[-1] == "some goals FAIL"


# -- command line --------------------------------------------------------------------------------------------

def test_help_lists_the_options(runner):
    r = runner.invoke(main, ["bench", "--help"])
    assert r.exit_code == 0
    for opt in ("--target", "--seed", "--weights", "--jobs", "-o", "--json", "ice40-up5k", "ecp5-85k"):
        assert opt in r.output


@pytest.mark.parametrize("args,message", [
    (["--target", "ecp5-25k", "-o", "x"], "--target"),
    (["--target", "all"], "-o"),
    (["--jobs", "0", "-o", "x"], "--jobs"),
    (["--weights", "trained", "-o", "x"], "--weights"),
    (["--seed", "one", "-o", "x"], "--seed"),
], ids=["target", "missing-output", "jobs", "weights", "seed"])
def test_bad_options_exit_2_with_one_line(runner, args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(main, ["bench"] + args)
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("rnnaccel: error:") and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_output_that_is_a_file_exits_2(runner, tmp_path):
    (tmp_path / "f").write_text("")
    r = runner.invoke(main, ["bench", "-o", str(tmp_path / "f")])
    assert r.exit_code == 2 and "is a file" in r.stderr


# -- the flow on a stand-in model (a real, small synthesis) ------------------------------------------------

def test_bench_flow_on_a_small_stand_in(tmp_path, monkeypatch):
    """The whole flow on X = H = 4, 8-bit, PE = 1, SIMD = 2 for UP5K (about 15 s), in this process."""
    small = Model("lstm", 4, 4, random_weights(4, 4, scale=0.3, seed=0), pe=1, simd=2, name="small",
                  formats=Formats(data="s8.5", weight="s8.6", cell="s8.4", sigmoid_in="s8.4", sigmoid_out="u8.8",
                                  tanh_in="s8.5", tanh_out="s8.7"))
    monkeypatch.setattr(bench, "REFERENCE", {"ice40-up5k": {"pe": 1, "simd": 2, "schedule": "pipelined",
                                                            "fmax_goal_mhz": 1.0}})
    monkeypatch.setattr(bench, "reference_model", lambda target, weights="random": small)
    lines = []
    report = bench.run_bench(["ice40-up5k"], tmp_path, jobs=1, progress=lines.append)
    (e,) = report["targets"]
    assert e["status"] == "ok", e["message"]
    synth_report = json.loads((tmp_path / "ice40-up5k" / "report.json").read_text())
    assert e["fits"] is synth_report["fits"] is True
    assert e["dsp"] == {"used": synth_report["utilisation"]["dsp"]["used"],
                        "predicted": perf.multiplier_count(small)["total"],
                        "available": synth_report["utilisation"]["dsp"]["available"]}
    assert e["fmax_mhz"] == pytest.approx(synth_report["fmax"], abs=0.01)
    assert e["cycles_per_timestep"] == perf.cycles_per_timestep(small)
    assert e["latency_us_per_step"] == pytest.approx(e["cycles_per_timestep"] / e["fmax_mhz"], rel=1e-3)
    assert e["verdicts"] == {"fits": "PASS", "fmax": "PASS"} and report["passed"]      # goal 1 MHz
    assert bench.verdicts(e | {"fmax_goal_mhz": 10_000.0})["fmax"] == "FAIL"
    assert json.loads((tmp_path / bench.BENCH_FILE).read_text()) == report
    assert any("done in" in ln for ln in lines)


# -- the real bench (slow: UP5K about 3 minutes, ECP5-85k about 10) ----------------------------------------

@pytest.mark.slow
def test_real_bench_all_targets(runner, tmp_path):
    r = runner.invoke(main, ["bench", "--target", "all", "-o", str(tmp_path)])
    assert r.exit_code in (0, 1), r.output
    report = json.loads((tmp_path / bench.BENCH_FILE).read_text())
    by_target = {e["target"]: e for e in report["targets"]}
    assert set(by_target) == set(bench.REFERENCE)
    for target, e in by_target.items():
        assert e["status"] in ("ok", "does-not-fit"), e["message"]
        assert e["dsp"]["predicted"] == perf.multiplier_count(bench.reference_model(target))["total"]
        assert set(e["verdicts"].values()) <= {"PASS", "FAIL"}
        assert f"{target:<12} fits" in r.stdout
    assert by_target["ecp5-85k"]["fits"] and by_target["ecp5-85k"]["fmax_mhz"] > 0
    assert r.exit_code == (0 if report["passed"] else 1)
