"""Tests of the built-in example models and their task data (``rnnaccel.golden.examples``; no torch)."""

import numpy as np
import pytest

from rnnaccel.golden import Formats, Model, examples, lstm_float, run

NAMES = examples.names()

#: Tensors that must never saturate on the examples' own data (table inputs may: that is their range).
CRITICAL = ("input", "weight", "bias", "cell", "hidden")

#: The numerics spec: fixed-point h within this of the float reference over 50-step sequences.
BOUND = 2.0 ** -7


def test_names():
    assert NAMES, "no example ships"
    assert NAMES == sorted(NAMES)
    assert "count_mod4" in NAMES
    assert set(examples.DESCRIPTION) == set(NAMES)
    assert all(isinstance(d, str) and d for d in examples.DESCRIPTION.values())


@pytest.mark.parametrize("name", NAMES)
def test_files_ship_with_the_package(name):
    toml = examples.path(name)
    assert toml.name == f"{name}.toml"
    assert toml.parent == examples.path(NAMES[0]).parent
    assert toml.is_file()
    assert toml.with_suffix(".npz").is_file()


@pytest.mark.parametrize("name", NAMES)
def test_load(name):
    model = examples.load(name)
    assert isinstance(model, Model)
    assert model.name == name
    assert model.cell == "lstm"
    X, H = model.input_size, model.hidden_size
    shapes = {"weight_ih_l0": (4 * H, X), "weight_hh_l0": (4 * H, H),
              "bias_ih_l0": (4 * H,), "bias_hh_l0": (4 * H,)}
    assert {k: v.shape for k, v in model.weights.items()} == shapes
    x = examples.inputs(name, 1, seed=0)[0]
    assert x.shape[1] == X


def test_main_example_config():
    model = examples.load("count_mod4")
    assert (model.input_size, model.hidden_size) == (32, 32)
    assert (model.pe, model.simd) == (4, 8)
    assert model.formats == Formats()
    assert model.formats.data.width == model.formats.weight.width == model.formats.cell.width == 16
    assert (model.rounding, model.overflow) == ("RND", "SAT")


@pytest.mark.parametrize("name", NAMES)
def test_weights_are_realistic(name):
    """Trained weights: mostly below 1 in magnitude, all well inside the weight format."""
    model = examples.load(name)
    w = np.concatenate([model.weights[k].ravel() for k in ("weight_ih_l0", "weight_hh_l0")])
    assert np.all(np.isfinite(w))
    assert np.mean(np.abs(w) < 1) > 0.8
    assert np.abs(w).max() < model.formats.weight.max_value / 2
    assert np.abs(w).std() > 0.05            # not an untrained or zeroed layer


@pytest.mark.parametrize("call", [
    lambda: examples.path("no_such_model"),
    lambda: examples.load("no_such_model"),
    lambda: examples.inputs("no_such_model", 2),
    lambda: examples.dataset("no_such_model", 2),
    lambda: examples.batch("no_such_model", 2, 5),
], ids=["path", "load", "inputs", "dataset", "batch"])
def test_unknown_name(call):
    with pytest.raises(ValueError, match=r"unknown example 'no_such_model'.*count_mod4"):
        call()


@pytest.mark.parametrize("name", NAMES)
def test_inputs_deterministic(name):
    a = examples.inputs(name, 5, seed=3)
    b = examples.inputs(name, 5, seed=3)
    c = examples.inputs(name, 5, seed=4)
    assert len(a) == len(b) == 5
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("min_len, max_len", [(10, 50), (1, 3), (7, 7)])
def test_inputs_lengths(name, min_len, max_len):
    X = examples.load(name).input_size
    xs = examples.inputs(name, 40, min_len=min_len, max_len=max_len, seed=1)
    assert len(xs) == 40
    lengths = [len(x) for x in xs]
    assert min(lengths) >= min_len and max(lengths) <= max_len
    if max_len - min_len >= 2:
        assert len(set(lengths)) > 1          # lengths are drawn, not fixed
    for x in xs:
        assert isinstance(x, np.ndarray) and x.dtype == np.float64 and x.shape[1:] == (X,)
        assert np.all(np.isfinite(x))


def test_inputs_defaults_and_empty():
    xs = examples.inputs("count_mod4", 30)
    assert all(10 <= len(x) <= 50 for x in xs)
    assert examples.inputs("count_mod4", 0) == []


@pytest.mark.parametrize("kwargs", [dict(min_len=5, max_len=4), dict(min_len=0, max_len=4)])
def test_inputs_bad_lengths(kwargs):
    with pytest.raises(ValueError, match="min_len"):
        examples.inputs("count_mod4", 2, **kwargs)


def test_inputs_bad_count():
    with pytest.raises(ValueError, match="n_sequences"):
        examples.inputs("count_mod4", -1)
    with pytest.raises(TypeError, match="n_sequences"):
        examples.inputs("count_mod4", 2.5)


@pytest.mark.parametrize("name", NAMES)
def test_dataset_matches_inputs(name):
    xs, ys = examples.dataset(name, 6, seed=9)
    assert all(np.array_equal(a, b) for a, b in zip(xs, examples.inputs(name, 6, seed=9)))
    assert [len(y) for y in ys] == [len(x) for x in xs]
    k = examples.n_classes(name)
    assert all(y.dtype == np.int64 and y.min() >= 0 and y.max() < k for y in ys)


def test_count_mod4_labels():
    """One-hot symbols; the label counts the marks (symbols 0-15) so far, modulo 4."""
    xs, ys = examples.dataset("count_mod4", 20, seed=2)
    for x, y in zip(xs, ys):
        assert set(np.unique(x)) <= {0.0, 1.0}
        assert np.all(x.sum(axis=1) == 1)
        symbols = x.argmax(axis=1)
        assert np.array_equal(y, np.cumsum(symbols < 16) % 4)
    x, y = examples.batch("count_mod4", 3, 12, rng=np.random.default_rng(0))
    assert x.shape == (3, 12, 32) and y.shape == (3, 12)


@pytest.mark.parametrize("name", NAMES)
def test_fixed_point_tracks_float(name):
    """The bit-exact golden model's h stays within 2**-7 of the float reference, nothing important saturates."""
    model = examples.load(name)
    xs = (examples.inputs(name, 12, seed=0)
          + examples.inputs(name, 12, min_len=50, max_len=50, seed=1))
    worst = 0.0
    for x in xs:
        r = run(model, x)
        h_float, _ = lstm_float(model, x)
        assert r.h.shape == h_float.shape == (len(x), model.hidden_size)
        worst = max(worst, float(np.abs(r.h - h_float).max()))
        assert not any(r.saturation[k] for k in CRITICAL), r.saturation.report()
    assert worst <= BOUND, f"max |h_fixed - h_float| = {worst:.3e} > 2**-7"
    assert worst > 0                           # fixed point is not float: the comparison is live
