"""Figures of the LSTM path: cycles per timestep (analytic vs measured) and accuracy vs float.

Used by ``rnnaccel figures``. Cycles are measured in Amaranth simulation of the layer with the
input always valid and the output always ready; accuracy is that of the bit-exact golden model
(which the Verilog matches bit for bit, see ``rnnaccel simulate``) against the float reference.
"""

from __future__ import annotations

import math

import numpy as np

from rnnaccel.golden import lstm as golden_lstm
from rnnaccel.golden.model import ConfigError, Model
from rnnaccel.golden.reference import lstm_float
from rnnaccel.hdl import perf

__all__ = ["measure_cycles", "cycle_figures", "accuracy_figures", "PARALLELISM"]

#: (pe, simd) for PE*SIMD = 1, 8 and 32 at the reference size (SIMD <= 4 keeps the adder tree
#: to one register stage, so the fixed latency stays within 16 cycles).
PARALLELISM = ((1, 1), (2, 4), (8, 4))


def measure_cycles(model: Model, steps: int = 3, seed: int = 0) -> list[int]:
    """Cycles between consecutive outputs, measured in Amaranth simulation of the layer."""
    from rnnaccel.hdl.lstm import LSTMLayer
    from rnnaccel.sim.amaranth_sim import run_stream_dut

    rng = np.random.default_rng(seed)
    x = golden_lstm.quantize_input(rng.uniform(-1, 1, (steps, model.input_size)), model)
    run = run_stream_dut(LSTMLayer(model), [x], max_cycles=(steps + 2) * perf.cycles_per_timestep(model))
    np.testing.assert_array_equal(run.outputs[0], golden_lstm.run_codes(model, x).h_codes)
    return [int(d) for d in np.diff(run.out_cycles)]


def cycle_figures(model: Model, parallelism=PARALLELISM, steps: int = 3, progress=None) -> list[dict]:
    """For each (pe, simd): analytic cycles, measured cycles, the MAC bound and the bound + 16."""
    rows = []
    for pe, simd in parallelism:
        try:
            m = model.with_hardware(pe=pe, simd=simd)
        except ConfigError as e:          # e.g. pe does not divide H: report the point, go on
            rows.append({"pe": pe, "simd": simd, "pe_x_simd": pe * simd, "error": str(e)})
            continue
        if progress:
            progress(f"simulating pe={pe} simd={simd} ({perf.cycles_per_timestep(m) * (steps + 1)} cycles)")
        measured = measure_cycles(m, steps)
        bound = math.ceil(m.rows * m.vector_size / (pe * simd))
        rows.append({
            "pe": pe, "simd": simd, "pe_x_simd": pe * simd,
            "cycles_model": perf.cycles_per_timestep(m),
            "cycles_measured_min": min(measured), "cycles_measured_max": max(measured),
            "mac_bound": bound, "bound_plus_16": bound + 16,
            "within_bound": max(measured) <= bound + 16,
            "exact": set(measured) == {perf.cycles_per_timestep(m)},
            "multipliers": perf.multiplier_count(m)["total"],
        })
    return rows


def accuracy_figures(model: Model, sequences, **formats) -> dict:
    """Max |h_fixed - h_float| over the sequences (golden integer model = hardware), and saturations."""
    m = model.with_formats(**formats) if formats else model
    err = 0.0
    sat = {}
    for x in sequences:
        res = golden_lstm.run(m, x)
        ref, _ = lstm_float(m, x)
        err = max(err, float(np.abs(res.h - ref).max()))
        for k, v in res.saturation.items():
            sat[k] = sat.get(k, 0) + v
    return {"formats": m.formats.as_dict(), "max_abs_error": err, "bound": 2.0 ** -7,
            "within_bound": err <= 2.0 ** -7, "steps": [len(x) for x in sequences], "saturation": sat}
