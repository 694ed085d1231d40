"""The LSTM layer and the accelerator in Amaranth simulation, bit-exact against the golden model."""

import numpy as np
import pytest

from rnnaccel.golden import lstm as golden_lstm
from rnnaccel.golden.model import Formats, Model, random_weights
from rnnaccel.hdl.lstm import LSTMLayer
from rnnaccel.hdl.perf import cycles_per_timestep
from rnnaccel.hdl.top import Accelerator
from rnnaccel.sim.amaranth_sim import run_stream_dut


def random_model(X, H, pe=1, simd=1, *, seed=0, scale=0.5, **kw):
    return Model("lstm", X, H, random_weights(X, H, scale=scale, seed=seed), pe=pe, simd=simd, **kw)


SMALL_FORMATS = Formats(data="s8.5", weight="s8.6", cell="s10.6", sigmoid_in="s7.3", sigmoid_out="u8.8",
                        tanh_in="s7.4", tanh_out="s8.7")


# The gate activation and element-wise blocks of every cell are tested in tests/test_hdl_layer.py.


LAYER_CONFIGS = {
    "X4-H4-pe2-simd4-small8": dict(X=4, H=4, pe=2, simd=4, formats=SMALL_FORMATS),
    "X5-H8-pe4-simd3-default16": dict(X=5, H=8, pe=4, simd=3),
    "X3-H4-pe1-simd1-default16": dict(X=3, H=4, pe=1, simd=1),
    "X6-H8-pe8-simd14-RND_CONV-WRAP": dict(X=6, H=8, pe=8, simd=14, rounding="RND_CONV", overflow="WRAP"),
}


def _layer_inputs(model, lengths, seed):
    rng = np.random.default_rng(seed)
    return [golden_lstm.quantize_input(rng.uniform(-2, 2, (T, model.input_size)), model) for T in lengths]


@pytest.mark.parametrize("pauses", [(0.0, 0.0), (0.4, 0.4)], ids=["no-pauses", "idle-backpressure"])
@pytest.mark.parametrize("cfg", list(LAYER_CONFIGS), ids=list(LAYER_CONFIGS))
def test_layer_matches_golden(cfg, pauses):
    c = dict(LAYER_CONFIGS[cfg])
    model = random_model(c.pop("X"), c.pop("H"), seed=3, **c)
    seqs = _layer_inputs(model, [3, 1, 4], seed=4)
    run = run_stream_dut(LSTMLayer(model), seqs, idle=pauses[0], backpressure=pauses[1], seed=5,
                         max_cycles=200 * cycles_per_timestep(model))
    for seq, got, lasts in zip(seqs, run.outputs, run.lasts):
        np.testing.assert_array_equal(got, golden_lstm.run_codes(model, seq).h_codes)
        np.testing.assert_array_equal(lasts, [0] * (len(seq) - 1) + [1])
    if pauses == (0.0, 0.0):
        # Back-to-back input, ready output: one h_t every cycles_per_timestep cycles, exactly.
        np.testing.assert_array_equal(np.diff(run.out_cycles), cycles_per_timestep(model))


def test_accelerator_wraps_layer():
    model = random_model(3, 4, pe=2, simd=2, seed=7)
    seqs = _layer_inputs(model, [2, 3], seed=8)
    run = run_stream_dut(Accelerator(model), seqs, idle=0.3, backpressure=0.3, seed=9)
    for seq, got in zip(seqs, run.outputs):
        np.testing.assert_array_equal(got, golden_lstm.run_codes(model, seq).h_codes)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_layer_rejects_non_model():
    with pytest.raises(TypeError, match="Model"):
        LSTMLayer({"cell": "lstm"})
