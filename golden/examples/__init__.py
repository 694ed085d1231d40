"""Built-in example models with trained weights, and the input data of their tasks.

Each example is a TOML model description plus its ``.npz`` of weights in this folder (written
with :func:`rnnaccel.golden.model.save` by ``scripts/train_example.py``), and a deterministic
NumPy generator of the task's input sequences, so that the generator, the golden model and the
simulators can be exercised on realistic trained weights and data without torch.

``count_mod4``
    A stream of symbols from a 32-symbol alphabet, one-hot encoded (``X = 32``; the inputs are
    exactly 0 and 1, so they are exact in any data format). Symbols 0-15 are *marks*, 16-31 are
    distractors, all equally likely. At every step the task is to output how many marks have
    been seen so far, modulo 4: a four-state counter that the LSTM (``H = 32``) must keep in its
    recurrent state over the whole sequence. It was trained as ``nn.LSTM(32, 32)`` plus a linear
    head ``Linear(32, 4)`` on every ``h_t`` (``scripts/train_example.py``, seed 3, 1000 AdamW
    steps, ~10 s); only the LSTM layer ships, with the default 16-bit formats and pe=4, simd=8.
    Held out: 100 % of the steps right, with the float layer and with the bit-exact fixed-point
    golden model alike. Nothing but the table inputs saturates (largest ``|c|`` 11.2 of the cell
    format's 16). Weights: rms 0.54, 92 % below 1 in magnitude, largest 2.35.

    Fixed point vs float: the per-sequence maximum of ``|h_fixed - h_float|`` over 50-step
    sequences has a median of 2.3e-3 and a 99.9th percentile of 5.5e-3, within 2**-7 = 7.8e-3;
    it has a heavy tail (the recurrence amplifies the ~1e-3 per-step table error during long runs
    of distractors): 1 sequence in 18000 checked went over, to 8.2e-3.

``gru_count_mod4``
    The same task and data as ``count_mod4`` (the same seed gives the same sequences), on a GRU
    that ships with its head, so that the hardware streams out the 4 class scores at every step
    (``head_size = 4``; the predicted count is their argmax). Trained as ``nn.GRU(32, 32)`` plus
    ``Linear(32, 4)`` (``scripts/train_example.py``: seed 1, 600 AdamW steps of 64 sequences of 50
    steps, label smoothing 0.1, one thread, ~12 s); default 16-bit formats, pe=4, simd=8: 208 cycles
    per step (the head, a second pipeline stage, takes 12). Held out (1000 sequences of 10-50 steps):
    100 % of the steps right in float; on the first 200 of them the bit-exact golden model's argmax
    is right at 100 % of the steps too, equal to the float model's everywhere. Nothing but the
    table inputs saturates; the scores stay within +-3.6 of the ``data`` format's +-8 (label
    smoothing bounds the trained logits). Weights: rms 0.51, 92 % below 1 in magnitude, largest
    1.94 (head 1.73).

    Fixed point vs float, per-sequence maximum over 50-step sequences: ``|h_fixed - h_float|``
    median 1.6e-3, largest 3.9e-3 over 5000 sequences (half the 2**-7 bound); the head's scores
    ``|y_fixed - y_float|`` median 3.6e-3, 99.9th percentile 6.9e-3, largest 8.6e-3.

``bigru_around_mod4``
    A task that needs the future: symbols from an 8-symbol alphabet, one-hot (``X = 8``), symbols
    0-3 are marks. At every step ``t`` the output is one of 16 classes, ``4 * b + a`` with ``b`` the
    marks *before* ``t`` and ``a`` the marks *after* ``t`` (the current symbol excluded), each modulo
    4: a forward counter and a backward counter, so a causal model can get ``a`` right only by
    chance (1 in 4). Labels are computed on each whole sequence as cut to its length. A stacked
    bidirectional GRU with its head ships: ``nn.GRU(8, 16, num_layers=2, bidirectional=True)`` plus
    ``Linear(32, 16)`` (``head_size = 16``), pe=2, simd=8 (104 multipliers for the four layer
    engines and the head), ``max_len = 64`` (the sequence buffers; the inputs' default 10-50 steps
    fit). Trained with seed 0, 800 AdamW steps of 64 sequences, each batch of one length drawn from
    8-64 (no padding, so the backward direction always starts at a real end), weight decay 0.1,
    label smoothing 0.1, one thread, ~40 s. Stages of 88, 160 and 40 cycles per step; a 64-step
    sequence takes 22847 cycles, a 50-step one 17807. Held out (1000 sequences of 10-64 steps):
    100 % of the steps right in float; on the first 200 of them the golden model's argmax is right
    at 100 % of the steps too, equal to the float model's everywhere. Nothing but the table inputs
    saturates; the scores stay within +-6.2 of the ``data`` format's +-8. Weights: rms 0.32, 98.7 %
    below 1 in magnitude, largest 2.03 (head 1.28).

    Fixed point vs float, per-sequence maximum over 64-step sequences (4000 checked): of both
    layers' outputs ``|h_fixed - h_float|`` median 2.4e-3, 99.9th percentile 5.6e-3, one sequence
    over 2**-7 (7.98e-3); of the head's scores median 3.5e-3, 99.9th percentile 6.5e-3, largest
    1.8e-2 (the head sums 32 products, so its error can be a few times that of ``h``). The weight
    decay of 0.1 is what keeps the tail this short: with 0.01 the update gates of the second layer
    hold their state with pre-activations beyond the sigmoid table's +-8 on 2-4 % of the steps,
    where the table's ``sigmoid(8) = 1 - 3.4e-4`` leaks the held state a little every step, and 2 to
    75 % of the sequences went over 2**-7, to 2e-2 (the accuracy was still 100 %).

Examples
--------
>>> from rnnaccel.golden import examples, run
>>> model = examples.load("count_mod4")
>>> xs = examples.inputs("count_mod4", 4, seed=1)
>>> h = run(model, xs[0]).h            # bit-exact hardware output, shape (T, 32)
>>> xs, labels = examples.dataset("bigru_around_mod4", 4, seed=1)
>>> scores = run(examples.load("bigru_around_mod4"), xs[0]).h     # (T, 16) class scores
>>> accuracy = (scores.argmax(-1) == labels[0]).mean()
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..model import Model
from ..model import load as _load_model

__all__ = ["DESCRIPTION", "DEFAULT", "names", "path", "load", "inputs", "dataset", "batch", "n_classes"]

_HERE = Path(__file__).resolve().parent


# -- task generators ----------------------------------------------------------------------------
#: Alphabet size of ``count_mod4`` (= input size): symbols ``0 .. COUNT_MARKS - 1`` are counted.
COUNT_SYMBOLS = 32
COUNT_MARKS = 16
COUNT_MODULUS = 4

#: Alphabet size of ``bigru_around_mod4`` (= input size): symbols ``0 .. AROUND_MARKS - 1`` are marks.
AROUND_SYMBOLS = 8
AROUND_MARKS = 4
AROUND_MODULUS = 4


def _one_hot(symbols: np.ndarray, size: int) -> np.ndarray:
    """(n, T) integer symbols -> (n, T, size) float64 one-hot vectors."""
    x = np.zeros(symbols.shape + (size,))
    np.put_along_axis(x, symbols[..., None], 1.0, axis=-1)
    return x


def _count_symbols(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    return rng.integers(0, COUNT_SYMBOLS, (n, length))


def _count_labels(symbols: np.ndarray) -> np.ndarray:
    """``count_mod4``: marks so far (the current symbol included), modulo 4."""
    return np.cumsum(symbols < COUNT_MARKS, axis=1) % COUNT_MODULUS


def _around_symbols(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    return rng.integers(0, AROUND_SYMBOLS, (n, length))


def _around_labels(symbols: np.ndarray) -> np.ndarray:
    """``bigru_around_mod4``: ``4 * (marks before t mod 4) + (marks after t mod 4)``."""
    marks = (symbols < AROUND_MARKS).astype(np.int64)
    before = np.cumsum(marks, axis=1) - marks
    after = np.cumsum(marks[:, ::-1], axis=1)[:, ::-1] - marks
    return AROUND_MODULUS * (before % AROUND_MODULUS) + after % AROUND_MODULUS


@dataclass(frozen=True)
class _Task:
    """A sequence task: random symbols, their encoding as input vectors, and the per-step labels.

    ``labels`` is computed on whole sequences (it may look ahead: a non-causal task's labels
    change when a sequence is cut shorter), so :func:`dataset` draws the symbols, cuts them to
    each sequence's length, and only then encodes and labels them.
    """

    symbols: Callable[[np.random.Generator, int, int], np.ndarray]
    input_size: int
    labels: Callable[[np.ndarray], np.ndarray]
    n_classes: int
    causal: bool

    def encode(self, symbols: np.ndarray) -> np.ndarray:
        return _one_hot(symbols, self.input_size)

    def generate(self, rng: np.random.Generator, n: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.symbols(rng, n, length)
        return self.encode(s), self.labels(s).astype(np.int64)


_COUNT = _Task(_count_symbols, COUNT_SYMBOLS, _count_labels, COUNT_MODULUS, causal=True)
_AROUND = _Task(_around_symbols, AROUND_SYMBOLS, _around_labels, AROUND_MODULUS ** 2, causal=False)

_TASKS = {
    "count_mod4": _COUNT,
    "gru_count_mod4": _COUNT,
    "bigru_around_mod4": _AROUND,
}

#: One-line description of each shipped example: the task and the trained metric.
DESCRIPTION = {
    "count_mod4": (
        "LSTM(32, 32) counting modulo 4 the marks (16 of 32 symbols) in a one-hot symbol stream; "
        "trained: 100.0 % of steps right on 1000 held-out 10-50-step sequences, float and "
        "fixed-point alike; |h_fixed - h_float| <= 2**-7 on 99.99 % of 50-step sequences"),
    "gru_count_mod4": (
        "GRU(32, 32) + dense head (4 class scores) on the count_mod4 task; trained: 100.0 % of steps "
        "right on 1000 held-out 10-50-step sequences in float, and with the fixed-point argmax on 200 "
        "of them; |h_fixed - h_float| <= 3.9e-3, scores within 8.6e-3, over 5000 50-step sequences"),
    "bigru_around_mod4": (
        "2-layer bidirectional GRU(8, 16) + dense head (16 class scores): at every step the marks "
        "(4 of 8 symbols) before it and after it, each modulo 4; trained: 100.0 % of steps right on "
        "1000 held-out 10-64-step sequences in float, and with the fixed-point argmax on 200 of them; "
        "|h_fixed - h_float| <= 2**-7 on 3999 of 4000 64-step sequences (worst 8.0e-3)"),
}


# -- API -------------------------------------------------------------------------------------------
#: The main example, listed first by :func:`names`: the default of the command line's ``demo``
#: and ``figures`` (a one-layer model, which every flow and figure supports).
DEFAULT = "count_mod4"


def names() -> list[str]:
    """Names of the shipped examples: :data:`DEFAULT` first, then the others sorted.

    Returns
    -------
    list of str
        Example names, each usable with :func:`path`, :func:`load`, :func:`inputs`,
        :func:`dataset`, :func:`batch` and :func:`n_classes`.
    """
    return [DEFAULT] + sorted(set(_TASKS) - {DEFAULT})


def _check_name(name) -> str:
    if not isinstance(name, str) or name not in _TASKS:
        raise ValueError(f"unknown example {name!r}; known examples: {', '.join(names())}")
    return name


def path(name: str) -> Path:
    """Path of an example's TOML model description (its ``.npz`` of weights is beside it).

    Parameters
    ----------
    name : str
        One of :func:`names`.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        If ``name`` is not a shipped example; the message names it and lists the known ones.
    """
    return _HERE / f"{_check_name(name)}.toml"


def load(name: str) -> Model:
    """Load an example's model description with its trained weights.

    Parameters
    ----------
    name : str
        One of :func:`names`.

    Returns
    -------
    Model
        As read by :func:`rnnaccel.golden.model.load` (formats, parallelism and weights from the
        shipped TOML and ``.npz``).

    Raises
    ------
    ValueError
        If ``name`` is not a shipped example.
    """
    return _load_model(path(name))


def n_classes(name: str) -> int:
    """Number of classes of an example's task (outputs of the head it was trained with).

    An example that ships its head (``load(name).head_size``) has this many outputs, the class
    scores; the predicted class of a step is their argmax.
    """
    return _TASKS[_check_name(name)].n_classes


def _check_lengths(n_sequences, min_len, max_len):
    for label, v in (("n_sequences", n_sequences), ("min_len", min_len), ("max_len", max_len)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{label} must be an integer, got {v!r}")
    if n_sequences < 0:
        raise ValueError(f"n_sequences must be >= 0, got {n_sequences}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")


def batch(name: str, n: int, length: int, *, rng: np.random.Generator | int = 0
          ) -> tuple[np.ndarray, np.ndarray]:
    """A batch of equal-length sequences of an example's task (what the training script uses).

    Parameters
    ----------
    name : str
        One of :func:`names`.
    n, length : int
        Number of sequences and time steps.
    rng : numpy.random.Generator or int
        Random generator, or a seed for ``numpy.random.default_rng``.

    Returns
    -------
    x : numpy.ndarray of float64, shape (n, length, X)
    labels : numpy.ndarray of int64, shape (n, length)
        Target class at every step (the argmax the trained head should give), computed on these
        whole sequences (non-causal tasks look at the steps after ``t`` too).
    """
    task = _TASKS[_check_name(name)]
    _check_lengths(n, length, length)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return task.generate(rng, int(n), int(length))


def dataset(name: str, n_sequences: int, *, min_len: int = 10, max_len: int = 50, seed: int = 0
            ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Sequences of random lengths with their per-step labels; :func:`inputs` is its first half.

    Parameters
    ----------
    name : str
        One of :func:`names`.
    n_sequences : int
    min_len, max_len : int
        Each length is drawn uniformly from ``[min_len, max_len]`` (both included).
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed gives the same data.

    Returns
    -------
    xs : list of numpy.ndarray of float64, shapes (T_i, X)
    labels : list of numpy.ndarray of int64, shapes (T_i,)
        Target class at every step, computed on each sequence as cut to its length.
    """
    task = _TASKS[_check_name(name)]
    _check_lengths(n_sequences, min_len, max_len)
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len + 1, n_sequences)
    # Draw the symbols at max_len and cut: sequence i does not depend on the other lengths. The
    # labels are computed on the cut sequence (a non-causal task's labels look at its end).
    symbols = task.symbols(rng, int(n_sequences), int(max_len))
    cut = [symbols[i:i + 1, :t] for i, t in enumerate(lengths)]
    return ([np.ascontiguousarray(task.encode(s)[0]) for s in cut],
            [np.ascontiguousarray(task.labels(s)[0].astype(np.int64)) for s in cut])


def inputs(name: str, n_sequences: int, *, min_len: int = 10, max_len: int = 50, seed: int = 0
           ) -> list[np.ndarray]:
    """Input sequences of an example's task, for the golden model, simulation and demos.

    Parameters
    ----------
    name : str
        One of :func:`names`.
    n_sequences : int
        How many sequences.
    min_len, max_len : int, optional
        Each length ``T_i`` is drawn uniformly from ``[min_len, max_len]`` (both included). A
        bidirectional model's hardware takes sequences of up to its ``max_len`` steps (64 for
        ``bigru_around_mod4``).
    seed : int, optional
        Seed of ``numpy.random.default_rng``; the same arguments give the same sequences.

    Returns
    -------
    list of numpy.ndarray of float64
        ``n_sequences`` arrays of shape ``(T_i, X)``, real values (quantise them with
        :func:`rnnaccel.golden.lstm.quantize_input`, or pass them to :func:`rnnaccel.golden.run`).

    Raises
    ------
    ValueError
        For an unknown ``name`` or impossible lengths.
    """
    return dataset(name, n_sequences, min_len=min_len, max_len=max_len, seed=seed)[0]
