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
    topo = []
    if m.get("num_layers", 1) > 1:
        topo.append(f"{m['num_layers']} layers")
    if m.get("bidirectional"):
        topo.append("bidirectional")
    if m.get("proj_size"):
        topo.append(f"projection {m['proj_size']}")
    if m.get("head_size"):
        topo.append(f"head {m['head_size']}")
    if m.get("outputs", "sequence") == "last":
        topo.append("last step only")
    if m.get("initial_state"):
        topo.append("h0/c0 in the stream")
    if m.get("schedule", "pipelined") != "pipelined":
        topo.append(f"{m['schedule']} schedule")
    acts = ""
    if (m.get("gate_activation"), m.get("cand_activation")) not in ((None, None), ("sigmoid", "tanh")):
        acts = f", activations {m['gate_activation']}/{m['cand_activation']}"
    return (f"{m['name']}: {m['cell'].upper()} X={m['input_size']} H={m['hidden_size']}"
            + (f" ({', '.join(topo)})" if topo else "")
            + f", PE={m['pe']} SIMD={m['simd']}, {m['rounding']}/{m['overflow']}{acts}")


def _build_dir_model(build_dir):
    """The model of a build directory written by ``rnnaccel generate`` (its ``model.toml``)."""
    from rnnaccel.golden.model import load
    cfg = Path(build_dir) / "model.toml"
    if not cfg.exists():
        raise _Fail(f"{build_dir} is not a build directory (no model.toml); run 'rnnaccel generate' first")
    try:
        return load(cfg)
    except ConfigError as e:
        raise _Fail(_one_line(e)) from None


def _print_generate(summary: dict, out: Path):
    m, p, v, g = summary["model"], summary["perf"], summary["vectors"], summary["golden"]
    clips = {k: v for k, v in g["saturation"].items() if v and _is_table_input(k)}
    overflows = {k: v for k, v in g["saturation"].items() if v and not _is_table_input(k)}
    lines = [
        f"generated {out}",
        f"  model        {_model_line(m)}",
        f"  formats      {_fmt_formats(m['formats'])}",
        (f"  cycles/step  {p['cycles_per_timestep']} ({p['mac_cycles_per_timestep']} MAC + "
         f"{p['pipeline_latency']} pipeline in layer 0; stages {p['stage_cycles']})"
         if p.get("cycles_per_timestep") is not None else
         f"  cycles/seq   {v['steady_state_cycles']} for these {v['sequences']} sequences "
         f"(bidirectional: whole sequences; stages {p['stage_cycles']} cycles/step)")
        + f", multipliers {p['multipliers']['total']}, memory {p['memory_bits']['total']} bits",
        f"  vectors      {v['sequences']} sequences, {v['timesteps']} timesteps "
        f"({v['min_len']}-{v['max_len']} steps, {v['source']}, seed {v['seed']})",
        f"  golden       max |h - float| {g['max_abs_error_vs_float']:.3g} "
        f"({g['max_abs_error_vs_float'] / g['lsb']:.1f} LSB), "
        + (f"overflows {overflows}" if overflows else "no overflow")
        + (f"; table inputs clipped to the table range: {sum(clips.values())}" if clips else ""),
        f"  files        {', '.join(summary['files'])}",
    ]
    plan = summary.get("memory_plan")
    if plan:
        loaded = [mm for mm in plan["memories"] if mm["loaded"]]
        lines.append(f"  memories     {plan['target']}: {plan['block_ram']['used']}/{plan['block_ram']['available']} "
                     f"block RAMs planned" + (f", {plan['spram']['used']}/{plan['spram']['available']} SPRAM"
                                              if plan["spram"]["available"] else ""))
        if loaded:
            lines.append(f"  weights      {len(loaded)} memories loaded at run time: "
                         f"{summary['axis']['weight_image_codes']} codes through s_axis_weights after reset")
    click.echo("\n".join(lines))


def _print_simulate(r: dict):
    m = r["model"]
    ok = r["passed"]
    cpt, model_cpt = r.get("cycles_per_timestep"), r["cycles_per_timestep_model"]
    seq, seq_model = r.get("cycles_per_sequence"), r.get("cycles_per_sequence_model")
    if model_cpt is None:
        cpt_text = "bidirectional: per sequence only"
    elif r.get("cycles_per_timestep_min") is None:
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
        f"  cycles/seq   " + ("not measured" if seq is None else
                              f"{seq} measured, {seq_model} predicted for {r.get('throughput_steps')} steps  "
                              + ("OK" if seq == seq_model else "DIFFERENT")),
        f"  mismatches   {r['mismatches']} of {r.get('outputs', r['timesteps'])} outputs"
        + (f" ({r['element_mismatches']} elements)" if r["mismatches"] else "")
        + f", tlast errors {r['tlast_errors']}, frame errors {r['frame_errors']}",
        f"  max |h - float|  {err_text}",
    ]
    if r.get("weight_image_codes") is not None:
        lines.append(f"  weights      {r['weight_image_codes']} codes loaded through s_axis_weights in "
                     f"{r['weight_load_cycles']} cycles first")
    lines += [
        f"  time         build {r['build_s']:.1f} s, simulation {r['sim_s']:.1f} s ({r['sim_cycles']} cycles)",
    ]
    for mm in r.get("first_mismatches", [])[:5]:
        lines.append(f"  mismatch     {mm}")
    for e in r.get("errors", []):
        lines.append(f"  error        {e}")
    lines.append("PASSED" if ok else "FAILED")
    click.echo("\n".join(lines))


def _generate(config, out, *, sequences, min_len, max_len, seed, pe=None, simd=None, target=None,
              storage="auto") -> dict:
    from rnnaccel.scripts import flow
    try:
        model = flow.resolve_model(config, pe=pe, simd=simd)
        return flow.generate(model, out, sequences=sequences, min_len=min_len, max_len=max_len, seed=seed,
                             status=_status, target=target, storage=storage)
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


_TARGETS = ["ice40-up5k", "ecp5-25k", "ecp5-45k", "ecp5-85k"]
_STORAGE = ["auto", "rom", "spram"]


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
@click.option("--target", type=click.Choice(_TARGETS),
              help="Generate for this part as synthesis does: plan the memories (on ice40-up5k, weights that "
                   "do not fit the block RAM go to SPRAM, SB_SPRAM256KA instances loaded at run time through "
                   "an s_axis_weights port) and instantiate its primitives (ECP5: registered multipliers as "
                   "MULT18X18D, tables and weight memories of 256+ words as DP16KD); 'simulate' adds models "
                   "of them. Without it: plain Verilog.")
@click.option("--storage", default="auto", show_default=True, type=click.Choice(_STORAGE),
              help="Weight placement with --target: SPRAM where block RAM is short (auto), never (rom), "
                   "or every weight memory that can move (spram).")
def generate(config, out, sequences, min_len, max_len, seed, pe, simd, target, storage):
    """Generate Verilog, golden test vectors and a cycle/resource summary.

    CONFIG is a model TOML file or the name of a built-in example (see 'rnnaccel examples').
    Writes rnnaccel_top.v, model.toml/.npz, vectors.npz and summary.json into the output directory.
    """
    summary = _generate(config, out, sequences=sequences, min_len=min_len, max_len=max_len, seed=seed,
                        pe=pe, simd=simd, target=target, storage=storage)
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
            line = _model_line(m.summary()).split(": ", 1)[1]
            click.echo(f"{name:20s} {line}; data {m.formats.data}, weight {m.formats.weight}")
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
@click.option("--storage", default="auto", show_default=True, type=click.Choice(_STORAGE),
              help="Weight memories: SPRAM (loaded at run time) where block RAM is short (auto), never (rom), "
                   "or wherever they can go (spram; ice40-up5k only).")
def synth(build_dir, target, seed, freq, wrapper, storage):
    """Synthesise a build directory with Yosys and nextpnr (yowasp): utilisation and Fmax.

    Reads BUILD_DIR/model.toml (written by 'rnnaccel generate') and writes logs, report.json and
    summary.txt into BUILD_DIR/synth/TARGET/. Exits 1 if the design does not fit or a tool fails.
    """
    from rnnaccel.scripts import synth as flow_synth
    model = _build_dir_model(build_dir)
    out = Path(build_dir) / "synth" / target
    try:
        report = flow_synth.synth(model, out, target, seed=seed, freq=freq, wrapper=wrapper, storage=storage,
                                  progress=lambda step, msg: _status(f"{step}: {msg}"))
    except ValueError as e:
        raise _Fail(_one_line(e)) from None
    except flow_synth.SynthError as e:
        raise _Fail(f"synthesis for {target} failed: {_one_line(e)} (logs in {out})", EXIT_FAIL) from None
    click.echo(flow_synth.format_summary(report))


@main.command("build-board")
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option("--board", required=True, type=click.Choice(["icebreaker", "ulx3s-85f"]), help="Development board.")
@click.option("--baud", default=115200, show_default=True, type=click.IntRange(min=1), help="UART baud rate (8N1).")
@click.option("--seed", default=1, show_default=True, type=int, help="nextpnr placement seed.")
@click.option("--freq", type=click.FloatRange(min=0, min_open=True),
              help="Timing constraint in MHz for nextpnr (default: the board clock, 12 or 25 MHz).")
@click.option("--storage", default="auto", show_default=True, type=click.Choice(_STORAGE),
              help="Weight memories: SPRAM where block RAM is short (auto), never (rom), or wherever they can go "
                   "(spram; iCEBreaker). SPRAM weights are loaded at run time from weight_image.npy.")
def build_board(build_dir, board, baud, seed, freq, storage):
    """Build a bitstream of the accelerator behind a UART host link for a board.

    Reads BUILD_DIR/model.toml (written by 'rnnaccel generate'); writes the bitstream
    (rnnaccel_board.bin for the iCEBreaker, .bit for the ULX3S), logs, report.json and summary.txt
    into BUILD_DIR/board/BOARD/. The design runs from the board oscillator (iCEBreaker 12 MHz,
    ULX3S 25 MHz); its Fmax is checked against that clock (reported, not an error). Talk to it with
    rnnaccel.host.Host. Exits 1 if the design does not fit or a tool fails, 2 for bad input
    (e.g. a baud rate the board clock cannot make).
    """
    from rnnaccel.scripts import board as flow_board
    model = _build_dir_model(build_dir)
    out = Path(build_dir) / "board" / board
    try:
        report = flow_board.build_board(model, out, board, baud=baud, seed=seed, freq=freq, storage=storage,
                                        progress=lambda step, msg: _status(f"{step}: {msg}"))
    except (ValueError, TypeError, NotADirectoryError) as e:
        raise _Fail(_one_line(e)) from None
    except flow_board.SynthError as e:
        raise _Fail(f"board build for {board} failed: {_one_line(e)} (logs in {out})", EXIT_FAIL) from None
    click.echo(flow_board.format_board_summary(report))


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
    per_seq = model.bidirectional or model.outputs == "last"
    click.echo(("\ncycles per sequence of {} steps (X={}, H={}):".format(steps, model.input_size, model.hidden_size))
               if per_seq else "\ncycles per timestep (X={}, H={}):".format(model.input_size, model.hidden_size))
    click.echo(f"  {'PE':>3} {'SIMD':>4} {'PExSIMD':>7} {'model':>7} {'measured':>9} {'MAC bound':>9} "
               f"{'bound+' + str(fig.BOUND_SLACK):>8}  {'multipliers':>11}")
    for r in cycles:
        if "error" in r:
            click.echo(f"  {r['pe']:>3} {r['simd']:>4} {r['pe_x_simd']:>7}  not possible: {r['error']}")
            continue
        meas = (str(r["cycles_measured_min"]) if r["cycles_measured_min"] == r["cycles_measured_max"]
                else f"{r['cycles_measured_min']}..{r['cycles_measured_max']}")
        flag = ("exact" if r["exact"] else "DIFFERENT") + (
            "" if per_seq else (", within bound" if r["within_bound"] else ", OVER bound"))
        click.echo(f"  {r['pe']:>3} {r['simd']:>4} {r['pe_x_simd']:>7} {r['cycles_model']:>7} {meas:>9} "
                   f"{r['mac_bound']:>9} {r['bound_plus_slack']:>8}  {r['multipliers']:>11}  {flag}")
    click.echo("\naccuracy, hardware (= golden) vs float, 20 sequences x 50 steps:")
    for a in acc:
        f = a["formats"]
        # Table inputs beyond the table's range are clipped by design; everything else is an overflow.
        clips = sum(v for k, v in a["saturation"].items() if _is_table_input(k))
        over = {k: v for k, v in a["saturation"].items() if v and not _is_table_input(k)}
        click.echo(f"  weight {f['weight']:>7} data {f['data']:>7}: max |h - float| = {a['max_abs_error']:.3g} "
                   f"({'within' if a['within_bound'] else 'above'} 2^-7 = {a['bound']:.4g}); "
                   f"overflows: {over or 'none'}; table-range clips: {clips}")


def _int_list(ctx, param, value):
    """Click callback: ``"1,2,4"`` -> ``[1, 2, 4]`` (None stays None)."""
    if value is None:
        return None
    from rnnaccel.scripts.sweep import parse_int_list
    try:
        return parse_int_list(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@main.command()
@click.argument("config")
@click.option("--pe", callback=_int_list, metavar="LIST",
              help="Comma-separated PE values, e.g. 1,2,4 (default: the config's).")
@click.option("--simd", callback=_int_list, metavar="LIST",
              help="Comma-separated SIMD values, e.g. 2,4 (default: the config's).")
@click.option("--formats", "formats", multiple=True, metavar="FILE_OR_PRESET",
              help="Formats set: a preset (16bit, 8bit) or a TOML file with a [formats] table; repeat the "
                   "option or separate with commas (default: the config's formats).")
@click.option("--target", type=click.Choice(["ice40-up5k", "ecp5-25k", "ecp5-45k", "ecp5-85k"]),
              help="FPGA part to synthesise for (required unless --no-synth).")
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for sweep.csv, pareto.png and points/<id>/ (created if missing).")
@click.option("--jobs", type=click.IntRange(min=1),
              help="Points evaluated in parallel (default: CPUs, at most one per 2 GB of free memory; "
                   "1 with --no-synth).")
@click.option("--seed", default=1, show_default=True, type=int,
              help="Seed of the accuracy inputs and of nextpnr's placement.")
@click.option("--no-synth", is_flag=True, help="Estimate and accuracy only (no Yosys/nextpnr).")
def sweep(config, pe, simd, formats, target, out, jobs, seed, no_synth):
    """Sweep PE x SIMD x formats: cycles, resources, Fmax and error vs float per point.

    CONFIG is a model TOML or a built-in example. Each point is rebuilt with its parallelism and
    formats, estimated (cycles per timestep, multipliers, ROM bits), checked for accuracy (max
    |h_fixed - h_float| of the bit-exact golden model over 4 random sequences of 50 steps) and,
    unless --no-synth, synthesised into OUTPUT/points/<id>/. Impossible points (e.g. a PE count
    that does not divide H), designs that do not fit and tool errors are reported as failed rows;
    they do not stop the sweep. Writes OUTPUT/sweep.csv and OUTPUT/pareto.png (latency per
    timestep vs DSPs and vs logic cells, coloured by the error, with the Pareto front).

    Exit codes: 0 if at least one point succeeded, 1 if all failed, 2 for bad input.
    """
    from rnnaccel.scripts import flow
    from rnnaccel.scripts import sweep as sw
    if target is None and not no_synth:
        raise _Fail("--target is required unless --no-synth is given")
    try:
        model = flow.resolve_model(config)
        specs = [s.strip() for f in formats for s in f.split(",") if s.strip()]
        sets = ([sw.resolve_formats(s) for s in specs] if specs
                else [sw.FormatsSet("config", model.formats, "config")])
    except (ConfigError, ValueError, OSError) as e:
        raise _Fail(_one_line(e)) from None
    pes, simds = pe or [model.pe], simd or [model.simd]
    points = sw.make_points(pes, simds, sets)
    if out.exists() and not out.is_dir():
        raise _Fail(f"output {str(out)!r} exists and is not a directory")
    jobs = jobs or sw.default_jobs(len(points), not no_synth)
    _status(f"sweep of {model.name}: {len(points)} points ({len(pes)} PE x {len(simds)} SIMD x {len(sets)} "
            f"formats), {'no synthesis' if no_synth else f'synthesis for {target}'}, {jobs} parallel job(s)")
    try:
        rows = sw.run_sweep(model, points, out, target, synth=not no_synth, jobs=jobs, seed=seed,
                            progress=click.echo)
    except (ValueError, TypeError, OSError) as e:
        raise _Fail(_one_line(e)) from None
    csv_path = sw.write_csv(rows, out / "sweep.csv")
    title = (f"{model.name}: {model.cell.upper()} X={model.input_size} H={model.hidden_size}"
             + (f", {target}" if target and not no_synth else ", analytic estimate (no synthesis)"))
    png = sw.plot_pareto(rows, out / "pareto.png", title=title)
    ok = [r for r in rows if r["status"] == "ok"]
    click.echo(f"{len(ok)} of {len(rows)} points succeeded; wrote {csv_path} and {png}")
    if ok:
        xkey = "dsp_used" if all(r.get("dsp_used") is not None for r in ok) else "multipliers_predicted"
        ykey = ("latency_us_per_step" if all(r.get("latency_us_per_step") is not None for r in ok)
                else "cycles_per_timestep")
        front = sw.pareto_front([r[xkey] for r in ok], [r[ykey] for r in ok])
        click.echo(f"Pareto front ({ykey} vs {xkey}): " + ", ".join(ok[i]["id"] for i in front))
    sys.exit(0 if ok else EXIT_FAIL)


@main.command()
@click.option("--target", default="all", show_default=True, type=click.Choice(["ice40-up5k", "ecp5-85k", "all"]),
              help="Reference point(s) to synthesise.")
@click.option("--seed", default=1, show_default=True, type=int, help="nextpnr placement seed.")
@click.option("--weights", default="random", show_default=True, type=click.Choice(["random", "example"]),
              help="Random weights in [-0.3, 0.3] (seed 0), or the built-in example count_mod4.")
@click.option("--jobs", type=click.IntRange(min=1),
              help="Targets synthesised in parallel (default: CPUs, at most one per 2 GB of free memory).")
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for bench.json and the synthesis files (OUTPUT/<target>/).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of the table.")
def bench(target, seed, weights, jobs, out, as_json):
    """The issue's reference figures: X = H = 32 16-bit LSTM against its Fmax goals.

    UP5K: PE=2 SIMD=4 (PE*SIMD = 8), goal fits and Fmax >= 48 MHz; ECP5-85k: PE=8 SIMD=4
    (PE*SIMD = 32), goal fits and Fmax >= 150 MHz. Prints fits, Fmax vs goal, DSPs used vs
    predicted vs available, LUT/LC, BRAM, cycles and microseconds per timestep, and PASS/FAIL
    per goal; writes OUTPUT/bench.json. Takes minutes (ECP5-85k about 10).

    Exit codes: 0 if every goal passes, 1 if any goal fails (or a tool fails), 2 for bad input.
    """
    from rnnaccel.scripts import bench as bn
    targets = list(bn.REFERENCE) if target == "all" else [target]
    if out.exists() and not out.is_dir():
        raise _Fail(f"output {str(out)!r} exists and is not a directory")
    try:
        report = bn.run_bench(targets, out, seed=seed, weights=weights, jobs=jobs, progress=_status)
    except (ConfigError, ValueError, OSError) as e:
        raise _Fail(_one_line(e)) from None
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(bn.format_table(report))
        click.echo(f"wrote {out / bn.BENCH_FILE}")
    sys.exit(0 if report["passed"] else EXIT_FAIL)


if __name__ == "__main__":
    main()
