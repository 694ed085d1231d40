"""The issue's reference figures: the X = H = 32 16-bit LSTM synthesised against its goals.

A thin flow over library objects (no datapath logic here)::

    from rnnaccel.scripts import bench
    report = bench.run_bench(["ice40-up5k", "ecp5-85k"], "build/bench")
    print(bench.format_table(report))

The reference points (:data:`REFERENCE`):

==============  ===  ====  ========  =============  ====================================
target          PE   SIMD  PE*SIMD   schedule       goal
==============  ===  ====  ========  =============  ====================================
``ice40-up5k``  2    4     8         ``compact``    fits, Fmax >= 48 MHz
``ecp5-85k``    8    4     32        ``pipelined``  fits, Fmax >= 150 MHz
==============  ===  ====  ========  =============  ====================================

(``compact``: :mod:`rnnaccel.hdl.compact`, one activation table and a serial element-wise stage,
what makes the 16-bit LSTM fit the UP5K's 5280 logic cells and 30 block RAMs.)

The model is an LSTM with X = H = 32 and the default 16-bit formats, with random weights
(:func:`rnnaccel.golden.model.random_weights`, scale 0.3, seed 0) or the built-in example
``count_mod4``. Each target is synthesised with :func:`rnnaccel.scripts.synth.synth` into
``OUT/<target>/`` (clock constraint = the goal), in parallel worker processes when memory
allows. The verdicts are honest: a design that does not fit fails both of its goals.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from rnnaccel.golden.model import ConfigError, Formats, Model, random_weights

__all__ = ["REFERENCE", "REFERENCE_SIZE", "WEIGHTS", "reference_model", "bench_target", "run_bench",
           "verdicts", "format_table", "BENCH_FILE"]

BENCH_FILE = "bench.json"

#: Input and hidden size of the reference LSTM.
REFERENCE_SIZE = 32

#: Reference point and goal per target.
REFERENCE = {
    "ice40-up5k": {"pe": 2, "simd": 4, "schedule": "compact", "fmax_goal_mhz": 48.0},
    "ecp5-85k": {"pe": 8, "simd": 4, "schedule": "pipelined", "fmax_goal_mhz": 150.0},
}

#: Weight sources: random uniform in [-0.3, 0.3] (seed 0), or the trained built-in example.
WEIGHTS = ("random", "example")


def reference_model(target: str, weights: str = "random") -> Model:
    """The reference LSTM (X = H = 32, default 16-bit formats) with the target's PE and SIMD."""
    if target not in REFERENCE:
        raise ValueError(f"no reference point for target {target!r}; choose one of {', '.join(REFERENCE)}")
    ref = REFERENCE[target]
    if weights == "random":
        n = REFERENCE_SIZE
        return Model("lstm", n, n, random_weights(n, n, scale=0.3, seed=0), formats=Formats(),
                     pe=ref["pe"], simd=ref["simd"], schedule=ref["schedule"], name="ref32")
    if weights == "example":
        from rnnaccel.golden import examples
        model = examples.load("count_mod4")
        if (model.input_size, model.hidden_size) != (REFERENCE_SIZE, REFERENCE_SIZE):
            raise ConfigError(f"the example count_mod4 is not X = H = {REFERENCE_SIZE}")
        return model.with_formats(**Formats().as_dict()).with_hardware(pe=ref["pe"], simd=ref["simd"],
                                                                       schedule=ref["schedule"])
    raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")


def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def verdicts(entry: dict) -> dict:
    """``{"fits": "PASS"|"FAIL"|"n/a", "fmax": ...}`` of one target's entry.

    ``fits`` is n/a when the flow failed for another reason than size (tool error); a design that
    was not placed has no Fmax, so its Fmax goal FAILs (``n/a`` after a tool error).
    """
    status = entry["status"]
    if status == "ok":
        fits = "PASS" if entry.get("fits") else "FAIL"
        f = entry.get("fmax_mhz")
        fmax = "PASS" if (f is not None and entry.get("fits") and f >= entry["fmax_goal_mhz"]) else "FAIL"
    elif status == "does-not-fit":
        fits, fmax = "FAIL", "FAIL"
    else:
        fits, fmax = "n/a", "n/a"
    return {"fits": fits, "fmax": fmax}


def bench_target(task: dict) -> dict:
    """Synthesise the reference point of one target; never raises (failures are a status).

    ``task``: ``target``, ``out_dir`` (the target's directory), ``seed`` (nextpnr placement),
    ``weights`` (see :data:`WEIGHTS`), optional ``timeout`` (s per tool).
    """
    from rnnaccel.hdl import perf
    from rnnaccel.scripts import synth as flow_synth
    from rnnaccel.scripts.sweep import synth_fields

    target = task["target"]
    ref = REFERENCE[target]
    tgt = flow_synth.TARGETS[target]
    entry = {"target": target, "device": f"{tgt.device} {tgt.package}", "pe": ref["pe"], "simd": ref["simd"], "schedule": ref["schedule"],
             "input_size": REFERENCE_SIZE, "hidden_size": REFERENCE_SIZE, "formats": "16bit",
             "weights": task.get("weights", "random"), "fmax_goal_mhz": ref["fmax_goal_mhz"], "status": "ok",
             "message": "", "fits": None, "fmax_mhz": None, "timing_met": None,
             "dsp": {"used": None, "predicted": None, "available": tgt.dsp_blocks},
             "logic": {"used": None, "available": None}, "bram": {"used": None, "available": tgt.bram_blocks},
             "over": {}, "cycles_per_timestep": None, "latency_us_per_step": None, "synth_dir": task["out_dir"]}
    t0 = time.monotonic()
    try:
        model = reference_model(target, task.get("weights", "random"))
        est = perf.estimate(model)
        entry["cycles_per_timestep"] = est["cycles_per_timestep"]
        entry["dsp"]["predicted"] = est["multipliers"]["total"]
        report = flow_synth.synth(model, task["out_dir"], target, seed=task.get("seed", 1),
                                  freq=ref["fmax_goal_mhz"], timeout=task.get("timeout"))
        f = synth_fields(report)
        entry.update(fits=report["fits"], fmax_mhz=f["fmax_mhz"], timing_met=report["timing_met"],
                     latency_us_per_step=f["latency_us_per_step"], wrapper=f["wrapper"])
        entry["dsp"].update(used=f["dsp_used"], available=f["dsp_available"])
        entry["logic"].update(used=f["logic_cells"], available=f["logic_available"])
        entry["bram"].update(used=f["bram_used"], available=f["bram_available"])
        entry["over"] = {k: {"used": e["used"], "available": e["available"]}
                         for k, e in report["utilisation"].items() if "available" in e and e["used"] > e["available"]}
    except flow_synth.DesignDoesNotFit as e:
        entry.update(status="does-not-fit", fits=False, message=_one_line(e))
        # What nextpnr needed (its utilisation lines), by resource class where the BEL is known.
        bels = {bel: cls for cls, bel in flow_synth._BELS[tgt.family].items()}
        for bel, u in e.utilisation.items():
            cls = bels.get(bel, bel)
            if cls in ("dsp", "logic", "bram"):
                entry[cls].update(used=u["used"], available=u["available"])
            if u["used"] > u["available"]:
                entry["over"][cls] = {"used": u["used"], "available": u["available"]}
    except flow_synth.SynthError as e:
        entry.update(status="tool-error", message=_one_line(e))
    except Exception as e:  # noqa: BLE001 - reported, never fatal
        entry.update(status="error", message=f"{type(e).__name__}: {_one_line(e)}")
    entry["runtime_s"] = round(time.monotonic() - t0, 1)
    entry["verdicts"] = verdicts(entry)
    return entry


def run_bench(targets, out_dir, *, seed: int = 1, weights: str = "random", jobs: int | None = None,
              timeout: float | None = None, progress: Callable[[str], None] | None = None) -> dict:
    """Synthesise the reference point of each target; writes and returns ``OUT/bench.json``.

    Returns
    -------
    dict
        ``targets``: one entry per target (see :func:`bench_target`: status, fits, Fmax vs goal,
        DSPs used/predicted/available, logic, BRAM, cycles and microseconds per timestep,
        ``verdicts``); ``passed``: every goal passed; ``seed``, ``weights``, ``date``.
    """
    from rnnaccel.scripts.sweep import default_jobs, run_tasks

    targets = list(targets)
    for t in targets:
        if t not in REFERENCE:
            raise ValueError(f"no reference point for target {t!r}; choose one of {', '.join(REFERENCE)}")
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output {str(out)!r} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    tasks = [{"target": t, "out_dir": str((out / t).resolve()), "seed": seed, "weights": weights, "timeout": timeout}
             for t in targets]
    if progress:
        for t in targets:
            r = REFERENCE[t]
            progress(f"synthesising {t}: X=H={REFERENCE_SIZE} 16-bit, PE={r['pe']} SIMD={r['simd']}, "
                     f"{r['schedule']} schedule (logs in {out / t})")

    def on_done(i, entry):
        if progress:
            progress(f"{entry['target']} done in {entry['runtime_s']} s: {entry['status']}"
                     + (f" ({entry['message']})" if entry["message"] else ""))

    def on_crash(task, e):
        entry = {"target": task["target"], "status": "error", "message": f"worker process failed: {e}"}
        return entry | {"verdicts": {"fits": "n/a", "fmax": "n/a"}}

    entries = run_tasks(bench_target, tasks, jobs or default_jobs(len(tasks)), on_done, on_crash)
    report = {
        "targets": entries,
        "passed": all(v == "PASS" for e in entries for v in e["verdicts"].values()),
        "seed": seed,
        "weights": weights,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    (out / BENCH_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return report


def _n(v, fmt="{}"):
    return "-" if v is None else fmt.format(v)


def format_table(report: dict) -> str:
    """The report as a table, one row per target, then one PASS/FAIL line per goal."""
    head = (f"{'target':<12} {'PExSIMD':>8} {'fits':>5} {'Fmax MHz':>9} {'goal':>6} {'DSP used/pred/avail':>20} "
            f"{'LUT/LC':>13} {'BRAM':>9} {'cyc/step':>9} {'us/step':>8}")
    lines = [head, "-" * len(head)]
    for e in report["targets"]:
        dsp, logic, bram = e.get("dsp", {}), e.get("logic", {}), e.get("bram", {})
        fits = {True: "yes", False: "NO", None: "?"}[e.get("fits")]
        ps = f"{e['pe']}x{e['simd']}" if "pe" in e else "-"
        lines.append(
            f"{e['target']:<12} {ps:>8} {fits:>5} {_n(e.get('fmax_mhz'), '{:.1f}'):>9} "
            f"{_n(e.get('fmax_goal_mhz'), '{:g}'):>6} "
            f"{_n(dsp.get('used')) + '/' + _n(dsp.get('predicted')) + '/' + _n(dsp.get('available')):>20} "
            f"{_n(logic.get('used')) + '/' + _n(logic.get('available')):>13} "
            f"{_n(bram.get('used')) + '/' + _n(bram.get('available')):>9} "
            f"{_n(e.get('cycles_per_timestep')):>9} {_n(e.get('latency_us_per_step'), '{:.2f}'):>8}")
    if any(e["status"] == "does-not-fit" for e in report["targets"]):
        lines.append("(for a design that does not fit, 'used' is what nextpnr needed)")
    lines.append("")
    for e in report["targets"]:
        v = e["verdicts"]
        why = ""
        if e["status"] == "does-not-fit":
            over = ", ".join(f"{k} {u['used']}/{u['available']}" for k, u in e.get("over", {}).items())
            why = f" (over: {over})" if over else f" ({e['message']})"
        elif e["status"] != "ok":
            why = f" ({e['status']}: {e['message']})"
        got = e.get("fmax_mhz")
        detail = (f" ({got:.1f} MHz)" if got is not None
                  else " (not placed)" if e["status"] == "does-not-fit" else why)
        lines.append(f"{e['target']:<12} {'fits':<18} {v['fits']}{why if v['fits'] != 'PASS' else ''}")
        lines.append(f"{e['target']:<12} {'Fmax >= ' + _n(e.get('fmax_goal_mhz'), '{:g}') + ' MHz':<18} "
                     f"{v['fmax']}{detail}")
    lines.append("")
    lines.append("all goals PASS" if report.get("passed") else "some goals FAIL")
    return "\n".join(lines)
