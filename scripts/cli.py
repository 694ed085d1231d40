"""The ``rnnaccel`` command line: a thin layer over :mod:`rnnaccel.scripts.flow`.

::

    rnnaccel generate CONFIG -o DIR        # CONFIG: a TOML file or a built-in example name
    rnnaccel simulate DIR --sim verilator  # cocotb, bit-exact against the golden model
    rnnaccel demo [--example NAME]         # generate + simulate a built-in example
    rnnaccel examples                      # list the built-in examples
    rnnaccel figures [CONFIG]              # cycles/timestep measured vs model, accuracy vs float
    rnnaccel synth DIR --target ecp5-25k   # Yosys + nextpnr: utilisation and Fmax

Exit codes: 0 success; 1 the simulation found mismatches (or the simulator failed); 2 bad input
(missing directory, bad config, bad option), with a one-line message on stderr.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from rnnaccel.golden.model import ConfigError

__all__ = ["main"]

EXIT_FAIL = 1
EXIT_USAGE = 2


class _Fail(click.ClickException):
    """A one-line error on stderr and an exit code (no usage text, no traceback)."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.exit_code = code

    def show(self, file=None):
        click.echo(f"rnnaccel: error: {self.format_message()}", err=True)


def _status(msg: str):
    click.echo(f"[rnnaccel {time.strftime('%H:%M:%S')}] {msg}", err=True)


def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def _is_table_input(tag: str) -> bool:
    """Saturation tags of table indices (inputs beyond the table's range: clipped by design)."""
    return tag.endswith("_in") or "_in(" in tag


def _fmt_formats(f: dict) -> str:
    return (f"data {f['data']}, weight {f['weight']}, cell {f['cell']}, sigmoid {f['sigmoid_in']}->"
            f"{f['sigmoid_out']}, tanh {f['tanh_in']}->{f['tanh_out']}, accumulator {f['accumulator']}")


def _model_line(m: dict) -> str:
    return (f"{m['name']}: {m['cell'].upper()} X={m['input_size']} H={m['hidden_size']}, "
            f"PE={m['pe']} SIMD={m['simd']}, {m['rounding']}/{m['overflow']}")


def _print_generate(summary: dict, out: Path):
    m, p, v, g = summary["model"], summary["perf"], summary["vectors"], summary["golden"]
    clips = {k: v for k, v in g["saturation"].items() if v and _is_table_input(k)}
    overflows = {k: v for k, v in g["saturation"].items() if v and not _is_table_input(k)}
    lines = [
        f"generated {out}",
        f"  model        {_model_line(m)}",
        f"  formats      {_fmt_formats(m['formats'])}",
        f"  cycles/step  {p['cycles_per_timestep']} ({p['mac_cycles_per_timestep']} MAC + "
        f"{p['pipeline_latency']} pipeline), multipliers {p['multipliers']['total']}, "
        f"ROM {p['memory_bits']['total']} bits",
        f"  vectors      {v['sequences']} sequences, {v['timesteps']} timesteps "
        f"({v['min_len']}-{v['max_len']} steps, {v['source']}, seed {v['seed']})",
        f"  golden       max |h - float| {g['max_abs_error_vs_float']:.3g} "
        f"({g['max_abs_error_vs_float'] / g['lsb']:.1f} LSB), "
        + (f"overflows {overflows}" if overflows else "no overflow")
        + (f"; table inputs clipped to the table range: {sum(clips.values())}" if clips else ""),
        f"  files        {', '.join(summary['files'])}",
    ]
    click.echo("\n".join(lines))


def _print_simulate(r: dict):
    m = r["model"]
    ok = r["passed"]
    cpt, model_cpt = r.get("cycles_per_timestep"), r["cycles_per_timestep_model"]
    if r.get("cycles_per_timestep_min") is None:
        cpt_text = f"not measured, {model_cpt} predicted"
    elif r["cycles_per_timestep_min"] == r["cycles_per_timestep_max"]:
        cpt_text = (f"{cpt} measured, {model_cpt} predicted  "
                    + ("OK" if cpt == model_cpt else "DIFFERENT"))
    else:
        cpt_text = (f"{r['cycles_per_timestep_min']}..{r['cycles_per_timestep_max']} measured, "
                    f"{model_cpt} predicted  DIFFERENT")
    err = r.get("max_abs_error_vs_float")
    g = r.get("golden", {})
    err_text = "n/a" if err is None else f"{err:.3g}"
    if err is not None and g.get("max_abs_error_vs_float") is not None:
        err_text += f" (golden model vs float: {g['max_abs_error_vs_float']:.3g})"
    lines = [
        f"simulated {r['build_dir']} with {r['simulator']}",
        f"  model        {_model_line(m)}",
        f"  formats      {_fmt_formats(m['formats'])}",
        f"  streams      s_axis_tdata {r['s_axis_tdata_width']} bits, m_axis_tdata {r['m_axis_tdata_width']} bits",
        f"  traffic      {r['sequences']} sequences, {r['timesteps']} timesteps back to back, idle {r['idle']}, "
        f"backpressure {r['backpressure']}, seed {r['seed']}",
        f"  cycles/step  {cpt_text}",
        f"  mismatches   {r['mismatches']} of {r['timesteps']} timesteps"
        + (f" ({r['element_mismatches']} elements)" if r["mismatches"] else "")
        + f", tlast errors {r['tlast_errors']}, frame errors {r['frame_errors']}",
        f"  max |h - float|  {err_text}",
        f"  time         build {r['build_s']:.1f} s, simulation {r['sim_s']:.1f} s ({r['sim_cycles']} cycles)",
    ]
    for mm in r.get("first_mismatches", [])[:5]:
        lines.append(f"  mismatch     {mm}")
    for e in r.get("errors", []):
        lines.append(f"  error        {e}")
    lines.append("PASSED" if ok else "FAILED")
    click.echo("\n".join(lines))


def _generate(config, out, *, sequences, min_len, max_len, seed, pe=None, simd=None) -> dict:
    from rnnaccel.scripts import flow
    try:
        model = flow.resolve_model(config, pe=pe, simd=simd)
        return flow.generate(model, out, sequences=sequences, min_len=min_len, max_len=max_len, seed=seed,
                             status=_status)
    except (ConfigError, ValueError, TypeError, OSError) as e:
        raise _Fail(_one_line(e)) from None


def _simulate(build_dir, sim, *, seed, idle, backpressure, json_out=None) -> dict:
    from rnnaccel.scripts import flow
    from rnnaccel.sim.runner import SimulationError
    try:
        return flow.simulate(build_dir, sim, seed=seed, idle=idle, backpressure=backpressure,
                             json_out=json_out, status=_status)
    except (FileNotFoundError, NotADirectoryError, ValueError) as e:
        raise _Fail(_one_line(e)) from None
    except SimulationError as e:
        lines = str(e).splitlines()
        raise _Fail(lines[0] if lines else "simulation failed", EXIT_FAIL) from None


class _Group(click.Group):
    """Click group whose usage errors are one line on stderr (exit 2), like every other bad input."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rc = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as e:
            hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
            click.echo(f"rnnaccel: error: {e.format_message()}{hint}", err=True)
            sys.exit(EXIT_USAGE)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("rnnaccel: aborted", err=True)
            sys.exit(EXIT_FAIL)
        if standalone_mode:
            sys.exit(rc if isinstance(rc, int) else 0)
        return rc


_SIM = click.Choice(["verilator", "icarus"])
_PROB = click.FloatRange(0.0, 1.0, max_open=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rnnaccel", prog_name="rnnaccel")
def main():
    """Fixed-point LSTM accelerator generator (Amaranth HDL) with a bit-exact golden model."""


@main.command()
@click.argument("config")
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Build directory to write (created if missing).")
@click.option("--sequences", default=20, show_default=True, type=click.IntRange(min=1),
              help="Test sequences to generate.")
@click.option("--min-len", default=10, show_default=True, type=click.IntRange(min=1), help="Shortest sequence.")
@click.option("--max-len", default=50, show_default=True, type=click.IntRange(min=1), help="Longest sequence.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the test inputs.")
@click.option("--pe", type=click.IntRange(min=1), help="Override the processing elements (must divide H).")
@click.option("--simd", type=click.IntRange(min=1), help="Override the multipliers per PE.")
def generate(config, out, sequences, min_len, max_len, seed, pe, simd):
    """Generate Verilog, golden test vectors and a cycle/resource summary.

    CONFIG is a model TOML file or the name of a built-in example (see 'rnnaccel examples').
    Writes rnnaccel_top.v, model.toml/.npz, vectors.npz and summary.json into the output directory.
    """
    summary = _generate(config, out, sequences=sequences, min_len=min_len, max_len=max_len, seed=seed,
                        pe=pe, simd=simd)
    _print_generate(summary, out)


@main.command()
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option("--sim", default="verilator", show_default=True, type=_SIM, help="Simulator.")
@click.option("--json", "as_json", is_flag=True, help="Print only the results as JSON on stdout.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the idle/backpressure patterns.")
@click.option("--idle", default=0.3, show_default=True, type=_PROB,
              help="Probability of an idle input cycle.")
@click.option("--backpressure", default=0.3, show_default=True, type=_PROB,
              help="Probability of output backpressure (tready low) per cycle.")
def simulate(build_dir, sim, as_json, seed, idle, backpressure):
    """Simulate a build directory with cocotb and check every timestep bit-exactly.

    Sends every test sequence as an AXI4-Stream frame (random idle cycles in, random backpressure
    out), compares each h_t with the golden model, checks tlast, then measures cycles per timestep
    with the streams free-running. Exits 1 on any mismatch. Results also go to
    BUILD_DIR/sim_<sim>/results.json.
    """
    r = _simulate(build_dir, sim, seed=seed, idle=idle, backpressure=backpressure)
    if as_json:
        click.echo(json.dumps(r, indent=2))
    else:
        _print_simulate(r)
    if not r["passed"]:
        sys.exit(EXIT_FAIL)


@main.command()
@click.option("--example", default=None, help="Built-in example (default: the first one listed).")
@click.option("--sim", default="verilator", show_default=True, type=_SIM, help="Simulator.")
@click.option("-o", "--output", "out", type=click.Path(file_okay=False, path_type=Path),
              help="Build directory (default: build/demo-<example>).")
@click.option("--sequences", default=20, show_default=True, type=click.IntRange(min=1),
              help="Test sequences to generate.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of inputs and pauses.")
def demo(example, sim, out, sequences, seed):
    """Generate and simulate a built-in example, with a readable summary."""
    from rnnaccel.scripts import flow
    names = flow.example_names()
    if example is not None and example not in names:
        raise _Fail(f"unknown example {example!r}; "
                    + (f"choose one of {', '.join(names)}" if names else "no built-in examples are available"))
    if not names:
        raise _Fail("no built-in examples are available")
    example = example or names[0]
    out = out or Path("build") / f"demo-{example}"
    summary = _generate(example, out, sequences=sequences, min_len=10, max_len=50, seed=seed)
    _print_generate(summary, out)
    click.echo()
    r = _simulate(out, sim, seed=seed, idle=0.3, backpressure=0.3)
    _print_simulate(r)
    if not r["passed"]:
        sys.exit(EXIT_FAIL)


@main.command()
def examples():
    """List the built-in example models."""
    from rnnaccel.scripts import flow
    names = flow.example_names()
    if not names:
        click.echo("no built-in examples are available")
        return
    from rnnaccel.golden import examples as ex
    for name in names:
        try:
            m = ex.load(name)
            click.echo(f"{name:20s} {m.cell.upper()} X={m.input_size} H={m.hidden_size} PE={m.pe} SIMD={m.simd}  "
                       f"data {m.formats.data}, weight {m.formats.weight}")
        except Exception as e:  # a broken example should not hide the others
            click.echo(f"{name:20s} (cannot load: {_one_line(e)})")


@main.command()
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option("--target", required=True, type=click.Choice(["ice40-up5k", "ecp5-25k", "ecp5-45k", "ecp5-85k"]),
              help="FPGA part.")
@click.option("--seed", default=1, show_default=True, type=int, help="nextpnr placement seed.")
@click.option("--freq", type=click.FloatRange(min=0, min_open=True), help="Target clock in MHz (nextpnr --freq).")
@click.option("--wrapper", default="auto", show_default=True, type=click.Choice(["auto", "axis", "serial"]),
              help="Top level: wide AXI4-Stream ports, the byte-serialised wrapper, or whichever fits the pins.")
def synth(build_dir, target, seed, freq, wrapper):
    """Synthesise a build directory with Yosys and nextpnr (yowasp): utilisation and Fmax.

    Reads BUILD_DIR/model.toml (written by 'rnnaccel generate') and writes logs, report.json and
    summary.txt into BUILD_DIR/synth/TARGET/. Exits 1 if the design does not fit or a tool fails.
    """
    from rnnaccel.golden.model import load
    from rnnaccel.scripts import synth as flow_synth
    cfg = Path(build_dir) / "model.toml"
    if not cfg.exists():
        raise _Fail(f"{build_dir} is not a build directory (no model.toml); run 'rnnaccel generate' first")
    try:
        model = load(cfg)
    except ConfigError as e:
        raise _Fail(_one_line(e)) from None
    out = Path(build_dir) / "synth" / target
    try:
        report = flow_synth.synth(model, out, target, seed=seed, freq=freq, wrapper=wrapper,
                                  progress=lambda step, msg: _status(f"{step}: {msg}"))
    except flow_synth.SynthError as e:
        raise _Fail(f"synthesis for {target} failed: {_one_line(e)} (logs in {out})", EXIT_FAIL) from None
    click.echo(flow_synth.format_summary(report))


@main.command()
@click.argument("config", required=False)
@click.option("--steps", default=3, show_default=True, type=click.IntRange(min=2),
              help="Timesteps simulated per parallelism point.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def figures(config, steps, as_json):
    """Cycles per timestep (analytic vs measured) and accuracy vs float, for a model.

    CONFIG is a model TOML or a built-in example (default: the first example). Cycles are measured
    in Amaranth simulation at PE*SIMD = 1, 8 and 32 with the streams free-running; accuracy is the
    bit-exact golden model (= the hardware) against the float reference over 20 sequences of 50
    steps, for the config's formats and for 8-bit weights (s8.6).
    """
    from rnnaccel.scripts import flow
    from rnnaccel.scripts import figures as fig
    names = flow.example_names()
    config = config or (names[0] if names else None)
    if config is None:
        raise _Fail("no CONFIG given and no built-in example available")
    try:
        model = flow.resolve_model(config)
    except (ConfigError, ValueError, OSError) as e:
        raise _Fail(_one_line(e)) from None
    seqs, source = flow.make_inputs(model, 20, 50, 50, 0)
    cycles = fig.cycle_figures(model, steps=steps, progress=_status)
    acc = [fig.accuracy_figures(model, seqs), fig.accuracy_figures(model, seqs, weight="s8.6")]
    if as_json:
        click.echo(json.dumps({"model": model.summary(), "cycles": cycles, "accuracy": acc,
                               "inputs": source}, indent=2))
        return
    click.echo(f"{_model_line(model.summary())}; inputs: {source}")
    click.echo("\ncycles per timestep (X={}, H={}):".format(model.input_size, model.hidden_size))
    click.echo(f"  {'PE':>3} {'SIMD':>4} {'PExSIMD':>7} {'model':>7} {'measured':>9} {'MAC bound':>9} "
               f"{'bound+16':>8}  {'multipliers':>11}")
    for r in cycles:
        if "error" in r:
            click.echo(f"  {r['pe']:>3} {r['simd']:>4} {r['pe_x_simd']:>7}  not possible: {r['error']}")
            continue
        meas = (str(r["cycles_measured_min"]) if r["cycles_measured_min"] == r["cycles_measured_max"]
                else f"{r['cycles_measured_min']}..{r['cycles_measured_max']}")
        flag = ("exact" if r["exact"] else "DIFFERENT") + (", within bound" if r["within_bound"] else ", OVER bound")
        click.echo(f"  {r['pe']:>3} {r['simd']:>4} {r['pe_x_simd']:>7} {r['cycles_model']:>7} {meas:>9} "
                   f"{r['mac_bound']:>9} {r['bound_plus_16']:>8}  {r['multipliers']:>11}  {flag}")
    click.echo("\naccuracy, hardware (= golden) vs float, 20 sequences x 50 steps:")
    for a in acc:
        f = a["formats"]
        # Table inputs beyond the table's range are clipped by design; everything else is an overflow.
        clips = sum(v for k, v in a["saturation"].items() if _is_table_input(k))
        over = {k: v for k, v in a["saturation"].items() if v and not _is_table_input(k)}
        click.echo(f"  weight {f['weight']:>7} data {f['data']:>7}: max |h - float| = {a['max_abs_error']:.3g} "
                   f"({'within' if a['within_bound'] else 'above'} 2^-7 = {a['bound']:.4g}); "
                   f"overflows: {over or 'none'}; table-range clips: {clips}")


if __name__ == "__main__":
    main()
