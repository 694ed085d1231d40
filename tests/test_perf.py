"""Analytic cycle and resource model (the measured cycles are compared in test_hdl_lstm and the cocotb tests)."""

import math

import numpy as np
import pytest

from rnnaccel.golden.model import Model
from rnnaccel.hdl import perf


def _model(X, H, pe, simd):
    z = lambda *s: np.zeros(s)
    return Model("lstm", X, H, {"weight_ih_l0": z(4 * H, X), "weight_hh_l0": z(4 * H, H),
                                "bias_ih_l0": z(4 * H), "bias_hh_l0": z(4 * H)}, pe=pe, simd=simd)


@pytest.mark.parametrize("simd,levels", [(1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (8, 3), (16, 4), (32, 5), (33, 6)])
def test_adder_tree_stages(simd, levels):
    # One register after every level of a binary tree of ceil(log2 simd) levels.
    assert perf.adder_tree_stages(simd) == levels


@pytest.mark.parametrize("pe,simd", [(1, 1), (1, 2), (2, 4), (8, 1), (8, 4), (32, 1), (16, 2)],
                         ids=lambda v: str(v))
def test_reference_size_within_mac_bound_plus_28(pe, simd):
    # PE*SIMD in {1, 8, 32} at X = H = 32: within ceil(4H(X+H)/(PE*SIMD)) + 28 for SIMD <= 4 (two 5-cycle table
    # units, three requantisations (the cell state's in two cycles), input and product registers of three multipliers
    # and up to two adder-tree levels on the path).
    m = _model(32, 32, pe, simd)
    bound = math.ceil(4 * 32 * 64 / (pe * simd))
    assert perf.mac_cycles(m) == bound
    assert bound < perf.cycles_per_timestep(m) <= bound + 28


@pytest.mark.parametrize("simd", [8, 32])
def test_wide_simd_pays_adder_tree_stages(simd):
    # Each further adder-tree level adds one cycle of latency per timestep.
    m = _model(32, 32, 1, simd)
    assert perf.cycles_per_timestep(m) == perf.mac_cycles(m) + 26 + perf.adder_tree_stages(simd)


def test_padding_counts_whole_folds():
    m = _model(5, 8, 4, 3)          # N = 13 -> 5 folds of 3, the last one padded
    assert m.folds == 5
    assert perf.mac_cycles(m) == (4 * 8 // 4) * 5
    assert perf.memory_bits(m)["weights"] == 4 * 8 * 5 * 3 * m.formats.weight.width


def test_multiplier_count():
    m = _model(32, 32, 4, 8)
    assert perf.multiplier_count(m) == {"mvu": 32, "elementwise": 12, "head": 0, "total": 44}
