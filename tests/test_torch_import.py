"""Tests of golden/torch_import.py: from_torch of nn.LSTM / nn.GRU / nn.RNN modules (any num_layers,
bidirectional, batch_first, bias, dropout, Linear head) or their state_dicts, and what it rejects.

The main check is behavioural: the float reference (golden/reference.py:network_float) of the
imported model equals the torch module's own output, h_n and c_n, from non-zero initial states.
"""

import itertools
import zlib

import numpy as np
import pytest

from rnnaccel.golden.fixed import QFormat
from rnnaccel.golden.model import ConfigError, Formats, Model, random_weights
from rnnaccel.golden.reference import network_float
from rnnaccel.golden.torch_import import from_torch

torch = pytest.importorskip("torch")

NAMES = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")

#: kind -> (constructor, expected cell, gate blocks)
KINDS = {
    "lstm": (lambda *a, **kw: torch.nn.LSTM(*a, **kw), "lstm", 4),
    "gru": (lambda *a, **kw: torch.nn.GRU(*a, **kw), "gru", 3),
    "rnn_tanh": (lambda *a, **kw: torch.nn.RNN(*a, nonlinearity="tanh", **kw), "rnn_tanh", 1),
    "rnn_relu": (lambda *a, **kw: torch.nn.RNN(*a, nonlinearity="relu", **kw), "rnn_relu", 1),
}


def make(kind="lstm", X=3, H=4, seed=0, **kw):
    torch.manual_seed(seed)
    return KINDS[kind][0](X, H, **kw)


def lstm(X=3, H=4, **kw):
    return make("lstm", X, H, **kw)


def names(num_layers, bidirectional):
    return {f"{p}_l{k}{r}" for k in range(num_layers) for r in ([""] + ["_reverse"] * bidirectional)
            for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}


def nonlinearity(kind):
    """The keyword a state_dict of ``kind`` needs (a state_dict does not say tanh or relu)."""
    return "relu" if kind == "rnn_relu" else None


# -- weights ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("batch_first", [False, True], ids=["seq-first", "batch-first"])
def test_module_and_state_dict_give_identical_weights(kind, batch_first):
    m = make(kind, 3, 4, batch_first=batch_first)
    a, b = from_torch(m), from_torch(m.state_dict(), nonlinearity=nonlinearity(kind))
    cell, blocks = KINDS[kind][1:]
    assert (a.input_size, a.hidden_size, a.cell) == (b.input_size, b.hidden_size, b.cell) == (3, 4, cell)
    assert (a.num_layers, a.bidirectional, a.head_size) == (b.num_layers, b.bidirectional, b.head_size) == (1, False, 0)
    assert a.name == cell
    assert set(a.weights) == set(b.weights) == set(NAMES)
    for k in NAMES:
        expected = getattr(m, k).detach().double().numpy()
        assert expected.shape[0] == blocks * 4
        assert a.weights[k].dtype == np.float64
        np.testing.assert_array_equal(a.weights[k], expected)
        np.testing.assert_array_equal(b.weights[k], expected)


@pytest.mark.parametrize("kind", list(KINDS))
def test_state_dict_infers_layers_directions_and_cell(kind):
    m = make(kind, 3, 4, num_layers=3, bidirectional=True)
    model = from_torch(m.state_dict(), nonlinearity=nonlinearity(kind))
    assert (model.cell, model.num_layers, model.bidirectional, model.head_size) == (KINDS[kind][1], 3, True, 0)
    assert set(model.weights) == names(3, True)
    assert model.layer_input_size(1) == 8
    # NumPy arrays (e.g. from an .npz) work as well as tensors
    sd = {k: v.numpy() for k, v in m.state_dict().items()}
    np.testing.assert_array_equal(from_torch(sd, nonlinearity=nonlinearity(kind)).weights["weight_hh_l2_reverse"],
                                  m.weight_hh_l2_reverse.detach().double().numpy())


def test_rnn_state_dict_defaults_to_tanh():
    sd = make("rnn_relu").state_dict()
    assert from_torch(sd).cell == "rnn_tanh"
    assert from_torch(sd, nonlinearity="relu").cell == "rnn_relu"
    assert from_torch(sd, cell="rnn_relu").cell == "rnn_relu"
    assert from_torch(sd, cell="rnn_relu", nonlinearity="relu").cell == "rnn_relu"


def test_cell_override_lstm_nf():
    """Weights of an LSTM without forget gate come as 3 blocks (i, g, o), like a GRU's: cell= says which."""
    w = random_weights(3, 4, cell="lstm_nf", num_layers=2, bidirectional=True, head_size=2, seed=4)
    model = from_torch(w, cell="lstm_nf")
    assert (model.cell, model.num_layers, model.bidirectional, model.head_size) == ("lstm_nf", 2, True, 2)
    for k, v in w.items():
        np.testing.assert_array_equal(model.weights[k], v)
    assert from_torch(w).cell == "gru"


@pytest.mark.parametrize("kind", list(KINDS) + ["lstm_nf"])
def test_model_weights_round_trip(kind):
    """from_torch(model.weights) rebuilds the model (head.weight / head.bias included)."""
    cell = kind
    w = random_weights(5, 3, cell=cell, num_layers=2, bidirectional=True, head_size=4, seed=1)
    model = Model(cell, 5, 3, w, num_layers=2, bidirectional=True, head_size=4)
    again = from_torch(model.weights, cell=cell)
    assert (again.cell, again.input_size, again.hidden_size, again.num_layers, again.bidirectional,
            again.head_size) == (cell, 5, 3, 2, True, 4)
    assert set(again.weights) == set(model.weights)
    for k in w:
        np.testing.assert_array_equal(again.weights[k], model.weights[k])


def test_float64_module_weights_are_kept_exactly():
    m = lstm(2, 2).double()
    with torch.no_grad():
        m.weight_ih_l0[0, 0] = 1 / 3
    assert from_torch(m).weights["weight_ih_l0"][0, 0] == 1 / 3


@pytest.mark.parametrize("kind", list(KINDS))
def test_bias_false_gives_zero_biases(kind):
    m = make(kind, 3, 4, bias=False, num_layers=2, bidirectional=True)
    head = torch.nn.Linear(8, 2, bias=False)
    rows = KINDS[kind][2] * 4
    for src in (m, m.state_dict()):
        kw = {} if src is m else {"nonlinearity": nonlinearity(kind)}
        model = from_torch(src, head=head, **kw)
        assert set(model.weights) == names(2, True) | {"head.weight", "head.bias"}
        for k in names(2, True):
            if k.startswith("bias"):
                np.testing.assert_array_equal(model.weights[k], np.zeros(rows))
        np.testing.assert_array_equal(model.weights["head.bias"], np.zeros(2))
        np.testing.assert_array_equal(model.weights["weight_ih_l1"], m.weight_ih_l1.detach().double().numpy())


def test_formats_and_options():
    m = lstm(3, 4)
    model = from_torch(m, formats={"weight": "s8.6", "cell": "s18.12"}, pe=2, simd=7, rounding="TRN",
                       overflow="WRAP", name="x", outputs="last")
    assert model.formats.weight == QFormat(8, 6) and model.formats.cell == QFormat(18, 12)
    assert model.formats.data == Formats().data and model.formats.tanh_out == Formats().tanh_out
    assert (model.pe, model.simd, model.rounding, model.overflow, model.name, model.outputs) == \
        (2, 7, "TRN", "WRAP", "x", "last")
    fm = Formats(data=QFormat(8, 6))
    assert from_torch(m, formats=fm).formats is fm
    assert from_torch(m).formats == Formats()
    assert from_torch(m).outputs == "sequence"
    with pytest.raises(ConfigError, match=r"\[formats\] has unknown entries \['weights'\]"):
        from_torch(m, formats={"weights": "s8.6"})
    with pytest.raises(ConfigError, match=r"formats\.weight: 's8,6' is not a fixed-point format"):
        from_torch(m, formats={"weight": "s8,6"})
    with pytest.raises(ConfigError, match=r"hardware\.pe = 3"):
        from_torch(m, pe=3)
    with pytest.raises(ConfigError, match=r"model\.outputs: unknown 'all'"):
        from_torch(m, outputs="all")


# -- the imported model computes what the module computes ----------------------------------------
X_F, H_F, T_F, OUT_F = 3, 4, 6, 5
CASES = [
    pytest.param(kind, layers, bidir, bf, bias, head,
                 id=f"{kind}-L{layers}-{'bi' if bidir else 'uni'}-{'batch_first' if bf else 'seq_first'}"
                    f"-{'bias' if bias else 'nobias'}-{'head' if head else 'nohead'}")
    for kind, layers, bidir, bf, bias, head in itertools.product(
        KINDS, (1, 2, 3), (False, True), (False, True), (True, False), (False, True))
]


def torch_forward(m, x, h0, c0, batch_first):
    xt = torch.from_numpy(x)[None] if batch_first else torch.from_numpy(x)[:, None]
    h0t = torch.from_numpy(h0)[:, None]
    state = (h0t, torch.from_numpy(c0)[:, None]) if isinstance(m, torch.nn.LSTM) else h0t
    with torch.no_grad():
        y, hn = m(xt, state)
    cn = None
    if isinstance(hn, tuple):
        hn, cn = hn
        cn = cn[:, 0].numpy()
    return (y[0] if batch_first else y[:, 0]), hn[:, 0].numpy(), cn


@pytest.mark.parametrize("kind, num_layers, bidirectional, batch_first, bias, with_head", CASES)
def test_network_float_equals_torch(kind, num_layers, bidirectional, batch_first, bias, with_head):
    seed = zlib.crc32(repr((kind, num_layers, bidirectional, batch_first, bias, with_head)).encode()) % 1000
    dirs = 2 if bidirectional else 1
    # dropout acts only in training; eval() turns it off, and from_torch ignores it
    m = make(kind, X_F, H_F, seed=seed, num_layers=num_layers, bidirectional=bidirectional,
             batch_first=batch_first, bias=bias, dropout=0.4 if num_layers > 1 else 0.0).double().eval()
    lin = torch.nn.Linear(H_F * dirs, OUT_F).double() if with_head else None
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1.5, (T_F, X_F))
    h0 = rng.uniform(-1, 1, (num_layers * dirs, H_F))
    c0 = rng.uniform(-2, 2, (num_layers * dirs, H_F))

    yt, hn_t, cn_t = torch_forward(m, x, h0, c0, batch_first)
    if lin is not None:
        with torch.no_grad():
            yt = lin(yt)
    yt = yt.numpy()

    model = from_torch(m, head=lin)
    assert (model.num_layers, model.bidirectional, model.head_size) == (num_layers, bidirectional,
                                                                        OUT_F if with_head else 0)
    assert model.cell == KINDS[kind][1]
    y, (hn, cn) = network_float(model, x, h0, c0)
    # float64 on both sides: they agree to rounding noise (measured < 1e-15), far inside the 1e-5 asked for
    tol = dict(rtol=0, atol=1e-9)
    assert y.shape == (T_F, model.output_size)
    np.testing.assert_allclose(y, yt, **tol)
    np.testing.assert_allclose(hn, hn_t, **tol)
    if kind == "lstm":
        np.testing.assert_allclose(cn, cn_t, **tol)
    else:
        assert cn is None and cn_t is None

    # outputs="last": only the last step (of the head, if any)
    last = from_torch(m, head=lin, outputs="last")
    y_last, (hn_last, _) = network_float(last, x, h0, c0)
    assert y_last.shape == (1, model.output_size)
    np.testing.assert_allclose(y_last, yt[-1:], **tol)
    np.testing.assert_array_equal(hn_last, hn)

    # the state_dicts give the same model
    sd_model = from_torch(m.state_dict(), head=None if lin is None else lin.state_dict(),
                          nonlinearity=nonlinearity(kind))
    np.testing.assert_array_equal(network_float(sd_model, x, h0, c0)[0], y)


def test_sequential_of_rnn_and_linear():
    rnn, lin = make("gru", 3, 4, bidirectional=True), torch.nn.Linear(8, 2)
    a = from_torch(torch.nn.Sequential(rnn, lin))
    b = from_torch(rnn, head=lin)
    assert (a.cell, a.bidirectional, a.head_size) == ("gru", True, 2)
    assert set(a.weights) == set(b.weights)
    for k in a.weights:
        np.testing.assert_array_equal(a.weights[k], b.weights[k])
    assert from_torch(torch.nn.Sequential(rnn)).head_size == 0


def test_head_as_state_dict_and_numpy():
    rnn, lin = make("rnn_tanh", 3, 4), torch.nn.Linear(4, 3)
    a = from_torch(rnn, head=lin)
    b = from_torch(rnn, head={k: v.numpy() for k, v in lin.state_dict().items()})
    c = from_torch(rnn, head={"weight": lin.weight.detach().numpy()})
    np.testing.assert_array_equal(a.weights["head.weight"], b.weights["head.weight"])
    np.testing.assert_array_equal(a.weights["head.bias"], b.weights["head.bias"])
    np.testing.assert_array_equal(c.weights["head.bias"], np.zeros(3))


# -- what it rejects ------------------------------------------------------------------------------
@pytest.mark.parametrize("get, kw, match", [
    pytest.param(lambda: {"weight_hr_l0": np.zeros((2, 4))} | {k: v for k, v in lstm(3, 4).state_dict().items()},
                 {}, r"weight_hr_l0 has shape \(2, 4\); with weight_hh_l0 \(16, 4\) it must be \(proj_size, "
                 r"hidden_size\) = \(4, hidden_size\)", id="state_dict-bad-weight_hr"),
    pytest.param(lambda: torch.nn.Linear(3, 4), {},
                 r"from_torch: cannot map a Linear module; supported: torch\.nn\.LSTM, nn\.GRU or nn\.RNN; "
                 r"pass it as head=", id="linear"),
    pytest.param(lambda: torch.nn.Conv1d(3, 4, 2), {},
                 r"from_torch: cannot map a Conv1d module; supported: torch\.nn\.LSTM, nn\.GRU or nn\.RNN$",
                 id="conv"),
    pytest.param(lambda: torch.nn.LSTMCell(3, 4), {},
                 r"cannot map a LSTMCell module \(a single cell\); use the sequence module \(nn\.LSTM\)",
                 id="lstm-cell"),
    pytest.param(lambda: torch.nn.Embedding(3, 4), {}, r"cannot map a Embedding module", id="embedding"),
    pytest.param(lambda: torch.nn.Sequential(lstm(), torch.nn.ReLU(), torch.nn.Linear(4, 2)), {},
                 r"cannot map an nn\.Sequential of \(LSTM, ReLU, Linear\); supported: \(LSTM\|GRU\|RNN\) or "
                 r"\(LSTM\|GRU\|RNN, Linear\)", id="sequential-relu"),
    pytest.param(lambda: torch.nn.Sequential(lstm(), torch.nn.Linear(4, 2)), {"head": torch.nn.Linear(4, 2)},
                 r"the nn\.Sequential already ends in a Linear head; do not also pass head=",
                 id="sequential-two-heads"),
    pytest.param(lambda: 42, {}, r"from_torch: expected a torch\.nn\.LSTM, nn\.GRU or nn\.RNN module or its "
                 r"state_dict, got int", id="int"),
    pytest.param(lambda: "lstm", {}, r"expected a torch\.nn\.LSTM, nn\.GRU or nn\.RNN module or its state_dict, "
                 r"got str", id="str"),
    # heads
    pytest.param(lambda: lstm(3, 4, bidirectional=True), {"head": torch.nn.Linear(4, 2)},
                 r"head in_features = 4 does not match the recurrent output, hidden_size x directions = 4 x 2 = 8; "
                 r"use nn\.Linear\(8, 2\)", id="head-in-features"),
    pytest.param(lambda: lstm(3, 4), {"head": torch.nn.ReLU()},
                 r"head must be an nn\.Linear \(or its state_dict\), got a ReLU module", id="head-relu"),
    pytest.param(lambda: lstm(3, 4), {"head": 3}, r"head must be an nn\.Linear \(or its state_dict\), got int",
                 id="head-int"),
    pytest.param(lambda: lstm(3, 4), {"head": {"weight": np.zeros((2, 4)), "scale": 1}},
                 r"a head state_dict needs 'weight' and optionally 'bias'.*got keys \['scale', 'weight'\]",
                 id="head-dict-extra"),
    pytest.param(lambda: random_weights(3, 4, head_size=2), {"head": torch.nn.Linear(4, 2)},
                 r"the state_dict already has \['head\.bias', 'head\.weight'\]; do not also pass head=",
                 id="two-heads"),
    pytest.param(lambda: {k: v for k, v in random_weights(3, 4, head_size=2).items() if k != "head.weight"}, {},
                 r"a head state_dict needs 'weight'", id="head-bias-only"),
    pytest.param(lambda: random_weights(3, 4, bidirectional=True, head_size=2) | {"head.weight": np.zeros((2, 4))},
                 {}, r"head in_features = 4 does not match .* 4 x 2 = 8", id="state_dict-head-in-features"),
    # cell / nonlinearity keywords
    pytest.param(lambda: make("gru"), {"cell": "lstm_nf"},
                 r"cell = 'lstm_nf' does not match the GRU module \(cell 'gru'\); cell= only re-interprets a "
                 r"state_dict", id="module-cell-override"),
    pytest.param(lambda: make("rnn_tanh"), {"nonlinearity": "relu"},
                 r"nonlinearity = 'relu' does not match an nn\.RNN with nonlinearity='tanh'", id="module-nonlinearity"),
    pytest.param(lambda: make("lstm"), {"nonlinearity": "tanh"},
                 r"nonlinearity = 'tanh' does not match a LSTM module, which has no nonlinearity option",
                 id="lstm-nonlinearity"),
    pytest.param(lambda: make("gru").state_dict(), {"cell": "lstm"},
                 r"cell = 'lstm' has 4 gate block\(s\) \(16 rows for hidden_size 4\), but weight_hh_l0 has 12 rows "
                 r"\(3 block\(s\)\); choose a cell with 3", id="state_dict-cell-blocks"),
    pytest.param(lambda: make("gru").state_dict(), {"cell": "elman"},
                 r"from_torch: unknown cell 'elman'; supported: lstm, lstm_nf, gru", id="state_dict-unknown-cell"),
    pytest.param(lambda: make("gru").state_dict(), {"nonlinearity": "relu"},
                 r"nonlinearity = 'relu' applies to nn\.RNN weights \(1 gate block\), but weight_hh_l0 has 3 blocks",
                 id="state_dict-gru-nonlinearity"),
    pytest.param(lambda: make("rnn_tanh").state_dict(), {"nonlinearity": "sigmoid"},
                 r"nonlinearity = 'sigmoid'; nn\.RNN has 'tanh' or 'relu'", id="state_dict-bad-nonlinearity"),
    pytest.param(lambda: make("rnn_tanh").state_dict(), {"nonlinearity": "relu", "cell": "rnn_tanh"},
                 r"nonlinearity = 'relu' contradicts cell = 'rnn_tanh'", id="state_dict-contradiction"),
    # state_dicts
    pytest.param(lambda: torch.nn.Linear(3, 4).state_dict(), {},
                 r"from_torch: state_dict has no weight_ih_l0 / weight_hh_l0 \(keys: \['bias', 'weight'\]\); pass "
                 r"the state_dict of a torch\.nn\.LSTM, nn\.GRU or nn\.RNN", id="state_dict-linear"),
    pytest.param(lambda: torch.nn.Sequential(lstm(), torch.nn.Linear(4, 2)).state_dict(), {},
                 r"state_dict has no weight_ih_l0", id="state_dict-sequential"),
    pytest.param(lambda: lstm().state_dict() | {"scale": torch.ones(1), "0.weight": torch.ones(1)}, {},
                 r"state_dict has unexpected entries \['0\.weight', 'scale'\]; expected PyTorch RNN names .* Pass "
                 r"the recurrent module's own state_dict", id="state_dict-unexpected"),
    pytest.param(lambda: lstm().state_dict() | {"weight_ih_l0": torch.zeros(16, 3, 1)}, {},
                 r"weight_ih_l0 / weight_hh_l0 have shapes \(16, 3, 1\) / \(16, 4\); expected 2-D", id="state_dict-3d"),
    pytest.param(lambda: lstm().state_dict() | {"weight_hh_l0": torch.zeros(8, 4)}, {},
                 r"weight_hh_l0 has shape \(8, 4\): expected gate_blocks x hidden_size rows with 4 \(LSTM: 16\), 3 "
                 r"\(GRU, or cell='lstm_nf': 12\) or 1 \(RNN: 4\) blocks", id="state_dict-2-blocks"),
    # the Model's own checks reach through: an incomplete stack names what is missing
    pytest.param(lambda: {k: v for k, v in lstm(num_layers=2).state_dict().items() if k != "bias_hh_l1"}, {},
                 r"weights: missing \['bias_hh_l1'\]", id="state_dict-missing-bias"),
    pytest.param(lambda: {k: v for k, v in lstm(bidirectional=True).state_dict().items()
                          if k != "weight_hh_l0_reverse"}, {},
                 r"weights: missing \['weight_hh_l0_reverse'\]", id="state_dict-missing-reverse"),
    pytest.param(lambda: lstm().state_dict() | {"weight_ih_l0": torch.zeros(12, 3)}, {},
                 r"weights\.weight_ih_l0: shape \(12, 3\), expected \(16, 3\)", id="state_dict-ih-rows"),
])
def test_rejects(get, kw, match):
    with pytest.raises(ConfigError, match=match):
        from_torch(get(), **kw)


def test_gru_state_dict_is_no_longer_rejected():
    """The first version refused a GRU state_dict (3H rows); now it becomes a GRU model."""
    sd = torch.nn.GRU(3, 4).state_dict()
    assert from_torch(sd).cell == "gru"
    assert from_torch(torch.nn.GRU(3, 4, num_layers=2)).num_layers == 2


@pytest.mark.parametrize("layers, bidirectional, head", [(1, False, False), (2, True, True), (3, False, True)],
                         ids=["L1", "L2-bi-head", "L3-head"])
@pytest.mark.parametrize("source", ["module", "state_dict"])
def test_lstm_projection_imports_and_matches_torch(layers, bidirectional, head, source):
    """nn.LSTM(proj_size=P): weight_hr kept, output and h_n of size P equal torch's."""
    torch.manual_seed(5)
    m = lstm(3, 5, proj_size=2, num_layers=layers, bidirectional=bidirectional).double().eval()
    dirs = 2 if bidirectional else 1
    lin = torch.nn.Linear(2 * dirs, 3).double() if head else None
    model = from_torch(m if source == "module" else m.state_dict(), head=lin)
    assert (model.proj_size, model.state_size, model.hidden_size) == (2, 2, 5)
    x = np.random.default_rng(6).uniform(-1, 1, (6, 3))
    y, (hn, cn) = network_float(model, x)
    with torch.no_grad():
        yt, (ht, ct) = m(torch.tensor(x))
        if head:
            yt = lin(yt)
    np.testing.assert_allclose(y, yt.numpy(), atol=1e-9)
    np.testing.assert_allclose(hn, ht.numpy(), atol=1e-9)
    np.testing.assert_allclose(cn, ct.numpy(), atol=1e-9)
