"""Tier 1: the float reference of golden/reference.py equals torch.nn.LSTM / GRU / RNN (float64).

lstm_nf has no torch module; it is checked against nn.LSTM with a forget gate of exactly 1.
"""

import numpy as np
import pytest

from rnnaccel.golden.model import Model, random_weights
from rnnaccel.golden.reference import layer_float, lstm_float, network_float

torch = pytest.importorskip("torch")

SIZES = [pytest.param(x, h, t, id=f"X{x}-H{h}-T{t}") for x, h, t in [
    (1, 1, 1), (3, 2, 7), (5, 8, 20), (16, 4, 3), (32, 32, 50),
]]


def torch_lstm(weights, X, H, batch_first):
    m = torch.nn.LSTM(X, H, batch_first=batch_first).double()
    with torch.no_grad():
        for k, v in weights.items():
            getattr(m, k).copy_(torch.from_numpy(v))
    return m


@pytest.mark.parametrize("batch_first", [False, True], ids=["seq-first", "batch-first"])
@pytest.mark.parametrize("X, H, T", SIZES)
def test_lstm_float_equals_torch(X, H, T, batch_first, golden_lstm_weights):
    w = golden_lstm_weights(X, H, scale=1.0, seed=X * 100 + H * 10 + T)
    rng = np.random.default_rng(T)
    x = rng.normal(0, 1.5, (T, X))
    h0, c0 = rng.uniform(-1, 1, H), rng.uniform(-2, 2, H)
    model = Model("lstm", X, H, w)
    y, (hT, cT) = lstm_float(model, x, h0, c0)

    m = torch_lstm(w, X, H, batch_first)
    xt = torch.from_numpy(x)[None] if batch_first else torch.from_numpy(x)[:, None]
    with torch.no_grad():
        yt, (ht, ct) = m(xt, (torch.from_numpy(h0)[None, None], torch.from_numpy(c0)[None, None]))
    yt = (yt[0] if batch_first else yt[:, 0]).numpy()
    assert y.shape == (T, H)
    np.testing.assert_allclose(y, yt, rtol=0, atol=1e-6)
    np.testing.assert_allclose(hT, ht[0, 0].numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(cT, ct[0, 0].numpy(), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(y[-1], hT)


def test_lstm_float_zero_initial_state_by_default(golden_lstm_weights):
    X, H, T = 4, 3, 5
    w = golden_lstm_weights(X, H, seed=1)
    x = np.random.default_rng(0).normal(size=(T, X))
    m = torch_lstm(w, X, H, batch_first=False)
    with torch.no_grad():
        yt, _ = m(torch.from_numpy(x))            # unbatched input, zero state
    y, _ = lstm_float(Model("lstm", X, H, w), x)
    np.testing.assert_allclose(y, yt.numpy(), rtol=0, atol=1e-6)


# -- every cell ----------------------------------------------------------------------------------------

TORCH = {
    "lstm": lambda X, H, **kw: torch.nn.LSTM(X, H, **kw),
    "gru": lambda X, H, **kw: torch.nn.GRU(X, H, **kw),
    "rnn_tanh": lambda X, H, **kw: torch.nn.RNN(X, H, nonlinearity="tanh", **kw),
    "rnn_relu": lambda X, H, **kw: torch.nn.RNN(X, H, nonlinearity="relu", **kw),
}


def with_forget_gate(w: dict, H: int) -> dict:
    """lstm_nf weights (blocks i, g, o) as nn.LSTM weights (i, f, g, o) whose forget gate is exactly 1.

    The f rows get zero weights and b_ih = 100: sigmoid(100) = 1 / (1 + 3.7e-44) rounds to 1.0 in
    float64, so nn.LSTM computes c_t = 1.0 * c_{t-1} + i*g, the equation of lstm_nf.
    """
    out = {}
    for k, v in w.items():
        if k.startswith("head."):
            out[k] = v
            continue
        i, g, o = v[:H], v[H:2 * H], v[2 * H:]
        f = np.full_like(i, 100.0 if k.startswith("bias_ih") else 0.0)
        out[k] = np.concatenate([i, f, g, o])
    return out


def load_torch(m, w):
    with torch.no_grad():
        for k, v in w.items():
            getattr(m, k).copy_(torch.from_numpy(v))
    return m


def run_torch(m, x, h0, c0=None):
    state = torch.from_numpy(h0)[:, None]
    if c0 is not None:
        state = (state, torch.from_numpy(c0)[:, None])
    with torch.no_grad():
        y, s = m(torch.from_numpy(x)[:, None], state)
    h, c = s if isinstance(s, tuple) else (s, None)
    return y[:, 0].numpy(), h[:, 0].numpy(), None if c is None else c[:, 0].numpy()


@pytest.mark.parametrize("cell", list(TORCH))
@pytest.mark.parametrize("X, H, T", SIZES)
def test_layer_float_equals_torch(cell, X, H, T):
    w = random_weights(X, H, cell=cell, scale=1.0, seed=X * 100 + H * 10 + T)
    rng = np.random.default_rng(T)
    x = rng.normal(0, 1.5, (T, X))
    h0, c0 = rng.uniform(-1, 1, H), rng.uniform(-2, 2, H)
    y, (hT, cT) = layer_float(Model(cell, X, H, w), x, h0, c0)
    m = load_torch(TORCH[cell](X, H).double(), w)
    yt, ht, ct = run_torch(m, x, h0[None], c0[None] if cell == "lstm" else None)
    assert y.shape == (T, H)
    # rnn_relu with weights of scale 1 grows without bound (to 1e9 at H=32, T=50): compare relatively too
    np.testing.assert_allclose(y, yt, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(hT, ht[0], rtol=1e-12, atol=1e-9)
    if cell == "lstm":
        np.testing.assert_allclose(cT, ct[0], rtol=0, atol=1e-9)
    else:
        assert cT is None


@pytest.mark.parametrize("X, H, T", SIZES)
def test_lstm_nf_float_equals_torch_lstm_with_forget_gate_one(X, H, T):
    w = random_weights(X, H, cell="lstm_nf", scale=1.0, seed=T)
    rng = np.random.default_rng(T)
    x = rng.normal(0, 1.5, (T, X))
    h0, c0 = rng.uniform(-1, 1, H), rng.uniform(-2, 2, H)
    y, (hT, cT) = layer_float(Model("lstm_nf", X, H, w), x, h0, c0)
    m = load_torch(torch.nn.LSTM(X, H).double(), with_forget_gate(w, H))
    yt, ht, ct = run_torch(m, x, h0[None], c0[None])
    np.testing.assert_allclose(y, yt, rtol=0, atol=1e-9)
    np.testing.assert_allclose(hT, ht[0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(cT, ct[0], rtol=0, atol=1e-9)


def test_lstm_nf_cell_state_accumulates():
    """Without forget gate c_t - c_{t-1} = i*g exactly (nothing decays)."""
    X, H, T = 2, 3, 30
    w = random_weights(X, H, cell="lstm_nf", scale=0.5, seed=3)
    model = Model("lstm_nf", X, H, w)
    x = np.random.default_rng(0).normal(size=(T, X))
    c0 = np.array([0.5, -1.0, 2.0])
    cs = [c0]
    h = np.zeros(H)
    for t in range(T):
        _, (h, c) = layer_float(model, x[t:t + 1], h, cs[-1])
        cs.append(c)
    _, (_, cT) = layer_float(model, x, None, c0)
    np.testing.assert_allclose(cT, cs[-1], rtol=0, atol=1e-12)
    inc = np.diff(np.array(cs), axis=0)
    assert np.all(np.abs(inc) < 1)          # |i*g| < 1


@pytest.mark.parametrize("cell", list(TORCH) + ["lstm_nf"])
@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, True), (3, False)],
                         ids=["L1-uni", "L2-bi", "L3-uni"])
def test_network_float_equals_torch(cell, num_layers, bidirectional):
    """Stacks, directions and the Linear head, for every cell (lstm_nf through a forget gate of 1)."""
    X, H, T, Y = 3, 4, 9, 2
    dirs = 1 + bidirectional
    w = random_weights(X, H, cell=cell, scale=0.8, seed=num_layers, num_layers=num_layers,
                       bidirectional=bidirectional, head_size=Y)
    model = Model(cell, X, H, w, num_layers=num_layers, bidirectional=bidirectional, head_size=Y)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(T, X))
    h0, c0 = rng.uniform(-1, 1, (num_layers * dirs, H)), rng.uniform(-1, 1, (num_layers * dirs, H))
    y, (hn, cn) = network_float(model, x, h0, c0)

    tw = with_forget_gate(w, H) if cell == "lstm_nf" else w
    kind = "lstm" if cell == "lstm_nf" else cell
    m = load_torch(TORCH[kind](X, H, num_layers=num_layers, bidirectional=bidirectional).double(),
                   {k: v for k, v in tw.items() if not k.startswith("head.")})
    lin = torch.nn.Linear(H * dirs, Y).double()
    load_torch(lin, {"weight": w["head.weight"], "bias": w["head.bias"]})
    yt, ht, ct = run_torch(m, x, h0, c0 if kind == "lstm" else None)
    with torch.no_grad():
        yt = lin(torch.from_numpy(yt)).numpy()
    assert y.shape == (T, Y)
    np.testing.assert_allclose(y, yt, rtol=0, atol=1e-9)
    np.testing.assert_allclose(hn, ht, rtol=0, atol=1e-9)
    if kind == "lstm":
        np.testing.assert_allclose(cn, ct, rtol=0, atol=1e-9)
    else:
        assert cn is None


@pytest.mark.parametrize("cell", list(TORCH) + ["lstm_nf"])
def test_network_float_defaults_and_outputs_last(cell):
    X, H, T = 3, 4, 6
    w = random_weights(X, H, cell=cell, num_layers=2, bidirectional=True, seed=2)
    kw = dict(num_layers=2, bidirectional=True)
    x = np.random.default_rng(0).normal(size=(T, X))
    seq, (hn, cn) = network_float(Model(cell, X, H, w, **kw), x)
    zeros = np.zeros((4, H))
    seq0, (hn0, cn0) = network_float(Model(cell, X, H, w, **kw), x, zeros, zeros)
    np.testing.assert_array_equal(seq, seq0)
    np.testing.assert_array_equal(hn, hn0)
    assert seq.shape == (T, 2 * H) and hn.shape == (4, H)
    # h_n: forward final state = the output at T-1, backward final state = the output at step 0
    np.testing.assert_array_equal(hn[2], seq[-1, :H])
    np.testing.assert_array_equal(hn[3], seq[0, H:])
    assert (cn is None) == (cell not in ("lstm", "lstm_nf"))
    last, (hn_l, _) = network_float(Model(cell, X, H, w, outputs="last", **kw), x)
    np.testing.assert_array_equal(last, seq[-1:])
    np.testing.assert_array_equal(hn_l, hn)


def test_lstm_float_is_layer_0():
    X, H, T = 3, 2, 5
    w = random_weights(X, H, seed=9)
    model = Model("lstm", X, H, w)
    x = np.random.default_rng(0).normal(size=(T, X))
    a, (ha, ca) = lstm_float(model, x)
    b, (hb, cb) = layer_float(model, x)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ca, cb)
