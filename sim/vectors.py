"""Test vectors of a build directory and the AXI4-Stream packing of the generated top level.

A build directory (written by :func:`rnnaccel.scripts.flow.generate`) holds ``vectors.npz``:

===========  ================  ===========================================================
array        shape             meaning
===========  ================  ===========================================================
``x_codes``  (sum T, X) int64  input codes (format ``data``), all sequences concatenated
``lengths``  (S,) int64        steps ``T`` of each sequence
``h_codes``  (sum U, Y) int64  expected output codes (the golden integer model): ``U = T`` per
                               sequence, or 1 with ``outputs = "last"``; ``Y = output_size``
``out_lengths`` (S,) int64     ``U`` of each sequence (optional; default ``lengths``)
``h0_codes`` (S, L*D, P) int64 initial states per sequence (optional; models with ``initial_state``)
``c0_codes`` (S, L*D, H) int64 initial cell states per sequence (optional; LSTMs with ``initial_state``)
``seq_cycles`` (S,) int64      analytic cycles of each sequence back to back (optional)
``hn_codes`` (S, L*D, P) int64 expected final states per sequence (optional; ``final_state`` models)
``cn_codes`` (S, L*D, H) int64 expected final cell states (optional; LSTMs with ``final_state``)
``w_image``  (N,) int64         weight codes to send through the weight stream after reset (optional;
                               designs with run-time loaded SPRAM weights, hdl/memory_plan.py)
``x_float``  (sum T, X)        float inputs before quantisation
``h_float``  (sum U, Y)        float reference (PyTorch semantics) of the outputs
===========  ================  ===========================================================

Stream packing (both directions): one beat is one vector; element ``k`` of width ``W`` sits at
bits ``[k*W + W-1 : k*W]`` in two's complement, and the bus is padded with zeros to a whole
number of bytes. With initial states, every input beat of a sequence carries, after ``x_t``, the
sequence's ``h0`` (layer-major, element by element, ``data`` width) and then ``c0`` (``cell`` width);
the hardware reads them on the first beat.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Vectors", "load_vectors", "save_vectors", "bus_width", "pack_beats", "unpack_beats",
           "VECTORS_FILE"]

VECTORS_FILE = "vectors.npz"


def bus_width(elements: int, width: int) -> int:
    """Bits of a ``tdata`` bus carrying ``elements`` values of ``width`` bits (whole bytes)."""
    return -(-elements * width // 8) * 8


def pack_beats(codes, width: int) -> list[int]:
    """Pack rows of codes (T, K) into one integer per beat (element ``k`` at bit ``k*width``)."""
    codes = np.asarray(codes, dtype=np.int64)
    mask = (1 << width) - 1
    beats = []
    for row in codes:
        v = 0
        for k, c in enumerate(row.tolist()):
            v |= (c & mask) << (k * width)
        beats.append(v)
    return beats


def unpack_beats(beats, elements: int, width: int, signed: bool = True) -> np.ndarray:
    """Inverse of :func:`pack_beats`: integers -> codes (len(beats), elements) int64.

    Padding bits above ``elements * width`` are ignored.
    """
    mask = (1 << width) - 1
    half = 1 << (width - 1)
    out = np.zeros((len(beats), elements), dtype=np.int64)
    for i, v in enumerate(beats):
        v = int(v)
        for k in range(elements):
            c = (v >> (k * width)) & mask
            if signed and c >= half:
                c -= 1 << width
            out[i, k] = c
    return out


@dataclass
class Vectors:
    """The contents of ``vectors.npz`` with per-sequence views."""

    x_codes: np.ndarray
    lengths: np.ndarray
    h_codes: np.ndarray
    x_float: np.ndarray | None = None
    h_float: np.ndarray | None = None
    out_lengths: np.ndarray | None = None
    h0_codes: np.ndarray | None = None
    c0_codes: np.ndarray | None = None
    seq_cycles: np.ndarray | None = None
    hn_codes: np.ndarray | None = None
    cn_codes: np.ndarray | None = None
    w_image: np.ndarray | None = None

    def __post_init__(self):
        if self.out_lengths is None:
            self.out_lengths = np.asarray(self.lengths, dtype=np.int64)

    @property
    def out_offsets(self) -> np.ndarray:
        """Index of the first output of each sequence in ``h_codes`` (length S + 1)."""
        return np.concatenate([[0], np.cumsum(self.out_lengths)]).astype(np.int64)

    @property
    def out_timesteps(self) -> int:
        return int(np.sum(self.out_lengths))

    def out_sequence(self, s: int) -> slice:
        o = self.out_offsets
        return slice(int(o[s]), int(o[s + 1]))

    def out_last_flags(self) -> np.ndarray:
        """Expected ``tlast`` of every output beat: true at the last output of each sequence."""
        flags = np.zeros(self.out_timesteps, dtype=bool)
        flags[self.out_offsets[1:] - 1] = True
        return flags

    def input_rows(self, s: int, data_width: int, cell_width: int | None = None) -> list[int]:
        """The input beats of sequence ``s`` as integers: ``x_t``, then ``h0`` and ``c0`` if present."""
        rows = []
        extra, shift = 0, 0
        if self.h0_codes is not None:
            for c in np.asarray(self.h0_codes[s]).reshape(-1).tolist():
                extra |= (c & ((1 << data_width) - 1)) << shift
                shift += data_width
        if self.c0_codes is not None:
            for c in np.asarray(self.c0_codes[s]).reshape(-1).tolist():
                extra |= (c & ((1 << cell_width) - 1)) << shift
                shift += cell_width
        x_bits = self.x_codes.shape[1] * data_width
        for v in pack_beats(self.x_codes[self.sequence(s)], data_width):
            rows.append(v | (extra << x_bits))
        return rows

    @property
    def offsets(self) -> np.ndarray:
        """Index of the first step of each sequence (length S + 1, last = total steps)."""
        return np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)

    @property
    def sequences(self) -> int:
        return len(self.lengths)

    @property
    def timesteps(self) -> int:
        return int(np.sum(self.lengths))

    def sequence(self, s: int) -> slice:
        o = self.offsets
        return slice(int(o[s]), int(o[s + 1]))

    def last_flags(self) -> np.ndarray:
        """Expected ``tlast`` of every step: true at the last step of each sequence."""
        flags = np.zeros(self.timesteps, dtype=bool)
        flags[self.offsets[1:] - 1] = True
        return flags


_OPTIONAL_INT = ("out_lengths", "h0_codes", "c0_codes", "seq_cycles", "hn_codes", "cn_codes", "w_image")


def save_vectors(path, x_codes, lengths, h_codes, x_float=None, h_float=None, **optional) -> Path:
    """Write ``vectors.npz``; ``optional`` takes the arrays of ``_OPTIONAL_INT`` (see the module docs)."""
    path = Path(path)
    arrays = {"x_codes": np.asarray(x_codes, dtype=np.int64), "lengths": np.asarray(lengths, dtype=np.int64),
              "h_codes": np.asarray(h_codes, dtype=np.int64)}
    unknown = sorted(set(optional) - set(_OPTIONAL_INT))
    if unknown:
        raise TypeError(f"save_vectors: unknown arrays {unknown}")
    arrays |= {k: np.asarray(v, dtype=np.int64) for k, v in optional.items() if v is not None}
    if x_float is not None:
        arrays["x_float"] = np.asarray(x_float, dtype=np.float64)
    if h_float is not None:
        arrays["h_float"] = np.asarray(h_float, dtype=np.float64)
    np.savez(path, **arrays)
    return path


def load_vectors(path) -> Vectors:
    """Read ``vectors.npz`` (a file, or a build directory containing one)."""
    path = Path(path)
    if path.is_dir():
        path = path / VECTORS_FILE
    with np.load(path, allow_pickle=False) as npz:
        v = Vectors(npz["x_codes"].astype(np.int64), npz["lengths"].astype(np.int64),
                    npz["h_codes"].astype(np.int64),
                    npz["x_float"] if "x_float" in npz.files else None,
                    npz["h_float"] if "h_float" in npz.files else None,
                    **{k: npz[k].astype(np.int64) for k in _OPTIONAL_INT if k in npz.files})
    if v.x_codes.shape[0] != v.timesteps or v.h_codes.shape[0] != v.out_timesteps:
        raise ValueError(f"{path}: x_codes has {v.x_codes.shape[0]} rows and h_codes {v.h_codes.shape[0]}, "
                         f"but the lengths add up to {v.timesteps} steps and {v.out_timesteps} outputs")
    return v
