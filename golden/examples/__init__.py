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

Examples
--------
>>> from rnnaccel.golden import examples, run
>>> model = examples.load("count_mod4")
>>> xs = examples.inputs("count_mod4", 4, seed=1)
>>> h = run(model, xs[0]).h            # bit-exact hardware output, shape (T, 32)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..model import Model
from ..model import load as _load_model

__all__ = ["DESCRIPTION", "names", "path", "load", "inputs", "dataset", "batch", "n_classes"]

_HERE = Path(__file__).resolve().parent


# -- task generators ----------------------------------------------------------------------------
#: Alphabet size of ``count_mod4`` (= input size): symbols ``0 .. COUNT_MARKS - 1`` are counted.
COUNT_SYMBOLS = 32
COUNT_MARKS = 16
COUNT_MODULUS = 4


def _count_batch(rng: np.random.Generator, n: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """``count_mod4``: one-hot symbols x (n, length, 32); labels (n, length) = marks so far mod 4."""
    symbols = rng.integers(0, COUNT_SYMBOLS, (n, length))
    x = np.zeros((n, length, COUNT_SYMBOLS))
    np.put_along_axis(x, symbols[..., None], 1.0, axis=-1)
    labels = np.cumsum(symbols < COUNT_MARKS, axis=1) % COUNT_MODULUS
    return x, labels.astype(np.int64)


@dataclass(frozen=True)
class _Task:
    generate: Callable[[np.random.Generator, int, int], tuple[np.ndarray, np.ndarray]]
    n_classes: int


_TASKS = {
    "count_mod4": _Task(_count_batch, COUNT_MODULUS),
}

#: One-line description of each shipped example: the task and the trained metric.
DESCRIPTION = {
    "count_mod4": (
        "LSTM(32, 32) counting modulo 4 the marks (16 of 32 symbols) in a one-hot symbol stream; "
        "trained: 100.0 % of steps right on 1000 held-out 10-50-step sequences, float and "
        "fixed-point alike; |h_fixed - h_float| <= 2**-7 on 99.99 % of 50-step sequences"),
}


# -- API -------------------------------------------------------------------------------------------
def names() -> list[str]:
    """Names of the shipped examples.

    Returns
    -------
    list of str
        Sorted example names, each usable with :func:`path`, :func:`load` and :func:`inputs`.
    """
    return sorted(_TASKS)


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
    """Number of classes of an example's task (outputs of the head it was trained with)."""
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
        Target class at every step (the output the trained head gives for ``h_t``).
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
        Target class at every step.
    """
    task = _TASKS[_check_name(name)]
    _check_lengths(n_sequences, min_len, max_len)
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len + 1, n_sequences)
    # Generate at max_len and truncate: sequence i does not depend on the other lengths.
    x, labels = task.generate(rng, int(n_sequences), int(max_len))
    return ([np.ascontiguousarray(x[i, :t]) for i, t in enumerate(lengths)],
            [np.ascontiguousarray(labels[i, :t]) for i, t in enumerate(lengths)])


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
        Each length ``T_i`` is drawn uniformly from ``[min_len, max_len]`` (both included).
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
