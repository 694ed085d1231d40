"""Requantiser, activation table and matrix-vector unit in Amaranth simulation vs golden functions."""


import numpy as np
import pytest
from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from rnnaccel.golden.activation import activation, make_table
from rnnaccel.golden.fixed import QFormat, requantize as golden_requantize
from rnnaccel.golden.mvu import matrix_vector
from rnnaccel.hdl.activation import ActivationTable
from rnnaccel.hdl.fixed import requantize, requantize_split, shape_of
from rnnaccel.hdl.mvu import MatrixVectorUnit, pack_banks
from rnnaccel.hdl.perf import mvu_latency
from rnnaccel.sim.amaranth_sim import run_pipeline


class _Requant(wiring.Component):
    def __init__(self, src, dst, rounding, overflow, in_width, split=False):
        self.args = (src, dst, rounding, overflow)
        self.split = split
        super().__init__({"i": In(signed(in_width)), "o": Out(shape_of(dst))})

    def elaborate(self, platform):
        m = Module()
        if self.split:
            m.d.comb += self.o.eq(requantize_split(m, self.i, *self.args, name="rq"))
        else:
            m.d.comb += self.o.eq(requantize(self.i, *self.args))
        return m


REQUANT_CASES = {
    "s10.6->s5.2": (QFormat(10, 6), QFormat(5, 2)),
    "s10.6->u4.3": (QFormat(10, 6), QFormat(4, 3, signed=False)),
    "s9.3->s8.6": (QFormat(9, 3), QFormat(8, 6)),          # left shift
    "s9.4->s6.4": (QFormat(9, 4), QFormat(6, 4)),          # no shift, overflow only
    "s10.1->s7.8": (QFormat(10, 1), QFormat(7, 8)),
}


@pytest.mark.parametrize("overflow", ["SAT", "WRAP"])
@pytest.mark.parametrize("rounding", ["TRN", "RND", "RND_CONV"])
@pytest.mark.parametrize("case", list(REQUANT_CASES), ids=list(REQUANT_CASES))
def test_requantize_exhaustive(case, rounding, overflow):
    src, dst = REQUANT_CASES[case]
    codes = np.arange(src.min_code, src.max_code + 1)
    dut = _Requant(src, dst, rounding, overflow, src.width)
    got = []

    async def tb(ctx):
        for c in codes:
            ctx.set(dut.i, int(c))
            got.append(ctx.get(dut.o))

    sim = Simulator(dut)
    sim.add_testbench(tb)
    sim.run()
    np.testing.assert_array_equal(np.array(got), golden_requantize(codes, src, dst, rounding, overflow))


@pytest.mark.parametrize("overflow", ["SAT", "WRAP"])
@pytest.mark.parametrize("rounding", ["TRN", "RND", "RND_CONV"])
@pytest.mark.parametrize("case", list(REQUANT_CASES), ids=list(REQUANT_CASES))
def test_requantize_split_exhaustive_one_cycle_later(case, rounding, overflow):
    """The two-cycle requantisation (registers inside, the saturating multiplexer after them)
    gives the golden result for every code, one clock after the code is presented."""
    src, dst = REQUANT_CASES[case]
    codes = np.arange(src.min_code, src.max_code + 1)
    dut = _Requant(src, dst, rounding, overflow, src.width, split=True)
    got = []

    async def tb(ctx):
        for c in codes:
            ctx.set(dut.i, int(c))
            got.append(ctx.get(dut.o))           # still the previous code's result
            await ctx.tick()
        got.append(ctx.get(dut.o))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    np.testing.assert_array_equal(np.array(got[1:]), golden_requantize(codes, src, dst, rounding, overflow))


def test_requantize_rejects_unknown_mode():
    with pytest.raises(ValueError, match="unknown rounding mode 'NEAREST'"):
        requantize(0, QFormat(8, 4), QFormat(8, 2), "NEAREST")


@pytest.mark.parametrize("function,in_fmt,out_fmt", [
    ("sigmoid", QFormat(8, 4), QFormat(8, 8, signed=False)),
    ("sigmoid", QFormat(7, 3), QFormat(10, 9)),
    ("tanh", QFormat(8, 5), QFormat(8, 7)),
], ids=["sigmoid-s8.4-u8.8", "sigmoid-s7.3-s10.9", "tanh-s8.5-s8.7"])
def test_activation_table_exhaustive(function, in_fmt, out_fmt):
    table = make_table(function, in_fmt, out_fmt)
    dut = ActivationTable(table)
    idx = np.arange(in_fmt.min_code, in_fmt.max_code + 1)
    got = run_pipeline(dut, [int(i) for i in idx])
    np.testing.assert_array_equal(np.array(got), activation(idx, table))


MVU_CASES = {
    "pe1-simd1-N5": (1, 1, 4, 5),
    "pe2-simd4-N8": (2, 4, 4, 8),
    "pe4-simd3-N7": (4, 3, 8, 7),      # N not a multiple of SIMD: zero padding
    "pe3-simd8-N8": (3, 8, 6, 8),
    "pe2-simd32-N40": (2, 32, 4, 40),
}


@pytest.mark.parametrize("case", list(MVU_CASES), ids=list(MVU_CASES))
def test_mvu_matches_golden(case):
    pe, simd, rows, n = MVU_CASES[case]
    dfmt, wfmt = QFormat(8, 5), QFormat(8, 6)
    acc_fmt = QFormat(32, 11)
    rng = np.random.default_rng(hash(case) % 2**32)
    w = rng.integers(wfmt.min_code, wfmt.max_code + 1, (rows, n))
    w[0, :] = wfmt.min_code                      # extreme products
    b = rng.integers(-(1 << 16), 1 << 16, rows)
    vectors = rng.integers(dfmt.min_code, dfmt.max_code + 1, (3, n))
    vectors[0, :] = dfmt.min_code
    w_banks, b_banks = pack_banks(w, b, pe, simd)
    dut = MatrixVectorUnit(w_banks, b_banks, data_fmt=dfmt, weight_fmt=wfmt, acc_fmt=acc_fmt)
    folds = -(-n // simd)
    R = rows // pe
    got = []

    async def tb(ctx):
        beats = [None]                           # no beat in the first cycle after reset
        for v in vectors:
            vp = np.zeros(folds * simd, dtype=np.int64)
            vp[:n] = v
            for r in range(R):
                for k in range(folds):
                    beats.append(vp[k * simd:(k + 1) * simd])
            beats.append(None)                   # an idle cycle between passes
        for beat in beats + [None] * (mvu_latency(simd) + 1):
            ctx.set(dut.i_stream.valid, beat is not None)
            if beat is not None:
                ctx.set(dut.i_stream.payload, [int(x) for x in beat])
            await ctx.tick()
            if ctx.get(dut.o_stream.valid):
                p = ctx.get(dut.o_stream.payload)
                got.append((int(p.row), [int(a) for a in p.acc]))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    order = np.arange(rows).reshape(R, pe).T      # pack_banks' default row order
    expected = []
    for v in vectors:
        acc = matrix_vector(w, v, b)
        expected += [(r, [int(acc[order[p, r]]) for p in range(pe)]) for r in range(R)]
    assert [g[0] for g in got] == [e[0] for e in expected]
    np.testing.assert_array_equal(np.array([g[1] for g in got]), np.array([e[1] for e in expected]))


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_mvu_rejects_out_of_range_weights():
    w_banks = np.full((1, 2, 1), 200)
    with pytest.raises(ValueError, match="weight codes outside s8.6"):
        MatrixVectorUnit(w_banks, np.zeros((1, 2), dtype=int), data_fmt=QFormat(8, 5), weight_fmt=QFormat(8, 6),
                         acc_fmt=QFormat(32, 11))


def test_tanh_table_without_symmetry_gives_magnitude():
    table = make_table("tanh", QFormat(7, 4), QFormat(8, 7))
    dut = ActivationTable(table, apply_symmetry=False)
    idx = np.arange(-64, 64)
    got = run_pipeline(dut, [int(i) for i in idx])
    np.testing.assert_array_equal(np.array(got), np.abs(activation(idx, table)))


def test_sigmoid_table_needs_symmetry():
    with pytest.raises(ValueError, match="only an odd function's table"):
        ActivationTable(make_table("sigmoid", QFormat(7, 3), QFormat(8, 8, signed=False)), apply_symmetry=False)
