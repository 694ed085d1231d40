"""The bit-exact integer model of every cell (golden/layer.py, golden/network.py) against an
independent re-implementation, and its accuracy against the float reference.

``RefNet`` below is written from the equations in the golden/layer.py docstring (and DESIGN.md
section 3) with plain Python integers: its own rounding (``divmod``), overflow, table lookup,
matrix-vector products, stacking, directions and head -- no NumPy and none of the package's
numeric code. Only float -> code conversion of the weights and table entries goes through
:class:`fractions.Fraction` (exact). It also counts overflow events per tensor itself.

The rounding points it implements (``acc`` = exact ``W [x; h] + b`` at ``data.frac + weight.frac``)::

    gate row  : sigma_table(requantize(acc, sigmoid_in, SAT))      -> sigmoid_out
    cand row  : phi_table(requantize(acc, tanh_in, SAT))           -> tanh_out
    relu row  : requantize(max(acc, 0), data)                      -> data
    linear row: requantize(acc, cell, SAT)                         -> cell   (GRU's nx, nh)
    lstm_nf   : c_t = requantize(c_{t-1} + i*g, cell);  h_t = requantize(o * phi(requantize(c_t, tanh_in, SAT)), data)
    gru       : n = phi(requantize(nx + r*nh, tanh_in, SAT));  h_t = requantize((1 - z)*n + z*h_{t-1}, data)
    rnn_tanh  : h_t = requantize(phi(acc), data);   rnn_relu: h_t = the relu row
    head      : requantize(W_y y + b_y, data)
"""

import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

from rnnaccel.golden.fixed import QFormat
from rnnaccel.golden.layer import run_layer
from rnnaccel.golden.model import Formats, Model, random_weights
from rnnaccel.golden.network import run, run_codes
from rnnaccel.golden.reference import network_float

ROUNDINGS = ("TRN", "RND", "RND_CONV")
OVERFLOWS = ("SAT", "WRAP")
ALL_CELLS = ("lstm", "lstm_nf", "gru", "rnn_tanh", "rnn_relu")
NEW_CELLS = ("gru", "rnn_tanh", "rnn_relu", "lstm_nf")
BLOCKS = {"lstm": 4, "lstm_nf": 3, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}

# -- independent integer model ---------------------------------------------------------------------


def shift_round(code: int, shift: int, mode: str) -> int:
    """code / 2**shift rounded by ``mode`` (exact left shift for shift <= 0)."""
    if shift <= 0:
        return code << -shift
    q, r = divmod(code, 1 << shift)          # floor quotient, 0 <= r < 2**shift
    half = 1 << (shift - 1)
    if mode == "TRN":
        return q
    if mode == "RND":                        # ties towards +inf
        return q + (r >= half)
    if mode == "RND_CONV":                   # ties to even
        return q + (r > half or (r == half and q % 2 == 1))
    raise AssertionError(mode)


def fit(q: int, fmt: QFormat, overflow: str) -> tuple[int, bool]:
    """(code in fmt, overflowed)."""
    lo, hi = (-(1 << (fmt.width - 1)), (1 << (fmt.width - 1)) - 1) if fmt.signed else (0, (1 << fmt.width) - 1)
    if lo <= q <= hi:
        return q, False
    if overflow == "SAT":
        return (lo if q < lo else hi), True
    return (q - lo) % (1 << fmt.width) + lo, True


def requant(code: int, frac: int, fmt: QFormat, rounding: str, overflow: str) -> tuple[int, bool]:
    """A code with ``frac`` fractional bits -> fmt."""
    return fit(shift_round(code, frac - fmt.frac, rounding), fmt, overflow)


def from_float(v: float, fmt: QFormat) -> int:
    """Round to nearest (ties up) and saturate: weights, biases, table entries."""
    s = Fraction(v) * (1 << fmt.frac)
    n = math.floor(s)
    return fit(n + (2 * (s - n) >= 1), fmt, "SAT")[0]


def dot(w: list[int], v: list[int]) -> int:
    return sum(a * b for a, b in zip(w, v))


class RefNet:
    """The whole network (any cell, layers, directions, head) on Python ints."""

    def __init__(self, cell, weights, X, H, fm: Formats, rounding, overflow, num_layers=1,
                 bidirectional=False, head_size=0, outputs="sequence"):
        self.cell, self.X, self.H, self.fm = cell, X, H, fm
        self.rounding, self.overflow, self.outputs = rounding, overflow, outputs
        self.L, self.D, self.Y = num_layers, 2 if bidirectional else 1, head_size
        self.af = fm.data.frac + fm.weight.frac
        bias_fmt = QFormat(fm.data.width + fm.weight.width, self.af)
        qw = lambda m: [[from_float(v, fm.weight) for v in row] for row in m.tolist()]  # noqa: E731
        qb = lambda v: [from_float(b, bias_fmt) for b in v]                             # noqa: E731
        self.layers = []
        for k in range(num_layers):
            for sfx in [f"_l{k}"] + (["_l%d_reverse" % k] if bidirectional else []):
                bih, bhh = weights[f"bias_ih{sfx}"], weights[f"bias_hh{sfx}"]
                self.layers.append({"wih": qw(weights[f"weight_ih{sfx}"]), "whh": qw(weights[f"weight_hh{sfx}"]),
                                    "b": qb(bih + bhh),            # summed in float, quantised once
                                    "bih": qb(bih), "bhh": qb(bhh)})  # GRU's n rows keep them apart
        if head_size:
            self.head_w, self.head_b = qw(weights["head.weight"]), qb(weights["head.bias"])
        self.events = Counter()
        self._table = {}

    # activation tables: half tables indexed by the saturated input code, symmetry for negatives
    def entry(self, fn, j):
        if (fn, j) not in self._table:
            fin, fout = self.fmts(fn)
            x = j / (1 << fin.frac)
            y = 1.0 / (1.0 + math.exp(-x)) if fn == "sigmoid" else math.tanh(x)
            self._table[(fn, j)] = from_float(y, fout)
        return self._table[(fn, j)]

    def fmts(self, fn):
        return (self.fm.sigmoid_in, self.fm.sigmoid_out) if fn == "sigmoid" else (self.fm.tanh_in, self.fm.tanh_out)

    def act(self, code, frac, fn, tag):
        fin, fout = self.fmts(fn)
        i, ov = requant(code, frac, fin, self.rounding, "SAT")
        self.events[tag] += ov
        t = self.entry(fn, min(abs(i), (1 << (fin.width - 1)) - 1))
        if i >= 0:
            return t
        return (1 << fout.frac) - t if fn == "sigmoid" else -t

    def out(self, code, frac, fmt, tag, overflow=None):
        q, ov = requant(code, frac, fmt, self.rounding, overflow or self.overflow)
        self.events[tag] += ov
        return q

    def step(self, p, x, h, c):
        fm, H, af = self.fm, self.H, self.af
        so, to, cf, df = fm.sigmoid_out.frac, fm.tanh_out.frac, fm.cell.frac, fm.data.frac

        def acc(block, u):     # row u of gate block `block`, reading [x; h], bias b_ih + b_hh
            r = block * H + u
            return dot(p["wih"][r], x) + dot(p["whh"][r], h) + p["b"][r]

        h_new, c_new = [], []
        for u in range(H):
            if self.cell in ("lstm", "lstm_nf"):
                names = ("i", "f", "g", "o") if self.cell == "lstm" else ("i", "g", "o")
                a = {n: acc(b, u) for b, n in enumerate(names)}
                i, g, o = (self.act(a["i"], af, "sigmoid", "sigmoid_in"), self.act(a["g"], af, "tanh", "tanh_in"),
                           self.act(a["o"], af, "sigmoid", "sigmoid_in"))
                # f*c at so+cf (f = 1 exactly for lstm_nf), i*g at so+to: exact sum at the finer one
                fc = c[u] << so if self.cell == "lstm_nf" else self.act(a["f"], af, "sigmoid", "sigmoid_in") * c[u]
                F = max(so + cf, so + to)
                s = (fc << (F - so - cf)) + ((i * g) << (F - so - to))
                cu = self.out(s, F, fm.cell, "cell")
                t = self.act(cu, cf, "tanh", "tanh_in(cell)")
                h_new.append(self.out(o * t, so + to, fm.data, "hidden"))
                c_new.append(cu)
            elif self.cell == "gru":
                r = self.act(acc(0, u), af, "sigmoid", "sigmoid_in")
                z = self.act(acc(1, u), af, "sigmoid", "sigmoid_in")
                row = 2 * H + u
                nx = self.out(dot(p["wih"][row], x) + p["bih"][row], af, fm.cell, "gru_n", "SAT")
                nh = self.out(dot(p["whh"][row], h) + p["bhh"][row], af, fm.cell, "gru_n", "SAT")
                n = self.act((nx << so) + r * nh, so + cf, "tanh", "tanh_in(n)")
                F = max(so + to, so + df)
                s = ((((1 << so) - z) * n) << (F - so - to)) + ((z * h[u]) << (F - so - df))
                h_new.append(self.out(s, F, fm.data, "hidden"))
            elif self.cell == "rnn_tanh":
                t = self.act(acc(0, u), af, "tanh", "tanh_in")
                h_new.append(self.out(t, to, fm.data, "hidden"))
            elif self.cell == "rnn_relu":
                h_new.append(self.out(max(acc(0, u), 0), af, fm.data, "hidden"))
            else:
                raise AssertionError(self.cell)
        return h_new, (c_new if self.cell in ("lstm", "lstm_nf") else None)

    def run(self, xs, h0=None, c0=None):
        """xs: list of T input code lists. Returns a dict like GoldenResult's fields (lists of ints)."""
        seq, final_h, final_c, layer_outputs, c_codes = [list(x) for x in xs], [], [], [], None
        T = len(seq)
        for k in range(self.L):
            outs = []
            for d in range(self.D):
                idx = k * self.D + d
                p = self.layers[idx]
                h = list(h0[idx]) if h0 is not None else [0] * self.H
                c = list(c0[idx]) if c0 is not None else [0] * self.H
                hs, cs = [], []
                for x in (seq if d == 0 else seq[::-1]):
                    h, c = self.step(p, x, h, c)
                    hs.append(h)
                    cs.append(c)
                final_h.append(h)
                final_c.append(c)
                if k == self.L - 1 and d == 0:
                    c_codes = cs
                outs.append(hs if d == 0 else hs[::-1])
            seq = [sum((o[t] for o in outs), []) for t in range(T)]
            layer_outputs.append(seq)
        if self.Y:
            seq = [[self.out(dot(w, y) + b, self.af, self.fm.data, "head") for w, b in zip(self.head_w, self.head_b)]
                   for y in seq]
        if self.outputs == "last":
            seq = seq[-1:]
        cell_state = self.cell in ("lstm", "lstm_nf")
        return {"h_codes": seq, "c_codes": c_codes if cell_state else None, "final_h": final_h,
                "final_c": final_c if cell_state else None, "layer_outputs": layer_outputs}


def random_codes(rng, shape, fmt: QFormat, fraction=1.0):
    """Uniform codes over ``fraction`` of the format's range."""
    lo, hi = int(fmt.min_code * fraction), int(fmt.max_code * fraction)
    return rng.integers(lo, hi + 1, shape)


def check_equal(res, ref, what=""):
    np.testing.assert_array_equal(res.h_codes, np.array(ref["h_codes"], dtype=np.int64).reshape(res.h_codes.shape),
                                  err_msg=f"h_codes {what}")
    np.testing.assert_array_equal(res.final_h, ref["final_h"], err_msg=f"final_h {what}")
    for a, b in zip(res.layer_outputs, ref["layer_outputs"], strict=True):
        np.testing.assert_array_equal(a, b, err_msg=f"layer outputs {what}")
    if ref["final_c"] is None:
        assert res.final_c is None and res.c_codes is None
    else:
        np.testing.assert_array_equal(res.final_c, ref["final_c"], err_msg=f"final_c {what}")
        np.testing.assert_array_equal(res.c_codes, ref["c_codes"], err_msg=f"c_codes {what}")


def saturation(counter) -> dict:
    return {k: v for k, v in counter.items() if v}


# -- bit-exact comparison --------------------------------------------------------------------------
TINY = {
    # cell format s8.5 (+-4): lstm_nf's c_t and the GRU's nx / nh saturate; data s8.6 (+-2): relu saturates
    "state-overflows": Formats(data=QFormat(8, 6), weight=QFormat(8, 6), cell=QFormat(8, 5),
                               sigmoid_in=QFormat(6, 3), sigmoid_out=QFormat(8, 8, signed=False),
                               tanh_in=QFormat(6, 4), tanh_out=QFormat(8, 7)),
    # data s8.8 holds only [-0.5, 0.5): every cell's h_t overflows; a signed gate format (1 = 64 of s8.6)
    "hidden-overflows": Formats(data=QFormat(8, 8), weight=QFormat(6, 4), cell=QFormat(7, 4),
                                sigmoid_in=QFormat(5, 2), sigmoid_out=QFormat(8, 6),
                                tanh_in=QFormat(5, 3), tanh_out=QFormat(6, 4)),
}
X_T, H_T, T_T = 3, 2, 25


def tiny_case(cell, formats, rounding, overflow, seed, **topology):
    fm = TINY[formats]
    shape = {k: v for k, v in topology.items() if k != "outputs"}
    w = random_weights(X_T, H_T, cell=cell, scale=1.5, seed=seed, **shape)
    if seed == 2 and cell in ("lstm", "lstm_nf"):   # i and g pushed towards 1: c_t grows past its range
        for k in w:
            if k.startswith("bias_ih"):
                w[k][:H_T] += 2.5
                w[k][(BLOCKS[cell] - 2) * H_T:(BLOCKS[cell] - 1) * H_T] += 2.5
    if seed == 2 and cell == "gru":                 # b_in and b_hn pushed out of the cell format's range
        for k in w:
            if k.startswith("bias_"):
                w[k][2 * H_T:] += 4.5 if "ih" in k else -4.5
    model = Model(cell, X_T, H_T, w, formats=fm, rounding=rounding, overflow=overflow, **topology)
    rng = np.random.default_rng(100 + seed)
    xs = random_codes(rng, (T_T, X_T), fm.data, 0.6)
    n = model.num_layers * model.directions
    h0 = c0 = None
    if seed == 1:   # non-zero initial states
        h0 = random_codes(rng, (n, H_T), fm.data)
        c0 = random_codes(rng, (n, H_T), fm.cell) if model.cell_spec.has_cell_state else None
    ref = RefNet(cell, w, X_T, H_T, fm, rounding, overflow, **topology)
    return model, xs, h0, c0, ref


@pytest.mark.parametrize("overflow", OVERFLOWS)
@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("formats", list(TINY))
@pytest.mark.parametrize("cell", NEW_CELLS)
def test_bit_exact_against_independent_model(cell, formats, rounding, overflow):
    total = Counter()
    for seed in range(3):
        model, xs, h0, c0, ref = tiny_case(cell, formats, rounding, overflow, seed)
        res = run_codes(model, xs, h0=h0, c0=c0)
        expect = ref.run(xs.tolist(), None if h0 is None else h0.tolist(), None if c0 is None else c0.tolist())
        check_equal(res, expect, f"seed {seed}")
        assert res.h_codes.shape == (T_T, H_T)
        assert saturation(res.saturation) == saturation(ref.events), f"seed {seed}"
        total += ref.events
    # the overflow paths under test were really taken
    target = {("hidden-overflows", c): "hidden" for c in NEW_CELLS} | {
        ("state-overflows", "lstm_nf"): "cell", ("state-overflows", "gru"): "gru_n",
        ("state-overflows", "rnn_relu"): "hidden", ("state-overflows", "rnn_tanh"): "tanh_in"}
    assert total[target[(formats, cell)]] > 0, total


TOPOLOGIES = {
    "L2-bi-head3": dict(num_layers=2, bidirectional=True, head_size=3),
    "L3-uni-last": dict(num_layers=3, outputs="last"),
}


@pytest.mark.parametrize("overflow", OVERFLOWS)
@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("topology", list(TOPOLOGIES))
@pytest.mark.parametrize("cell", ALL_CELLS)
def test_bit_exact_network_against_independent_model(cell, topology, rounding, overflow):
    """Stacks, directions, the head and outputs="last", on tiny formats (the head overflows data s8.8)."""
    topo = TOPOLOGIES[topology]
    for seed in (1, 2):
        model, xs, h0, c0, ref = tiny_case(cell, "hidden-overflows", rounding, overflow, seed, **topo)
        res = run_codes(model, xs, h0=h0, c0=c0)
        expect = ref.run(xs.tolist(), None if h0 is None else h0.tolist(), None if c0 is None else c0.tolist())
        check_equal(res, expect, f"seed {seed}")
        assert res.h_codes.shape == ((1, H_T) if topo.get("outputs") == "last" else (T_T, model.output_size))
        assert saturation(res.saturation) == saturation(ref.events), f"seed {seed}"


@pytest.mark.parametrize("cell", NEW_CELLS)
def test_modes_change_the_result(cell):
    """The tiny cases are sensitive to rounding and overflow mode (so the parametrisation tests something):
    SAT and WRAP differ under every rounding mode, and every two rounding modes differ under some overflow
    mode (rnn_relu's RND and RND_CONV agree under SAT: its ties are rare and mostly saturate)."""
    outs = {}
    for rounding in ROUNDINGS:
        for overflow in OVERFLOWS:
            out = b""
            for formats in TINY:
                for seed in range(3):
                    model, xs, h0, c0, _ = tiny_case(cell, formats, rounding, overflow, seed)
                    out += run_codes(model, xs, h0=h0, c0=c0).h_codes.tobytes()
            outs[rounding, overflow] = out
    for rounding in ROUNDINGS:
        assert outs[rounding, "SAT"] != outs[rounding, "WRAP"], rounding
    for a, b in [("TRN", "RND"), ("RND", "RND_CONV"), ("TRN", "RND_CONV")]:
        assert any(outs[a, o] != outs[b, o] for o in OVERFLOWS), (a, b)


# -- composition of layers, directions and head ----------------------------------------------------
COMPOSE = {
    "L1-uni": dict(num_layers=1),
    "L2-bi-head3": dict(num_layers=2, bidirectional=True, head_size=3),
    "L3-uni-head2": dict(num_layers=3, head_size=2),
    "L3-bi": dict(num_layers=3, bidirectional=True),
}


@pytest.mark.parametrize("topology", list(COMPOSE))
@pytest.mark.parametrize("cell", ALL_CELLS)
def test_network_is_composed_of_layers(cell, topology):
    """run_codes = run_layer of every layer and direction, chained by hand, then the head (default formats)."""
    topo = COMPOSE[topology]
    X, H, T = 5, 4, 12
    w = random_weights(X, H, cell=cell, scale=0.5, seed=7, **topo)  # (COMPOSE has no "outputs")
    model = Model(cell, X, H, w, **topo)
    fm, D, L = model.formats, model.directions, model.num_layers
    rng = np.random.default_rng(3)
    xs = random_codes(rng, (T, X), fm.data, 0.1)
    h0 = random_codes(rng, (L * D, H), fm.data, 0.1)
    c0 = random_codes(rng, (L * D, H), fm.cell, 0.1) if model.cell_spec.has_cell_state else None
    res = run_codes(model, xs, h0=h0, c0=c0)

    seq, final_h, final_c = xs, [], []
    for k in range(L):
        outs = []
        for d in range(D):
            i = k * D + d
            hs, cs = run_layer(model.layer(k, reverse=d == 1), seq if d == 0 else seq[::-1], h0[i],
                               None if c0 is None else c0[i])
            final_h.append(hs[-1])
            if cs is not None:
                final_c.append(cs[-1])
            if k == L - 1 and d == 0 and cs is not None:
                np.testing.assert_array_equal(res.c_codes, cs)
            outs.append(hs if d == 0 else hs[::-1])
        seq = np.concatenate(outs, axis=1)
        np.testing.assert_array_equal(res.layer_outputs[k], seq)
    if model.head_size:   # the head on plain ints, from the float weights
        ref = RefNet(cell, w, X, H, fm, model.rounding, model.overflow, **topo)
        seq = [[ref.out(dot(wr, y) + b, ref.af, fm.data, "head") for wr, b in zip(ref.head_w, ref.head_b)]
               for y in seq.tolist()]
    np.testing.assert_array_equal(res.h_codes, seq)
    np.testing.assert_array_equal(res.final_h, final_h)
    if c0 is None:
        assert res.final_c is None
    else:
        np.testing.assert_array_equal(res.final_c, final_c)
    # outputs="last" keeps the last row of the same computation
    last = run_codes(Model(cell, X, H, w, outputs="last", **topo), xs, h0=h0, c0=c0)
    np.testing.assert_array_equal(last.h_codes, res.h_codes[-1:])
    np.testing.assert_array_equal(last.final_h, res.final_h)


# -- accuracy of the 16-bit defaults against the float reference -----------------------------------
#: Bound on max |golden - float| of h_t over 50 steps (X = H = 32, random_weights(scale=0.3), inputs
#: uniform(-1, 1)). Measured here over seeds 0..7, then the bound set at 2..3x the worst seed:
#:
#: * lstm 1.3e-3 .. 2.0e-3, gru 1.3e-3 .. 1.7e-3, rnn_relu 1.3e-3 .. 2.0e-3: the table steps dominate
#:   (tanh_in s12.9 rounds the pre-activation to 2**-10, sigmoid_in s12.8 to 2**-9, times slopes <= 1
#:   and 1/4), the recurrence carries them a few steps; data s16.12 adds 2**-13 per step.
#: * rnn_tanh 2.3e-3 .. 3.2e-3: h_t *is* a table output, so every step passes the full index rounding
#:   (slope of tanh up to 1) on through W_hh.
#: * lstm_nf 4.6e-3 .. 1.5e-2: without forget gate c_t = c_{t-1} + i*g never forgets, so the rounding
#:   error of every step's i*g stays in c_t and adds up (a random walk; 25 steps: <= 1.1e-2, 100 steps:
#:   <= 4.2e-2), and tanh(c) passes it to h where |c| is small. The cell state passes +-16 (s16.11) for
#:   some units and saturates there; that costs nothing here (measured: the same errors with a
#:   s20.11 cell format, which never saturates), because tanh(16) and tanh(21) are both 1 to 2**-16.
ACCURACY = {"lstm": 2 ** -7, "gru": 2 ** -8, "rnn_tanh": 2 ** -7, "rnn_relu": 2 ** -7, "lstm_nf": 2 ** -5}


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_accuracy_default_formats(cell):
    X, H, T = 32, 32, 50
    model = Model(cell, X, H, random_weights(X, H, cell=cell, scale=0.3, seed=0))
    xs = np.random.default_rng(1).uniform(-1, 1, (T, X))
    res = run(model, xs)
    y, (hn, cn) = network_float(model, xs)
    assert 0.05 < np.abs(y).mean() < 0.6          # gates in their active range, not all saturated
    err = np.abs(res.h - y).max()
    assert err < ACCURACY[cell], err
    np.testing.assert_array_equal(res.final_h[0], res.h_codes[-1])
    assert res.saturation["hidden"] == 0
    if cell != "lstm_nf":
        assert res.saturation["cell"] == 0


#: The same with two bidirectional layers and a dense head of 4 (what is compared is the head's output).
#: Measured over seeds 0..7: lstm 1.6e-3 .. 2.1e-3, gru 1.8e-3 .. 2.8e-3, rnn_relu 2.2e-3 .. 4.6e-3,
#: rnn_tanh 3.9e-3 .. 7.0e-3: the head sums 64 hidden-state errors (each up to ~3e-3, of both signs)
#: weighted by |w| <= 0.3. The bound 2**-6 = 1.6e-2 leaves a factor 2.2 over the worst.
#: lstm_nf is left out: two stacked integrators saturate the +-16 cell format hundreds of times in 50
#: steps, and a saturated c_t forgets how far past 16 it was, so h differs by up to 0.35 once the
#: float cell state comes back down (see test_lstm_nf_cell_state_saturates_or_wraps).
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
def test_accuracy_stacked_bidirectional_head(cell):
    X, H, T = 32, 32, 50
    topo = dict(num_layers=2, bidirectional=True, head_size=4)
    model = Model(cell, X, H, random_weights(X, H, cell=cell, scale=0.3, seed=0, **topo), **topo)
    xs = np.random.default_rng(1).uniform(-1, 1, (T, X))
    res = run(model, xs)
    y, (hn, _) = network_float(model, xs)
    assert res.h.shape == y.shape == (T, 4)
    assert np.abs(res.h - y).max() < 2 ** -6
    assert np.abs(res.final_h * model.formats.data.lsb - hn).max() < 2 ** -7
    assert not any(res.saturation[k] for k in ("cell", "hidden", "head"))


# -- initial states ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ALL_CELLS)
def test_initial_states(cell):
    """h0 / c0 (codes per layer and direction) are used: the result differs from the zero-state run,
    matches the independent model from the same states, and run() with float states follows the float
    reference from them."""
    X, H, T = 3, 4, 10
    topo = dict(num_layers=2, bidirectional=True)
    w = random_weights(X, H, cell=cell, scale=0.5, seed=11, **topo)
    model = Model(cell, X, H, w, **topo)
    fm = model.formats
    rng = np.random.default_rng(5)
    xf = rng.uniform(-1, 1, (T, X))
    h0f, c0f = rng.uniform(-0.9, 0.9, (4, H)), rng.uniform(-3, 3, (4, H))
    has_c = model.cell_spec.has_cell_state
    xs = np.round(xf * 2 ** fm.data.frac).astype(np.int64)
    h0 = np.round(h0f * 2 ** fm.data.frac).astype(np.int64)
    c0 = np.round(c0f * 2 ** fm.cell.frac).astype(np.int64) if has_c else None

    zero = run_codes(model, xs)
    res = run_codes(model, xs, h0=h0, c0=c0)
    assert not np.array_equal(res.h_codes, zero.h_codes)
    # the backward direction of the last layer starts at the last step: its first output (time T-1) moves
    assert not np.array_equal(res.h_codes[-1, H:], zero.h_codes[-1, H:])
    ref = RefNet(cell, w, X, H, fm, model.rounding, model.overflow, **topo)
    check_equal(res, ref.run(xs.tolist(), h0.tolist(), None if c0 is None else c0.tolist()))
    if has_c:   # c0 alone matters too
        only_c = run_codes(model, xs, h0=h0, c0=np.zeros_like(c0))
        assert not np.array_equal(res.h_codes, only_c.h_codes)

    fres = run(model, xf, h0=h0f, c0=c0f if has_c else None)
    y, (hn, cn) = network_float(model, xf, h0f, c0f)
    np.testing.assert_array_equal(fres.h_codes, res.h_codes)    # same codes: the floats were on the grid
    assert np.abs(fres.h - y).max() < 2 ** -8
    if has_c:
        assert np.abs(fres.final_c * fm.cell.lsb - cn).max() < 2 ** -7


# -- lstm_nf: the cell state integrates without bound --------------------------------------------------
@pytest.mark.parametrize("overflow", OVERFLOWS)
def test_lstm_nf_cell_state_saturates_or_wraps(overflow):
    """Without a forget gate c_t = c_{t-1} + i*g has no bound: under a constant positive drive it climbs
    by i*g ~ 1 per step until it leaves the cell format (s16.11: +-16, after 17 steps).

    * SAT: c_t stops at the format's largest code and stays there; every further step is an overflow
      event, counted in ``result.saturation["cell"]``. h_t = o * tanh(c_t) stays right (tanh(16) = 1 to
      2**-16), so h follows the float reference, whose c_t keeps growing.
    * WRAP: c_t wraps from +16 to about -16 and climbs again (a saw-tooth); h_t flips sign at every
      wrap. Only the wrapping steps are events. WRAP is therefore unusable for lstm_nf unless the cell
      format holds the longest sequence's drive.

    Weights zero; b_i = b_g = 8 (i = sigmoid(8) and g = tanh(4) from the saturated table inputs,
    both ~1), b_o = 0 (o = 1/2). With c_{t-1} a whole code of the cell format, the rounding of
    c_{t-1} + i*g only rounds i*g, so c_t = t * inc exactly, inc = round(i*g * 2**11) ~ 2**11.
    """
    X, H, T = 2, 3, 80
    w = {"weight_ih_l0": np.zeros((3 * H, X)), "weight_hh_l0": np.zeros((3 * H, H)),
         "bias_ih_l0": np.r_[np.full(H, 8.0), np.full(H, 8.0), np.zeros(H)], "bias_hh_l0": np.zeros(3 * H)}
    model = Model("lstm_nf", X, H, w, overflow=overflow)
    fmt = model.formats.cell
    res = run(model, np.zeros((T, X)))

    inc = int(res.c_codes[0, 0])
    assert abs(inc - 2 ** fmt.frac) < 2 ** fmt.frac * 2e-3          # i*g ~ 0.999
    steps = np.arange(1, T + 1)[:, None] * inc                        # the exact drive, t * inc
    if overflow == "SAT":
        expect = np.minimum(steps, fmt.max_code)
        events = int(np.count_nonzero(steps > fmt.max_code))          # every step past the top
    else:
        expect = (steps - fmt.min_code) % (1 << fmt.width) + fmt.min_code
        events = int(np.count_nonzero(np.diff(expect[:, 0]) < 0))     # only the wrapping steps
        assert events >= 2                                            # 80 steps climb past +16 twice
    np.testing.assert_array_equal(res.c_codes, np.broadcast_to(expect, (T, H)))
    assert res.saturation["cell"] == events * H
    assert "cell" in res.saturation.report()

    ref = RefNet("lstm_nf", w, X, H, model.formats, model.rounding, overflow)
    check_equal(res, ref.run([[0] * X] * T))
    assert ref.events["cell"] == events * H

    y, (_, cn) = network_float(model, np.zeros((T, X)))
    assert cn.min() > 70                                              # float: about 0.999 * 80
    if overflow == "SAT":
        assert res.c_codes.max() == fmt.max_code
        assert np.abs(res.h - y).max() < 2 ** -9                      # h unharmed
    else:
        assert res.c_codes.min() < fmt.min_code // 2                  # wrapped to about -16
        assert res.h.min() < -0.4 and y.min() > 0.3                   # h flips sign, float h does not
