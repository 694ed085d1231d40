"""Tests of golden/activation.py and hdl/activation.py: table contents, symmetry, output range,
float accuracy, the piecewise-linear units, and hardware == golden bit for bit.

Expected values come from math.exp / math.tanh / the float functions in Python floats (and torch for
the float functions themselves), not from the module's integer code; error bounds are computed from
the formats.
"""

import math

import numpy as np
import pytest
from amaranth.hdl import Fragment

from rnnaccel.golden.activation import (
    ACTIVATIONS, FLOAT_FUNCTIONS, FUNCTIONS, PIECEWISE_LINEAR, SIGMOID_LIKE, TANH_LIKE, PiecewiseLinear, Table,
    activate, activation, hard_sigmoid_constant, make_activation, make_table)
from rnnaccel.golden.fixed import QFormat, SaturationCounter, quantize
from rnnaccel.golden.model import Formats
from rnnaccel.hdl.activation import ActivationTable, PiecewiseLinearUnit, activation_unit
from rnnaccel.hdl.perf import TABLE_LATENCY
from rnnaccel.sim.amaranth_sim import run_pipeline

REF = {
    "sigmoid": lambda x: 1.0 / (1.0 + math.exp(-x)),
    "tanh": math.tanh,
    "softsign": lambda x: x / (1.0 + abs(x)),
    "hard_sigmoid": lambda x: min(max(x / 6.0 + 0.5, 0.0), 1.0),
    "hard_tanh": lambda x: min(max(x, -1.0), 1.0),
}
D = Formats()
U = lambda w, f: QFormat(w, f, signed=False)  # noqa: E731


def fmt_id(function, fin, fout, tag=""):
    return f"{function}-{fin}-{fout}{'-' + tag if tag else ''}"


# (function, index format, output format) of the table tests
TABLES = [
    pytest.param("sigmoid", D.sigmoid_in, D.sigmoid_out, id="sigmoid-default"),
    pytest.param("tanh", D.tanh_in, D.tanh_out, id="tanh-default"),
    pytest.param("softsign", D.tanh_in, D.tanh_out, id="softsign-default"),
    pytest.param("sigmoid", QFormat(6, 3), U(8, 8), id="sigmoid-s6.3-u8.8"),
    pytest.param("tanh", QFormat(6, 4), QFormat(8, 7), id="tanh-s6.4-s8.7"),
    pytest.param("softsign", QFormat(6, 3), QFormat(8, 7), id="softsign-s6.3-s8.7"),
    pytest.param("sigmoid", QFormat(10, 5), QFormat(12, 10), id="sigmoid-s10.5-s12.10"),
    pytest.param("sigmoid", QFormat(8, 2), U(8, 8), id="sigmoid-s8.2-u8.8-saturating"),
    pytest.param("tanh", QFormat(8, 3), QFormat(6, 5), id="tanh-s8.3-s6.5-saturating"),
]

# Formats of the exhaustive tests of every function: gate-like and tanh-like pairs, small and default.
SIGMOID_FORMATS = [
    ("default", D.sigmoid_in, D.sigmoid_out),          # s12.8 -> u16.16
    ("small", QFormat(6, 3), U(8, 8)),
    ("signed-out", QFormat(7, 3), QFormat(10, 9)),
    ("coarse-out", QFormat(8, 6), U(6, 6)),            # in_frac > out_frac: rounding ties
]
TANH_FORMATS = [
    ("default", D.tanh_in, D.tanh_out),                # s12.9 -> s16.15
    ("small", QFormat(6, 3), QFormat(8, 7)),
    ("coarse-out", QFormat(8, 6), QFormat(6, 4)),      # in_frac > out_frac: rounding ties
    ("narrow-in", QFormat(6, 5), QFormat(8, 7)),       # input range [-1, 1): the index clip matters
]
UNITS = ([pytest.param(f, fi, fo, id=f"{f}-{tag}-{fi}-{fo}") for f in SIGMOID_LIKE for tag, fi, fo in SIGMOID_FORMATS]
         + [pytest.param(f, fi, fo, id=f"{f}-{tag}-{fi}-{fo}") for f in TANH_LIKE for tag, fi, fo in TANH_FORMATS])
PWL_UNITS = [p for p in UNITS if p.values[0] in PIECEWISE_LINEAR]


def code_range(fmt):
    if fmt.signed:
        return -2 ** (fmt.width - 1), 2 ** (fmt.width - 1) - 1
    return 0, 2 ** fmt.width - 1


def all_codes(fmt):
    return np.arange(fmt.min_code, fmt.max_code + 1, dtype=np.int64)


def ref(function, x):
    return np.array([REF[function](v) for v in np.asarray(x, dtype=np.float64).tolist()])


def max_slope(function, lo, hi):
    """sup |f'| on [lo, hi], from central differences of the float function on a fine grid."""
    h = 1e-4
    x = np.union1d(np.linspace(lo, hi, 200001), [0.0])
    f = FLOAT_FUNCTIONS[function]
    return float(np.max(np.abs(f(x + h) - f(x - h)) / (2 * h)))


def output_error_bound(unit, f_lo, f_hi):
    """Largest |code * lsb - y| of one output rounding of a real y in [f_lo, f_hi] (RND, then SAT):
    half an LSB, or the distance to the range of ``out_fmt`` for values it cannot hold."""
    o = unit.out_fmt
    return max(o.lsb / 2, f_hi - o.max_value, o.min_value - f_lo)


# ---------------------------------------------------------------------------------------------
# Float functions, names, API
# ---------------------------------------------------------------------------------------------

def test_names():
    assert ACTIVATIONS == ("sigmoid", "tanh", "softsign", "hard_sigmoid", "hard_tanh")
    assert set(FLOAT_FUNCTIONS) == set(ACTIVATIONS)
    assert set(SIGMOID_LIKE) | set(TANH_LIKE) == set(ACTIVATIONS) and not set(SIGMOID_LIKE) & set(TANH_LIKE)
    assert set(FUNCTIONS) | set(PIECEWISE_LINEAR) == set(ACTIVATIONS)
    assert SIGMOID_LIKE == ("sigmoid", "hard_sigmoid") and TANH_LIKE == ("tanh", "softsign", "hard_tanh")


TORCH = {"sigmoid": "sigmoid", "tanh": "tanh", "softsign": "softsign", "hard_sigmoid": "hardsigmoid",
         "hard_tanh": "hardtanh"}


@pytest.mark.parametrize("function", ACTIVATIONS)
def test_float_function_equals_torch(function):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-12, 12, 5000), np.arange(-64, 65) / 8, [-3.0, 3.0, -1.0, 1.0, 0.0, 1e-9]])
    expected = getattr(torch.nn.functional, TORCH[function])(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(FLOAT_FUNCTIONS[function](x), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(FLOAT_FUNCTIONS[function](x), ref(function, x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("function", ACTIVATIONS)
def test_make_activation_kinds(function):
    fin, fout = (D.sigmoid_in, D.sigmoid_out) if function in SIGMOID_LIKE else (D.tanh_in, D.tanh_out)
    unit = make_activation(function, fin, fout)
    assert unit is make_activation(function, str(fin), str(fout))          # cached, strings accepted
    assert (unit.function, unit.in_fmt, unit.out_fmt) == (function, fin, fout)
    assert unit.odd == (function in TANH_LIKE)
    assert unit.one == 2 ** fout.frac
    if function in FUNCTIONS:
        assert isinstance(unit, Table) and unit is make_table(function, fin, fout)
        assert unit.memory_bits == 2 ** (fin.width - 1) * fout.width and unit.multipliers == 0
    else:
        assert isinstance(unit, PiecewiseLinear)
        assert unit.memory_bits == 0
        assert unit.multipliers == (1 if function == "hard_sigmoid" else 0)


# ---------------------------------------------------------------------------------------------
# Tables (sigmoid, tanh, softsign)
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Piecewise-linear units (hard_sigmoid, hard_tanh)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("function, fin, fout", PWL_UNITS)
def test_piecewise_linear_is_correctly_rounded(function, fin, fout, record_property):
    """Over every index code, the default constants give exactly the float function rounded to
    nearest (ties up) and saturated, i.e. what a table of the function would hold; so the error
    against the float function is within half an output LSB (or the saturation at 1.0)."""
    unit = make_activation(function, fin, fout)
    idx = all_codes(fin)
    got = activation(idx, unit)
    # odd functions: the magnitude is clipped like a table address, the sign applied last
    x = (np.minimum(np.abs(idx), fin.max_code) * np.sign(idx) if unit.odd else idx) * fin.lsb
    y = FLOAT_FUNCTIONS[function](x)
    expected = (np.sign(idx) * quantize(np.abs(y), fout) if unit.odd else quantize(y, fout))
    np.testing.assert_array_equal(got, expected)
    err = np.abs(got * fout.lsb - y).max()
    bound = output_error_bound(unit, y.min(), y.max())
    record_property("max_error", err)
    assert err <= bound + 1e-15, (err, bound)
    lo, hi = code_range(fout)
    assert got.min() >= lo and got.max() <= hi
    assert (np.diff(got) >= 0).all()                        # monotone


@pytest.mark.parametrize("fin, fout", [pytest.param(fi, fo, id=f"{tag}-{fi}-{fo}")
                                       for tag, fi, fo in SIGMOID_FORMATS + TANH_FORMATS])
def test_hard_sigmoid_constant(fin, fout, record_property):
    """The default slope constant ceil(2**S / 6) * 2**-S: correctly rounded (previous test) with the
    smallest S, and one bit shorter is not; any constant stays within the derived bound
    half an LSB + 6 * |constant - 1/6| over the whole input range."""
    unit = make_activation("hard_sigmoid", fin, fout)
    mul, s = hard_sigmoid_constant(fin, fout)
    assert (unit.mul, unit.mul_frac) == (mul, s) and mul == math.ceil(2 ** s / 6)
    assert unit.slope_error == pytest.approx(mul / 2 ** s - 1 / 6, rel=1e-12)
    assert unit.shift == fin.frac + s - fout.frac
    record_property("constant", f"{mul} * 2**-{s} ({mul.bit_length()} bits)")
    idx = all_codes(fin)
    x = idx * fin.lsb
    y = FLOAT_FUNCTIONS["hard_sigmoid"](x)
    correct = quantize(y, fout)
    for shorter in range(s - 2, s):
        coarse = PiecewiseLinear("hard_sigmoid", fin, fout, mul=math.ceil(2 ** shorter / 6), mul_frac=shorter)
        got = activation(idx, coarse)
        if shorter == s - 1:
            assert (got != correct).any(), "a shorter constant would do"
        err = np.abs(got * fout.lsb - y).max()
        bound = output_error_bound(coarse, 0.0, 1.0) + 6 * coarse.slope_error
        assert err <= bound + 1e-15, (shorter, err, bound)


def test_hard_sigmoid_default_constant_values():
    """The constants of the default formats, as documented in PiecewiseLinear."""
    u = make_activation("hard_sigmoid", D.sigmoid_in, D.sigmoid_out)
    assert (u.mul, u.mul_frac, u.shift) == (174763, 20, 12) and u.mul.bit_length() == 18
    assert u.offset == 3 * 2 ** 8 * 174763 and (u.lo, u.hi) == (0, 2 ** 16 - 1)
    t = make_activation("hard_tanh", D.tanh_in, D.tanh_out)
    assert (t.mul, t.mul_frac, t.shift, t.offset, t.lo, t.hi) == (1, 0, 9 - 15, 0, 0, 2 ** 15 - 1)


# ---------------------------------------------------------------------------------------------
# All functions: accuracy of activate() on real inputs, saturation of the index
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rounding", ["RND", "RND_CONV", "TRN"])
@pytest.mark.parametrize("function, fin, fout", TABLES[:7] + PWL_UNITS[::2])
def test_activate_float_accuracy(function, fin, fout, rounding):
    """Real inputs (exact codes of a fine format) through `activate` are within
    (index rounding error x max slope + output rounding error) of the true function inside the
    input range; the index error is half a step (a whole step for truncation), the output error
    half an LSB or the saturation of out_fmt, the slope computed from the float function."""
    unit = make_activation(function, fin, fout)
    src = QFormat(32, 20)
    step = fin.lsb
    limit = (2 ** (fin.width - 1) - 1) * step
    rng = np.random.default_rng(3)
    grid = np.arange(-(2 ** (fin.width - 1) - 1), 2 ** (fin.width - 1)) * step
    x = np.concatenate([rng.uniform(-limit, limit, 20000), grid, grid[:-1] + step / 2, [limit, -limit]])
    codes = np.round(x * 2 ** src.frac).astype(np.int64)
    xs = codes * 2.0 ** -src.frac                            # the exact real values looked up
    assert np.all(np.abs(xs) <= limit)
    y = activate(codes, src, unit, rounding) * fout.lsb
    expected = ref(function, xs)
    index_err = step if rounding == "TRN" else step / 2
    f_grid = FLOAT_FUNCTIONS[function](grid)
    bound = (index_err * max_slope(function, -limit, limit)
             + output_error_bound(unit, f_grid.min(), f_grid.max()) + 1e-9)
    err = np.abs(y - expected)
    assert err.max() <= bound, (err.max(), bound, xs[err.argmax()])


@pytest.mark.parametrize("function", ACTIVATIONS)
def test_activate_saturates_the_index_beyond_the_range(function):
    fin, fout = (D.sigmoid_in, D.sigmoid_out) if function in SIGMOID_LIKE else (D.tanh_in, D.tanh_out)
    unit = make_activation(function, fin, fout)
    src = QFormat(40, 20)
    big = np.array([2 ** 36, -2 ** 36, 0], dtype=np.int64)
    c = SaturationCounter()
    out = activate(big, src, unit, "RND", counter=c, tag="g")
    assert c == {"g": 2}
    np.testing.assert_array_equal(out, activation([fin.max_code, fin.min_code, 0], unit))
    if function in FUNCTIONS:
        t = unit
        assert out[0] == t.values[-1]
        assert out[1] == (t.one - t.values[-1] if function == "sigmoid" else -t.values[-1])
        assert out[2] == t.values[0]
    # the limits of the function at +-infinity, within the output rounding and what is lost
    # by saturating the input at the end of its range
    f = FLOAT_FUNCTIONS[function]
    with np.errstate(over="ignore"):
        f_inf = f(np.array([1e300, -1e300]))
    tail = np.abs(f_inf - f(np.array([fin.max_value, -fin.max_value])))
    bound = output_error_bound(unit, f_inf.min(), f_inf.max()) + tail + 1e-12
    assert np.all(np.abs(out[:2] * fout.lsb - f_inf) <= bound)


# ---------------------------------------------------------------------------------------------
# Hardware == golden, every index code
# ---------------------------------------------------------------------------------------------

def _symmetry_modes():
    for p in UNITS:
        function, fin, fout = p.values
        yield pytest.param(function, fin, fout, True, id=p.id)
        if function in TANH_LIKE:
            yield pytest.param(function, fin, fout, False, id=p.id + "-magnitude")


@pytest.mark.parametrize("function, fin, fout, apply_symmetry", list(_symmetry_modes()))
def test_hardware_matches_golden_exhaustive(function, fin, fout, apply_symmetry):
    unit = make_activation(function, fin, fout)
    dut = activation_unit(unit, apply_symmetry=apply_symmetry)
    assert isinstance(dut, ActivationTable if function in FUNCTIONS else PiecewiseLinearUnit)
    assert dut.latency == TABLE_LATENCY and dut.unit is unit
    idx = all_codes(fin)
    got = np.array(run_pipeline(dut, [int(i) for i in idx]))
    expected = activation(idx, unit)
    if apply_symmetry:
        np.testing.assert_array_equal(got, expected)
    else:
        # the magnitude; the consumer negates exactly when the index is negative
        np.testing.assert_array_equal(got, np.abs(expected))
        assert got.min() >= 0
        np.testing.assert_array_equal(np.where(idx < 0, -got, got), expected)


@pytest.mark.parametrize("fin, fout", [
    pytest.param(QFormat(6, 3), U(8, 8), id="s6.3-u8.8"),
    pytest.param(QFormat(8, 6), QFormat(6, 4), id="s8.6-s6.4"),
])
def test_hardware_follows_a_custom_constant(fin, fout):
    unit = PiecewiseLinear("hard_sigmoid", fin, fout, mul=11, mul_frac=6)     # 1/6 ~ 0.171875
    idx = all_codes(fin)
    got = np.array(run_pipeline(PiecewiseLinearUnit(unit), [int(i) for i in idx]))
    np.testing.assert_array_equal(got, activation(idx, unit))


@pytest.mark.parametrize("odd", [pytest.param(True, id="tanh-like"), pytest.param(False, id="sigmoid-like")])
def test_piecewise_linear_unit_has_the_table_ports(odd):
    """Drop-in: the same signature and latency as the table unit of the same formats."""
    fin, fout = (QFormat(8, 5), QFormat(8, 7)) if odd else (QFormat(8, 4), U(8, 8))
    table_fn, pwl_fn = ("tanh", "hard_tanh") if odd else ("sigmoid", "hard_sigmoid")
    t = activation_unit(make_activation(table_fn, fin, fout))
    p = activation_unit(make_activation(pwl_fn, fin, fout))
    assert p.signature == t.signature
    assert p.latency == t.latency == TABLE_LATENCY
    assert p.table is p.unit                     # alias for code written against ActivationTable
    for dut in (t, p):
        Fragment.get(dut, None)                  # both elaborate


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------

def test_make_table_rejects():
    with pytest.raises(ValueError, match="unknown activation 'relu'; expected one of sigmoid, tanh, softsign$"):
        make_table("relu", QFormat(8, 4), QFormat(8, 7))
    with pytest.raises(ValueError, match="table index format u8.4 must be signed"):
        make_table("tanh", QFormat(8, 4, signed=False), QFormat(8, 7))
    with pytest.raises(ValueError, match="'hard_sigmoid' is piecewise-linear and has no table; use make_activation"):
        make_table("hard_sigmoid", QFormat(8, 4), U(8, 8))


@pytest.mark.parametrize("args, exc, match", [
    pytest.param(("relu", "s8.4", "s8.7"), ValueError,
                 "unknown activation 'relu'; expected one of sigmoid, tanh, softsign, hard_sigmoid, hard_tanh$",
                 id="unknown-name"),
    pytest.param(("Tanh", "s8.4", "s8.7"), ValueError, "unknown activation 'Tanh'", id="case-sensitive"),
    pytest.param((None, "s8.4", "s8.7"), ValueError, "unknown activation None", id="not-a-name"),
    pytest.param(("tanh", "u8.4", "s8.7"), ValueError, "table index format u8.4 must be signed",
                 id="table-unsigned-index"),
    pytest.param(("hard_sigmoid", "u8.4", "u8.8"), ValueError, "piecewise-linear index format u8.4 must be signed",
                 id="pwl-unsigned-index"),
    pytest.param(("hard_tanh", "s8.4", "u8.8"), ValueError,
                 r"hard_tanh output format u8.8 must be signed \(the function is odd\)", id="odd-unsigned-out"),
    pytest.param(("softsign", "s8.4", "u8.8"), ValueError, "softsign output format u8.8 must be signed",
                 id="softsign-unsigned-out"),
    pytest.param(("softsign", "s8.4", "x8.8"), ValueError,
                 "softsign output format: 'x8.8' is not a fixed-point format", id="bad-format-string"),
    pytest.param(("tanh", 12, "s8.7"), TypeError, "tanh input format must be a QFormat or a string like 's12.8', "
                 "not 12", id="format-type"),
])
def test_make_activation_rejects(args, exc, match):
    with pytest.raises(exc, match=match):
        make_activation(*args)


@pytest.mark.parametrize("kwargs, exc, match", [
    pytest.param(dict(function="tanh"), ValueError, "'tanh' is a table function, not piecewise-linear",
                 id="table-function"),
    pytest.param(dict(function="relu6"), ValueError,
                 "unknown piecewise-linear activation 'relu6'; expected one of hard_sigmoid, hard_tanh",
                 id="unknown"),
    pytest.param(dict(function="hard_tanh", mul=3, mul_frac=1), ValueError,
                 r"hard_tanh has slope 1: mul \* 2\*\*-mul_frac must be 1, not 3 \* 2\*\*-1", id="tanh-slope"),
    pytest.param(dict(function="hard_sigmoid", mul=0, mul_frac=3), ValueError, "mul must be positive, not 0",
                 id="mul-zero"),
    pytest.param(dict(function="hard_sigmoid", mul=3, mul_frac=-1), ValueError, "mul_frac must be >= 0, not -1",
                 id="mul-frac-negative"),
    pytest.param(dict(function="hard_sigmoid", mul=5), ValueError, "give both mul and mul_frac or neither",
                 id="mul-alone"),
    pytest.param(dict(function="hard_sigmoid", mul=2.5, mul_frac=4), TypeError, "mul must be an integer, not 2.5",
                 id="mul-float"),
    pytest.param(dict(function="hard_sigmoid", in_fmt=QFormat(8, -1)), ValueError,
                 r"hard_sigmoid input format s8.-1 needs frac >= 0", id="negative-frac"),
    pytest.param(dict(function="hard_sigmoid", mul=1 << 60, mul_frac=62), ValueError,
                 "does not fit the 64-bit integer model", id="mul-too-wide"),
])
def test_piecewise_linear_rejects(kwargs, exc, match):
    kwargs = dict(in_fmt=QFormat(8, 4), out_fmt=QFormat(8, 7)) | kwargs
    with pytest.raises(exc, match=match):
        PiecewiseLinear(**kwargs)


def test_units_reject():
    with pytest.raises(ValueError, match=r"only an odd function \(hard_tanh\) can leave the sign to the consumer, "
                                         "not 'hard_sigmoid'"):
        PiecewiseLinearUnit(make_activation("hard_sigmoid", QFormat(8, 4), U(8, 8)), apply_symmetry=False)
    with pytest.raises(ValueError, match=r"only an odd function's table \(tanh, softsign\) can leave the sign"):
        activation_unit(make_activation("sigmoid", QFormat(8, 4), U(8, 8)), apply_symmetry=False)
    with pytest.raises(TypeError, match="PiecewiseLinearUnit needs a golden PiecewiseLinear, got Table"):
        PiecewiseLinearUnit(make_activation("tanh", QFormat(8, 4), QFormat(8, 7)))
    with pytest.raises(TypeError, match="activation_unit needs a golden Table or PiecewiseLinear"):
        activation_unit("tanh")
    with pytest.raises(TypeError, match="activation needs a Table or PiecewiseLinear unit, got 'tanh'"):
        activation([0, 1], "tanh")
