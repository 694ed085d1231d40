"""The peephole LSTM (cell ``lstm_peephole``): golden model, float reference, hardware blocks and layer.

``RefPeephole`` below re-implements the integer model from the equations in
``golden/peephole.py`` with plain Python integers (own rounding with ``divmod``, own overflow,
own table lookup, own matrix-vector products); only float -> code conversion of weights and table
entries goes through :class:`fractions.Fraction` (exact). ``float_network`` is a scalar float loop
written from the equations (Gers & Schmidhuber 2000, diagonal peepholes)::

    i = sigma(W_i [x; h] + b_i + p_i * c_{t-1})     f = sigma(W_f [x; h] + b_f + p_f * c_{t-1})
    g = phi(W_g [x; h] + b_g)                        c_t = f * c_{t-1} + i * g
    o = sigma(W_o [x; h] + b_o + p_o * c_t)          h_t = o * phi(c_t)
"""

import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

from rnnaccel.golden import layer as gl
from rnnaccel.golden.fixed import QFormat
from rnnaccel.golden.model import ConfigError, Formats, Model, random_weights
from rnnaccel.golden.network import quantize_input, run, run_codes
from rnnaccel.golden.peephole import MIN_UNIT_SPACING, peephole_elementwise, peephole_parameters
from rnnaccel.golden.reference import network_float
from rnnaccel.hdl.layer import ACT_KINDS, GateActivation, build_layer
from rnnaccel.hdl.peephole import STATE_SPACING, PeepholeLSTMElementwise
from rnnaccel.hdl.perf import layer_cycles
from rnnaccel.sim.amaranth_sim import run_pipeline, run_stream_dut

CELL = "lstm_peephole"
PEEPHOLES = ("weight_ci", "weight_cf", "weight_co")
SMALL = Formats(data="s8.5", weight="s8.6", cell="s10.6", sigmoid_in="s7.3", sigmoid_out="u8.8",
                tanh_in="s7.4", tanh_out="s8.7")
TINY = {
    # cell s8.5 (+-4): c_t saturates / wraps; gate index s6.3 (+-4) saturates under big p*c
    "state-overflows": Formats(data="s8.6", weight="s8.6", cell="s8.5", sigmoid_in="s6.3", sigmoid_out="u8.8",
                               tanh_in="s6.4", tanh_out="s8.7"),
    # data s8.8 holds only [-0.5, 0.5): h_t overflows; a signed gate format (1 = 64 of s8.6)
    "hidden-overflows": Formats(data="s8.8", weight="s6.4", cell="s7.4", sigmoid_in="s5.2", sigmoid_out="s8.6",
                                tanh_in="s5.3", tanh_out="s6.4"),
    "default16": Formats(),
}


def peephole_model(X, H, *, seed=0, scale=0.5, num_layers=1, bidirectional=False, **kw):
    w = random_weights(X, H, cell=CELL, seed=seed, scale=scale, num_layers=num_layers, bidirectional=bidirectional)
    return Model(CELL, X, H, w, num_layers=num_layers, bidirectional=bidirectional, **kw)


# -- independent integer model ---------------------------------------------------------------------

def shift_round(code: int, shift: int, mode: str) -> int:
    if shift <= 0:
        return code << -shift
    q, r = divmod(code, 1 << shift)
    half = 1 << (shift - 1)
    if mode == "TRN":
        return q
    if mode == "RND":
        return q + (r >= half)
    return q + (r > half or (r == half and q % 2 == 1))          # RND_CONV


def fit(q: int, fmt: QFormat, overflow: str) -> tuple[int, bool]:
    lo, hi = (-(1 << (fmt.width - 1)), (1 << (fmt.width - 1)) - 1) if fmt.signed else (0, (1 << fmt.width) - 1)
    if lo <= q <= hi:
        return q, False
    if overflow == "SAT":
        return (lo if q < lo else hi), True
    return (q - lo) % (1 << fmt.width) + lo, True


def from_float(v: float, fmt: QFormat) -> int:
    s = Fraction(v) * (1 << fmt.frac)
    n = math.floor(s)
    return fit(n + (2 * (s - n) >= 1), fmt, "SAT")[0]


class RefPeephole:
    """A peephole LSTM network (layers, directions) on Python ints, sigmoid and tanh tables."""

    def __init__(self, weights, X, H, fm: Formats, rounding, overflow, num_layers=1, bidirectional=False):
        self.H, self.fm, self.rounding, self.overflow = H, fm, rounding, overflow
        self.L, self.D = num_layers, 2 if bidirectional else 1
        self.af = fm.data.frac + fm.weight.frac               # accumulator
        self.pf = fm.weight.frac + fm.cell.frac               # p * c
        bias_fmt = QFormat(fm.data.width + fm.weight.width, self.af)
        self.layers = []
        for k in range(num_layers):
            for sfx in [f"_l{k}"] + ([f"_l{k}_reverse"] if bidirectional else []):
                q = lambda m: [[from_float(v, fm.weight) for v in row] for row in m.tolist()]  # noqa: E731
                self.layers.append({
                    "wih": q(weights[f"weight_ih{sfx}"]), "whh": q(weights[f"weight_hh{sfx}"]),
                    "b": [from_float(b, bias_fmt) for b in weights[f"bias_ih{sfx}"] + weights[f"bias_hh{sfx}"]],
                    "p": [[from_float(v, fm.weight) for v in weights[f"{n}{sfx}"]] for n in PEEPHOLES]})
        self.events = Counter()

    def act(self, code, frac, fn, tag):
        fm = self.fm
        fin, fout = (fm.sigmoid_in, fm.sigmoid_out) if fn == "sigmoid" else (fm.tanh_in, fm.tanh_out)
        q, ov = fit(shift_round(code, frac - fin.frac, self.rounding), fin, "SAT")
        self.events[tag] += ov
        x = min(abs(q), (1 << (fin.width - 1)) - 1) / (1 << fin.frac)
        t = from_float(1 / (1 + math.exp(-x)) if fn == "sigmoid" else math.tanh(x), fout)
        if q >= 0:
            return t
        return (1 << fout.frac) - t if fn == "sigmoid" else -t

    def out(self, code, frac, fmt, tag):
        q, ov = fit(shift_round(code, frac - fmt.frac, self.rounding), fmt, self.overflow)
        self.events[tag] += ov
        return q

    def step(self, lay, x, h, c):
        fm, H, af, pf = self.fm, self.H, self.af, self.pf
        so, to, cf = fm.sigmoid_out.frac, fm.tanh_out.frac, fm.cell.frac
        P = max(af, pf)
        h_new, c_new = [], []
        for u in range(H):
            acc = [sum(a * b for a, b in zip(lay["wih"][k * H + u], x))
                   + sum(a * b for a, b in zip(lay["whh"][k * H + u], h)) + lay["b"][k * H + u] for k in range(4)]
            p_i, p_f, p_o = (lay["p"][k][u] for k in range(3))
            i = self.act((acc[0] << (P - af)) + (p_i * c[u] << (P - pf)), P, "sigmoid", "sigmoid_in")
            f = self.act((acc[1] << (P - af)) + (p_f * c[u] << (P - pf)), P, "sigmoid", "sigmoid_in")
            g = self.act(acc[2], af, "tanh", "tanh_in")
            F = max(so + cf, so + to)
            cu = self.out((f * c[u] << (F - so - cf)) + (i * g << (F - so - to)), F, fm.cell, "cell")
            o = self.act((acc[3] << (P - af)) + (p_o * cu << (P - pf)), P, "sigmoid", "sigmoid_in")
            t = self.act(cu, cf, "tanh", "tanh_in(cell)")
            h_new.append(self.out(o * t, so + to, fm.data, "hidden"))
            c_new.append(cu)
        return h_new, c_new

    def run(self, xs, h0=None, c0=None):
        seq, final_h, final_c = [list(x) for x in xs], [], []
        for k in range(self.L):
            outs = []
            for d in range(self.D):
                n = k * self.D + d
                h = list(h0[n]) if h0 is not None else [0] * self.H
                c = list(c0[n]) if c0 is not None else [0] * self.H
                hs = []
                for x in (seq if d == 0 else seq[::-1]):
                    h, c = self.step(self.layers[n], x, h, c)
                    hs.append(h)
                final_h.append(h)
                final_c.append(c)
                outs.append(hs if d == 0 else hs[::-1])
            seq = [sum((o[t] for o in outs), []) for t in range(len(seq))]
        return seq, final_h, final_c


def _codes(rng, fmt, shape, fraction=1.0):
    return rng.integers(int(fmt.min_code * fraction), int(fmt.max_code * fraction) + 1, shape)


def _overflow_case(seed, **topology):
    X, H = 3, 2
    w = random_weights(X, H, cell=CELL, scale=1.5, seed=seed, **topology)
    if seed == 2:        # all gates and g pushed towards 1, positive peepholes that keep them open:
        for k in w:      # c_t outgrows its range, h_t its range, the gate indices saturate
            if k.startswith("bias_ih"):
                w[k] += 2.5
            if k.startswith("weight_c"):
                w[k] = np.abs(w[k]) + 0.5
    return w, X, H


@pytest.mark.parametrize("overflow", ["SAT", "WRAP"])
@pytest.mark.parametrize("rounding", ["TRN", "RND", "RND_CONV"])
@pytest.mark.parametrize("formats", list(TINY))
def test_golden_bit_exact_against_independent_model(formats, rounding, overflow):
    fm, total = TINY[formats], Counter()
    for seed in range(3):
        w, X, H = _overflow_case(seed)
        model = Model(CELL, X, H, w, formats=fm, rounding=rounding, overflow=overflow)
        rng = np.random.default_rng(10 + seed)
        xs = _codes(rng, fm.data, (20, X), 0.6)
        h0 = _codes(rng, fm.data, (1, H)) if seed == 1 else None
        c0 = _codes(rng, fm.cell, (1, H)) if seed == 1 else None
        ref = RefPeephole(w, X, H, fm, rounding, overflow)
        seq, fh, fc = ref.run(xs.tolist(), h0, c0)
        res = run_codes(model, xs, h0=h0, c0=c0)
        np.testing.assert_array_equal(res.h_codes, seq)
        np.testing.assert_array_equal(res.final_h, fh)
        np.testing.assert_array_equal(res.final_c, fc)
        assert {k: v for k, v in res.saturation.items() if v} == {k: v for k, v in ref.events.items() if v}
        total += ref.events
    if formats == "state-overflows":
        assert total["cell"] > 0 and total["sigmoid_in"] > 0, total     # the overflow paths were taken
    if formats == "hidden-overflows":
        assert total["hidden"] > 0, total


def test_golden_stack_bit_exact_against_independent_model():
    """Two bidirectional layers: layer views carry their own peephole weights."""
    fm = SMALL
    w = random_weights(3, 4, cell=CELL, seed=7, num_layers=2, bidirectional=True)
    model = Model(CELL, 3, 4, w, formats=fm, rounding="RND_CONV", num_layers=2, bidirectional=True)
    xs = _codes(np.random.default_rng(8), fm.data, (12, 3), 0.7)
    seq, fh, fc = RefPeephole(w, 3, 4, fm, "RND_CONV", "SAT", num_layers=2, bidirectional=True).run(xs.tolist())
    res = run_codes(model, xs)
    np.testing.assert_array_equal(res.h_codes, seq)
    np.testing.assert_array_equal(res.final_h, fh)
    np.testing.assert_array_equal(res.final_c, fc)


def test_zero_peepholes_equal_lstm_bit_exactly():
    """With p = 0 the exact sum acc * 2**k + 0 rounds like acc: the cell is the plain LSTM."""
    w = random_weights(4, 5, cell=CELL, seed=3)
    lstm_w = {k: v for k, v in w.items() if not k.startswith("weight_c")}
    zero = dict(lstm_w) | {f"{n}_l0": np.zeros(5) for n in PEEPHOLES}
    x = np.random.default_rng(4).uniform(-2, 2, (15, 4))
    for fm in (Formats(), SMALL, Formats(cell="s16.14")):     # cell.frac above, below, equal to data.frac
        a = run(Model(CELL, 4, 5, zero, formats=fm), x)
        b = run(Model("lstm", 4, 5, lstm_w, formats=fm), x)
        np.testing.assert_array_equal(a.h_codes, b.h_codes)
        np.testing.assert_array_equal(a.c_codes, b.c_codes)
        c = run(Model(CELL, 4, 5, w, formats=fm), x)
        assert not np.array_equal(c.h_codes, b.h_codes), "the peepholes had no effect: weak test"


def test_peephole_weights_quantised_and_counted():
    w = random_weights(2, 3, cell=CELL, seed=1)
    w["weight_cf_l0"][1] = 100.0                                   # beyond s16.12: saturates
    model = Model(CELL, 2, 3, w)
    q = peephole_parameters(model)
    fmt = model.formats.weight
    expect = [[from_float(v, fmt) for v in w[f"{n}_l0"]] for n in PEEPHOLES]
    np.testing.assert_array_equal(q.weights, expect)
    assert run(model, np.zeros((1, 2))).saturation["weight"] == 1


# -- float reference -------------------------------------------------------------------------------

FLOAT_ACTS = {"sigmoid": lambda v: 1 / (1 + math.exp(-v)), "tanh": math.tanh,
              "hard_sigmoid": lambda v: min(max(v / 6 + 0.5, 0.0), 1.0), "hard_tanh": lambda v: min(max(v, -1.0), 1.0)}


def float_network(w, x, H, L, D, sig, phi, h0=None, c0=None):
    """Scalar float loop from the equations; returns (outputs, h_n, c_n) as nested lists."""
    seq, hn, cn = [list(map(float, r)) for r in x], [], []
    for k in range(L):
        outs = []
        for d in range(D):
            sfx = f"_l{k}" + ("_reverse" if d else "")
            wih, whh = w[f"weight_ih{sfx}"].tolist(), w[f"weight_hh{sfx}"].tolist()
            b = (w[f"bias_ih{sfx}"] + w[f"bias_hh{sfx}"]).tolist()
            pi, pf, po = (w[f"{n}{sfx}"].tolist() for n in PEEPHOLES)
            n = k * D + d
            h = list(h0[n]) if h0 is not None else [0.0] * H
            c = list(c0[n]) if c0 is not None else [0.0] * H
            hs = []
            for xt in (seq if d == 0 else seq[::-1]):
                z = [sum(a * v for a, v in zip(wih[r], xt)) + sum(a * v for a, v in zip(whh[r], h)) + b[r]
                     for r in range(4 * H)]
                c_new = [0.0] * H
                for u in range(H):
                    i = sig(z[u] + pi[u] * c[u])
                    f = sig(z[H + u] + pf[u] * c[u])
                    c_new[u] = f * c[u] + i * phi(z[2 * H + u])
                o = [sig(z[3 * H + u] + po[u] * c_new[u]) for u in range(H)]
                c = c_new
                h = [o[u] * phi(c[u]) for u in range(H)]
                hs.append(h)
            hn.append(h)
            cn.append(c)
            outs.append(hs if d == 0 else hs[::-1])
        seq = [sum((o[t] for o in outs), []) for t in range(len(seq))]
    return seq, hn, cn


@pytest.mark.parametrize("acts", [("sigmoid", "tanh"), ("hard_sigmoid", "hard_tanh")], ids=lambda a: "-".join(a))
@pytest.mark.parametrize("topology", [dict(num_layers=1, bidirectional=False), dict(num_layers=2, bidirectional=True)],
                         ids=["L1", "L2-bi"])
def test_float_reference_against_float_loop(topology, acts):
    X, H, T = 3, 4, 9
    model = peephole_model(X, H, seed=5, scale=1.0, gate_activation=acts[0], cand_activation=acts[1], **topology)
    n = model.num_layers * model.directions
    rng = np.random.default_rng(6)
    x, h0, c0 = rng.uniform(-2, 2, (T, X)), rng.uniform(-1, 1, (n, H)), rng.uniform(-2, 2, (n, H))
    y, (hn, cn) = network_float(model, x, h0, c0)
    sig, phi = FLOAT_ACTS[acts[0]], FLOAT_ACTS[acts[1]]
    ey, ehn, ecn = float_network(model.weights, x, H, model.num_layers, model.directions, sig, phi, h0.tolist(),
                                 c0.tolist())
    np.testing.assert_allclose(y, ey, rtol=0, atol=1e-12)
    np.testing.assert_allclose(hn, ehn, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cn, ecn, rtol=0, atol=1e-12)


def test_float_reference_with_zero_peepholes_equals_torch_lstm():
    torch = pytest.importorskip("torch")
    X, H, T, L = 3, 5, 11, 2
    lstm = torch.nn.LSTM(X, H, num_layers=L, bidirectional=True, dtype=torch.float64)
    sd = {k: v.detach().numpy().copy() for k, v in lstm.state_dict().items()}
    w = sd | {f"{n}{sfx}": np.zeros(H) for n in PEEPHOLES for k in range(L) for sfx in (f"_l{k}", f"_l{k}_reverse")}
    model = Model(CELL, X, H, w, num_layers=L, bidirectional=True)
    rng = np.random.default_rng(0)
    x, h0, c0 = rng.normal(size=(T, X)), rng.normal(size=(2 * L, H)), rng.normal(size=(2 * L, H))
    with torch.no_grad():
        t = {k: torch.from_numpy(v)[:, None] for k, v in (("x", x), ("h0", h0), ("c0", c0))}
        ty, (th, tc) = lstm(t["x"], (t["h0"], t["c0"]))
    y, (hn, cn) = network_float(model, x, h0, c0)
    np.testing.assert_allclose(y, ty[:, 0].numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(hn, th[:, 0].numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(cn, tc[:, 0].numpy(), rtol=0, atol=1e-12)


def test_fixed_point_tracks_float_reference():
    """Default formats over 40 steps: the peephole paths add no drift beyond the format's resolution."""
    model = peephole_model(4, 6, seed=9, scale=0.6)
    x = np.random.default_rng(10).uniform(-1.5, 1.5, (40, 4))
    err = np.abs(run(model, x).h - network_float(model, x)[0]).max()
    assert err < 0.01, err


# -- configuration checks ---------------------------------------------------------------------------

def test_weight_shapes_include_peepholes():
    model = peephole_model(3, 4, num_layers=2, bidirectional=True)
    shapes = model.layer_weight_shapes(8)
    assert {k: shapes[k] for k in PEEPHOLES} == {k: (4,) for k in PEEPHOLES}
    w = random_weights(3, 4, cell=CELL)
    del w["weight_co_l0"]
    with pytest.raises(ConfigError, match=r"missing \['weight_co_l0'\]"):
        Model(CELL, 3, 4, w)


@pytest.mark.parametrize("X,H,num_layers,simd", [(3, 4, 1, 7), (10, 2, 2, 4)], ids=["L1-simd=N", "L2-deeper-layer"])
def test_spacing_validation(X, H, num_layers, simd):
    """Units reach the element-wise stage every 4 * ceil(N / simd) cycles; fewer than
    MIN_UNIT_SPACING is refused, naming simd and the largest simd that works."""
    assert MIN_UNIT_SPACING == STATE_SPACING
    w = random_weights(X, H, cell=CELL, num_layers=num_layers)
    lengths = [X + H] + [2 * H] * (num_layers - 1)
    largest = max(s for s in range(1, min(lengths) + 1)
                  if all(4 * -(-n // s) >= MIN_UNIT_SPACING for n in lengths))
    with pytest.raises(ConfigError, match=rf"hardware.simd = {simd} .* at least {MIN_UNIT_SPACING} cycles apart; "
                                          rf"choose simd <= {largest}$"):
        Model(CELL, X, H, w, num_layers=num_layers, simd=simd)
    Model(CELL, X, H, w, num_layers=num_layers, simd=largest)       # the suggested value works


def test_preactivation_width_validation():
    with pytest.raises(ConfigError, match=r"peephole gate pre-activation acc \+ p\*c needs \d+ bits"):
        Model(CELL, 2, 2, random_weights(2, 2, cell=CELL), formats=Formats(data="s8.4", weight="s32.16",
                                                                               cell="s32.16"))


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_elementwise_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"needs a one-layer 'lstm_peephole' model, got 'lstm'"):
        PeepholeLSTMElementwise(Model("lstm", 2, 2, random_weights(2, 2)), 2)
    with pytest.raises(ValueError, match=r"units = 3: a lane holds hidden_size // pe = 2"):
        PeepholeLSTMElementwise(peephole_model(2, 4, pe=2), 3)


# -- hardware blocks -----------------------------------------------------------------------------------

@pytest.mark.parametrize("formats", [Formats(), SMALL], ids=["default16", "small8"])
def test_gate_activation_raw_rows(formats):
    model = peephole_model(3, 2, formats=formats)
    acc = model.accumulator
    rng = np.random.default_rng(1)
    accs = np.concatenate([rng.integers(-(1 << (acc.frac + 5)), 1 << (acc.frac + 5), 200),
                           [acc.min_code, acc.max_code, 0, -1, 1]])
    kinds = rng.choice(["raw", "cand"], len(accs))
    beats = [{"acc": int(a), "kind": ACT_KINDS.index(k)} for a, k in zip(accs, kinds)]
    got = run_pipeline(GateActivation(model), beats)
    expected = [int(gl.row_activation(a, k, model)) for a, k in zip(accs, kinds)]
    np.testing.assert_array_equal(got, expected)
    assert ACT_KINDS[:4] == ("gate", "cand", "relu", "linear")    # existing kind indices unchanged


BLOCK_MODES = {
    "default16-RND-SAT": dict(formats=Formats(), rounding="RND", overflow="SAT"),
    "small8-TRN-SAT-lane1": dict(formats=SMALL, rounding="TRN", overflow="SAT", lane=1),
    "small8-RND_CONV-WRAP": dict(formats=SMALL, rounding="RND_CONV", overflow="WRAP"),
    "small8-RND-WRAP-hard-lane1": dict(formats=SMALL, rounding="RND", overflow="WRAP", lane=1,
                                       gate_activation="hard_sigmoid", cand_activation="hard_tanh"),
}


def _block_run(model, lane, spacing, steps, seed):
    """Timesteps of the lane's units in order, ``spacing`` cycles apart; some steps load c0 first."""
    units, pe = model.hidden_size // model.pe, model.pe
    f, acc = model.formats, model.accumulator
    span = acc.frac + f.sigmoid_in.int_bits + 1          # raw accumulators around the gate unit's range
    rng = np.random.default_rng(seed)
    beats, side, expected = [], [], []
    c_state = np.zeros(units, dtype=np.int64)
    for step in range(steps):
        if step == 0 or rng.random() < 0.3:
            c_state = _codes(rng, f.cell, units)
            beats.append(None)
            side.append({"load": 1, "load_data": [int(v) for v in c_state]})
        for u in range(units):
            a = {k: int(rng.integers(-(1 << span), 1 << span)) for k in "ifo"}
            if rng.random() < 0.1:
                a[rng.choice(list("ifo"))] = int(rng.choice([acc.min_code, acc.max_code]))
            g = int(_codes(rng, f.tanh_out, 1)[0])
            beats += [a | {"g": g, "unit": u}] + [None] * (spacing - 1)
            side += [None] * spacing
            c, h = peephole_elementwise(a["i"], a["f"], g, a["o"], c_state[u], model, units=[u * pe + lane])
            c_state[u] = c[0]
            expected.append((int(h[0]), u))
    dut = PeepholeLSTMElementwise(model, units, lane=lane)
    return run_pipeline(dut, beats, ("h", "unit"), side=side), expected


@pytest.mark.parametrize("mode", list(BLOCK_MODES))
def test_elementwise_matches_golden(mode):
    kw = dict(BLOCK_MODES[mode])
    lane = kw.pop("lane", 0)
    model = peephole_model(2, 6, pe=2, seed=11, scale=1.9, **kw)
    got, expected = _block_run(model, lane, MIN_UNIT_SPACING, steps=12, seed=12)
    np.testing.assert_array_equal(np.array(got), np.array(expected))


def test_elementwise_needs_the_minimum_spacing():
    """One cycle closer than MIN_UNIT_SPACING and a unit reads a cell state not yet rotated in."""
    model = peephole_model(2, 3, seed=11, scale=1.9, formats=SMALL)
    got, expected = _block_run(model, 0, MIN_UNIT_SPACING - 1, steps=6, seed=13)
    assert len(got) == len(expected) and not np.array_equal(np.array(got), np.array(expected))


# -- the layer --------------------------------------------------------------------------------------

LAYER_CONFIGS = {
    "X3-H4-pe1-simd1": dict(X=3, H=4, pe=1, simd=1),
    "X5-H8-pe4-simd3": dict(X=5, H=8, pe=4, simd=3),
    # simd = N - 1: two chunks per row, a unit every 8 cycles (the closest the layer ever gets)
    "X6-H8-pe2-simd13-small8-TRN-WRAP": dict(X=6, H=8, pe=2, simd=13, formats=SMALL, rounding="TRN",
                                             overflow="WRAP"),
}


def _inputs(model, lengths, seed):
    rng = np.random.default_rng(seed)
    return [quantize_input(rng.uniform(-2, 2, (T, model.input_size)), model) for T in lengths]


@pytest.mark.parametrize("pauses", [(0.0, 0.0), (0.4, 0.4)], ids=["no-pauses", "idle-backpressure"])
@pytest.mark.parametrize("cfg", list(LAYER_CONFIGS))
def test_layer_matches_golden(cfg, pauses):
    c = dict(LAYER_CONFIGS[cfg])
    model = peephole_model(c.pop("X"), c.pop("H"), seed=3, scale=0.8, **c)
    seqs = _inputs(model, [3, 1, 4], seed=4)
    run_ = run_stream_dut(build_layer(model), seqs, idle=pauses[0], backpressure=pauses[1], seed=5,
                          max_cycles=200 * layer_cycles(model))
    for seq, got, lasts in zip(seqs, run_.outputs, run_.lasts):
        np.testing.assert_array_equal(got, run_codes(model, seq).h_codes)
        np.testing.assert_array_equal(lasts, [0] * (len(seq) - 1) + [1])
    if pauses == (0.0, 0.0):
        np.testing.assert_array_equal(np.diff(run_.out_cycles), layer_cycles(model))


def test_layer_initial_state_and_activation_choice():
    """h0 and c0 from the first beat of each sequence; piecewise-linear units; idles and backpressure."""
    model = peephole_model(3, 4, pe=2, simd=2, seed=6, scale=0.8, gate_activation="hard_sigmoid",
                           cand_activation="hard_tanh")
    f = model.formats
    rng = np.random.default_rng(7)
    seqs = _inputs(model, [3, 2, 4], seed=8)
    extra = [{"h0": rng.integers(f.data.min_code // 8, f.data.max_code // 8, 4),
              "c0": rng.integers(f.cell.min_code // 4, f.cell.max_code // 4, 4)} for _ in seqs]
    run_ = run_stream_dut(build_layer(model, initial_state=True), seqs, idle=0.3, backpressure=0.3, seed=9,
                          extra=extra, max_cycles=100 * layer_cycles(model))
    for seq, e, got in zip(seqs, extra, run_.outputs):
        expected = run_codes(model, seq, h0=e["h0"], c0=e["c0"]).h_codes
        np.testing.assert_array_equal(got, expected)
        assert not np.array_equal(expected, run_codes(model, seq, h0=e["h0"]).h_codes), "c0 had no effect"


def test_accelerator_stack_matches_golden():
    """Two bidirectional peephole layers and a head in the accelerator (each layer view keeps its own
    peephole weights), initial states, idles and backpressure."""
    from rnnaccel.hdl.top import Accelerator
    w = random_weights(3, 4, cell=CELL, seed=3, num_layers=2, bidirectional=True, head_size=2)
    model = Model(CELL, 3, 4, w, pe=2, simd=2, num_layers=2, bidirectional=True, head_size=2, initial_state=True)
    f, rng = model.formats, np.random.default_rng(4)
    seqs = _inputs(model, [3, 1, 4], seed=5)
    extra = [{"h0": rng.integers(f.data.min_code // 8, f.data.max_code // 8, (4, 4)),
              "c0": rng.integers(f.cell.min_code // 8, f.cell.max_code // 8, (4, 4))} for _ in seqs]
    expected = [run_codes(model, s, **e).h_codes for s, e in zip(seqs, extra)]
    run_ = run_stream_dut(Accelerator(model), seqs, idle=0.3, backpressure=0.3, seed=6, max_cycles=100_000,
                          extra=extra, out_counts=[len(e) for e in expected])
    for exp, got in zip(expected, run_.outputs):
        np.testing.assert_array_equal(got, exp)
