"""The bit-exact integer LSTM of golden/lstm.py against an independent re-implementation.

``RefLSTM`` below is written from the equations (golden/lstm.py docstring, DESIGN.md section 3)
with Python integers and :class:`fractions.Fraction` only -- no NumPy, and none of the package's
rounding, table or matrix-vector code.  It also counts overflow events itself.
"""

import math
from fractions import Fraction

import numpy as np
import pytest

import rnnaccel.golden.lstm as golden
from rnnaccel.golden.fixed import QFormat
from rnnaccel.golden.model import Formats, Model
from rnnaccel.golden.reference import lstm_float

# -- independent integer model -------------------------------------------------------------------


def rnd(v: Fraction, mode: str) -> int:
    n = math.floor(v)
    r = v - n
    if mode == "TRN":
        return n
    if mode == "RND":
        return n + (2 * r >= 1)
    if mode == "RND_CONV":
        return n + (2 * r > 1 or (2 * r == 1 and n % 2 != 0))
    raise AssertionError(mode)


def bounds(fmt: QFormat):
    return (-(1 << (fmt.width - 1)), (1 << (fmt.width - 1)) - 1) if fmt.signed else (0, (1 << fmt.width) - 1)


def fit(q: int, fmt: QFormat, overflow: str) -> tuple[int, bool]:
    """(code, overflowed)."""
    lo, hi = bounds(fmt)
    if lo <= q <= hi:
        return q, False
    if overflow == "SAT":
        return (lo if q < lo else hi), True
    return (q - lo) % (1 << fmt.width) + lo, True


def to_code(v: Fraction, fmt: QFormat, mode: str, overflow: str) -> tuple[int, bool]:
    """Real value -> code of fmt."""
    return fit(rnd(v * 2 ** fmt.frac, mode), fmt, overflow)


def val(code: int, frac: int) -> Fraction:
    return Fraction(code, 1 << frac) if frac >= 0 else Fraction(code * (1 << -frac))


class RefLSTM:
    def __init__(self, weights: dict, X: int, H: int, fm: Formats, rounding: str, overflow: str):
        self.X, self.H, self.fm, self.rounding, self.overflow = X, H, fm, rounding, overflow
        w_ih, w_hh = weights["weight_ih_l0"].tolist(), weights["weight_hh_l0"].tolist()
        # weights: round to nearest (ties up), saturate, in the weight format
        self.w = [[to_code(Fraction(v), fm.weight, "RND", "SAT")[0] for v in w_ih[r] + w_hh[r]]
                  for r in range(4 * H)]
        # bias: b_ih + b_hh summed in float64, quantised once at accumulator precision with as many
        # integer bits as a product (width data + weight)
        self.acc_frac = fm.data.frac + fm.weight.frac
        bfmt = QFormat(fm.data.width + fm.weight.width, self.acc_frac)
        self.b = [to_code(Fraction(a + b), bfmt, "RND", "SAT")[0]
                  for a, b in zip(weights["bias_ih_l0"].tolist(), weights["bias_hh_l0"].tolist())]
        self._entries = {}
        self.events = {"cell": 0, "hidden": 0}

    def entry(self, function: str, j: int) -> int:
        fin, fout = ((self.fm.sigmoid_in, self.fm.sigmoid_out) if function == "sigmoid"
                     else (self.fm.tanh_in, self.fm.tanh_out))
        key = (function, j)
        if key not in self._entries:
            x = j / (1 << fin.frac)
            y = 1.0 / (1.0 + math.exp(-x)) if function == "sigmoid" else math.tanh(x)
            self._entries[key] = to_code(Fraction(y), fout, "RND", "SAT")[0]
        return self._entries[key]

    def act(self, v: Fraction, function: str) -> int:
        """Activation of a real value: saturate to the table's index format, then use symmetry."""
        fin, fout = ((self.fm.sigmoid_in, self.fm.sigmoid_out) if function == "sigmoid"
                     else (self.fm.tanh_in, self.fm.tanh_out))
        i, _ = to_code(v, fin, self.rounding, "SAT")
        depth = 1 << (fin.width - 1)
        if i >= 0:
            return self.entry(function, i)
        t = self.entry(function, min(-i, depth - 1))
        return (1 << fout.frac) - t if function == "sigmoid" else -t

    def step(self, x: list[int], h: list[int], c: list[int]):
        fm, H = self.fm, self.H
        v = x + h
        acc = [sum(wr * vc for wr, vc in zip(self.w[r], v)) + self.b[r] for r in range(4 * H)]
        pre = [val(a, self.acc_frac) for a in acc]
        gi = [self.act(p, "sigmoid") for p in pre[0:H]]
        gf = [self.act(p, "sigmoid") for p in pre[H:2 * H]]
        gg = [self.act(p, "tanh") for p in pre[2 * H:3 * H]]
        go = [self.act(p, "sigmoid") for p in pre[3 * H:4 * H]]
        so, to, cf = fm.sigmoid_out.frac, fm.tanh_out.frac, fm.cell.frac
        c_new, h_new = [], []
        for k in range(H):
            exact_c = val(gf[k] * c[k], so + cf) + val(gi[k] * gg[k], so + to)
            ck, ov = to_code(exact_c, fm.cell, self.rounding, self.overflow)
            self.events["cell"] += ov
            tc = self.act(val(ck, cf), "tanh")
            hk, ov = to_code(val(go[k] * tc, so + to), fm.data, self.rounding, self.overflow)
            self.events["hidden"] += ov
            c_new.append(ck)
            h_new.append(hk)
        return h_new, c_new

    def run(self, xs: np.ndarray):
        x_codes = [[to_code(Fraction(v), self.fm.data, "RND", "SAT")[0] for v in row] for row in xs.tolist()]
        h, c = [0] * self.H, [0] * self.H
        hs, cs = [], []
        for x in x_codes:
            h, c = self.step(x, h, c)
            hs.append(h)
            cs.append(c)
        return hs, cs


# -- bit-exact comparison ----------------------------------------------------------------------------
TINY = {
    # h well inside the data range; the cell state (+-4) overflows under large weights
    "cell-overflows": Formats(data=QFormat(8, 6), weight=QFormat(8, 6), cell=QFormat(8, 5),
                              sigmoid_in=QFormat(6, 3), sigmoid_out=QFormat(8, 8, signed=False),
                              tanh_in=QFormat(6, 4), tanh_out=QFormat(8, 7)),
    # data s8.8 holds only [-0.5, 0.5): h overflows; signed gate format
    "hidden-overflows": Formats(data=QFormat(8, 8), weight=QFormat(6, 4), cell=QFormat(7, 4),
                                sigmoid_in=QFormat(5, 2), sigmoid_out=QFormat(8, 6),
                                tanh_in=QFormat(5, 3), tanh_out=QFormat(6, 4)),
}
X_T, H_T, T_T = 3, 2, 25


@pytest.mark.parametrize("overflow", ["SAT", "WRAP"])
@pytest.mark.parametrize("rounding", ["TRN", "RND", "RND_CONV"])
@pytest.mark.parametrize("formats", list(TINY))
def test_bit_exact_against_independent_model(formats, rounding, overflow, golden_lstm_weights):
    fm = TINY[formats]
    total = {"cell": 0, "hidden": 0}
    for seed in range(3):
        w = golden_lstm_weights(X_T, H_T, scale=1.5, seed=seed)
        if seed == 2:       # gates i, f, g pushed towards 1: the cell state grows past its range
            w["bias_ih_l0"][:3 * H_T] += 2.5
        xs = np.random.default_rng(100 + seed).uniform(-1.2, 1.2, (T_T, X_T))
        model = Model("lstm", X_T, H_T, w, formats=fm, rounding=rounding, overflow=overflow)
        ref = RefLSTM(w, X_T, H_T, fm, rounding, overflow)
        ref_h, ref_c = ref.run(xs)
        res = golden.run(model, xs)
        assert res.h_codes.shape == res.c_codes.shape == (T_T, H_T)
        for t in range(T_T):
            np.testing.assert_array_equal(res.c_codes[t], ref_c[t], err_msg=f"c, seed {seed}, step {t}")
            np.testing.assert_array_equal(res.h_codes[t], ref_h[t], err_msg=f"h, seed {seed}, step {t}")
        assert res.saturation["cell"] == ref.events["cell"]
        assert res.saturation["hidden"] == ref.events["hidden"]
        np.testing.assert_array_equal(res.h, np.array(ref_h) * 2.0 ** -fm.data.frac)
        for k in total:
            total[k] += ref.events[k]
    # the overflow path under test was really taken
    assert total["cell" if formats == "cell-overflows" else "hidden"] > 0, total


def test_step_functions_compose_to_run(golden_lstm_weights):
    """lstm_step from a nonzero state equals the reference step from the same state."""
    fm = TINY["cell-overflows"]
    w = golden_lstm_weights(X_T, H_T, scale=1.5, seed=5)
    model = Model("lstm", X_T, H_T, w, formats=fm, rounding="RND_CONV", overflow="WRAP")
    ref = RefLSTM(w, X_T, H_T, fm, "RND_CONV", "WRAP")
    x, h, c = [17, -64, 101], [-40, 63], [-120, 99]
    c_g, h_g = golden.lstm_step(x, h, c, model)
    h_r, c_r = ref.step(x, h, c)
    np.testing.assert_array_equal(h_g, h_r)
    np.testing.assert_array_equal(c_g, c_r)


def test_rounding_mode_changes_the_result(golden_lstm_weights):
    """The tiny models above are sensitive to the rounding mode (so the parametrisation tests something)."""
    fm = TINY["cell-overflows"]
    w = golden_lstm_weights(X_T, H_T, scale=1.5, seed=0)
    xs = np.random.default_rng(100).uniform(-1.2, 1.2, (T_T, X_T))
    outs = [golden.run(Model("lstm", X_T, H_T, w, formats=fm, rounding=r), xs).h_codes.tobytes()
            for r in ("TRN", "RND", "RND_CONV")]
    assert len(set(outs)) == 3


def test_run_codes_checks_its_input(golden_lstm_weights):
    model = Model("lstm", X_T, H_T, golden_lstm_weights(X_T, H_T), formats=TINY["cell-overflows"])
    with pytest.raises(ValueError, match=r"shape \(T, 3\)"):
        golden.run_codes(model, np.zeros((4, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="outside the data format s8.6"):
        golden.run_codes(model, np.full((1, 3), 128))
    with pytest.raises(ValueError, match=r"shape \(T, 3\)"):
        golden.run(model, np.zeros(3))
    assert golden.run(model, np.zeros((0, 3))).h_codes.shape == (0, 2)


# -- saturation reporting ------------------------------------------------------------------------
def test_cell_saturation_is_counted():
    """Gates i, f and g pushed to 1: c grows by about 1 a step and passes the +-16 of s16.11."""
    X, H, T = 4, 4, 40
    w = {"weight_ih_l0": np.zeros((4 * H, X)), "weight_hh_l0": np.zeros((4 * H, H)),
         "bias_ih_l0": np.r_[np.full(3 * H, 6.0), np.zeros(H)], "bias_hh_l0": np.zeros(4 * H)}
    model = Model("lstm", X, H, w)
    res = golden.run(model, np.zeros((T, X)))
    assert res.saturation["cell"] > 0
    assert res.c_codes.max() == model.formats.cell.max_code
    assert "cell" in res.saturation.report()


def test_benign_model_has_no_saturation(golden_lstm_weights):
    X, H, T = 4, 4, 40
    model = Model("lstm", X, H, golden_lstm_weights(X, H, scale=0.1, seed=3))
    res = golden.run(model, np.random.default_rng(0).uniform(-0.5, 0.5, (T, X)))
    assert not any(res.saturation.values()), res.saturation
    assert res.saturation.report() == "no saturation"


# -- accuracy against the float reference ------------------------------------------------------------
def accuracy(formats, golden_lstm_weights, X=32, H=32, T=50, seed=0):
    model = Model("lstm", X, H, golden_lstm_weights(X, H, scale=0.3, seed=seed), formats=formats)
    xs = np.random.default_rng(seed + 1).uniform(-1, 1, (T, X))
    res = golden.run(model, xs)
    y, _ = lstm_float(model, xs)
    # the gates are in their active range, not all saturated
    assert 0.05 < np.abs(y).mean() < 0.6
    return np.abs(res.h - y).max(), res


def test_accuracy_default_formats(golden_lstm_weights):
    err, res = accuracy(Formats(), golden_lstm_weights)
    # measured here: 1.5e-3 for this seed, 1.3e-3 .. 2.0e-3 over seeds 0..7 (mostly the table steps:
    # tanh_in s12.9 alone contributes up to 2**-10)
    assert err < 2 ** -7
    assert res.saturation["cell"] == res.saturation["hidden"] == 0


@pytest.mark.parametrize("data", ["s8.6", "s16.12"])
def test_accuracy_8bit_weights(data, golden_lstm_weights):
    """s8.6 weights (and 8- or 16-bit data): a larger error than the default formats, but bounded.

    Measured here over seeds 0..7: s8.6 data 2.2e-2 .. 3.2e-2 (2.7e-2 for seed 0);
    s16.12 data 2.0e-2 .. 2.7e-2 (2.1e-2 for seed 0).  The bound leaves a factor of about 2.
    """
    fm = Formats(weight=QFormat(8, 6), data=QFormat.parse(data))
    err, _ = accuracy(fm, golden_lstm_weights)
    err16, _ = accuracy(Formats(), golden_lstm_weights)
    assert err > 4 * err16
    assert err < 2 ** -4
