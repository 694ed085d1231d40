"""Stacked, bidirectional, headed networks in Amaranth simulation, bit-exact against the golden model,
with the analytic cycle model checked against the measured cycles."""

import numpy as np
import pytest

from rnnaccel.golden.model import Model, random_weights
from rnnaccel.golden.network import quantize_input, run_codes
from rnnaccel.hdl import perf
from rnnaccel.hdl.network import DenseHead, Network
from rnnaccel.hdl.top import Accelerator
from rnnaccel.sim.amaranth_sim import run_stream_dut

TOPOLOGIES = {
    "lstm-L2": dict(cell="lstm", num_layers=2),
    "gru-L3-head3": dict(cell="gru", num_layers=3, head_size=3),
    "rnn_tanh-head2-last": dict(cell="rnn_tanh", head_size=2, outputs="last"),
    "rnn_relu-L2-last": dict(cell="rnn_relu", num_layers=2, outputs="last"),
    "lstm_nf-L2-h0c0": dict(cell="lstm_nf", num_layers=2, initial_state=True),
    "gru-L2-h0": dict(cell="gru", num_layers=2, initial_state=True),
    "gru-bi": dict(cell="gru", bidirectional=True),
    "lstm-bi-L2-head2-h0c0": dict(cell="lstm", bidirectional=True, num_layers=2, head_size=2, initial_state=True),
    "rnn_tanh-bi-L2-last": dict(cell="rnn_tanh", bidirectional=True, num_layers=2, outputs="last"),
}


def make_model(topo, X=3, H=4, pe=2, simd=2, seed=3):
    kw = dict(TOPOLOGIES[topo])
    cell = kw.pop("cell")
    w = random_weights(X, H, scale=0.5, seed=seed, cell=cell, num_layers=kw.get("num_layers", 1),
                       bidirectional=kw.get("bidirectional", False), head_size=kw.get("head_size", 0))
    return Model(cell, X, H, w, pe=pe, simd=simd, **kw)


def _states(model, rng):
    n = model.num_layers * model.directions
    f = model.formats
    e = {"h0": rng.integers(f.data.min_code // 8, f.data.max_code // 8, (n, model.state_size))}
    if model.cell_spec.has_cell_state:
        e["c0"] = rng.integers(f.cell.min_code // 8, f.cell.max_code // 8, (n, model.hidden_size))
    return e


@pytest.mark.parametrize("pauses", [(0.0, 0.0), (0.4, 0.4)], ids=["no-pauses", "idle-backpressure"])
@pytest.mark.parametrize("topo", list(TOPOLOGIES))
def test_network_matches_golden(topo, pauses):
    model = make_model(topo)
    rng = np.random.default_rng(4)
    seqs = [quantize_input(rng.uniform(-2, 2, (T, model.input_size)), model) for T in (3, 1, 4, 2)]
    extra = [_states(model, rng) for _ in seqs] if model.initial_state else None
    expected = [run_codes(model, s, **(extra[i] if extra else {})).h_codes for i, s in enumerate(seqs)]
    run = run_stream_dut(Accelerator(model), seqs, idle=pauses[0], backpressure=pauses[1], seed=5,
                         max_cycles=100_000, extra=extra, out_counts=[len(e) for e in expected])
    for exp, got, lasts in zip(expected, run.outputs, run.lasts):
        np.testing.assert_array_equal(got, exp)
        np.testing.assert_array_equal(lasts, [0] * (len(exp) - 1) + [1])
    if model.initial_state:
        plain = [run_codes(model, s).h_codes for s in seqs]
        assert any(not np.array_equal(a, b) for a, b in zip(plain, expected)), "initial states had no effect"


@pytest.mark.parametrize("topo", ["lstm-L2", "gru-L3-head3", "lstm_nf-L2-h0c0"])
def test_stack_cycles_per_timestep(topo):
    """Stacked layers are pipeline stages: one output every cycles_per_timestep = slowest stage."""
    model = make_model(topo, X=5, H=4, pe=1, simd=3)
    rng = np.random.default_rng(6)
    seqs = [quantize_input(rng.uniform(-1, 1, (8, model.input_size)), model)]
    extra = [_states(model, rng)] if model.initial_state else None
    run = run_stream_dut(Accelerator(model), seqs, max_cycles=100_000, extra=extra)
    # After the pipeline fills, one step per slowest stage.
    np.testing.assert_array_equal(np.diff(run.out_cycles), perf.cycles_per_timestep(model))
    assert perf.cycles_per_timestep(model) == max(perf.stage_cycles(model))


@pytest.mark.parametrize("topo,X,H,pe,simd", [("gru-bi", 3, 4, 2, 2), ("lstm-bi-L2-head2-h0c0", 5, 4, 1, 3),
                                              ("rnn_tanh-bi-L2-last", 2, 6, 3, 1)])
@pytest.mark.parametrize("T", [1, 2, 5])
def test_bidirectional_sequence_cycles(topo, X, H, pe, simd, T):
    """Back-to-back sequences of T steps: one every sequence_cycles(model, T) cycles."""
    model = make_model(topo, X=X, H=H, pe=pe, simd=simd)
    rng = np.random.default_rng(7)
    seqs = [quantize_input(rng.uniform(-1, 1, (T, X)), model) for _ in range(4)]
    extra = [_states(model, rng) for _ in seqs] if model.initial_state else None
    n_out = 1 if model.outputs == "last" else T
    run = run_stream_dut(Accelerator(model), seqs, max_cycles=100_000, extra=extra, out_counts=[n_out] * 4)
    last_outputs = run.out_cycles[n_out - 1::n_out]
    np.testing.assert_array_equal(np.diff(last_outputs), perf.sequence_cycles(model, T))


def test_cycles_per_timestep_refuses_bidirectional():
    with pytest.raises(ValueError, match=r"bidirectional network works on whole sequences: use sequence_cycles"):
        perf.cycles_per_timestep(make_model("gru-bi"))


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_head_needs_head_size():
    with pytest.raises(ValueError, match="DenseHead needs a model with head_size > 0"):
        DenseHead(make_model("lstm-L2"))


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_network_rejects_non_model():
    with pytest.raises(TypeError, match="Network needs a rnnaccel Model"):
        Network("lstm")


FINAL = {
    "lstm": dict(cell="lstm"),
    "lstm-L3-head2": dict(cell="lstm", num_layers=3, head_size=2),
    "gru-L2-last": dict(cell="gru", num_layers=2, outputs="last"),
    "lstm-bi-L2": dict(cell="lstm", bidirectional=True, num_layers=2),
    "lstm_peephole-L2": dict(cell="lstm_peephole", num_layers=2),
    "lstm-proj2-L2": dict(cell="lstm", proj_size=2, num_layers=2),
    "gru_rb-bi-head2": dict(cell="gru_rb", bidirectional=True, head_size=2),
}


@pytest.mark.parametrize("topo", list(FINAL))
def test_final_states_on_the_last_beat(topo):
    """With final_state, the last beat of every sequence carries h_n (and c_n) of every layer and
    direction, equal to the golden model's; with idles and backpressure."""
    from amaranth.sim import Simulator
    from rnnaccel.sim.streams import Pauses, stream_get, stream_put

    kw = dict(FINAL[topo])
    cell = kw.pop("cell")
    shape = {k: kw[k] for k in ("num_layers", "bidirectional", "head_size", "proj_size") if k in kw}
    model = Model(cell, 3, 4, random_weights(3, 4, cell=cell, seed=2, **shape), pe=2, simd=2, final_state=True, **kw)
    rng = np.random.default_rng(3)
    seqs = [quantize_input(rng.uniform(-2, 2, (T, 3)), model) for T in (3, 1, 4, 2)]
    expected = [run_codes(model, s) for s in seqs]
    dut = Accelerator(model)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    got = []

    async def producer(ctx):
        pauses = Pauses(0.3, 1)
        for s in seqs:
            for t, x in enumerate(s):
                await stream_put(ctx, dut.i_stream, {"data": [int(v) for v in x], "last": int(t == len(s) - 1)}, pauses)

    async def consumer(ctx):
        pauses = Pauses(0.3, 2)
        for e in expected:
            for _ in range(len(e.h_codes)):
                p = await stream_get(ctx, dut.o_stream, pauses)
            assert p.last
            hn = np.array([[int(v) for v in row] for row in p.h_n])
            cn = np.array([[int(v) for v in row] for row in p.c_n]) if e.final_c is not None else None
            got.append((hn, cn))

    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert len(got) == len(expected)
    for (hn, cn), e in zip(got, expected):
        np.testing.assert_array_equal(hn, e.final_h)
        if e.final_c is not None:
            np.testing.assert_array_equal(cn, e.final_c)
