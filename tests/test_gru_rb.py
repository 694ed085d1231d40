"""The GRU with the reset gate before the recurrent product (cell ``gru_rb``): float reference,
bit-exact integer model, hardware blocks and the two-phase hardware layer.

* the float reference (golden/reference.py) against a plain-Python loop written from the equations
  (Cho et al. 2014, Keras ``GRU(reset_after=False)``), and against ``torch.nn.GRU`` where the two
  GRUs must agree (reset gate forced to 1);
* the integer model (golden/gru_rb.py) against ``IntGRURB`` below: plain Python integers and
  :class:`fractions.Fraction`, its own rounding, overflow, table lookups and overflow counts, over
  every rounding and overflow mode;
* :class:`ResetProduct` and :class:`GRUResetBeforeElementwise` against their golden functions;
* :class:`GRUResetBeforeLayer` against the golden model for several sizes and parallelisms, with and
  without idle input cycles and output backpressure, and with ``h0``; without pauses one ``h_t``
  every ``layer_cycles(model)`` cycles exactly.
"""

import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

from rnnaccel.golden import gru_rb as grb
from rnnaccel.golden.fixed import QFormat, SaturationCounter
from rnnaccel.golden.layer import quantized_parameters
from rnnaccel.golden.model import Formats, Model, random_weights
from rnnaccel.golden.network import quantize_input, run_codes
from rnnaccel.golden.reference import layer_float, network_float
from rnnaccel.hdl.gru_rb import GRUResetBeforeElementwise, GRUResetBeforeLayer, ResetProduct
from rnnaccel.hdl.layer import RecurrentLayer, build_layer
from rnnaccel.hdl.perf import gru_rb_phase_gap, layer_cycles
from rnnaccel.sim.amaranth_sim import run_pipeline, run_stream_dut

SMALL_FORMATS = Formats(data="s8.5", weight="s8.6", cell="s10.6", sigmoid_in="s7.3", sigmoid_out="u8.8",
                        tanh_in="s7.4", tanh_out="s8.7")
#: A signed gate format (sigmoid can reach exactly 1.0) and a coarse state.
SIGNED_GATE_FORMATS = Formats(data="s10.6", weight="s9.6", sigmoid_in="s8.4", sigmoid_out="s10.8",
                              tanh_in="s8.5", tanh_out="s9.7")

MODES = [(Formats(), "RND", "SAT"), (SMALL_FORMATS, "TRN", "SAT"), (SMALL_FORMATS, "RND_CONV", "WRAP"),
         (SMALL_FORMATS, "RND", "WRAP"), (SIGNED_GATE_FORMATS, "RND_CONV", "SAT")]
MODE_IDS = ["default16-RND-SAT", "small8-TRN-SAT", "small8-RND_CONV-WRAP", "small8-RND-WRAP",
            "signed-gate-RND_CONV-SAT"]


def gru_rb_model(X, H, pe=1, simd=1, *, seed=0, scale=0.5, **kw):
    return Model("gru_rb", X, H, random_weights(X, H, scale=scale, seed=seed, cell="gru_rb"), pe=pe, simd=simd,
                 **kw)


# -- float reference ------------------------------------------------------------------------------

FLOAT_FUNCTIONS = {
    "sigmoid": lambda v: 1.0 / (1.0 + math.exp(-v)),
    "hard_sigmoid": lambda v: min(max(v / 6.0 + 0.5, 0.0), 1.0),
    "tanh": math.tanh,
    "softsign": lambda v: v / (1.0 + abs(v)),
    "hard_tanh": lambda v: min(max(v, -1.0), 1.0),
}


def float_loop(w, xs, h0, sig, phi):
    """The equations, one unit and one product at a time (Keras reset_after=False, b = b_ih + b_hh)."""
    wih, whh, bih, bhh = (w[k].tolist() for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"))
    H = len(h0)
    h = [float(v) for v in h0]
    out = []
    for x in xs:
        def pre(row, vec):
            return (sum(wih[row][k] * x[k] for k in range(len(x))) + sum(whh[row][k] * vec[k] for k in range(H))
                    + bih[row] + bhh[row])
        r = [sig(pre(j, h)) for j in range(H)]
        z = [sig(pre(H + j, h)) for j in range(H)]
        rh = [r[k] * h[k] for k in range(H)]
        n = [phi(pre(2 * H + j, rh)) for j in range(H)]
        h = [(1 - z[j]) * n[j] + z[j] * h[j] for j in range(H)]
        out.append(h)
    return np.array(out)


@pytest.mark.parametrize("gate_act,cand_act", [("sigmoid", "tanh"), ("hard_sigmoid", "hard_tanh"),
                                               ("sigmoid", "softsign")])
@pytest.mark.parametrize("X,H,T", [(3, 4, 6), (1, 5, 4)], ids=["X3-H4-T6", "X1-H5-T4"])
def test_float_reference_matches_equations(X, H, T, gate_act, cand_act):
    model = gru_rb_model(X, H, seed=11, scale=0.8, gate_activation=gate_act, cand_activation=cand_act)
    rng = np.random.default_rng(12)
    xs, h0 = rng.uniform(-2, 2, (T, X)), rng.uniform(-1, 1, H)
    y, (h_T, c_T) = layer_float(model, xs, h0)
    expected = float_loop(model.weights, xs, h0, FLOAT_FUNCTIONS[gate_act], FLOAT_FUNCTIONS[cand_act])
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_T, expected[-1], rtol=1e-12, atol=1e-12)
    assert c_T is None
    np.testing.assert_allclose(network_float(model, xs, h0[None])[0], expected, rtol=1e-12, atol=1e-12)


def test_float_reference_vs_torch_gru():
    """With r = 1 the reset position does not matter: gru_rb equals torch.nn.GRU; otherwise it differs."""
    torch = pytest.importorskip("torch")
    X, H, T = 3, 4, 7
    w = random_weights(X, H, scale=0.5, seed=13, cell="gru_rb")
    rng = np.random.default_rng(14)
    xs, h0 = rng.uniform(-1, 1, (T, X)), rng.uniform(-1, 1, H)

    def torch_gru(weights):
        g = torch.nn.GRU(X, H).double()
        g.load_state_dict({k: torch.tensor(v) for k, v in weights.items()})
        with torch.no_grad():
            y, _ = g(torch.tensor(xs)[:, None], torch.tensor(h0)[None, None])
        return y[:, 0].numpy()

    forced = dict(w, bias_ih_l0=w["bias_ih_l0"].copy())
    forced["bias_ih_l0"][:H] = 60.0                       # sigma(>= 55) == 1.0 exactly in float64
    y_rb = layer_float(Model("gru_rb", X, H, forced), xs, h0)[0]
    np.testing.assert_allclose(y_rb, torch_gru(forced), rtol=1e-10, atol=1e-12)
    y_rb = layer_float(Model("gru_rb", X, H, w), xs, h0)[0]
    assert np.abs(y_rb - torch_gru(w)).max() > 1e-3, "gru_rb should differ from the reset-after GRU"


# -- independent integer model --------------------------------------------------------------------

def to_code(value: Fraction, fmt: QFormat, rounding: str, overflow: str, events: Counter, tag: str) -> int:
    """A real value (exact Fraction) as a code of ``fmt``: round, then saturate or wrap (counted)."""
    scaled = value * (1 << fmt.frac)
    q = math.floor(scaled)
    rem = scaled - q
    if rounding == "RND":
        q += rem >= Fraction(1, 2)
    elif rounding == "RND_CONV":
        q += rem > Fraction(1, 2) or (rem == Fraction(1, 2) and q % 2 == 1)
    lo = -(1 << (fmt.width - 1)) if fmt.signed else 0
    hi = (1 << (fmt.width - 1)) - 1 if fmt.signed else (1 << fmt.width) - 1
    if not lo <= q <= hi:
        events[tag] += 1
        q = min(max(q, lo), hi) if overflow == "SAT" else (q - lo) % (1 << fmt.width) + lo
    return q


def real(code: int, frac: int) -> Fraction:
    return Fraction(code, 1 << frac)


class IntGRURB:
    """gru_rb on Python integers, from the equations and rounding points of golden/gru_rb.py."""

    def __init__(self, model: Model):
        self.m = model
        f = model.formats
        H, X = model.hidden_size, model.input_size
        w = model.weights
        nothing = Counter()
        q = lambda v, fmt: to_code(Fraction(float(v)), fmt, "RND", "SAT", nothing, "")  # noqa: E731
        self.af = f.data.frac + f.weight.frac
        self.W = [[q(v, f.weight) for v in row] for row in w["weight_ih_l0"]]
        self.U = [[q(v, f.weight) for v in row] for row in w["weight_hh_l0"]]
        # One bias per gate: b_ih + b_hh summed in float, quantised once at accumulator precision.
        self.b = [q(v, model.bias) for v in (w["bias_ih_l0"] + w["bias_hh_l0"])]
        self.H, self.X = H, X
        self.table = {}

    def lookup(self, function: str, idx: int, in_fmt: QFormat, out_fmt: QFormat) -> int:
        """Half table entry min(|idx|, depth-1), then the symmetry."""
        j = min(abs(idx), (1 << (in_fmt.width - 1)) - 1)
        if (function, j) not in self.table:
            y = FLOAT_FUNCTIONS[function](j / (1 << in_fmt.frac))
            self.table[function, j] = to_code(Fraction(y), out_fmt, "RND", "SAT", Counter(), "")
        t = self.table[function, j]
        if idx >= 0:
            return t
        return (1 << out_fmt.frac) - t if function == "sigmoid" else -t

    def step(self, x, h, events):
        m, f, H, X = self.m, self.m.formats, self.H, self.X
        rnd, ovf = m.rounding, m.overflow

        def acc(row, vec):
            return sum(self.W[row][k] * x[k] for k in range(X)) + sum(self.U[row][k] * vec[k] for k in range(H)) \
                + self.b[row]

        def gate(a):
            return self.lookup("sigmoid", to_code(real(a, self.af), f.sigmoid_in, rnd, "SAT", events, "sigmoid_in"),
                               f.sigmoid_in, f.sigmoid_out)

        r = [gate(acc(j, h)) for j in range(H)]
        z = [gate(acc(H + j, h)) for j in range(H)]
        rh = [to_code(real(r[k], f.sigmoid_out.frac) * real(h[k], f.data.frac), f.data, rnd, ovf, events, "reset_h")
              for k in range(H)]
        out = []
        for j in range(H):
            pre = real(acc(2 * H + j, rh), self.af)           # W_n x + U_n rh + b_n, exact
            n = self.lookup("tanh", to_code(pre, f.tanh_in, rnd, "SAT", events, "tanh_in(n)"), f.tanh_in, f.tanh_out)
            zr = real(z[j], f.sigmoid_out.frac)
            value = (1 - zr) * real(n, f.tanh_out.frac) + zr * real(h[j], f.data.frac)
            out.append(to_code(value, f.data, rnd, ovf, events, "hidden"))
        return out

    def run(self, xs, h0):
        events = Counter()
        h = [int(v) for v in h0]
        hs = []
        for x in xs:
            h = self.step([int(v) for v in x], h, events)
            hs.append(h)
        return np.array(hs, dtype=np.int64), events


def nonzero(counter) -> dict:
    return {k: v for k, v in counter.items() if v}


@pytest.mark.parametrize("scale", [0.5, 2.5], ids=["scale0.5", "scale2.5-saturating"])
@pytest.mark.parametrize("formats,rounding,overflow", MODES, ids=MODE_IDS)
def test_golden_matches_integer_reference(formats, rounding, overflow, scale):
    X, H, T = 3, 5, 6
    model = gru_rb_model(X, H, seed=21, scale=scale, formats=formats, rounding=rounding, overflow=overflow)
    f = model.formats
    rng = np.random.default_rng(22)
    xs = quantize_input(rng.uniform(-2.5, 2.5, (T, X)), model)
    h0 = rng.integers(f.data.min_code, f.data.max_code + 1, H)
    h0[:2] = f.data.min_code, f.data.max_code
    counter = SaturationCounter()
    got = run_codes(model, xs, counter, h0=h0).h_codes
    expected, events = IntGRURB(model).run(xs, h0)
    np.testing.assert_array_equal(got, expected)
    assert nonzero(counter) == nonzero(events)
    if scale > 1:
        assert events["sigmoid_in"] and events["tanh_in(n)"], "weak test: no saturated table index"


@pytest.mark.parametrize("formats,rounding,overflow", MODES, ids=MODE_IDS)
def test_golden_blocks_match_integer_reference(formats, rounding, overflow):
    """reset_product and gru_rb_elementwise alone, on random codes (every rounding difference shows)."""
    model = gru_rb_model(2, 3, formats=formats, rounding=rounding, overflow=overflow)
    f, af = model.formats, model.accumulator.frac
    ref = IntGRURB(model)
    rng = np.random.default_rng(23)
    n = 400
    r, z = (np.abs(_codes(rng, f.sigmoid_out, n)) for _ in range(2))
    h = _codes(rng, f.data, n)
    span = 1 << (af + f.tanh_in.int_bits + 1)
    nx, nh = (rng.integers(-span, span, n) for _ in range(2))
    counter, events = SaturationCounter(), Counter()
    expected_rh = [to_code(real(int(a), f.sigmoid_out.frac) * real(int(b), f.data.frac), f.data, rounding, overflow,
                           events, "reset_h") for a, b in zip(r, h)]
    np.testing.assert_array_equal(grb.reset_product(r, h, model, counter), expected_rh)
    expected_h = []
    for zj, a, b, hj in zip(z, nx, nh, h):
        idx = to_code(real(int(a) + int(b), af), f.tanh_in, rounding, "SAT", events, "tanh_in(n)")
        nj = ref.lookup("tanh", idx, f.tanh_in, f.tanh_out)
        zr = real(int(zj), f.sigmoid_out.frac)
        value = (1 - zr) * real(nj, f.tanh_out.frac) + zr * real(int(hj), f.data.frac)
        expected_h.append(to_code(value, f.data, rounding, overflow, events, "hidden"))
    np.testing.assert_array_equal(grb.gru_rb_elementwise(z, nx, nh, h, model, counter), expected_h)
    assert nonzero(counter) == nonzero(events)


def test_parameters_bias_rule():
    """nx carries b_n = b_ih[n] + b_hh[n] (summed in float, quantised once), nh no bias; nx reads only
    x, nh only h (zero columns elsewhere); r and z read both with b_ih + b_hh."""
    X, H = 3, 4
    model = gru_rb_model(X, H, seed=31, formats=SMALL_FORMATS)
    ref = IntGRURB(model)
    p = quantized_parameters(model)
    blk = grb.row_blocks(model)
    assert model.gates == ("r", "z", "nx", "nh")
    for g, name in enumerate(("r", "z")):
        np.testing.assert_array_equal(p.weights[blk[name]], [ref.W[g * H + j] + ref.U[g * H + j] for j in range(H)])
        np.testing.assert_array_equal(p.bias[blk[name]], ref.b[g * H:(g + 1) * H])
    np.testing.assert_array_equal(p.weights[blk["nx"]], [ref.W[2 * H + j] + [0] * H for j in range(H)])
    np.testing.assert_array_equal(p.bias[blk["nx"]], ref.b[2 * H:])
    np.testing.assert_array_equal(p.weights[blk["nh"]], [[0] * X + ref.U[2 * H + j] for j in range(H)])
    np.testing.assert_array_equal(p.bias[blk["nh"]], [0] * H)


# -- hardware blocks ------------------------------------------------------------------------------

def _codes(rng, fmt, n):
    return rng.integers(fmt.min_code, fmt.max_code + 1, n)


@pytest.mark.parametrize("formats,rounding,overflow", MODES, ids=MODE_IDS)
def test_reset_product_matches_golden(formats, rounding, overflow):
    units = 3
    model = gru_rb_model(2, 3, formats=formats, rounding=rounding, overflow=overflow)
    f = model.formats
    rng = np.random.default_rng(41)
    r = np.concatenate([_codes(rng, f.sigmoid_out, 300), [f.sigmoid_out.max_code, 0, f.sigmoid_out.max_code]])
    h = np.concatenate([_codes(rng, f.data, 300), [f.data.min_code, f.data.min_code, f.data.max_code]])
    if f.sigmoid_out.signed:
        r = np.abs(r)        # gates lie in [0, 1]
        r[-1] = 1 << f.sigmoid_out.frac
    beats = [{"r": int(a), "h": int(b), "unit": i % units} for i, (a, b) in enumerate(zip(r, h))]
    beats = [b if i % 7 else None for i, b in enumerate(beats)]          # some idle cycles
    got = run_pipeline(ResetProduct(model, units), beats, ("rh", "unit"))
    expected = [(int(grb.reset_product(b["r"], b["h"], model)), b["unit"]) for b in beats if b]
    np.testing.assert_array_equal(np.array(got), np.array(expected))


@pytest.mark.parametrize("formats,rounding,overflow", MODES, ids=MODE_IDS)
def test_elementwise_matches_golden(formats, rounding, overflow):
    units = 4
    model = gru_rb_model(3, 4, formats=formats, rounding=rounding, overflow=overflow)
    f, acc = model.formats, model.accumulator
    rng = np.random.default_rng(42)
    n = 300
    # nx, nh: around the candidate unit's input range, and the accumulator's extremes.
    span = 1 << (acc.frac + f.tanh_in.int_bits + 1)
    nx = np.concatenate([rng.integers(-span, span, n), [acc.min_code, acc.max_code, 0]])
    nh = np.concatenate([rng.integers(-span, span, n), [acc.min_code, acc.max_code, 0]])
    z = np.abs(np.concatenate([_codes(rng, f.sigmoid_out, n), [0, 0, 0]]))
    h = np.concatenate([_codes(rng, f.data, n), [f.data.min_code, f.data.max_code, 0]])
    beats = [{"z": int(a), "nx": int(b), "nh": int(c), "h": int(d), "unit": i % units}
             for i, (a, b, c, d) in enumerate(zip(z, nx, nh, h))]
    got = run_pipeline(GRUResetBeforeElementwise(model, units), beats, ("h", "unit"))
    expected = [(int(grb.gru_rb_elementwise(b["z"], b["nx"], b["nh"], b["h"], model)), b["unit"]) for b in beats]
    np.testing.assert_array_equal(np.array(got), np.array(expected))


# -- the layer ------------------------------------------------------------------------------------

LAYER_CONFIGS = {
    "X5-H4-pe1-simd1": dict(X=5, H=4, pe=1, simd=1),
    "X5-H8-pe4-simd3-small8-TRN-SAT": dict(X=5, H=8, pe=4, simd=3, formats=SMALL_FORMATS, rounding="TRN"),
    "X6-H8-pe8-simd4-RND_CONV-WRAP": dict(X=6, H=8, pe=8, simd=4, rounding="RND_CONV", overflow="WRAP"),
    "X2-H6-pe3-simd5-hard-acts": dict(X=2, H=6, pe=3, simd=5, gate_activation="hard_sigmoid",
                                      cand_activation="hard_tanh"),
}


def _model(cfg, **kw):
    c = dict(LAYER_CONFIGS[cfg]) | kw
    return gru_rb_model(c.pop("X"), c.pop("H"), seed=3, **c)


def _inputs(model, lengths, seed):
    rng = np.random.default_rng(seed)
    return [quantize_input(rng.uniform(-2, 2, (T, model.input_size)), model) for T in lengths]


def test_layer_configs_cover_the_schedule():
    """Both cases of the phase gap (z and nx rows hide the reset product, or not) are exercised."""
    gaps = [gru_rb_phase_gap(_model(cfg)) for cfg in LAYER_CONFIGS]
    assert 0 in gaps and any(g > 0 for g in gaps), gaps


@pytest.mark.parametrize("pauses", [(0.0, 0.0), (0.4, 0.4)], ids=["no-pauses", "idle-backpressure"])
@pytest.mark.parametrize("cfg", list(LAYER_CONFIGS))
def test_layer_matches_golden(cfg, pauses):
    model = _model(cfg)
    layer = build_layer(model)
    assert isinstance(layer, GRUResetBeforeLayer)
    seqs = _inputs(model, [3, 1, 4], seed=4)
    run = run_stream_dut(layer, seqs, idle=pauses[0], backpressure=pauses[1], seed=5,
                         max_cycles=200 * layer_cycles(model))
    for seq, got, lasts in zip(seqs, run.outputs, run.lasts):
        np.testing.assert_array_equal(got, run_codes(model, seq).h_codes)
        np.testing.assert_array_equal(lasts, [0] * (len(seq) - 1) + [1])
    if pauses == (0.0, 0.0):
        # Back-to-back input, ready output: one h_t every layer_cycles cycles, exactly.
        np.testing.assert_array_equal(np.diff(run.out_cycles), layer_cycles(model))


@pytest.mark.parametrize("cfg", ["X5-H4-pe1-simd1", "X6-H8-pe8-simd4-RND_CONV-WRAP"])
def test_layer_initial_state(cfg):
    """h0 from the first beat of every sequence; the other beats' copies are ignored."""
    model = _model(cfg)
    f = model.formats
    rng = np.random.default_rng(7)
    seqs = _inputs(model, [3, 2, 4], seed=8)
    extra = [{"h0": rng.integers(f.data.min_code // 2, f.data.max_code // 2, model.hidden_size)} for _ in seqs]
    run = run_stream_dut(GRUResetBeforeLayer(model, initial_state=True), seqs, idle=0.3, backpressure=0.3,
                         seed=9, extra=extra, max_cycles=100 * layer_cycles(model))
    for seq, e, got in zip(seqs, extra, run.outputs):
        expected = run_codes(model, seq, h0=e["h0"]).h_codes
        np.testing.assert_array_equal(got, expected)
        assert not np.array_equal(expected, run_codes(model, seq).h_codes), "h0 had no effect: weak test"


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_layer_rejects_bad_models():
    gru = Model("gru", 3, 4, random_weights(3, 4, cell="gru"))
    with pytest.raises(ValueError, match=r"GRUResetBeforeLayer builds the 'gru_rb' cell, not 'gru'; use "
                                         r"rnnaccel\.hdl\.layer\.build_layer\(model\)"):
        GRUResetBeforeLayer(gru)
    stack = Model("gru_rb", 3, 4, random_weights(3, 4, cell="gru_rb", num_layers=2), num_layers=2)
    with pytest.raises(ValueError, match=r"GRUResetBeforeLayer builds one layer; take model\.layer\(k\)"):
        GRUResetBeforeLayer(stack)
    with pytest.raises(ValueError, match=r"RecurrentLayer does not build cell 'gru_rb' \(its own schedule: "
                                         r"GRUResetBeforeLayer\); use build_layer\(model\)"):
        RecurrentLayer(gru_rb_model(3, 4))
    with pytest.raises(ValueError, match=r"units must be a positive integer .* got 0"):
        ResetProduct(gru_rb_model(3, 4), 0)
    with pytest.raises(ValueError, match=r"gru_rb_step needs a 'gru_rb' model, got cell 'gru'"):
        grb.gru_rb_step([0, 0, 0], [0] * 4, gru)
