"""Tests of golden/torch_import.py: from_torch of a module or its state_dict, and what it rejects."""

import numpy as np
import pytest

from rnnaccel.golden.fixed import QFormat
from rnnaccel.golden.model import ConfigError, Formats
from rnnaccel.golden.torch_import import from_torch

torch = pytest.importorskip("torch")

NAMES = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


def lstm(X=3, H=4, **kw):
    torch.manual_seed(0)
    return torch.nn.LSTM(X, H, **kw)


@pytest.mark.parametrize("batch_first", [False, True], ids=["seq-first", "batch-first"])
def test_module_and_state_dict_give_identical_weights(batch_first):
    m = lstm(3, 4, batch_first=batch_first)
    a, b = from_torch(m), from_torch(m.state_dict())
    assert (a.input_size, a.hidden_size, a.cell) == (b.input_size, b.hidden_size, b.cell) == (3, 4, "lstm")
    assert set(a.weights) == set(b.weights) == set(NAMES)
    for k in NAMES:
        expected = getattr(m, k).detach().double().numpy()
        assert a.weights[k].dtype == np.float64
        np.testing.assert_array_equal(a.weights[k], expected)
        np.testing.assert_array_equal(b.weights[k], expected)


def test_float64_module_weights_are_kept_exactly():
    m = lstm(2, 2).double()
    with torch.no_grad():
        m.weight_ih_l0[0, 0] = 1 / 3
    assert from_torch(m).weights["weight_ih_l0"][0, 0] == 1 / 3


def test_bias_false_gives_zero_biases():
    m = lstm(3, 4, bias=False)
    for src in (m, m.state_dict()):
        model = from_torch(src)
        for k in ("bias_ih_l0", "bias_hh_l0"):
            np.testing.assert_array_equal(model.weights[k], np.zeros(16))
        np.testing.assert_array_equal(model.weights["weight_ih_l0"], m.weight_ih_l0.detach().double().numpy())


def test_formats_and_options():
    m = lstm(3, 4)
    model = from_torch(m, formats={"weight": "s8.6", "cell": "s18.12"}, pe=2, simd=7, rounding="TRN",
                       overflow="WRAP", name="x")
    assert model.formats.weight == QFormat(8, 6) and model.formats.cell == QFormat(18, 12)
    assert model.formats.data == Formats().data and model.formats.tanh_out == Formats().tanh_out
    assert (model.pe, model.simd, model.rounding, model.overflow, model.name) == (2, 7, "TRN", "WRAP", "x")
    fm = Formats(data=QFormat(8, 6))
    assert from_torch(m, formats=fm).formats is fm
    assert from_torch(m).formats == Formats()
    with pytest.raises(ConfigError, match=r"\[formats\] has unknown entries \['weights'\]"):
        from_torch(m, formats={"weights": "s8.6"})
    with pytest.raises(ConfigError, match=r"formats\.weight: 's8,6' is not a fixed-point format"):
        from_torch(m, formats={"weight": "s8,6"})
    with pytest.raises(ConfigError, match=r"hardware\.pe = 3"):
        from_torch(m, pe=3)


@pytest.mark.parametrize("make, match", [
    pytest.param(lambda: lstm(3, 4, num_layers=2),
                 r"from_torch: num_layers = 2; this version maps one layer \(num_layers=1\)", id="num_layers-2"),
    pytest.param(lambda: lstm(3, 4, bidirectional=True),
                 r"from_torch: bidirectional=True is not supported yet; use a unidirectional LSTM", id="bidirectional"),
    pytest.param(lambda: lstm(3, 4, proj_size=2),
                 r"from_torch: proj_size = 2 is not supported yet; use proj_size=0", id="proj_size"),
    pytest.param(lambda: torch.nn.GRU(3, 4),
                 r"from_torch: cannot map a GRU module; this version supports torch\.nn\.LSTM", id="gru"),
    pytest.param(lambda: torch.nn.Linear(3, 4),
                 r"from_torch: cannot map a Linear module", id="linear"),
    pytest.param(lambda: 42, r"from_torch: expected torch\.nn\.LSTM or its state_dict, got int", id="int"),
    pytest.param(lambda: "lstm", r"from_torch: expected torch\.nn\.LSTM or its state_dict, got str", id="str"),
    # the same restrictions reached through a state_dict
    pytest.param(lambda: lstm(3, 4, num_layers=2).state_dict(),
                 r"from_torch: state_dict has entries this version cannot map: \['bias_hh_l1'", id="state_dict-num_layers-2"),
    pytest.param(lambda: lstm(3, 4, bidirectional=True).state_dict(),
                 r"from_torch: state_dict has entries this version cannot map: \['bias_hh_l0_reverse'", id="state_dict-bidirectional"),
    pytest.param(lambda: lstm(3, 4, proj_size=2).state_dict(),
                 r"from_torch: state_dict has entries this version cannot map: \['weight_hr_l0'\]", id="state_dict-proj_size"),
    pytest.param(lambda: torch.nn.Linear(3, 4).state_dict(),
                 r"from_torch: state_dict has no weight_ih_l0 / weight_hh_l0 \(keys: \['bias', 'weight'\]\)", id="state_dict-linear"),
])
def test_rejects(make, match):
    with pytest.raises(ConfigError, match=match):
        from_torch(make())


def test_gru_state_dict_is_rejected_by_shape():
    """A GRU state_dict has LSTM-like names but 3H rows; the error names the shape and the cause."""
    sd = torch.nn.GRU(3, 4).state_dict()
    with pytest.raises(ConfigError, match=r"weight_hh_l0 has shape \(12, 4\).*LSTM has 4 gates.*GRU"):
        from_torch(sd)
