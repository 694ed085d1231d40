"""Every cell's hardware blocks and layer in Amaranth simulation, bit-exact against the golden functions."""

import numpy as np
import pytest

from rnnaccel.golden import layer as gl
from rnnaccel.golden.model import Formats, Model, random_weights
from rnnaccel.golden.network import quantize_input, run_codes
from rnnaccel.hdl.layer import ACT_KINDS, GateActivation, GRUElementwise, LSTMElementwise, RecurrentLayer, RNNElementwise
from rnnaccel.hdl.perf import layer_cycles
from rnnaccel.sim.amaranth_sim import run_pipeline, run_stream_dut

CELLS = ("lstm", "lstm_nf", "gru", "rnn_tanh", "rnn_relu")

SMALL_FORMATS = Formats(data="s8.5", weight="s8.6", cell="s10.6", sigmoid_in="s7.3", sigmoid_out="u8.8",
                        tanh_in="s7.4", tanh_out="s8.7")


def random_model(cell, X, H, pe=1, simd=1, *, seed=0, scale=0.5, **kw):
    return Model(cell, X, H, random_weights(X, H, scale=scale, seed=seed, cell=cell), pe=pe, simd=simd, **kw)


@pytest.mark.parametrize("formats", [Formats(), SMALL_FORMATS], ids=["default16", "small8"])
@pytest.mark.parametrize("cell", CELLS)
def test_gate_activation_matches_golden(cell, formats):
    model = random_model(cell, 3, 2, formats=formats)
    acc_fmt = model.accumulator
    rng = np.random.default_rng(1)
    accs = np.concatenate([rng.integers(-(1 << (acc_fmt.frac + 5)), 1 << (acc_fmt.frac + 5), 300),
                           [acc_fmt.min_code, acc_fmt.max_code, 0, -1, 1]])
    kinds = sorted({row.act for row in model.cell_spec.rows})
    kind = rng.choice(kinds, len(accs))
    dut = GateActivation(model)
    got = run_pipeline(dut, [{"acc": int(a), "kind": ACT_KINDS.index(k)} for a, k in zip(accs, kind)])
    expected = [int(gl.row_activation(a, k, model)) for a, k in zip(accs, kind)]
    np.testing.assert_array_equal(np.array(got), np.array(expected))


MODES = [(Formats(), "RND", "SAT"), (SMALL_FORMATS, "TRN", "SAT"), (SMALL_FORMATS, "RND_CONV", "WRAP"),
         (SMALL_FORMATS, "RND", "WRAP")]
MODE_IDS = ["default16-RND-SAT", "small8-TRN-SAT", "small8-RND_CONV-WRAP", "small8-RND-WRAP"]


def _codes(rng, fmt, n):
    return rng.integers(fmt.min_code, fmt.max_code + 1, n)


@pytest.mark.parametrize("formats,rounding,overflow", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("cell", ["lstm", "lstm_nf"])
def test_lstm_elementwise_matches_golden(cell, formats, rounding, overflow):
    """Steps of ``units`` units in order; some steps start a sequence with a parallel load of c0."""
    units, steps = 3, 30
    model = random_model(cell, 2, 3, formats=formats, rounding=rounding, overflow=overflow)
    f = model.formats
    rng = np.random.default_rng(2)
    beats, side, expected = [], [], []
    c_state = np.zeros(units, dtype=np.int64)
    for step in range(steps):
        if step == 0 or rng.random() < 0.3:
            c0 = _codes(rng, f.cell, units)
            beats += [None] * 3 + [None]
            side += [None] * 3 + [{"load": 1, "load_data": [int(v) for v in c0]}]
            c_state = c0.copy()
        for u in range(units):
            g = {k: int(_codes(rng, f.sigmoid_out, 1)[0]) for k in "ifo"}
            g["g"] = int(_codes(rng, f.tanh_out, 1)[0])
            beat = {"i": g["i"], "g": g["g"], "o": g["o"], "unit": u} | ({"f": g["f"]} if cell == "lstm" else {})
            # One beat every 3 cycles at most (a unit's 3 or 4 rows take at least as many
            # matrix-vector beats); the cell state is written 5 cycles after it is read, in the
            # cycle of the next unit's rotation here, which this spacing checks.
            beats += [beat, None, None]
            side += [None, None, None]
            c, h = gl.lstm_elementwise(g["i"], g["f"] if cell == "lstm" else None, g["g"], g["o"], c_state[u], model)
            c_state[u] = c
            expected.append((int(h), u))
    got = run_pipeline(LSTMElementwise(model, units), beats, ("h", "unit"), side=side)
    np.testing.assert_array_equal(np.array(got), np.array(expected))


@pytest.mark.parametrize("formats,rounding,overflow", MODES, ids=MODE_IDS)
def test_gru_elementwise_matches_golden(formats, rounding, overflow):
    """Every step loads h_{t-1} of the lane's units, then the units come one per cycle."""
    units, steps = 4, 25
    model = random_model("gru", 2, 4, formats=formats, rounding=rounding, overflow=overflow)
    f = model.formats
    rng = np.random.default_rng(3)
    beats, side, expected = [], [], []
    for _ in range(steps):
        h_prev = _codes(rng, f.data, units)
        beats.append(None)
        side.append({"load": 1, "load_data": [int(v) for v in h_prev]})
        for u in range(units):
            r, z = (int(v) for v in _codes(rng, f.sigmoid_out, 2))
            nx, nh = (int(v) for v in _codes(rng, f.cell, 2))
            beats.append({"r": r, "z": z, "nx": nx, "nh": nh, "unit": u})
            side.append(None)
            expected.append((int(gl.gru_elementwise(r, z, nx, nh, h_prev[u], model)), u))
    got = run_pipeline(GRUElementwise(model, units), beats, ("h", "unit"), side=side)
    np.testing.assert_array_equal(np.array(got), np.array(expected))


@pytest.mark.parametrize("formats,rounding,overflow", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("cell", ["rnn_tanh", "rnn_relu"])
def test_rnn_elementwise_matches_golden(cell, formats, rounding, overflow):
    model = random_model(cell, 2, 2, formats=formats, rounding=rounding, overflow=overflow)
    fmt = model.formats.data if cell == "rnn_relu" else model.formats.tanh_out
    rng = np.random.default_rng(4)
    values = np.concatenate([_codes(rng, fmt, 200), [fmt.min_code, fmt.max_code]])
    got = run_pipeline(RNNElementwise(model, 2), [{"h": int(v), "unit": i % 2} for i, v in enumerate(values)],
                       ("h", "unit"))
    expected = [(int(gl.rnn_elementwise(v, model)), i % 2) for i, v in enumerate(values)]
    np.testing.assert_array_equal(np.array(got), np.array(expected))


LAYER_CONFIGS = {
    "X3-H4-pe1-simd1": dict(X=3, H=4, pe=1, simd=1),
    "X5-H8-pe4-simd3": dict(X=5, H=8, pe=4, simd=3),
    "X6-H8-pe2-simd4-small8-TRN-WRAP": dict(X=6, H=8, pe=2, simd=4, formats=SMALL_FORMATS, rounding="TRN",
                                            overflow="WRAP"),
}


def _inputs(model, lengths, seed):
    rng = np.random.default_rng(seed)
    return [quantize_input(rng.uniform(-2, 2, (T, model.input_size)), model) for T in lengths]


@pytest.mark.parametrize("pauses", [(0.0, 0.0), (0.4, 0.4)], ids=["no-pauses", "idle-backpressure"])
@pytest.mark.parametrize("cfg", list(LAYER_CONFIGS))
@pytest.mark.parametrize("cell", CELLS)
def test_layer_matches_golden(cell, cfg, pauses):
    c = dict(LAYER_CONFIGS[cfg])
    model = random_model(cell, c.pop("X"), c.pop("H"), seed=3, **c)
    seqs = _inputs(model, [3, 1, 4], seed=4)
    run = run_stream_dut(RecurrentLayer(model), seqs, idle=pauses[0], backpressure=pauses[1], seed=5,
                         max_cycles=200 * layer_cycles(model))
    for seq, got, lasts in zip(seqs, run.outputs, run.lasts):
        np.testing.assert_array_equal(got, run_codes(model, seq).h_codes)
        np.testing.assert_array_equal(lasts, [0] * (len(seq) - 1) + [1])
    if pauses == (0.0, 0.0):
        # Back-to-back input, ready output: one h_t every layer_cycles cycles, exactly.
        np.testing.assert_array_equal(np.diff(run.out_cycles), layer_cycles(model))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_layer_initial_state(cell):
    """h0 (and c0) from the first beat of every sequence; the other beats' copies are ignored."""
    model = random_model(cell, 3, 4, pe=2, simd=2, seed=6)
    f = model.formats
    rng = np.random.default_rng(7)
    seqs = _inputs(model, [3, 2, 4], seed=8)
    extra = []
    for _ in seqs:
        e = {"h0": rng.integers(f.data.min_code // 8, f.data.max_code // 8, model.hidden_size)}
        if model.cell_spec.has_cell_state:
            e["c0"] = rng.integers(f.cell.min_code // 4, f.cell.max_code // 4, model.hidden_size)
        extra.append(e)
    run = run_stream_dut(RecurrentLayer(model, initial_state=True), seqs, idle=0.3, backpressure=0.3, seed=9,
                         extra=extra, max_cycles=100 * layer_cycles(model))
    for seq, e, got in zip(seqs, extra, run.outputs):
        expected = run_codes(model, seq, h0=e["h0"], c0=e.get("c0")).h_codes
        np.testing.assert_array_equal(got, expected)
        assert not np.array_equal(expected, run_codes(model, seq).h_codes), "h0/c0 had no effect: weak test"


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_layer_rejects_stacks():
    model = Model("gru", 3, 4, random_weights(3, 4, cell="gru", num_layers=2), num_layers=2)
    with pytest.raises(ValueError, match=r"RecurrentLayer builds one layer; take model.layer\(k\)"):
        RecurrentLayer(model)


@pytest.mark.parametrize("gate_act,cand_act", [("hard_sigmoid", "hard_tanh"), ("sigmoid", "softsign"),
                                               ("hard_sigmoid", "tanh")])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_layer_activation_choices(cell, gate_act, cand_act):
    """Piecewise-linear and softsign units in the layer, bit-exact with idles and backpressure."""
    model = random_model(cell, 5, 8, pe=4, simd=3, seed=3, gate_activation=gate_act, cand_activation=cand_act)
    seqs = _inputs(model, [3, 4], seed=4)
    run = run_stream_dut(RecurrentLayer(model), seqs, idle=0.3, backpressure=0.3, seed=5,
                         max_cycles=200 * layer_cycles(model))
    for seq, got in zip(seqs, run.outputs):
        np.testing.assert_array_equal(got, run_codes(model, seq).h_codes)
