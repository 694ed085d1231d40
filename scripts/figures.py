"""Figures of a model: cycles per timestep (analytic vs measured) and accuracy vs float.

Used by ``rnnaccel figures``. Cycles are measured in Amaranth simulation of the accelerator with the
input always valid and the output always ready (per timestep; per sequence of ``steps`` steps for
bidirectional models); accuracy is that of the bit-exact golden model
(which the Verilog matches bit for bit, see ``rnnaccel simulate``) against the float reference.
"""

from __future__ import annotations

import math

import numpy as np

from rnnaccel.golden import network as golden_network
from rnnaccel.golden.model import ConfigError, Model
from rnnaccel.golden.reference import network_float
from rnnaccel.hdl import perf

__all__ = ["measure_cycles", "cycle_figures", "accuracy_figures", "PARALLELISM", "BOUND_SLACK"]

#: Cycles an LSTM step may take beyond the MAC bound ceil(4H(X+H)/(PE*SIMD)) for SIMD <= 4: the
#: accept cycle and the pipeline drain (matrix-vector unit 4 + one per adder-tree level, gate
#: activation 7, element-wise stage 14). Issue 2 set 16; the registers added for the ECP5 clock
#: rate (hdl/perf.py; README "Synthesis") made it 28.
BOUND_SLACK = 28

#: (pe, simd) for PE*SIMD = 1, 8 and 32 at the reference size (SIMD <= 4 keeps the adder tree
#: to two register stages, so the fixed latency of an LSTM stays within 28 cycles).
PARALLELISM = ((1, 1), (2, 4), (8, 4))


def _model_cycles(model: Model, steps: int) -> int:
    """The analytic figure :func:`measure_cycles` measures."""
    if model.bidirectional or model.outputs == "last":
        return perf.sequence_cycles(model, steps)
    return perf.cycles_per_timestep(model)


def measure_cycles(model: Model, steps: int = 3, seed: int = 0) -> list[int]:
    """Cycles between consecutive outputs, measured in Amaranth simulation of the accelerator.

    For bidirectional models and ``outputs = "last"``: cycles between the ends of consecutive
    sequences of ``steps`` steps (three sequences). Outputs are checked against the golden model.
    """
    from rnnaccel.hdl.top import Accelerator
    from rnnaccel.sim.amaranth_sim import run_stream_dut

    rng = np.random.default_rng(seed)
    per_sequence = model.bidirectional or model.outputs == "last"
    n = 3 if per_sequence else 1
    xs = [golden_network.quantize_input(rng.uniform(-1, 1, (steps, model.input_size)), model) for _ in range(n)]
    expected = [golden_network.run_codes(model, x).h_codes for x in xs]
    run = run_stream_dut(Accelerator(model), xs, max_cycles=(n + 2) * (steps + 2) * _model_cycles(model, steps),
                         out_counts=[len(e) for e in expected])
    for got, exp in zip(run.outputs, expected):
        np.testing.assert_array_equal(got, exp)
    cycles = run.out_cycles
    if per_sequence:
        per = len(expected[0])
        cycles = cycles[per - 1::per]
    return [int(d) for d in np.diff(cycles)]


def cycle_figures(model: Model, parallelism=PARALLELISM, steps: int = 3, progress=None) -> list[dict]:
    """For each (pe, simd): analytic cycles, measured cycles, the MAC bound and the bound + :data:`BOUND_SLACK`."""
    rows = []
    for pe, simd in parallelism:
        try:
            m = model.with_hardware(pe=pe, simd=simd)
        except ConfigError as e:          # e.g. pe does not divide H: report the point, go on
            rows.append({"pe": pe, "simd": simd, "pe_x_simd": pe * simd, "error": str(e)})
            continue
        model_cycles = _model_cycles(m, steps)
        if progress:
            progress(f"simulating pe={pe} simd={simd} ({model_cycles * (steps + 1)} cycles)")
        measured = measure_cycles(m, steps)
        lay = m.layer(0)
        bound = math.ceil(lay.rows * lay.vector_size / (pe * simd))
        if m.bidirectional or m.outputs == "last":
            bound *= steps
        rows.append({
            "pe": pe, "simd": simd, "pe_x_simd": pe * simd,
            "per": "sequence" if (m.bidirectional or m.outputs == "last") else "timestep",
            "cycles_model": model_cycles,
            "cycles_measured_min": min(measured), "cycles_measured_max": max(measured),
            "mac_bound": bound, "bound_plus_slack": bound + BOUND_SLACK,
            "within_bound": max(measured) <= bound + BOUND_SLACK,
            "exact": set(measured) == {model_cycles},
            "multipliers": perf.multiplier_count(m)["total"],
        })
    return rows


def accuracy_figures(model: Model, sequences, **formats) -> dict:
    """Max |h_fixed - h_float| over the sequences (golden integer model = hardware), and saturations."""
    m = model.with_formats(**formats) if formats else model
    err = 0.0
    sat = {}
    for x in sequences:
        res = golden_network.run(m, x)
        ref, _ = network_float(m, x)
        err = max(err, float(np.abs(res.h - ref).max()))
        for k, v in res.saturation.items():
            sat[k] = sat.get(k, 0) + v
    return {"formats": m.formats.as_dict(), "max_abs_error": err, "bound": 2.0 ** -7,
            "within_bound": err <= 2.0 ** -7, "steps": [len(x) for x in sequences], "saturation": sat}
