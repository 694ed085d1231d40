"""Tier 1: the float reference of golden/reference.py equals torch.nn.LSTM (float64)."""

import numpy as np
import pytest

from rnnaccel.golden.model import Model
from rnnaccel.golden.reference import lstm_float

torch = pytest.importorskip("torch")

SIZES = [pytest.param(x, h, t, id=f"X{x}-H{h}-T{t}") for x, h, t in [
    (1, 1, 1), (3, 2, 7), (5, 8, 20), (16, 4, 3), (32, 32, 50),
]]


def torch_lstm(weights, X, H, batch_first):
    m = torch.nn.LSTM(X, H, batch_first=batch_first).double()
    with torch.no_grad():
        for k, v in weights.items():
            getattr(m, k).copy_(torch.from_numpy(v))
    return m


@pytest.mark.parametrize("batch_first", [False, True], ids=["seq-first", "batch-first"])
@pytest.mark.parametrize("X, H, T", SIZES)
def test_lstm_float_equals_torch(X, H, T, batch_first, golden_lstm_weights):
    w = golden_lstm_weights(X, H, scale=1.0, seed=X * 100 + H * 10 + T)
    rng = np.random.default_rng(T)
    x = rng.normal(0, 1.5, (T, X))
    h0, c0 = rng.uniform(-1, 1, H), rng.uniform(-2, 2, H)
    model = Model("lstm", X, H, w)
    y, (hT, cT) = lstm_float(model, x, h0, c0)

    m = torch_lstm(w, X, H, batch_first)
    xt = torch.from_numpy(x)[None] if batch_first else torch.from_numpy(x)[:, None]
    with torch.no_grad():
        yt, (ht, ct) = m(xt, (torch.from_numpy(h0)[None, None], torch.from_numpy(c0)[None, None]))
    yt = (yt[0] if batch_first else yt[:, 0]).numpy()
    assert y.shape == (T, H)
    np.testing.assert_allclose(y, yt, rtol=0, atol=1e-6)
    np.testing.assert_allclose(hT, ht[0, 0].numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(cT, ct[0, 0].numpy(), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(y[-1], hT)


def test_lstm_float_zero_initial_state_by_default(golden_lstm_weights):
    X, H, T = 4, 3, 5
    w = golden_lstm_weights(X, H, seed=1)
    x = np.random.default_rng(0).normal(size=(T, X))
    m = torch_lstm(w, X, H, batch_first=False)
    with torch.no_grad():
        yt, _ = m(torch.from_numpy(x))            # unbatched input, zero state
    y, _ = lstm_float(Model("lstm", X, H, w), x)
    np.testing.assert_allclose(y, yt.numpy(), rtol=0, atol=1e-6)
