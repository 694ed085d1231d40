"""Board builds: ``rnnaccel build-board`` (the design, Yosys, nextpnr, icepack/ecppack, the report).

The default run builds one small LSTM (X = H = 4, 8-bit) for the iCEBreaker for real through the
command line (about 35 s once the YoWASP cache is warm); the ULX3S build is ``-m slow`` (about
1-2 min). Argument errors and a design that does not fit are checked with stand-in tools.
"""

from __future__ import annotations

import gc
import json
import sys

import pytest
from click.testing import CliRunner

from rnnaccel.golden.model import Formats, Model, random_weights, save
from rnnaccel.hdl.board import BOARDS, BoardDesign, BoardTop
from rnnaccel.scripts import board as board_flow
from rnnaccel.scripts.cli import main

SMALL = Formats(data="s8.5", weight="s8.6", cell="s10.6", sigmoid_in="s7.3", sigmoid_out="u8.8",
                tanh_in="s7.4", tanh_out="s8.7")


def small_model(**kw):
    """X = H = 4, 8-bit, PE=1 SIMD=2: 5 multipliers, fits the UP5K (tests/test_synth.py)."""
    return Model("lstm", 4, 4, random_weights(4, 4, seed=1), formats=SMALL, pe=1, simd=2, name="lstm4", **kw)


def build_dir(tmp_path, model):
    """What 'rnnaccel generate' leaves for build-board: DIR/model.toml (+ .npz)."""
    d = tmp_path / "build"
    save(model, d / "model.toml")
    return d


def _error(r, code, *words):
    assert r.exit_code == code, r.output
    assert "Traceback" not in r.output
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("rnnaccel: error:")]
    assert len(errors) == 1 and r.stderr.strip().splitlines()[-1] == errors[0], r.stderr
    err = errors[0]
    for w in words:
        assert w in err, err


# -- the boards and the design (no tools) -------------------------------------------------------------------

def test_boards_and_their_platforms():
    assert set(BOARDS) == set(board_flow.BOARD_NAMES) == {"icebreaker", "ulx3s-85f"}
    ice, ulx = BOARDS["icebreaker"].platform(), BOARDS["ulx3s-85f"].platform()
    assert (ice.device, ice.package, ice.default_clk_frequency) == ("iCE40UP5K", "SG48", 12e6)
    assert (ulx.device, ulx.package, ulx.default_clk_frequency) == ("LFE5U-85F", "BG381", 25e6)
    assert (BOARDS["icebreaker"].clock_mhz, BOARDS["ulx3s-85f"].clock_mhz) == (12.0, 25.0)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_board_top_arguments():
    model = small_model()
    top = BoardTop(model, 12e6, 115200)
    assert (top.divisor, top.fifo_depth, top.format.in_frame_bytes) == (104, 512, 5)
    with pytest.raises(ValueError, match=r"too high for a 12 MHz clock"):
        BoardTop(model, 12e6, 4_000_000)
    with pytest.raises(ValueError, match=r"fifo_depth must be an integer of at least one input frame \(5 bytes\)"):
        BoardTop(model, 12e6, 115200, fifo_depth=4)
    with pytest.raises(TypeError, match="needs a rnnaccel Model"):
        BoardTop("model", 12e6)
    del top
    gc.collect()


def test_platform_files_of_both_boards():
    model = small_model()
    for name, (pins, clock) in {"icebreaker": (["set_io uart_0__rx__io 6", "set_io uart_0__tx__io 9",
                                                "set_io led_0__io 11"], "set_frequency clk12_0__io 12.0"),
                                "ulx3s-85f": (['LOCATE COMP "uart_0__rx__io" SITE "M1"',
                                               'LOCATE COMP "uart_0__tx__io" SITE "L4"'],
                                              'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ')}.items():
        plan = BOARDS[name].platform().prepare(BoardDesign(model), name="t")
        text = plan.files["t.pcf" if name == "icebreaker" else "t.lpf"]
        for line in pins + [clock]:
            assert line in text, (name, line)


def test_clock_constraint_override():
    pcf = "set_io clk12_0__io 35\nset_frequency clk12_0__io 12.0\n"
    assert board_flow._set_clock_constraint(pcf, ".pcf", 20) == "set_io clk12_0__io 35\nset_frequency clk12_0__io 20\n"
    lpf = 'LOCATE COMP "clk25_0__io" SITE "G2";\nFREQUENCY PORT "clk25_0__io" 25000000.0 HZ;\n'
    assert 'FREQUENCY PORT "clk25_0__io" 50000000.0 HZ;' in board_flow._set_clock_constraint(lpf, ".lpf", 50)
    with pytest.raises(board_flow.ToolError, match="expected one clock constraint"):
        board_flow._set_clock_constraint("set_io a 1\n", ".pcf", 20)


# -- command-line errors -------------------------------------------------------------------------------------

def test_build_board_bad_input(tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["build-board", str(tmp_path / "nothing"), "--board", "icebreaker"])
    _error(r, 2, "not a build directory", "rnnaccel generate")
    d = build_dir(tmp_path, small_model())
    r = runner.invoke(main, ["build-board", str(d), "--board", "icebreaker", "--baud", "4000000"])
    _error(r, 2, "baud rate 4e+06 is too high for a 12 MHz clock")
    r = runner.invoke(main, ["build-board", str(d), "--board", "icebreaker", "--baud", "1800000"])
    _error(r, 2, "divisor 7 gives 1714285.7 baud, 4.76 % off")
    r = runner.invoke(main, ["build-board", str(d), "--board", "arty"])
    assert r.exit_code == 2 and "'arty' is not one of 'icebreaker', 'ulx3s-85f'" in r.stderr


FAKE_YOSYS = """
import sys, pathlib
pathlib.Path("rnnaccel_board.json").write_text("{}")
"""

FAKE_NEXTPNR = """
print("Info: Device utilisation:")
print("Info: \\t         ICESTORM_LC:    6640/   5280   125%")
print("Info: \\t        ICESTORM_DSP:      14/      8   175%")
print("ERROR: Unable to place cell 'x', no BELs remaining to implement cell type 'ICESTORM_DSP'")
raise SystemExit(1)
"""


def test_design_that_does_not_fit_is_exit_1(tmp_path, monkeypatch):
    for name, text in (("yosys", FAKE_YOSYS), ("nextpnr", FAKE_NEXTPNR)):
        (tmp_path / f"{name}.py").write_text(text)
    monkeypatch.setenv("RNNACCEL_YOSYS", f"{sys.executable} {tmp_path / 'yosys.py'}")
    monkeypatch.setenv("RNNACCEL_NEXTPNR_ICE40", f"{sys.executable} {tmp_path / 'nextpnr.py'}")
    d = build_dir(tmp_path, small_model())
    r = CliRunner().invoke(main, ["build-board", str(d), "--board", "icebreaker"])
    _error(r, 1, "board build for icebreaker failed: the design does not fit the 1BitSquared iCEBreaker",
           "ICESTORM_LC 6640/5280", "ICESTORM_DSP 14/8", "logs in")
    with pytest.raises(board_flow.DesignDoesNotFit) as e:
        board_flow.build_board(small_model(), tmp_path / "api", "icebreaker")
    assert e.value.over == ["ICESTORM_LC", "ICESTORM_DSP"]


# -- real builds -----------------------------------------------------------------------------------------

def _check_build(r, out, board, clock):
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    bit = out / report["bitstream"]["file"]
    assert bit.is_file() and bit.stat().st_size == report["bitstream"]["bytes"] > 10_000
    assert bit.suffix == BOARDS[board].bitstream
    assert report["fits"] and report["board"] == board and report["clock_mhz"] == clock
    assert report["freq_constraint_mhz"] == clock
    assert report["fmax"] > 0 and report["timing_met"] == (report["fmax"] >= clock)
    assert report["uart"]["baud"] == 115200 and report["link"]["in_frame_bytes"] == 5
    u = report["utilisation"]
    assert u["io"]["used"] >= 3 and u["dsp"]["used"] == 5 and u["logic"]["used"] > 0
    summary = (out / "summary.txt").read_text()
    assert "Fmax" in summary and f"vs {clock:g} MHz board clock" in summary and report["bitstream"]["file"] in summary
    assert "Fmax" in r.stdout and "bitstream" in r.stdout
    return report


def test_build_board_icebreaker(tmp_path):
    d = build_dir(tmp_path, small_model())
    r = CliRunner().invoke(main, ["build-board", str(d), "--board", "icebreaker", "--seed", "1"])
    out = d / "board" / "icebreaker"
    report = _check_build(r, out, "icebreaker", 12.0)
    assert report["uart"]["divisor"] == 104
    assert report["bitstream"]["bytes"] == 104090                      # every UP5K image has this size
    assert report["timing_met"]                                         # about 36 MHz, 3x the 12 MHz clock


@pytest.mark.slow
def test_build_board_ulx3s(tmp_path):
    d = build_dir(tmp_path, small_model())
    r = CliRunner().invoke(main, ["build-board", str(d), "--board", "ulx3s-85f"])
    report = _check_build(r, d / "board" / "ulx3s-85f", "ulx3s-85f", 25.0)
    assert report["uart"]["divisor"] == 217 and report["timing_met"]
