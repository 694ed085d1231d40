"""Tests of golden/activation.py: table contents, symmetry, output range, float accuracy.

Expected values come from math.exp / math.tanh in Python floats, not from the module's NumPy code.
"""

import math

import numpy as np
import pytest

from rnnaccel.golden.activation import FUNCTIONS, activate, activation, make_table
from rnnaccel.golden.fixed import QFormat, SaturationCounter
from rnnaccel.golden.model import Formats

REF = {"sigmoid": lambda x: 1.0 / (1.0 + math.exp(-x)), "tanh": math.tanh}
MAX_SLOPE = {"sigmoid": 0.25, "tanh": 1.0}
D = Formats()

# (function, index format, output format)
TABLES = [
    pytest.param("sigmoid", D.sigmoid_in, D.sigmoid_out, id="sigmoid-default"),
    pytest.param("tanh", D.tanh_in, D.tanh_out, id="tanh-default"),
    pytest.param("sigmoid", QFormat(6, 3), QFormat(8, 8, signed=False), id="sigmoid-s6.3-u8.8"),
    pytest.param("tanh", QFormat(6, 4), QFormat(8, 7), id="tanh-s6.4-s8.7"),
    pytest.param("sigmoid", QFormat(10, 5), QFormat(12, 10), id="sigmoid-s10.5-s12.10"),
    pytest.param("sigmoid", QFormat(8, 2), QFormat(8, 8, signed=False), id="sigmoid-s8.2-u8.8-saturating"),
    pytest.param("tanh", QFormat(8, 3), QFormat(6, 5), id="tanh-s8.3-s6.5-saturating"),
]


def code_range(fmt):
    if fmt.signed:
        return -2 ** (fmt.width - 1), 2 ** (fmt.width - 1) - 1
    return 0, 2 ** fmt.width - 1


@pytest.mark.parametrize("function, fin, fout", TABLES)
def test_table_contents(function, fin, fout):
    t = make_table(function, fin, fout)
    depth = 2 ** (fin.width - 1)
    assert t.depth == depth and len(t.values) == depth and t.values.dtype == np.int64
    assert t.one == 2 ** fout.frac
    assert not t.values.flags.writeable            # shared, cached contents
    lo, hi = code_range(fout)
    lsb, step = 2.0 ** -fout.frac, 2.0 ** -fin.frac
    sample = sorted(set(range(0, depth, max(1, depth // 300))) | {0, 1, 2, depth // 2, depth - 2, depth - 1})
    for j in sample:
        y = REF[function](j * step)
        v = int(t.values[j])
        if y > hi * lsb + lsb / 2:              # beyond the largest code: saturated
            assert v == hi, (j, y, v)
        else:
            assert abs(v * lsb - y) <= lsb / 2 + 1e-12, (j, y, v)


@pytest.mark.parametrize("function, fin, fout", TABLES)
def test_activation_symmetry_and_range(function, fin, fout):
    """Exhaustive over every index code of the input format."""
    t = make_table(function, fin, fout)
    depth = t.depth
    idx = np.arange(-depth, depth, dtype=np.int64)          # every code of fin
    out = activation(idx, t)
    lo, hi = code_range(fout)
    assert out.dtype == np.int64 and out.min() >= lo and out.max() <= hi
    pos = np.arange(1, depth)                               # not clipped: -i reads entry i
    if function == "sigmoid":
        np.testing.assert_array_equal(activation(-pos, t), 2 ** fout.frac - activation(pos, t))
    else:
        np.testing.assert_array_equal(activation(-pos, t), -activation(pos, t))
    np.testing.assert_array_equal(activation(pos, t), t.values[1:])
    # the most negative index is clipped to the last entry
    assert activation(-depth, t) == activation(-(depth - 1), t)
    # monotone non-decreasing over the whole input range
    assert (np.diff(out) >= 0).all()


@pytest.mark.parametrize("rounding", ["RND", "RND_CONV", "TRN"])
@pytest.mark.parametrize("function, fin, fout", TABLES[:5])
def test_activate_float_accuracy(function, fin, fout, rounding):
    """Real inputs (exact codes of a fine format) looked up through `activate` are within
    (index step x max slope / 2 + half output LSB) of the true function inside the table range
    (a whole step for truncation)."""
    t = make_table(function, fin, fout)
    src = QFormat(32, 20)
    step, lsb = 2.0 ** -fin.frac, 2.0 ** -fout.frac
    limit = (t.depth - 1) * step
    rng = np.random.default_rng(3)
    grid = np.arange(-(t.depth - 1), t.depth) * step
    x = np.concatenate([rng.uniform(-limit, limit, 20000), grid, grid[:-1] + step / 2, [limit, -limit]])
    codes = np.round(x * 2 ** src.frac).astype(np.int64)
    xs = codes * 2.0 ** -src.frac                            # the exact real values looked up
    assert np.all(np.abs(xs) <= limit)
    y = activate(codes, src, t, rounding) * lsb
    ref = np.array([REF[function](v) for v in xs.tolist()])
    index_err = step if rounding == "TRN" else step / 2
    bound = index_err * MAX_SLOPE[function] + lsb / 2 + 1e-12
    err = np.abs(y - ref)
    assert err.max() <= bound, (err.max(), bound, xs[err.argmax()])


@pytest.mark.parametrize("function", FUNCTIONS)
def test_activate_saturates_the_index_beyond_the_table(function):
    fin, fout = (D.sigmoid_in, D.sigmoid_out) if function == "sigmoid" else (D.tanh_in, D.tanh_out)
    t = make_table(function, fin, fout)
    src = QFormat(40, 20)
    big = np.array([2 ** 36, -2 ** 36, 0], dtype=np.int64)
    c = SaturationCounter()
    out = activate(big, src, t, "RND", counter=c, tag="g")
    assert c == {"g": 2}
    assert out[0] == t.values[-1]
    assert out[1] == (t.one - t.values[-1] if function == "sigmoid" else -t.values[-1])
    assert out[2] == t.values[0]


def test_make_table_rejects():
    with pytest.raises(ValueError, match="unknown activation 'relu'; expected one of sigmoid, tanh"):
        make_table("relu", QFormat(8, 4), QFormat(8, 7))
    with pytest.raises(ValueError, match="table index format u8.4 must be signed"):
        make_table("tanh", QFormat(8, 4, signed=False), QFormat(8, 7))
