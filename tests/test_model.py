"""Tests of golden/model.py: every impossible config fails when loaded, with a message naming the
field, the value and what is expected; save/load round trip; the accumulator width."""

import json

import numpy as np
import pytest

from rnnaccel.golden.fixed import QFormat
from rnnaccel.golden.model import ConfigError, Formats, Model, load, save
from rnnaccel.golden.mvu import matrix_vector

X, H = 3, 4


def toml_text(cfg: dict) -> str:
    """A minimal TOML writer for the config layout (top-level scalars, then one level of tables)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        return json.dumps(v)        # a JSON string is a valid TOML basic string
    lines = [f"{k} = {value(v)}" for k, v in cfg.items() if not isinstance(v, dict)]
    for k, t in cfg.items():
        if isinstance(t, dict):
            lines.append(f"[{k}]")
            lines += [f"{kk} = {value(vv)}" for kk, vv in t.items()]
    return "\n".join(lines) + "\n"


def base_config() -> dict:
    return {
        "name": "t",
        "model": {"cell": "lstm", "input_size": X, "hidden_size": H, "weights": "w.npz"},
        "formats": {"data": "s16.12", "weight": "s16.12"},
        "numerics": {"rounding": "RND", "overflow": "SAT"},
        "hardware": {"pe": 2, "simd": 2},
    }


def base_weights() -> dict:
    rng = np.random.default_rng(0)
    return {"weight_ih_l0": rng.uniform(-1, 1, (4 * H, X)), "weight_hh_l0": rng.uniform(-1, 1, (4 * H, H)),
            "bias_ih_l0": rng.uniform(-1, 1, 4 * H), "bias_hh_l0": rng.uniform(-1, 1, 4 * H)}


def write(tmp_path, cfg=None, weights=None):
    cfg = base_config() if cfg is None else cfg
    weights = base_weights() if weights is None else weights
    np.savez(tmp_path / "w.npz", **weights)
    path = tmp_path / "model.toml"
    path.write_text(toml_text(cfg))
    return path


def test_base_config_loads(tmp_path):
    m = load(write(tmp_path))
    assert (m.cell, m.input_size, m.hidden_size, m.pe, m.simd) == ("lstm", X, H, 2, 2)
    assert m.formats == Formats()
    assert m.name == "t"


# -- bad configs ---------------------------------------------------------------------------------
def cfg_set(section, key, value):
    def f(cfg, w):
        (cfg if section is None else cfg[section])[key] = value
    return f


def cfg_del(section, key):
    def f(cfg, w):
        del (cfg if section is None else cfg[section])[key]
    return f


def w_set(key, value):
    def f(cfg, w):
        w[key] = value(w[key]) if callable(value) else value
    return f


def w_del(key):
    def f(cfg, w):
        del w[key]
    return f


def poke(value, index):
    def f(a):
        a = a.copy()
        a[index] = value
        return a
    return f


BAD = [
    # sizes
    ("input_size-zero", cfg_set("model", "input_size", 0), r"model\.input_size must be a positive integer, got 0"),
    ("input_size-negative", cfg_set("model", "input_size", -3), r"model\.input_size must be a positive integer, got -3"),
    ("input_size-float", cfg_set("model", "input_size", 2.5), r"model\.input_size must be a positive integer, got 2\.5"),
    ("input_size-string", cfg_set("model", "input_size", "3"), r"model\.input_size must be a positive integer, got '3'"),
    ("hidden_size-zero", cfg_set("model", "hidden_size", 0), r"model\.hidden_size must be a positive integer, got 0"),
    ("hidden_size-negative", cfg_set("model", "hidden_size", -4), r"model\.hidden_size must be a positive integer, got -4"),
    ("hidden_size-bool", cfg_set("model", "hidden_size", True), r"model\.hidden_size must be a positive integer, got True"),
    ("hidden_size-missing", cfg_del("model", "hidden_size"), r"model\.hidden_size is missing"),
    # formats
    ("format-frac-gt-width", cfg_set("formats", "weight", "s8.9"),
     r"formats\.weight: s8\.9 has frac=9 outside 0\.\.width=8; use 0 <= frac <= width"),
    ("format-negative-frac", cfg_set("formats", "cell", "s16.-2"), r"formats\.cell: s16\.-2 has frac=-2 outside"),
    ("format-malformed-comma", cfg_set("formats", "data", "s16,12"),
     r"formats\.data: 's16,12' is not a fixed-point format; write it as s<width>\.<frac>"),
    ("format-malformed-letter", cfg_set("formats", "data", "q16.4"), r"formats\.data: 'q16\.4' is not a fixed-point format"),
    ("format-zero-width", cfg_set("formats", "data", "s0.0"), r"formats\.data: 's0\.0': QFormat width must be at least 1, not 0"),
    ("format-not-string", cfg_set("formats", "data", 16), r"formats\.data: expected a format string like 's16\.12', got 16"),
    ("format-unsigned-data", cfg_set("formats", "data", "u16.12"), r"formats\.data = u16\.12 must be signed"),
    ("format-table-too-deep", cfg_set("formats", "sigmoid_in", "s18.8"),
     r"formats\.sigmoid_in = s18\.8: .*use a width from 2 to 16"),
    ("format-sigmoid-out-no-half", cfg_set("formats", "sigmoid_out", "s16.16"),
     r"formats\.sigmoid_out = s16\.16 cannot hold 0\.5"),
    ("format-tanh-out-int-bits", cfg_set("formats", "tanh_out", "s16.8"), r"formats\.tanh_out = s16\.8 wastes integer bits"),
    ("format-too-wide", cfg_set("formats", "cell", "s40.20"), r"formats\.cell = s40\.20 is wider than 32 bits"),
    ("format-accumulator-too-wide", lambda c, w: c["formats"].update(data="s32.16", weight="s32.16"),
     r"the accumulator needs \d+ bits for data s32\.16 x weight s32\.16 .* more than the 62"),
    # numerics
    ("rounding-unknown", cfg_set("numerics", "rounding", "ROUND"),
     r"numerics\.rounding: unknown rounding mode 'ROUND'; expected one of TRN, RND, RND_CONV"),
    ("rounding-lowercase", cfg_set("numerics", "rounding", "rnd"), r"numerics\.rounding: unknown rounding mode 'rnd'"),
    ("overflow-unknown", cfg_set("numerics", "overflow", "CLAMP"),
     r"numerics\.overflow: unknown overflow mode 'CLAMP'; expected one of SAT, WRAP"),
    # hardware
    ("pe-not-divisor", cfg_set("hardware", "pe", 3),
     r"hardware\.pe = 3 does not fit .* must divide hidden_size = 4; choose one of \[1, 2, 4\]"),
    ("pe-above-hidden", cfg_set("hardware", "pe", 8), r"hardware\.pe = 8 .* must divide hidden_size = 4"),
    ("pe-zero", cfg_set("hardware", "pe", 0), r"hardware\.pe must be a positive integer, got 0"),
    ("simd-above-vector", cfg_set("hardware", "simd", 8),
     r"hardware\.simd = 8 exceeds the vector length input_size \+ hidden_size = 7; choose simd <= 7"),
    ("simd-negative", cfg_set("hardware", "simd", -1), r"hardware\.simd must be a positive integer, got -1"),
    # cell
    ("cell-unknown", cfg_set("model", "cell", "lstm2"), r"model\.cell: unknown cell 'lstm2'; supported: lstm, lstm_nf, gru"),
    # weights
    ("weights-file-missing", cfg_set("model", "weights", "nope.npz"), r"model\.weights: file '.*nope\.npz' does not exist"),
    ("weights-entry-missing", cfg_del("model", "weights"), r"model\.weights is missing: name the \.npz file"),
    ("weight-array-missing", w_del("bias_hh_l0"),
     r"weights: missing \['bias_hh_l0'\]; this lstm model \(1 layer\(s\), 1 direction\(s\), head_size 0\) needs "
     r"\['bias_hh_l0', 'bias_ih_l0', 'weight_hh_l0', 'weight_ih_l0'\]"),
    ("weight-array-extra", w_set("weight_ih_l1", np.zeros((16, 3))), r"weights: unexpected entries \['weight_ih_l1'\]"),
    ("weight-misshaped", w_set("weight_hh_l0", np.zeros((16, 3))),
     r"weights\.weight_hh_l0: shape \(16, 3\), expected \(16, 4\) for input_size=3, hidden_size=4"),
    ("weight-transposed", w_set("weight_ih_l0", np.zeros((3, 16))), r"weights\.weight_ih_l0: shape \(3, 16\), expected \(16, 3\)"),
    ("bias-misshaped", w_set("bias_ih_l0", np.zeros(15)), r"weights\.bias_ih_l0: shape \(15,\), expected \(16,\)"),
    ("weight-nan", w_set("weight_ih_l0", poke(np.nan, (2, 1))),
     r"weights\.weight_ih_l0: 1 non-finite value\(s\), first nan at index \(2, 1\); weights must be finite"),
    ("weight-inf", w_set("weight_hh_l0", poke(np.inf, (5, 0))),
     r"weights\.weight_hh_l0: 1 non-finite value\(s\), first inf at index \(5, 0\)"),
    ("bias-minus-inf", w_set("bias_hh_l0", poke(-np.inf, 7)), r"weights\.bias_hh_l0: 1 non-finite value\(s\), first -inf at index \(7,\)"),
    ("weight-complex", w_set("bias_ih_l0", lambda a: a.astype(complex)),
     r"weights\.bias_ih_l0: expected real numbers, got dtype complex128"),
    # unknown keys and bad layout
    ("unknown-key-model", cfg_set("model", "hiden_size", 4),
     r"\[model\]: unknown entries \['hiden_size'\]; allowed: \['bidirectional', 'cand_activation', 'cell', "
     r"'final_state', 'gate_activation', 'head_size', 'hidden_size', 'initial_state', 'input_size', 'num_layers', "
     r"'outputs', 'proj_size', 'weights'\]"),
    ("unknown-key-numerics", cfg_set("numerics", "roundng", "RND"), r"\[numerics\]: unknown entries \['roundng'\]; allowed: \['overflow', 'rounding'\]"),
    ("unknown-key-hardware", cfg_set("hardware", "pes", 2), r"\[hardware\]: unknown entries \['pes'\]; allowed: \['max_len', 'pe', 'schedule', 'simd'\]"),
    ("unknown-key-formats", cfg_set("formats", "weights", "s8.6"), r"\[formats\] has unknown entries \['weights'\]; known formats are \["),
    ("unknown-key-top", cfg_set(None, "modle", {"cell": "lstm"}), r"config: unknown entries \['modle'\]"),
    ("section-not-table", cfg_set(None, "hardware", 4), r"\[hardware\] must be a table, got 4"),
]


@pytest.mark.parametrize("mutate, match", [pytest.param(m, r, id=i) for i, m, r in BAD])
def test_bad_config_fails_on_load(tmp_path, mutate, match):
    cfg, w = base_config(), base_weights()
    mutate(cfg, w)
    path = write(tmp_path, cfg, w)
    with pytest.raises(ConfigError, match=match):
        load(path)


def test_config_error_is_value_error():
    assert issubclass(ConfigError, ValueError)


def test_non_toml_file(tmp_path):
    path = tmp_path / "model.toml"
    path.write_text("[model\ncell = lstm\n")
    with pytest.raises(ConfigError, match=r"model\.toml: not valid TOML"):
        load(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match=r"config file '.*absent\.toml' does not exist"):
        load(tmp_path / "absent.toml")


def test_corrupt_weights_file(tmp_path):
    path = write(tmp_path)
    (tmp_path / "w.npz").write_bytes(b"not a zip file")
    with pytest.raises(ConfigError, match=r"model\.weights: cannot read '.*w\.npz' as \.npz"):
        load(path)


def test_model_constructor_validates(golden_lstm_weights):
    """The same checks guard direct construction and the copies made by with_*()."""
    m = Model("lstm", X, H, golden_lstm_weights(X, H), pe=2)
    with pytest.raises(ConfigError, match=r"hardware\.pe = 3"):
        m.with_hardware(pe=3)
    with pytest.raises(ConfigError, match=r"hardware\.simd = 99"):
        m.with_hardware(simd=99)
    assert m.with_hardware(pe=4, simd=7).pe == 4
    assert m.with_formats(weight="s8.6").formats.weight == QFormat(8, 6)
    with pytest.raises(ValueError, match=r"formats\.weight: 's8,6'"):
        m.with_formats(weight="s8,6")


# -- save / load -----------------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path, golden_lstm_weights):
    w = golden_lstm_weights(5, 6, scale=3.0, seed=7)
    # awkward values must survive bit for bit
    w["weight_ih_l0"][0, :4] = [1 / 3, -0.0, 5e-324, -1.7976931348623157e308]
    fm = Formats(data=QFormat(12, 8), weight=QFormat(8, 6), cell=QFormat(18, 12),
                 sigmoid_in=QFormat(10, 6), sigmoid_out=QFormat(12, 11, signed=True),
                 tanh_in=QFormat(10, 7), tanh_out=QFormat(10, 9))
    m = Model("lstm", 5, 6, w, formats=fm, rounding="RND_CONV", overflow="WRAP", pe=3, simd=4,
              name='odd "name" \\ here')
    path = save(m, tmp_path / "sub" / "m.toml")
    assert path == tmp_path / "sub" / "m.toml" and (tmp_path / "sub" / "m.npz").exists()
    m2 = load(path)
    assert set(m2.weights) == set(w)
    for k in w:
        assert m2.weights[k].dtype == np.float64
        assert m2.weights[k].shape == w[k].shape
        assert m2.weights[k].tobytes() == np.asarray(w[k], dtype=np.float64).tobytes(), k
    assert m2.formats == fm
    assert (m2.cell, m2.input_size, m2.hidden_size) == ("lstm", 5, 6)
    assert (m2.rounding, m2.overflow, m2.pe, m2.simd, m2.name) == ("RND_CONV", "WRAP", 3, 4, m.name)
    assert m2.summary() == m.summary()


def test_save_load_defaults(tmp_path, golden_lstm_weights):
    m = Model("lstm", 2, 2, golden_lstm_weights(2, 2))
    m2 = load(save(m, tmp_path / "d.toml"))
    assert m2.formats == Formats() and (m2.rounding, m2.overflow, m2.pe, m2.simd) == ("RND", "SAT", 1, 1)


# -- accumulator width ----------------------------------------------------------------------------
def signed_range(width):
    return -2 ** (width - 1), 2 ** (width - 1) - 1


@pytest.mark.parametrize("x, h, data, weight", [
    pytest.param(3, 4, "s16.12", "s16.12", id="N7-s16.12"),
    pytest.param(14, 16, "s16.12", "s16.12", id="N30-s16.12"),   # N + 2 a power of two
    pytest.param(1, 1, "s8.6", "s8.6", id="N2-s8.6"),           # N + 2 a power of two
    pytest.param(32, 32, "s16.12", "s8.6", id="N64-s16.12xs8.6"),
    pytest.param(5, 1, "s6.4", "s12.10", id="N6-s6.4xs12.10"),   # N + 2 a power of two
    pytest.param(100, 28, "s12.8", "s16.14", id="N128-s12.8xs16.14"),
])
def test_accumulator_width_is_sufficient_and_tight(x, h, data, weight, golden_lstm_weights):
    m = Model("lstm", x, h, golden_lstm_weights(x, h), formats=Formats(data=QFormat.parse(data),
                                                                         weight=QFormat.parse(weight)))
    d, w = QFormat.parse(data), QFormat.parse(weight)
    n = x + h
    assert m.bias.frac == d.frac + w.frac and m.accumulator.frac == d.frac + w.frac
    dlo, dhi = signed_range(d.width)
    wlo, whi = signed_range(w.width)
    blo, bhi = signed_range(m.bias.width)
    prods = [a * b for a in (dlo, dhi) for b in (wlo, whi)]
    worst_hi = n * max(prods) + bhi
    worst_lo = n * min(prods) + blo
    need = 2
    while not (-2 ** (need - 1) <= worst_lo and worst_hi <= 2 ** (need - 1) - 1):
        need += 1
    assert m.accumulator.width == need, (str(m.accumulator), need)
    # and the golden matrix-vector unit's extreme sums fit the format, but not one bit fewer
    for wc, vc, bc in [(wlo, dlo, bhi), (wlo, dhi, blo), (whi, dlo, blo)]:
        acc = matrix_vector(np.full((1, n), wc), np.full(n, vc), [bc])
        assert m.accumulator.contains(acc).all()
    top = matrix_vector(np.full((1, n), wlo), np.full(n, dlo), [bhi])
    assert top[0] == worst_hi
    assert not QFormat(m.accumulator.width - 1, m.accumulator.frac).contains(top).all()


def test_formats_accepts_strings():
    assert Formats(data="s8.6", sigmoid_out="u12.12") == Formats(data=QFormat(8, 6),
                                                               sigmoid_out=QFormat(12, 12, signed=False))
    with pytest.raises(ConfigError, match=r"formats\.data: 's8,6' is not a fixed-point format"):
        Formats(data="s8,6")
