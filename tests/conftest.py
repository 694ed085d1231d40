"""Shared pytest fixtures.

Fixtures of the golden-model tests are prefixed ``golden_``; add other groups under their own prefix.
"""

import numpy as np
import pytest


@pytest.fixture
def golden_lstm_weights():
    """Factory of random float weights for a one-layer LSTM in PyTorch state_dict names.

    ``make(X, H, scale=0.5, seed=0)`` returns ``{"weight_ih_l0": (4H, X), "weight_hh_l0": (4H, H),
    "bias_ih_l0": (4H,), "bias_hh_l0": (4H,)}`` drawn from ``uniform(-scale, scale)`` (float64).
    """
    def make(X, H, scale=0.5, seed=0):
        rng = np.random.default_rng(seed)
        return {
            "weight_ih_l0": rng.uniform(-scale, scale, (4 * H, X)),
            "weight_hh_l0": rng.uniform(-scale, scale, (4 * H, H)),
            "bias_ih_l0": rng.uniform(-scale, scale, 4 * H),
            "bias_hh_l0": rng.uniform(-scale, scale, 4 * H),
        }
    return make
