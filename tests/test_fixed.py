"""Tests of golden/fixed.py: QFormat, quantize, requantize and saturation counting.

Expected values come from two independent sources:

* fxpmath (an independent fixed-point library), for every mode it has an equal of;
* exact rational arithmetic with :class:`fractions.Fraction` (``oracle_*`` below), written here from
  the definitions of the modes, which also covers codes too wide for float64.
"""

import math
import re
from fractions import Fraction

import numpy as np
import pytest
from fxpmath import Fxp

from rnnaccel.golden.fixed import (
    OVERFLOW_MODES, ROUNDING_MODES, QFormat, SaturationCounter, quantize, requantize, to_float,
)

# -- independent oracles -------------------------------------------------------------------------


def oracle_round(v: Fraction, rounding: str) -> int:
    """Round an exact rational to an integer by the definition of each mode."""
    n = math.floor(v)
    r = v - n                                  # 0 <= r < 1, exact
    half = Fraction(1, 2)
    if rounding == "TRN":                      # towards minus infinity
        return n
    if rounding == "RND":                      # nearest, ties towards plus infinity
        return n + (r >= half)
    if rounding == "RND_CONV":                 # nearest, ties to even
        return n + (r > half or (r == half and n % 2 == 1))
    raise AssertionError(rounding)


def oracle_range(width: int, signed: bool) -> tuple[int, int]:
    if signed:
        return -2 ** (width - 1), 2 ** (width - 1) - 1
    return 0, 2 ** width - 1


def oracle_overflow(q: int, width: int, signed: bool, overflow: str) -> int:
    lo, hi = oracle_range(width, signed)
    if overflow == "SAT":
        return min(max(q, lo), hi)
    return (q - lo) % 2 ** width + lo         # two's complement (or unsigned) wrap-around


def oracle_requantize(code: int, src: QFormat, dst: QFormat, rounding: str, overflow: str) -> int:
    v = Fraction(int(code)) * Fraction(2) ** (dst.frac - src.frac)
    return oracle_overflow(oracle_round(v, rounding), dst.width, dst.signed, overflow)


def oracle_quantize(x: float, dst: QFormat, rounding: str, overflow: str) -> int:
    v = Fraction(float(x)) * Fraction(2) ** dst.frac          # Fraction(float) is exact
    return oracle_overflow(oracle_round(v, rounding), dst.width, dst.signed, overflow)


# -- fxpmath ----------------------------------------------------------------------------------------
# fxpmath's spellings: its 'trunc' rounds towards zero, so our TRN (floor) is fxpmath 'floor';
# RND_CONV (half to even) is 'around' (np.around); RND (half towards +inf, SystemC SC_RND) is
# 'nearest_posinf', which fxpmath has only since 0.4.10 -- with an older fxpmath the RND cases are
# skipped here and covered by the Fraction oracle alone.  Overflow: 'saturate' / 'wrap'.
FXP_OVERFLOW = {"SAT": "saturate", "WRAP": "wrap"}
FXP_ROUNDING = {"TRN": "floor", "RND_CONV": "around", "RND": "nearest_posinf"}


def _fxp_has(rounding):
    try:
        Fxp(0.0, signed=True, n_word=8, n_frac=0, rounding=FXP_ROUNDING[rounding])
    except ValueError:
        return False
    return True


def fxp_codes(real, dst: QFormat, rounding: str, overflow: str) -> np.ndarray:
    """Raw codes of ``real`` (float64, exact values) converted by fxpmath to ``dst``."""
    if not _fxp_has(rounding):
        pytest.skip(f"this fxpmath has no equal of {rounding} (checked against the Fraction oracle)")
    real = np.asarray(real, dtype=np.float64)
    x = Fxp(real, signed=dst.signed, n_word=dst.width, n_frac=dst.frac,
            rounding=FXP_ROUNDING[rounding], overflow=FXP_OVERFLOW[overflow])
    return np.asarray(x.val).astype(np.int64).reshape(real.shape)


# -- test vectors -------------------------------------------------------------------------------------
MODES = [pytest.param(r, o, id=f"{r}-{o}") for r in ROUNDING_MODES for o in OVERFLOW_MODES]

# (src, dst): shifts right, left and zero; signed and unsigned on both sides; with and without overflow.
FORMAT_PAIRS = [pytest.param(QFormat.parse(s), QFormat.parse(d), id=f"{s}->{d}") for s, d in [
    ("s12.8", "s8.4"),     # right 4, overflow possible
    ("s12.8", "s6.2"),     # right 6, same range: overflows only by rounding up at the top
    ("s12.8", "s4.0"),     # right 8 to an integer format
    ("s12.8", "u6.3"),     # right 5 to unsigned: negatives overflow
    ("u10.6", "s6.2"),     # unsigned source
    ("s11.1", "s10.0"),    # right 1: every odd code is a tie
    ("s40.24", "s16.12"),  # wide source (sampled)
    ("s8.2", "s12.6"),     # left 4, no overflow
    ("s8.2", "s6.4"),      # left 2 with overflow
    ("s8.2", "u8.5"),      # left 3 to unsigned
    ("u8.4", "s8.6"),      # left 2, unsigned to signed
    ("s10.4", "s6.4"),     # zero shift, narrowing
    ("s10.4", "u6.4"),     # zero shift, to unsigned
    ("u10.4", "s8.4"),     # zero shift, unsigned to signed
    ("s8.4", "s8.4"),      # identity
]]


def src_codes(src: QFormat, dst: QFormat, seed=0) -> np.ndarray:
    """Every code of a narrow ``src``; for a wide one its extremes, random codes, and exact ties
    (and their neighbours) around zero and around the destination's extreme codes."""
    lo, hi = oracle_range(src.width, src.signed)
    if src.width <= 12:
        return np.arange(lo, hi + 1, dtype=np.int64)
    rng = np.random.default_rng(seed)
    shift = src.frac - dst.frac
    dlo, dhi = oracle_range(dst.width, dst.signed)
    ks = [0, 1, -1, 2, -2, dlo, dlo - 1, dlo + 1, dhi, dhi + 1, dhi - 1]
    ks += [int(k) for k in rng.integers(dlo * 2, dhi * 2, 200)]
    special = [lo, lo + 1, hi, hi - 1, 0, 1, -1]
    for k in ks:
        base = k << shift if shift >= 0 else k
        special += [base, base + 1, base - 1]
        if shift > 0:
            tie = base + (1 << (shift - 1))
            special += [tie, tie - 1, tie + 1]
    codes = np.concatenate([np.array(special, dtype=np.int64),
                            rng.integers(lo, hi, 5000, endpoint=True, dtype=np.int64)])
    return codes[(codes >= lo) & (codes <= hi)]


# -- QFormat ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, width, frac, signed", [
    ("s16.12", 16, 12, True), ("u8.8", 8, 8, False), ("s16.0", 16, 0, True), ("s2.2", 2, 2, True),
    ("u1.0", 1, 0, False), ("s32.31", 32, 31, True),
])
def test_qformat_parse_str_round_trip(text, width, frac, signed):
    fmt = QFormat.parse(text)
    assert (fmt.width, fmt.frac, fmt.signed) == (width, frac, signed)
    assert fmt == QFormat(width, frac, signed)
    assert str(fmt) == text
    assert QFormat.parse(str(fmt)) == fmt
    assert QFormat.parse(fmt) is fmt


@pytest.mark.parametrize("fmt, lo, hi", [
    ("s16.12", -32768, 32767), ("u8.8", 0, 255), ("s2.0", -2, 1), ("u1.0", 0, 1),
])
def test_qformat_range(fmt, lo, hi):
    f = QFormat.parse(fmt)
    assert (f.min_code, f.max_code) == (lo, hi)
    assert f.min_value == lo * 2.0 ** -f.frac and f.max_value == hi * 2.0 ** -f.frac
    assert f.lsb == 2.0 ** -f.frac
    assert f.contains([lo, hi]).all() and not f.contains([lo - 1]).any() and not f.contains([hi + 1]).any()
    assert f.int_bits == f.width - f.frac


def test_to_float():
    np.testing.assert_array_equal(to_float([-3, 0, 5], QFormat(8, 2)), [-0.75, 0.0, 1.25])


@pytest.mark.parametrize("text, hint", [
    pytest.param("q16.4", "is not a fixed-point format", id="bad-sign-letter"),
    pytest.param("s16.20", "frac=20 outside 0..width=16", id="frac-gt-width"),
    pytest.param("s0.0", "width must be at least 1", id="zero-width"),
    pytest.param("u0.0", "width must be at least 1", id="zero-width-unsigned"),
    pytest.param("s1.0", "signed QFormat needs width >= 2", id="signed-width-1"),
    pytest.param("s16.-1", "frac=-1 outside", id="negative-frac"),
    pytest.param("s16", "is not a fixed-point format", id="no-frac"),
    pytest.param("s16,12", "is not a fixed-point format", id="comma"),
    pytest.param("", "is not a fixed-point format", id="empty"),
])
def test_qformat_parse_invalid(text, hint):
    with pytest.raises(ValueError, match=re.escape(hint)) as e:
        QFormat.parse(text, field="formats.data")
    msg = str(e.value)
    assert "formats.data" in msg        # the field
    assert text in msg                  # the value as written


def test_qformat_parse_rejects_non_string():
    with pytest.raises(TypeError, match="16"):
        QFormat.parse(16)


@pytest.mark.parametrize("args, exc", [
    ((0, 0), ValueError), ((1, 0, True), ValueError), ((16.0, 4), TypeError), ((16, 4.5), TypeError),
    ((True, 0), TypeError),
])
def test_qformat_constructor_rejects(args, exc):
    with pytest.raises(exc):
        QFormat(*args)


# -- requantize -----------------------------------------------------------------------------------
@pytest.mark.parametrize("rounding, overflow", MODES)
@pytest.mark.parametrize("src, dst", FORMAT_PAIRS)
def test_requantize_vs_fxpmath(src, dst, rounding, overflow):
    codes = src_codes(src, dst)
    assert np.abs(codes).max() < 2 ** 52           # so that the real values below are exact
    expected = fxp_codes(codes.astype(np.float64) * 2.0 ** -src.frac, dst, rounding, overflow)
    got = requantize(codes, src, dst, rounding, overflow)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("rounding, overflow", MODES)
@pytest.mark.parametrize("src, dst", FORMAT_PAIRS + [
    # accumulator-sized codes, beyond float64's 53 bits
    pytest.param(QFormat(62, 24), QFormat(16, 8), id="s62.24->s16.8"),
    pytest.param(QFormat(62, 24), QFormat(40, 10), id="s62.24->s40.10"),
])
def test_requantize_vs_fraction(src, dst, rounding, overflow):
    codes = src_codes(src, dst, seed=1)
    expected = np.array([oracle_requantize(c, src, dst, rounding, overflow) for c in codes.tolist()],
                        dtype=np.int64)
    np.testing.assert_array_equal(requantize(codes, src, dst, rounding, overflow), expected)


@pytest.mark.parametrize("rounding, expected", [
    # codes of s8.2 (quarters) -> s8.0: -1.5, -1.25, -0.75, -0.5, -0.25, 0.25, 0.5, 0.75, 1.5, 2.5
    ("TRN", [-2, -2, -1, -1, -1, 0, 0, 0, 1, 2]),
    ("RND", [-1, -1, -1, 0, 0, 0, 1, 1, 2, 3]),
    ("RND_CONV", [-2, -1, -1, 0, 0, 0, 0, 1, 2, 2]),
])
def test_requantize_ties_by_hand(rounding, expected):
    codes = [-6, -5, -3, -2, -1, 1, 2, 3, 6, 10]
    got = requantize(codes, QFormat(8, 2), QFormat(8, 0), rounding, "SAT")
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("overflow", OVERFLOW_MODES)
@pytest.mark.parametrize("dst", [QFormat(8, 4), QFormat(8, 4, signed=False)], ids=str)
def test_requantize_extreme_codes(dst, overflow):
    """The destination's extreme codes pass unchanged and uncounted; one step beyond overflows."""
    src = QFormat(16, 6)
    lo, hi = oracle_range(dst.width, dst.signed)
    c = SaturationCounter()
    got = requantize(np.array([lo, hi]) << 2, src, dst, "RND", overflow, counter=c, tag="t")
    np.testing.assert_array_equal(got, [lo, hi])
    assert c["t"] == 0
    got = requantize(np.array([lo - 1, hi + 1]) << 2, src, dst, "RND", overflow, counter=c, tag="t")
    assert c["t"] == 2
    if overflow == "SAT":
        np.testing.assert_array_equal(got, [lo, hi])
    else:
        np.testing.assert_array_equal(got, [hi, lo])
    # just below the largest code + 1/2 rounds to the largest code; at +1/2 it rounds up and overflows
    got = requantize([(hi << 2) + 1, (hi << 2) + 2], src, dst, "RND", overflow, counter=c, tag="t")
    assert got[0] == hi and c["t"] == 3


@pytest.mark.parametrize("overflow", OVERFLOW_MODES)
@pytest.mark.parametrize("rounding", ROUNDING_MODES)
@pytest.mark.parametrize("src, dst", [("s12.8", "s5.2"), ("s12.8", "u6.3"), ("s8.2", "s6.4")])
def test_counter_counts_exactly_the_out_of_range_values(src, dst, rounding, overflow):
    src, dst = QFormat.parse(src), QFormat.parse(dst)
    codes = src_codes(src, dst)
    lo, hi = oracle_range(dst.width, dst.signed)
    exact = [oracle_round(Fraction(c) * Fraction(2) ** (dst.frac - src.frac), rounding) for c in codes.tolist()]
    n_out = sum(not lo <= q <= hi for q in exact)
    assert 0 < n_out < len(codes)
    c = SaturationCounter()
    requantize(codes, src, dst, rounding, overflow, counter=c, tag="cell")
    assert c == {"cell": n_out}
    requantize(codes[:10], src, dst, rounding, overflow, counter=c, tag="cell")  # accumulates
    assert c["cell"] == n_out + sum(not lo <= q <= hi for q in exact[:10])
    requantize(codes, src, dst, rounding, overflow, counter=c)                    # no tag
    assert c["unnamed"] == n_out


def test_saturation_counter_report():
    c = SaturationCounter()
    assert c.report() == "no saturation"
    c["hidden"] += 0
    assert c.report() == "no saturation"
    c["cell"] += 3
    assert c.report() == "cell: 3"


@pytest.mark.parametrize("kw, bad", [({"rounding": "ROUND"}, "ROUND"), ({"overflow": "CLAMP"}, "CLAMP")])
def test_requantize_and_quantize_reject_unknown_modes(kw, bad):
    with pytest.raises(ValueError, match=f"unknown .* mode '{bad}'"):
        requantize([1], QFormat(8, 4), QFormat(8, 2), **kw)
    with pytest.raises(ValueError, match=f"unknown .* mode '{bad}'"):
        quantize([1.0], QFormat(8, 4), **kw)


# -- quantize --------------------------------------------------------------------------------------
QUANT_FORMATS = ["s16.12", "s8.6", "u8.8", "s4.0", "u16.16", "s12.8", "s32.20", "u6.2"]


def float_values(fmt: QFormat, seed=0) -> np.ndarray:
    """Random reals over 1.5x the range, every exact tie near zero and the extremes, the floats just
    either side of those ties, and the extremes +- half an LSB."""
    lsb = 2.0 ** -fmt.frac
    lo, hi = oracle_range(fmt.width, fmt.signed)
    rng = np.random.default_rng(seed)
    span = max(abs(lo), hi) * lsb
    ks = np.concatenate([np.arange(-40, 40), [lo, lo - 1, hi, hi - 1, hi + 1],
                         rng.integers(lo - 4, hi + 4, 300)]).astype(np.float64)
    ties = (ks + 0.5) * lsb
    vals = [rng.uniform(-1.5 * span, 1.5 * span, 2000), ks * lsb, ties,
            np.nextafter(ties, np.inf), np.nextafter(ties, -np.inf),
            [0.0, -0.0, lo * lsb, hi * lsb, (lo - 0.5) * lsb, (hi + 0.5) * lsb, 5e-324, -5e-324]]
    return np.concatenate([np.asarray(v, dtype=np.float64) for v in vals])


@pytest.mark.parametrize("rounding, overflow", MODES)
@pytest.mark.parametrize("fmt", QUANT_FORMATS)
def test_quantize_vs_fxpmath(fmt, rounding, overflow):
    fmt = QFormat.parse(fmt)
    x = float_values(fmt)
    np.testing.assert_array_equal(quantize(x, fmt, rounding, overflow), fxp_codes(x, fmt, rounding, overflow))


@pytest.mark.parametrize("rounding, overflow", MODES)
@pytest.mark.parametrize("fmt", QUANT_FORMATS)
def test_quantize_vs_fraction(fmt, rounding, overflow):
    fmt = QFormat.parse(fmt)
    x = float_values(fmt, seed=2)
    expected = np.array([oracle_quantize(v, fmt, rounding, overflow) for v in x.tolist()], dtype=np.int64)
    np.testing.assert_array_equal(quantize(x, fmt, rounding, overflow), expected)


def test_quantize_just_below_a_tie():
    """0.49999999999999994 LSB rounds down in every mode (adding 0.5 in float64 would round it up)."""
    fmt = QFormat(8, 4)
    x = np.nextafter(0.5, 0.0) * fmt.lsb
    for rounding in ROUNDING_MODES:
        assert quantize(x, fmt, rounding) == 0
        assert quantize(-x, fmt, rounding) == (-1 if rounding == "TRN" else 0)


def test_quantize_counts_saturation():
    c = SaturationCounter()
    quantize([0.0, 7.95, 7.99, 8.0, -8.0, -8.03, -8.04, 100.0, -1e300], QFormat(8, 4), counter=c, tag="input")
    assert c == {"input": 5}     # 7.99 (rounds to 8.0), 8.0, -8.04 (rounds to -8.0625), 100, -1e300


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_quantize_rejects_non_finite(bad):
    with pytest.raises(ValueError, match="non-finite.*s8.4.*weight"):
        quantize([0.5, bad], QFormat(8, 4), tag="weight")


def test_quantize_huge_values_saturate():
    fmt = QFormat(16, 12)
    np.testing.assert_array_equal(quantize([1e300, -1e300, 2.0 ** 70], fmt), [32767, -32768, 32767])


def test_add_with_carry_is_a_plus_b_plus_carry_modulo_width():
    """Exhaustive over 3-bit signed a, 2-bit unsigned b and the carry, into 4 bits."""
    from amaranth.hdl import Module, Signal, signed
    from amaranth.sim import Simulator

    from rnnaccel.hdl.fixed import add_with_carry

    a, b, c = Signal(signed(3)), Signal(2), Signal()
    out = Signal(4)
    m = Module()
    m.d.comb += out.eq(add_with_carry(a, b, c, 4))
    seen = []

    async def bench(ctx):
        for av in range(-4, 4):
            for bv in range(4):
                for cv in (0, 1):
                    ctx.set(a, av)
                    ctx.set(b, bv)
                    ctx.set(c, cv)
                    seen.append((ctx.get(out), (av + bv + cv) % 16))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert len(seen) == 64 and all(got == want for got, want in seen)
