"""Projected layers: LSTM with projection (torch.nn.LSTM(proj_size=P)) and the Jordan RNN.

Float reference against PyTorch (LSTM) and an independent plain-Python loop (Jordan); the integer
model against an independent Python-int implementation over every rounding and overflow mode;
the hardware blocks and the layer against the integer model, with idle cycles and backpressure,
and the analytic cycle model against the measured cycles.
"""

import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

from rnnaccel.golden import projected as gp
from rnnaccel.golden.fixed import QFormat
from rnnaccel.golden.layer import run_layer
from rnnaccel.golden.model import ConfigError, Formats, Model, load, random_weights, save
from rnnaccel.golden.network import quantize_input, run, run_codes
from rnnaccel.golden.reference import network_float
from rnnaccel.hdl import perf
from rnnaccel.hdl.layer import RecurrentLayer, build_layer
from rnnaccel.hdl.projected import ProjectedLayer, ProjectionOutput, projection_banks
from rnnaccel.sim.amaranth_sim import run_pipeline, run_stream_dut

torch = pytest.importorskip("torch")

SMALL_FORMATS = Formats(data="s8.5", weight="s8.6", cell="s10.6", sigmoid_in="s7.3", sigmoid_out="u8.8",
                        tanh_in="s7.4", tanh_out="s8.7")
# data s8.6 (+-2): the projection of 8 values in (-1, 1) overflows now and then.
PROJ_FORMATS = Formats(data="s8.6", weight="s8.6", cell="s10.6", sigmoid_in="s7.3", sigmoid_out="u8.8",
                       tanh_in="s7.4", tanh_out="s8.7")
ROUNDINGS = ("TRN", "RND", "RND_CONV")
OVERFLOWS = ("SAT", "WRAP")


def projected_model(cell, X, H, P, *, seed=0, scale=0.5, num_layers=1, bidirectional=False, **kw):
    w = random_weights(X, H, cell=cell, proj_size=P, seed=seed, scale=scale, num_layers=num_layers,
                       bidirectional=bidirectional, head_size=kw.get("head_size", 0))
    return Model(cell, X, H, w, proj_size=P, num_layers=num_layers, bidirectional=bidirectional, **kw)


# -- model description -------------------------------------------------------------------------------

def test_weight_shapes():
    lstm = projected_model("lstm", 3, 5, 2, num_layers=2, bidirectional=True)
    assert lstm.layer_weight_shapes(3) == {"weight_ih": (20, 3), "weight_hh": (20, 2), "bias_ih": (20,),
                                           "bias_hh": (20,), "weight_hr": (2, 5)}
    assert lstm.layer(1, reverse=True).input_size == 4            # [forward; backward] of P each
    assert sorted(lstm.layer(1, reverse=True).weights) == ["bias_hh_l0", "bias_ih_l0", "weight_hh_l0",
                                                           "weight_hr_l0", "weight_ih_l0"]
    jordan = projected_model("jordan", 3, 4, 6)
    assert jordan.layer_weight_shapes(3) == {"weight_ih": (4, 3), "weight_hh": (4, 6), "bias_ih": (4,),
                                             "bias_hh": (4,), "weight_hy": (6, 4), "bias_hy": (6,)}
    assert jordan.state_size == jordan.output_size == 6


BAD = [
    pytest.param(dict(cell="gru", proj_size=2), r"model\.proj_size = 2: cell 'gru' has no projection \(only 'lstm'",
                 id="gru-proj"),
    pytest.param(dict(cell="rnn_tanh", proj_size=1), r"cell 'rnn_tanh' has no projection.*use proj_size = 0",
                 id="rnn-proj"),
    pytest.param(dict(cell="lstm", proj_size=4),
                 r"model\.proj_size = 4 must be smaller than hidden_size = 4 \(as in torch\.nn\.LSTM\); choose "
                 r"proj_size from 1 to 3", id="lstm-proj-not-smaller"),
    pytest.param(dict(cell="jordan", proj_size=0),
                 r"model\.proj_size = 0: the jordan cell feeds back its output y_t.*set proj_size > 0",
                 id="jordan-without-proj"),
]


@pytest.mark.parametrize("kw,match", BAD)
def test_projection_config_errors(kw, match):
    w = random_weights(3, 4, cell=kw["cell"], proj_size=kw["proj_size"] if kw["cell"] != "lstm" else 2)
    with pytest.raises(ConfigError, match=match):
        Model(kw["cell"], 3, 4, w, proj_size=kw["proj_size"])


def test_projection_weight_errors():
    w = random_weights(3, 4, proj_size=2)
    del w["weight_hr_l0"]
    with pytest.raises(ConfigError, match=r"weights: missing \['weight_hr_l0'\]"):
        Model("lstm", 3, 4, w, proj_size=2)
    w = random_weights(3, 4, cell="jordan", proj_size=2)
    w["weight_hy_l0"] = w["weight_hy_l0"][:, :3]
    with pytest.raises(ConfigError, match=r"weights\.weight_hy_l0: shape \(2, 3\), expected \(2, 4\)"):
        Model("jordan", 3, 4, w, proj_size=2)
    # The gate pass (X + P = 3 terms) fits in 62 bits, the projection over H = 32768 terms does not.
    with pytest.raises(ConfigError, match=r"projection accumulator needs 63 bits .* over hidden_size = 32768"):
        projected_model("lstm", 1, 32768, 2, formats=Formats(data="s24.12", weight="s24.12"), scale=0.01)


@pytest.mark.parametrize("cell", ["lstm", "jordan"])
def test_save_load_roundtrip(cell, tmp_path):
    m = projected_model(cell, 3, 4, 2, num_layers=2)
    m2 = load(save(m, tmp_path / "m.toml"))
    assert m2.proj_size == 2 and m2.summary() == m.summary()
    for k, v in m.weights.items():
        np.testing.assert_array_equal(m2.weights[k], v)


# -- float reference ----------------------------------------------------------------------------------

@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, False), (1, True), (2, True)],
                         ids=["1layer", "2layers", "1layer-bidir", "2layers-bidir"])
def test_lstm_proj_float_equals_torch(num_layers, bidirectional):
    torch.manual_seed(0)
    X, H, P, T = 3, 5, 2, 7
    net = torch.nn.LSTM(X, H, proj_size=P, num_layers=num_layers, bidirectional=bidirectional)
    model = Model("lstm", X, H, {k: v.detach().numpy() for k, v in net.state_dict().items()}, proj_size=P,
                  num_layers=num_layers, bidirectional=bidirectional)
    n = num_layers * (2 if bidirectional else 1)
    rng = np.random.default_rng(1)
    x, h0, c0 = rng.normal(size=(T, X)), rng.normal(size=(n, P)), rng.normal(size=(n, H))
    with torch.no_grad():
        yt, (hnt, cnt) = net.double()(torch.tensor(x), (torch.tensor(h0), torch.tensor(c0)))
    y, (hn, cn) = network_float(model, x, h0, c0)
    np.testing.assert_allclose(y, yt.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(hn, hnt.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(cn, cnt.numpy(), atol=1e-5, rtol=0)
    assert y.shape == (T, P * (2 if bidirectional else 1))
    # Zero initial states by default, as torch.
    with torch.no_grad():
        yt0, _ = net(torch.tensor(x))
    np.testing.assert_allclose(network_float(model, x)[0], yt0.numpy(), atol=1e-5, rtol=0)


def jordan_loop(weights, x, layers, dirs, P, h0=None, act=math.tanh):
    """The Jordan network from its equations, on Python floats (no NumPy)."""
    T = len(x)
    seq = [[float(v) for v in row] for row in x]
    finals = []
    for k in range(layers):
        outs = []
        for d in range(dirs):
            sfx = f"_l{k}" + ("_reverse" if d else "")
            wih, whh, why = (weights[f"{n}{sfx}"].tolist() for n in ("weight_ih", "weight_hh", "weight_hy"))
            bih, bhh, bhy = (weights[f"{n}{sfx}"].tolist() for n in ("bias_ih", "bias_hh", "bias_hy"))
            y = [0.0] * P if h0 is None else [float(v) for v in h0[k * dirs + d]]
            out = [None] * T
            for t in (range(T) if d == 0 else reversed(range(T))):
                h = [act(sum(a * b for a, b in zip(wih[i], seq[t])) + sum(a * b for a, b in zip(whh[i], y))
                         + bih[i] + bhh[i]) for i in range(len(wih))]
                y = [act(sum(a * b for a, b in zip(why[p], h)) + bhy[p]) for p in range(P)]
                out[t] = y
            outs.append(out)
            finals.append(y)
        seq = [sum((o[t] for o in outs), []) for t in range(T)]
    return np.array(seq), np.array(finals)


@pytest.mark.parametrize("num_layers,bidirectional,act", [(1, False, "tanh"), (2, True, "tanh"),
                                                          (1, False, "softsign")],
                         ids=["1layer-tanh", "2layers-bidir-tanh", "1layer-softsign"])
def test_jordan_float_equals_equations(num_layers, bidirectional, act):
    X, H, P, T = 3, 4, 5, 6
    model = projected_model("jordan", X, H, P, seed=2, scale=0.8, num_layers=num_layers,
                            bidirectional=bidirectional, cand_activation=act)
    n = num_layers * (2 if bidirectional else 1)
    rng = np.random.default_rng(3)
    x, h0 = rng.normal(size=(T, X)), rng.uniform(-1, 1, (n, P))
    fn = math.tanh if act == "tanh" else (lambda v: v / (1 + abs(v)))
    y_ref, hn_ref = jordan_loop(model.weights, x, num_layers, 2 if bidirectional else 1, P, h0, fn)
    y, (hn, cn) = network_float(model, x, h0)
    np.testing.assert_allclose(y, y_ref, atol=1e-12, rtol=0)
    np.testing.assert_allclose(hn, hn_ref, atol=1e-12, rtol=0)
    assert cn is None


# -- integer model against an independent Python-int implementation -----------------------------------

def _shift_round(code, shift, mode):
    if shift <= 0:
        return code << -shift
    q, r = divmod(code, 1 << shift)
    half = 1 << (shift - 1)
    if mode == "TRN":
        return q
    if mode == "RND":
        return q + (r >= half)
    return q + (r > half or (r == half and q % 2 == 1))


def _fit(q, fmt, overflow):
    lo, hi = (-(1 << (fmt.width - 1)), (1 << (fmt.width - 1)) - 1) if fmt.signed else (0, (1 << fmt.width) - 1)
    if lo <= q <= hi:
        return q, False
    if overflow == "SAT":
        return (lo if q < lo else hi), True
    return (q - lo) % (1 << fmt.width) + lo, True


def _from_float(v, fmt):
    s = Fraction(float(v)) * (1 << fmt.frac)
    n = math.floor(s)
    return _fit(n + (2 * (s - n) >= 1), fmt, "SAT")[0]


class IntRef:
    """One projected layer on Python ints, written from the rounding points of golden/projected.py."""

    def __init__(self, model):
        self.m, fm = model, model.formats
        self.fm, self.af = fm, fm.data.frac + fm.weight.frac
        bias_fmt = QFormat(fm.data.width + fm.weight.width, self.af)
        w = model.weights
        qw = lambda a: [[_from_float(v, fm.weight) for v in row] for row in a.tolist()]  # noqa: E731
        self.w = [a + b for a, b in zip(qw(w["weight_ih_l0"]), qw(w["weight_hh_l0"]))]  # [W_ih | W_hh]
        self.b = [_from_float(v, bias_fmt) for v in (w["bias_ih_l0"] + w["bias_hh_l0"]).tolist()]
        if model.cell == "lstm":
            self.wp, self.bp = qw(w["weight_hr_l0"]), [0] * model.proj_size
        else:
            self.wp = qw(w["weight_hy_l0"])
            self.bp = [_from_float(v, bias_fmt) for v in w["bias_hy_l0"].tolist()]
        self.events = Counter()

    def req(self, code, frac, fmt, tag, overflow=None):
        q, ov = _fit(_shift_round(code, frac - fmt.frac, self.m.rounding), fmt, overflow or self.m.overflow)
        self.events[tag] += ov
        return q

    def act(self, code, frac, fn, tag="index"):
        fin, fout = (self.fm.sigmoid_in, self.fm.sigmoid_out) if fn == "sigmoid" else (self.fm.tanh_in,
                                                                                        self.fm.tanh_out)
        i = self.req(code, frac, fin, tag, "SAT")
        x = min(abs(i), (1 << (fin.width - 1)) - 1) / (1 << fin.frac)
        t = _from_float(1 / (1 + math.exp(-x)) if fn == "sigmoid" else math.tanh(x), fout)
        if i >= 0:
            return t
        return (1 << fout.frac) - t if fn == "sigmoid" else -t

    def step(self, x, h, c):
        fm, H, af = self.fm, self.m.hidden_size, self.af
        v = list(x) + list(h)
        acc = [sum(a * b for a, b in zip(row, v)) + bias for row, bias in zip(self.w, self.b)]
        so, to, cf = fm.sigmoid_out.frac, fm.tanh_out.frac, fm.cell.frac
        if self.m.cell == "lstm":
            i, f, o = ([self.act(a, af, "sigmoid") for a in acc[g * H:(g + 1) * H]] for g in (0, 1, 3))
            g = [self.act(a, af, "tanh") for a in acc[2 * H:3 * H]]
            top = max(so + cf, so + to)
            c = [self.req((f[u] * c[u] << (top - so - cf)) + (i[u] * g[u] << (top - so - to)), top, fm.cell, "cell")
                 for u in range(H)]
            vals = [self.req(o[u] * self.act(c[u], cf, "tanh"), so + to, fm.data, "hidden") for u in range(H)]
        else:
            vals = [self.req(self.act(a, af, "tanh"), to, fm.data, "hidden") for a in acc]
        pacc = [sum(a * b for a, b in zip(row, vals)) + bias for row, bias in zip(self.wp, self.bp)]
        if self.m.cell == "lstm":
            return [self.req(a, af, fm.data, "projection") for a in pacc], c
        return [self.req(self.act(a, af, "tanh", "tanh_in(y)"), to, fm.data, "output") for a in pacc], None

    def run(self, xs, h0, c0):
        h, c, out = list(h0), list(c0), []
        for x in xs:
            h, c = self.step(x, h, c)
            out.append(h)
        return np.array(out, dtype=np.int64)


@pytest.mark.parametrize("overflow", OVERFLOWS)
@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("cell", ["lstm", "jordan"])
def test_golden_equals_python_int(cell, rounding, overflow):
    X, H, P, T = 3, 8, 3 if cell == "lstm" else 10, 12
    model = projected_model(cell, X, H, P, seed=4, scale=1.9, formats=PROJ_FORMATS, rounding=rounding,
                            overflow=overflow)
    fm = model.formats
    rng = np.random.default_rng(5)
    xs = rng.integers(fm.data.min_code, fm.data.max_code + 1, (T, X))
    h0 = rng.integers(fm.data.min_code, fm.data.max_code + 1, P)
    c0 = rng.integers(fm.cell.min_code // 2, fm.cell.max_code // 2, H)
    ref = IntRef(model)
    expected = ref.run(xs.tolist(), h0.tolist(), c0.tolist() if cell == "lstm" else [0] * H)
    counter = Counter()
    got, cs = run_layer(model, xs, h0, c0 if cell == "lstm" else None, counter=counter)
    np.testing.assert_array_equal(got, expected)
    assert (cs is None) == (cell == "jordan")
    # Overflow of the projected result (LSTM) / saturation of y's table index (Jordan) is counted,
    # and it happens here (a test that would notice a wrong count).
    tags = ("projection",) if cell == "lstm" else ("tanh_in(y)", "output")
    for tag in tags:
        assert counter[tag] == ref.events[tag], tag
    assert ref.events[tags[0]] > 0


def test_golden_projection_parameters_saturation():
    w = random_weights(3, 4, proj_size=2)
    w["weight_hr_l0"][0, 0] = 100.0
    model = Model("lstm", 3, 4, w, proj_size=2)
    p = gp.projection_parameters(model)
    assert p.weights[0, 0] == model.formats.weight.max_code and p.saturation["weight"] == 1
    np.testing.assert_array_equal(p.bias, 0)


def test_golden_accuracy_against_float():
    """The default 16-bit formats stay close to the float reference over a sequence."""
    for cell in ("lstm", "jordan"):
        model = projected_model(cell, 4, 8, 3, seed=2, scale=0.4, num_layers=2)
        x = np.random.default_rng(0).uniform(-1, 1, (20, 4))
        err = np.abs(run(model, x).h - network_float(model, x)[0]).max()
        assert err < 4e-3, (cell, err)


# -- hardware --------------------------------------------------------------------------------------------

MODES = [(Formats(), "RND", "SAT"), (SMALL_FORMATS, "TRN", "SAT"), (SMALL_FORMATS, "RND_CONV", "WRAP")]
MODE_IDS = ["default16-RND-SAT", "small8-TRN-SAT", "small8-RND_CONV-WRAP"]


@pytest.mark.parametrize("formats,rounding,overflow", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("cell", ["lstm", "jordan"])
def test_projection_output_matches_golden(cell, formats, rounding, overflow):
    model = projected_model(cell, 2, 4, 3, formats=formats, rounding=rounding, overflow=overflow)
    acc_fmt = model.projection_accumulator
    rng = np.random.default_rng(6)
    span = 1 << (acc_fmt.frac + formats.data.int_bits + 2)    # around and beyond the data range
    accs = np.concatenate([rng.integers(-span, span, 300), [acc_fmt.min_code, acc_fmt.max_code, 0, -1, 1]])
    got = run_pipeline(ProjectionOutput(model), [int(a) for a in accs])
    np.testing.assert_array_equal(np.array(got), gp.projection_output(accs, model))


LAYER_CONFIGS = {
    "lstm-X3-H4-P2-pe1-simd1": ("lstm", dict(X=3, H=4, P=2, pe=1, simd=1)),
    "lstm-X5-H8-P3-pe4-simd3": ("lstm", dict(X=5, H=8, P=3, pe=4, simd=3)),
    "lstm-X6-H8-P5-pe2-simd4-small8-TRN-WRAP": ("lstm", dict(X=6, H=8, P=5, pe=2, simd=4, formats=SMALL_FORMATS,
                                                             rounding="TRN", overflow="WRAP")),
    "jordan-X3-H4-P2-pe1-simd1": ("jordan", dict(X=3, H=4, P=2, pe=1, simd=1)),
    "jordan-X4-H6-P8-pe3-simd2": ("jordan", dict(X=4, H=6, P=8, pe=3, simd=2)),
    "jordan-X5-H4-P3-pe2-simd7-small8-RND_CONV-WRAP": ("jordan", dict(X=5, H=4, P=3, pe=2, simd=7,
                                                                      formats=SMALL_FORMATS, rounding="RND_CONV",
                                                                      overflow="WRAP")),
}


def _layer_model(cfg, **extra):
    cell, c = LAYER_CONFIGS[cfg]
    c = dict(c) | extra
    return projected_model(cell, c.pop("X"), c.pop("H"), c.pop("P"), seed=3, scale=0.7, **c)


def _inputs(model, lengths, seed):
    rng = np.random.default_rng(seed)
    return [quantize_input(rng.uniform(-2, 2, (T, model.input_size)), model) for T in lengths]


@pytest.mark.parametrize("pauses", [(0.0, 0.0), (0.4, 0.4)], ids=["no-pauses", "idle-backpressure"])
@pytest.mark.parametrize("cfg", list(LAYER_CONFIGS))
def test_layer_matches_golden(cfg, pauses):
    model = _layer_model(cfg)
    seqs = _inputs(model, [3, 1, 4], seed=4)
    dut = build_layer(model)
    assert isinstance(dut, ProjectedLayer)
    run_ = run_stream_dut(dut, seqs, idle=pauses[0], backpressure=pauses[1], seed=5,
                          max_cycles=200 * perf.layer_cycles(model))
    for seq, got, lasts in zip(seqs, run_.outputs, run_.lasts):
        np.testing.assert_array_equal(got, run_codes(model, seq).h_codes)
        assert got.shape == (len(seq), model.proj_size)
        np.testing.assert_array_equal(lasts, [0] * (len(seq) - 1) + [1])
    if pauses == (0.0, 0.0):
        # Back-to-back input, ready output: one output every layer_cycles cycles, exactly.
        np.testing.assert_array_equal(np.diff(run_.out_cycles), perf.layer_cycles(model))


def test_cycle_model_formula():
    """layer_cycles of a projected layer = the gate step + projection beats + MVU latency + output stage."""
    for cfg in LAYER_CONFIGS:
        m = _layer_model(cfg)
        gate_step = 1 + perf.mac_cycles(m) + perf.mvu_latency(m.simd) + perf.GATE_LATENCY \
            + perf.elementwise_latency(m.cell)
        beats = math.ceil(m.proj_size / m.pe) * math.ceil(m.hidden_size / m.simd)
        out = {"lstm": 1, "jordan": perf.TABLE_LATENCY + 1}[m.cell]
        assert perf.layer_cycles(m) == gate_step + beats + perf.mvu_latency(m.simd) + out


@pytest.mark.parametrize("cfg", ["lstm-X5-H8-P3-pe4-simd3", "jordan-X4-H6-P8-pe3-simd2"])
def test_resource_model_counts_projection(cfg):
    model = _layer_model(cfg)
    w_banks, b_banks, _ = projection_banks(model)
    bits = perf.memory_bits(model)
    assert bits["weights"] == w_banks.size * model.formats.weight.width
    assert bits["bias"] == b_banks.size * model.bias.width
    assert perf.multiplier_count(model)["mvu"] == model.pe * model.simd     # both passes share the unit


@pytest.mark.parametrize("cell", ["lstm", "jordan"])
def test_layer_initial_state(cell):
    """h0 (P codes: h_0 / y_0) and c0 (LSTM) from the first beat of every sequence."""
    model = _layer_model(f"{cell}-X3-H4-P2-pe1-simd1", pe=2, simd=2)
    f = model.formats
    rng = np.random.default_rng(7)
    seqs = _inputs(model, [3, 2, 4], seed=8)
    extra = []
    for _ in seqs:
        e = {"h0": rng.integers(f.data.min_code // 4, f.data.max_code // 4, model.proj_size)}
        if cell == "lstm":
            e["c0"] = rng.integers(f.cell.min_code // 4, f.cell.max_code // 4, model.hidden_size)
        extra.append(e)
    run_ = run_stream_dut(ProjectedLayer(model, initial_state=True), seqs, idle=0.3, backpressure=0.3, seed=9,
                          extra=extra, max_cycles=100 * perf.layer_cycles(model))
    for seq, e, got in zip(seqs, extra, run_.outputs):
        expected, _ = run_layer(model, seq, e["h0"], e.get("c0"))
        np.testing.assert_array_equal(got, expected)
        assert not np.array_equal(expected, run_layer(model, seq)[0]), "h0/c0 had no effect: weak test"


def test_stacked_layer_on_golden_inputs():
    """Layer 1 (backward) of a 2-layer bidirectional LSTMP reads [forward; backward] (2P) of layer 0."""
    model = projected_model("lstm", 3, 4, 2, seed=5, num_layers=2, bidirectional=True, pe=2, simd=3)
    seq = _inputs(model, [5], seed=6)[0]
    res = run_codes(model, seq)
    layer = model.layer(1, reverse=True)
    assert layer.input_size == 4
    run_ = run_stream_dut(ProjectedLayer(layer), [res.layer_outputs[0][::-1]], idle=0.2, backpressure=0.2,
                          max_cycles=50 * perf.layer_cycles(layer))
    np.testing.assert_array_equal(run_.outputs[0][::-1], res.layer_outputs[1][:, 2:])


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_layer_classes_reject_wrong_models():
    proj = projected_model("lstm", 3, 4, 2)
    with pytest.raises(ValueError, match=r"RecurrentLayer has no projection pass \(cell 'lstm', proj_size 2\)"):
        RecurrentLayer(proj)
    gru = Model("gru", 3, 4, random_weights(3, 4, cell="gru"))
    with pytest.raises(ValueError, match=r"ProjectedLayer builds a layer with a projection .* got cell 'gru'"):
        ProjectedLayer(gru)
    with pytest.raises(ValueError, match=r"ProjectedLayer builds one layer; take model\.layer\(k\)"):
        ProjectedLayer(projected_model("jordan", 3, 4, 2, num_layers=2))
    with pytest.raises(TypeError, match=r"ProjectionOutput needs a rnnaccel Model"):
        ProjectionOutput("lstm")


NETWORKS = {
    "lstm-P2-L2-bidir-head2": ("lstm", 2, dict(num_layers=2, bidirectional=True, head_size=2)),
    "jordan-P5-L2": ("jordan", 5, dict(num_layers=2)),
    "jordan-P3-bidir-last": ("jordan", 3, dict(bidirectional=True, outputs="last")),
}


@pytest.mark.parametrize("net", list(NETWORKS))
def test_accelerator_with_projected_layers(net):
    """Projected layers as stages of the whole accelerator (build_layer), with idles and backpressure."""
    from rnnaccel.hdl.top import Accelerator
    cell, P, kw = NETWORKS[net]
    model = projected_model(cell, 3, 4, P, seed=3, pe=2, simd=2, **kw)
    seqs = _inputs(model, [3, 1, 4], seed=4)
    expected = [run_codes(model, s).h_codes for s in seqs]
    run_ = run_stream_dut(Accelerator(model), seqs, idle=0.3, backpressure=0.3, seed=5, max_cycles=100_000,
                          out_counts=[len(e) for e in expected])
    for exp, got in zip(expected, run_.outputs):
        np.testing.assert_array_equal(got, exp)


@pytest.mark.parametrize("cell,P", [("lstm", 3), ("jordan", 6)])
def test_stack_cycles_per_timestep(cell, P):
    """Two projected layers as pipeline stages: one output every cycles_per_timestep cycles."""
    from rnnaccel.hdl.top import Accelerator
    model = projected_model(cell, 5, 4, P, seed=3, pe=1, simd=3, num_layers=2)
    seqs = _inputs(model, [8], seed=6)
    run_ = run_stream_dut(Accelerator(model), seqs, max_cycles=100_000)
    np.testing.assert_array_equal(run_.outputs[0], run_codes(model, seqs[0]).h_codes)
    np.testing.assert_array_equal(np.diff(run_.out_cycles), perf.cycles_per_timestep(model))
    assert perf.cycles_per_timestep(model) == max(perf.layer_cycles(lay) for lay in (model.layer(0), model.layer(1)))
