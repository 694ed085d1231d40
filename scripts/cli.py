"""The ``rnnaccel`` command line: a thin layer over :mod:`rnnaccel.scripts.flow`.

::

    rnnaccel generate CONFIG -o DIR        # CONFIG: a TOML file or a built-in example name
    rnnaccel simulate DIR --sim verilator  # cocotb, bit-exact against the golden model
    rnnaccel demo [--example NAME]         # generate + simulate a built-in example
    rnnaccel examples                      # list the built-in examples

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


def _fmt_formats(f: dict) -> str:
    return (f"data {f['data']}, weight {f['weight']}, cell {f['cell']}, sigmoid {f['sigmoid_in']}->"
            f"{f['sigmoid_out']}, tanh {f['tanh_in']}->{f['tanh_out']}, accumulator {f['accumulator']}")


def _model_line(m: dict) -> str:
    return (f"{m['name']}: {m['cell'].upper()} X={m['input_size']} H={m['hidden_size']}, "
            f"PE={m['pe']} SIMD={m['simd']}, {m['rounding']}/{m['overflow']}")


def _print_generate(summary: dict, out: Path):
    m, p, v, g = summary["model"], summary["perf"], summary["vectors"], summary["golden"]
    sat = g["saturation_total"]
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
        + (f"{sat} saturation event(s): {g['saturation']}" if sat else "no saturation"),
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


if __name__ == "__main__":
    main()
