"""Fixed-point formats and the one requantisation step shared by golden model and hardware.

Every value in the integer model is a code (``np.int64``); its real value is
``code * 2**-frac``.  Products and sums are exact; rounding and saturation happen
only in :func:`requantize`, which exists once here and once in hardware
(:func:`rnnaccel.hdl.fixed.requantize`).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

__all__ = [
    "QFormat", "ROUNDING_MODES", "OVERFLOW_MODES", "requantize", "quantize", "to_float",
    "SaturationCounter",
]

#: Rounding modes of :func:`requantize`.
#:
#: ``TRN``       truncation towards minus infinity (drop the low bits);
#: ``RND``       round to nearest, ties towards plus infinity (add half an LSB, truncate);
#: ``RND_CONV``  round to nearest, ties to even (convergent rounding).
ROUNDING_MODES = ("TRN", "RND", "RND_CONV")

#: Overflow modes of :func:`requantize`: ``SAT`` clamps to the format's range,
#: ``WRAP`` keeps the low ``width`` bits (two's complement wrap-around).
OVERFLOW_MODES = ("SAT", "WRAP")

_FORMAT_RE = re.compile(r"^\s*([su])(\d+)\.(-?\d+)\s*$")


@dataclass(frozen=True)
class QFormat:
    """A binary fixed-point format: ``value = code * 2**-frac``.

    Parameters
    ----------
    width : int
        Total number of bits, sign included (>= 1).
    frac : int
        Number of fractional bits, ``0 <= frac <= width`` for the formats a
        user writes; derived internal formats may have ``frac > width``.
    signed : bool
        Two's complement when true.

    Notes
    -----
    ``ap_fixed<W, I>`` of Vivado HLS / hls4ml is ``QFormat(W, W - I)``;
    ``ap_ufixed<W, I>`` is ``QFormat(W, W - I, signed=False)``.
    ``str(QFormat(16, 10))`` is ``"s16.10"``, and :meth:`parse` reads that back.
    """

    width: int
    frac: int
    signed: bool = True

    def __post_init__(self):
        if not isinstance(self.width, (int, np.integer)) or isinstance(self.width, bool):
            raise TypeError(f"QFormat width must be an integer, not {self.width!r}")
        if not isinstance(self.frac, (int, np.integer)) or isinstance(self.frac, bool):
            raise TypeError(f"QFormat frac must be an integer, not {self.frac!r}")
        if self.width < 1:
            raise ValueError(f"QFormat width must be at least 1, not {self.width}")
        if self.signed and self.width < 2:
            raise ValueError("a signed QFormat needs width >= 2 (one sign bit and one value bit)")
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "frac", int(self.frac))
        object.__setattr__(self, "signed", bool(self.signed))

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def parse(cls, text: "str | QFormat", *, field: str = "format") -> "QFormat":
        """Read a format written as ``s16.10`` / ``u8.8`` (sign, width, fractional bits).

        Raises
        ------
        ValueError
            If the text is not of that form, or ``frac`` is negative or larger than ``width``;
            the message names ``field``.
        """
        if isinstance(text, QFormat):
            fmt = text
        else:
            if not isinstance(text, str):
                raise TypeError(f"{field}: expected a format string like 's16.12', got {text!r}")
            m = _FORMAT_RE.match(text)
            if not m:
                raise ValueError(
                    f"{field}: {text!r} is not a fixed-point format; write it as s<width>.<frac> "
                    f"or u<width>.<frac>, e.g. 's16.12'")
            sign, width, frac = m.groups()
            try:
                fmt = cls(int(width), int(frac), sign == "s")
            except ValueError as e:
                raise ValueError(f"{field}: {text!r}: {e}") from None
        if fmt.frac < 0 or fmt.frac > fmt.width:
            raise ValueError(
                f"{field}: {fmt} has frac={fmt.frac} outside 0..width={fmt.width}; "
                f"use 0 <= frac <= width")
        return fmt

    def __str__(self):
        return f"{'s' if self.signed else 'u'}{self.width}.{self.frac}"

    # -- range ------------------------------------------------------------------------------
    @property
    def int_bits(self) -> int:
        """Integer bits, sign included for signed formats (``I`` of ``ap_fixed<W, I>``)."""
        return self.width - self.frac

    @property
    def min_code(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_code(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def lsb(self) -> float:
        """The value of one code step, ``2**-frac``."""
        return 2.0 ** -self.frac

    @property
    def min_value(self) -> float:
        return self.min_code * self.lsb

    @property
    def max_value(self) -> float:
        return self.max_code * self.lsb

    def contains(self, code) -> np.ndarray:
        code = np.asarray(code)
        return (code >= self.min_code) & (code <= self.max_code)


def to_float(code, fmt: QFormat) -> np.ndarray:
    """Real value of integer codes: ``code * 2**-fmt.frac`` (float64)."""
    return np.asarray(code, dtype=np.float64) * fmt.lsb


class SaturationCounter(Counter):
    """Counts overflow events per tensor name (saturated or wrapped values).

    A plain :class:`collections.Counter`; :func:`requantize` adds to it under its ``tag``.
    """

    def report(self) -> str:
        if not any(self.values()):
            return "no saturation"
        return ", ".join(f"{k}: {v}" for k, v in sorted(self.items()) if v)


def _check_mode(rounding: str, overflow: str):
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"unknown rounding mode {rounding!r}; expected one of {', '.join(ROUNDING_MODES)}")
    if overflow not in OVERFLOW_MODES:
        raise ValueError(f"unknown overflow mode {overflow!r}; expected one of {', '.join(OVERFLOW_MODES)}")


def shift_round(code, shift: int, rounding: str) -> np.ndarray:
    """Divide integer codes by ``2**shift`` with the given rounding (``shift <= 0``: exact left shift)."""
    code = np.asarray(code, dtype=np.int64)
    if shift <= 0:
        return code << np.int64(-shift)
    if rounding == "TRN":
        return code >> np.int64(shift)
    half = np.int64(1) << np.int64(shift - 1)
    if rounding == "RND":
        return (code + half) >> np.int64(shift)
    # RND_CONV: round half to even.  Ties are codes whose dropped bits equal exactly one half.
    q = (code + half) >> np.int64(shift)
    tie = (code & ((np.int64(1) << np.int64(shift)) - 1)) == half
    return np.where(tie & ((q & 1) == 1), q - 1, q)


def requantize(code, src: QFormat, dst: QFormat, rounding: str = "RND", overflow: str = "SAT",
               *, counter: "Counter | None" = None, tag: str | None = None) -> np.ndarray:
    """Convert integer codes from format ``src`` to format ``dst``.

    The one rounding-and-overflow step of the fixed-point model.  The hardware twin is
    :func:`rnnaccel.hdl.fixed.requantize`, and both must agree bit for bit.

    Parameters
    ----------
    code : array_like of int
        Codes in ``src``; any integer value is accepted (``src.width`` is not enforced,
        which lets exact intermediate sums be passed as they are).
    src, dst : QFormat
        Source and destination formats.
    rounding : {"TRN", "RND", "RND_CONV"}
        Applied when ``dst.frac < src.frac``.
    overflow : {"SAT", "WRAP"}
        What happens to values outside ``dst``'s range.
    counter : Counter, optional
        Overflow events (values that were saturated or wrapped) are added under ``tag``.
    tag : str, optional
        Name of the tensor, for ``counter``.

    Returns
    -------
    numpy.ndarray of int64
        Codes in ``dst``.
    """
    _check_mode(rounding, overflow)
    code = np.asarray(code, dtype=np.int64)
    q = shift_round(code, src.frac - dst.frac, rounding)
    out_of_range = ~dst.contains(q)
    if counter is not None:
        counter[tag or "unnamed"] += int(np.count_nonzero(out_of_range))
    if overflow == "SAT":
        return np.clip(q, dst.min_code, dst.max_code)
    mask = np.int64((1 << dst.width) - 1)
    w = q & mask
    if dst.signed:
        w = np.where(w >= (np.int64(1) << np.int64(dst.width - 1)), w - (mask + 1), w)
    return w


def quantize(x, fmt: QFormat, rounding: str = "RND", overflow: str = "SAT",
             *, counter: "Counter | None" = None, tag: str | None = None) -> np.ndarray:
    """Quantise real values to codes of ``fmt`` (used for weights, biases, inputs and tables).

    The real value is scaled by ``2**fmt.frac`` in float64, which is exact for the formats
    used here, and then rounded like :func:`requantize` (``RND``: ties towards +inf).

    Raises
    ------
    ValueError
        If ``x`` contains NaN or infinity.
    """
    _check_mode(rounding, overflow)
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"cannot quantise non-finite values to {fmt} ({tag or 'value'})")
    scaled = np.ldexp(x, fmt.frac)
    if rounding == "TRN":
        q = np.floor(scaled)
    elif rounding == "RND":
        # Not floor(scaled + 0.5): that sum is itself rounded in float64 and turns
        # 0.49999999999999994 into 1.  The fractional part scaled - floor(scaled) is exact.
        q = np.floor(scaled)
        q = q + (scaled - q >= 0.5)
    else:
        q = np.round(scaled)  # numpy rounds half to even
    # Clamp in float before the cast so that huge values cannot overflow int64.
    big = 2.0 ** 62
    q = np.clip(q, -big, big).astype(np.int64)
    return requantize(q, QFormat(64, fmt.frac), fmt, "TRN", overflow, counter=counter, tag=tag)
