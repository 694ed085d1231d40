"""Flows: generate a self-contained build directory, and simulate it with cocotb.

A thin layer over library objects (no datapath logic here)::

    from rnnaccel.scripts import flow
    info = flow.generate(model, "build/")                  # Verilog + model + golden vectors + summary
    res = flow.simulate("build/", sim="verilator")         # cocotb, bit-exact at every timestep

Build directory written by :func:`generate`:

=====================  ============================================================================
``rnnaccel_top.v``     the accelerator (:func:`rnnaccel.hdl.export.to_verilog`), AXI4-Stream ports
``model.toml``/``.npz``  the model description and its float weights (:func:`rnnaccel.golden.save`)
``vectors.npz``        inputs and expected outputs, see :mod:`rnnaccel.sim.vectors`
``summary.json``       ``model`` (``Model.summary()``), ``perf`` (``hdl.perf.estimate``), ``axis``
                       (bus widths), ``vectors`` (statistics), ``golden`` (saturation counts, error
                       of the integer model against the float reference)
``sim_<simulator>/``   made by :func:`simulate`: simulator build, logs, ``results.json``
=====================  ============================================================================
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Callable

import numpy as np

from rnnaccel.golden.fixed import SaturationCounter, to_float
from rnnaccel.golden.fixed import quantize
from rnnaccel.golden.model import ConfigError, Model, load, save
from rnnaccel.golden.network import parameter_saturation, quantize_input, run_codes
from rnnaccel.golden.reference import network_float
from rnnaccel.sim.vectors import bus_width, save_vectors

__all__ = ["generate", "simulate", "resolve_model", "example_names", "example_of", "SUMMARY_FILE",
           "RESULTS_FILE"]

SUMMARY_FILE = "summary.json"
RESULTS_FILE = "results.json"


def _examples():
    """The built-in examples module, or None if it is not available."""
    try:
        from rnnaccel.golden import examples
    except ImportError:
        return None
    return examples if hasattr(examples, "names") else None


def example_names() -> list[str]:
    ex = _examples()
    return list(ex.names()) if ex is not None else []


def example_of(model: Model) -> str | None:
    """The built-in example ``model`` was made from (same name, sizes and weights), else None.

    Parallelism and formats may differ (e.g. ``--pe`` on the command line).
    """
    ex = _examples()
    if ex is None or model.name not in ex.names():
        return None
    ref = ex.load(model.name)
    if (ref.cell, ref.input_size, ref.hidden_size) != (model.cell, model.input_size, model.hidden_size):
        return None
    if set(ref.weights) == set(model.weights) and all(np.array_equal(ref.weights[k], model.weights[k])
                                                      for k in ref.weights):
        return model.name
    return None


def resolve_model(config, *, pe: int | None = None, simd: int | None = None) -> Model:
    """A model from a TOML path or a built-in example name, with optional other parallelism.

    Raises
    ------
    ConfigError
        If ``config`` is neither an existing file nor an example name, or a value is impossible.
    """
    if isinstance(config, Model):
        model = config
    else:
        path = Path(config)
        if path.is_file():
            model = load(path)
        elif str(config) in example_names():
            model = _examples().load(str(config))
        else:
            names = example_names()
            hint = f"; built-in examples: {', '.join(names)}" if names else ""
            if path.suffix.lower() == ".toml" or path.parent != Path("."):
                raise ConfigError(f"config file {str(config)!r} does not exist{hint}")
            raise ConfigError(f"{str(config)!r} is neither a config file nor a built-in example{hint}")
    if pe is not None or simd is not None:
        model = model.with_hardware(pe=pe, simd=simd)
    return model


def _check_counts(sequences, min_len, max_len):
    for name, v in (("sequences", sequences), ("min_len", min_len), ("max_len", max_len)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if min_len > max_len:
        raise ValueError(f"min_len = {min_len} is larger than max_len = {max_len}")


def make_inputs(model: Model, sequences, min_len, max_len, seed) -> tuple[list[np.ndarray], str]:
    name = example_of(model)
    if name is not None:
        xs = _examples().inputs(name, sequences, min_len=min_len, max_len=max_len, seed=seed)
        return [np.asarray(x, dtype=np.float64) for x in xs], f"example:{name}"
    rng = np.random.default_rng(seed)
    xs = []
    for _ in range(sequences):
        T = int(rng.integers(min_len, max_len + 1))
        xs.append(rng.uniform(-1.0, 1.0, (T, model.input_size)))
    return xs, "uniform[-1,1]"


def generate(model, out_dir, *, sequences: int = 20, min_len: int = 10, max_len: int = 50, seed: int = 0,
             inputs=None, status: Callable[[str], None] | None = None, target: str | None = None,
             storage: str = "auto") -> dict:
    """Write a self-contained build directory: Verilog, model, golden vectors and a summary.

    Parameters
    ----------
    model : Model, or str / path
        The model, or a TOML config path / built-in example name (see :func:`resolve_model`).
    out_dir : path
        Created if missing; existing files of the same names are replaced.
    sequences, min_len, max_len, seed : int
        Test sequences to draw when ``inputs`` is not given: the example's own ``inputs(...)`` for a
        built-in example, otherwise uniform in [-1, 1] with lengths uniform in [min_len, max_len].
    inputs : list of array_like (T, X), optional
        Float input sequences to use instead.
    status : callable, optional
        Called with short progress lines.
    target : str, optional
        Place the memories for this synthesis target (:func:`~rnnaccel.hdl.memory_plan.plan_memories`):
        on ``ice40-up5k`` weights that do not fit the block RAM go to SPRAM and are loaded at run
        time through the top's ``s_axis_weights`` port (``vectors.npz`` then carries ``w_image``).
        The Verilog instantiates the target family's primitives as the synthesis flow does
        (:func:`~rnnaccel.hdl.export.to_verilog` ``family``): on iCE40 the SPRAMs as ``SB_SPRAM256KA``
        (the simulation bench adds Yosys' model of it); on ECP5 (``ecp5-25k``, ``ecp5-45k``,
        ``ecp5-85k``) the registered multipliers as ``MULT18X18D`` and the tables and weight memories
        of at least :data:`~rnnaccel.hdl.dsp.ROM_MIN_DEPTH` words as ``DP16KD`` with the output
        register (the bench adds models, :func:`rnnaccel.sim.runner.primitive_model`). Without
        ``target``: plain Verilog, no primitives. ``summary.json`` counts the instances
        (``primitives``).
    storage : {"auto", "rom", "spram"}
        Placement policy with ``target``.

    Returns
    -------
    dict
        The contents of ``summary.json``.
    """
    say = status or (lambda s: None)
    model = resolve_model(model)
    if model.bidirectional and max_len > model.max_len and inputs is None:
        raise ValueError(f"max_len = {max_len} exceeds the bidirectional model's sequence buffers "
                         f"(hardware.max_len = {model.max_len}); use --max-len <= {model.max_len}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output {str(out)!r} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)

    if inputs is None:
        _check_counts(sequences, min_len, max_len)
        xs, source = make_inputs(model, sequences, min_len, max_len, seed)
    else:
        xs, source = [np.asarray(x, dtype=np.float64) for x in inputs], "given"
        if not xs:
            raise ValueError("inputs is empty: give at least one sequence")
        for i, x in enumerate(xs):
            if x.ndim != 2 or x.shape[1] != model.input_size or x.shape[0] < 1:
                raise ValueError(f"inputs[{i}] has shape {x.shape}; expected (T >= 1, {model.input_size})")
            if model.bidirectional and len(x) > model.max_len:
                raise ValueError(f"inputs[{i}] has {len(x)} steps, more than the bidirectional model's "
                                 f"sequence buffers hold (hardware.max_len = {model.max_len})")

    from rnnaccel.hdl.export import to_verilog
    from rnnaccel.hdl.memory_plan import weight_image
    from rnnaccel.hdl.perf import estimate, sequence_cycles
    from rnnaccel.hdl.top import in_payload_bits, out_payload_bits

    plan = None
    if target is not None:
        from rnnaccel.scripts.synth import TARGETS, memory_plan
        plan = memory_plan(model, target, storage)
        tgt = TARGETS[target]
        say(f"memory plan for {tgt.name}: {plan.block_ram_used}/{tgt.bram_blocks} block RAMs"
            + (f", {plan.spram_used}/{plan.spram_available} SPRAM ({len(plan.loaded)} weight memories "
               f"loaded at run time)" if plan.spram_available else "")
            + ("" if plan.fits else " -- more than the part has"))
    elif storage != "auto":
        raise ValueError(f"storage = {storage!r} needs a target (--target ice40-up5k)")

    t0 = time.monotonic()
    say(f"generating Verilog for {model.name} (X={model.input_size}, H={model.hidden_size}, "
        f"PE={model.pe}, SIMD={model.simd})")
    # With a target, the Verilog instantiates that family's primitives as the synthesis flow does
    # (iCE40: SB_SPRAM256KA for loaded memories; ECP5: MULT18X18D and DP16KD): the bench simulates
    # models of them, so the design it checks is the one synthesised.
    family = tgt.family if plan is not None else None
    verilog = to_verilog(model, name="rnnaccel_top", plan=plan, family=family)
    (out / "rnnaccel_top.v").write_text(verilog)
    from rnnaccel.sim.runner import VENDOR_MODELS
    primitives = {prim: n for prim in VENDOR_MODELS if (n := len(re.findall(rf"^\s*{prim}\b", verilog, re.M)))}
    save(model, out / "model.toml")
    t_verilog = time.monotonic() - t0

    say(f"running the golden model on {len(xs)} sequences ({sum(len(x) for x in xs)} timesteps)")
    counter = parameter_saturation(model)
    n_states = model.num_layers * model.directions
    rng = np.random.default_rng(seed + 1)
    x_codes, h_codes, h_float, h0s, c0s, hns, cns = [], [], [], [], [], [], []
    for x in xs:
        xq = quantize_input(x, model, counter)
        x_codes.append(xq)
        h0 = c0 = h0q = c0q = None
        if model.initial_state:
            # Initial states of the test vectors: uniform in [-0.5, 0.5] (h) and [-1, 1] (c).
            h0 = rng.uniform(-0.5, 0.5, (n_states, model.state_size))
            h0q = quantize(h0, model.formats.data, "RND", "SAT", counter=counter, tag="h0")
            h0s.append(h0q)
            if model.cell_spec.has_cell_state:
                c0 = rng.uniform(-1.0, 1.0, (n_states, model.hidden_size))
                c0q = quantize(c0, model.formats.cell, "RND", "SAT", counter=counter, tag="c0")
                c0s.append(c0q)
        res = run_codes(model, xq, counter, h0=h0q, c0=c0q)
        h_codes.append(res.h_codes)
        if model.final_state:
            hns.append(res.final_h)
            if res.final_c is not None:
                cns.append(res.final_c)
        h_float.append(network_float(model, x, h0, c0)[0])
    lengths = np.array([len(x) for x in xs], dtype=np.int64)
    out_lengths = np.array([len(h) for h in h_codes], dtype=np.int64)
    seq_cycles = np.array([sequence_cycles(model, int(T)) for T in lengths], dtype=np.int64)
    x_codes, h_codes = np.concatenate(x_codes), np.concatenate(h_codes)
    x_float, h_float = np.concatenate(xs), np.concatenate(h_float)
    save_vectors(out / "vectors.npz", x_codes, lengths, h_codes, x_float, h_float, out_lengths=out_lengths,
                 h0_codes=np.array(h0s) if h0s else None, c0_codes=np.array(c0s) if c0s else None,
                 seq_cycles=seq_cycles, hn_codes=np.array(hns) if hns else None,
                 cn_codes=np.array(cns) if cns else None,
                 w_image=weight_image(model, plan) if plan is not None and plan.loaded else None)
    err = np.abs(to_float(h_codes, model.formats.data) - h_float)

    perf = estimate(model)
    w = model.formats.data.width
    summary = {
        "model": model.summary(),
        "perf": perf,
        "axis": {"s_axis_tdata_width": -(-in_payload_bits(model) // 8) * 8,
                 "m_axis_tdata_width": -(-out_payload_bits(model) // 8) * 8}
        | ({"s_axis_weights_tdata_width": -(-model.formats.weight.width // 8) * 8,
            "weight_image_codes": plan.image_words * model.simd} if plan is not None and plan.loaded else {}),
        "memory_plan": plan.as_dict() if plan is not None else None,
        # vendor primitives instantiated in rnnaccel_top.v (none without a target)
        "primitives": {"family": family, "instances": primitives},
        "vectors": {
            "sequences": int(len(lengths)), "timesteps": int(lengths.sum()),
            "min_len": int(lengths.min()), "max_len": int(lengths.max()),
            "seed": seed, "source": source,
            "x_abs_max": float(np.abs(x_float).max()),
            "outputs": int(out_lengths.sum()),
            "steady_state_cycles": int(seq_cycles.sum()),
        },
        "golden": {
            "saturation": {k: int(v) for k, v in sorted(counter.items()) if v},
            "saturation_total": int(sum(counter.values())),
            "max_abs_error_vs_float": float(err.max()),
            "mean_abs_error_vs_float": float(err.mean()),
            "lsb": model.formats.data.lsb,
        },
        "files": ["rnnaccel_top.v", "model.toml", "model.npz", "vectors.npz", SUMMARY_FILE],
        "generate_s": round(time.monotonic() - t0, 3),
        "verilog_s": round(t_verilog, 3),
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    say(f"wrote {out}")
    return summary


def simulate(build_dir, sim: str = "verilator", *, seed: int = 0, idle: float = 0.3, backpressure: float = 0.3,
             json_out=None, throughput_sequences: int = 2, status: Callable[[str], None] | None = None,
             waves: bool = False) -> dict:
    """Run the cocotb bench on a build directory made by :func:`generate`.

    The simulator builds in ``<build_dir>/sim_<sim>/``. Returns the bench's results (see
    :mod:`rnnaccel.sim.bench_top`: ``mismatches``, ``timesteps``, ``sequences``,
    ``cycles_per_timestep`` measured and ``cycles_per_timestep_model``, ``max_abs_error_vs_float``,
    ``simulator``, ``first_mismatches``, ...) plus ``model``, ``perf`` and ``golden`` from
    ``summary.json``; also written to ``json_out`` if given.

    Raises
    ------
    FileNotFoundError
        If ``build_dir`` or one of its files is missing.
    ValueError
        On an unknown simulator or a probability outside [0, 1).
    rnnaccel.sim.runner.SimulationError
        If the simulator is missing, the build fails or the bench crashes.
    """
    from rnnaccel.sim.runner import check_build_dir, run_bench

    build = check_build_dir(build_dir)
    try:
        summary = json.loads((build / SUMMARY_FILE).read_text())
        summary["model"], summary["perf"]
    except (ValueError, KeyError) as e:
        raise ValueError(f"{build / SUMMARY_FILE} is not a summary written by 'rnnaccel generate' ({e})") from None
    results = run_bench(build, sim, seed=seed, idle=idle, backpressure=backpressure,
                        throughput_sequences=throughput_sequences, status=status, waves=waves)
    results["build_dir"] = str(build)
    results["model"] = summary["model"]
    results["perf"] = summary["perf"]
    results["golden"] = summary.get("golden", {})
    if json_out is not None:
        Path(json_out).write_text(json.dumps(results, indent=2) + "\n")
    return results
