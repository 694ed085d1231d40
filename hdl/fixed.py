"""Hardware twin of :func:`rnnaccel.golden.fixed.requantize`: rounding and overflow as logic."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value, signed, unsigned

from rnnaccel.golden.fixed import OVERFLOW_MODES, ROUNDING_MODES, QFormat

__all__ = ["shape_of", "requantize", "requantize_split", "align", "extend", "add_with_carry"]


def shape_of(fmt: QFormat) -> Shape:
    """Amaranth shape of a format's codes."""
    return signed(fmt.width) if fmt.signed else unsigned(fmt.width)


def align(value, frac: int, to_frac: int) -> Value:
    """Exact left shift of codes with ``frac`` fractional bits to ``to_frac >= frac``."""
    value = Value.cast(value)
    if to_frac < frac:
        raise ValueError(f"align: cannot shift from frac {frac} down to {to_frac} without rounding")
    return value << (to_frac - frac) if to_frac > frac else value


def requantize(value, src: QFormat, dst: QFormat, rounding: str = "RND", overflow: str = "SAT") -> Value:
    """Combinational requantisation of ``value`` (codes in ``src``) to ``dst``.

    Bit-exact with :func:`rnnaccel.golden.fixed.requantize`. The input may be any width (exact
    intermediate results); only ``src.frac`` matters. Purely combinational: the caller registers.

    Returns
    -------
    Value
        Of shape :func:`shape_of(dst) <shape_of>`.
    """
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"unknown rounding mode {rounding!r}; expected one of {', '.join(ROUNDING_MODES)}")
    if overflow not in OVERFLOW_MODES:
        raise ValueError(f"unknown overflow mode {overflow!r}; expected one of {', '.join(OVERFLOW_MODES)}")
    value = Value.cast(value)
    shift = src.frac - dst.frac
    if overflow == "SAT" and shift > 0 and rounding in ("RND", "TRN"):
        over, under, q = _saturation_terms(value, shift, dst, rounding)
        return _saturate(over, under, q, dst)
    if shift > 0:
        if rounding == "TRN":
            q = value >> shift
        else:
            half = Const(1 << (shift - 1), shift)
            q = (value + half) >> shift
            if rounding == "RND_CONV":
                tie = value[:shift] == half
                q = Mux(tie & q[0], q - 1, q)
    elif shift < 0:
        q = value << -shift
    else:
        q = value
    # Make sure comparisons are done signed and wide enough.
    q = q.as_signed() if q.shape().signed else q
    if overflow == "SAT":
        hi, lo = dst.max_code, dst.min_code
        q = Mux(q > hi, hi, Mux(q < lo, lo, q))
    out = q[:dst.width]
    return out.as_signed() if dst.signed else out


def _saturation_terms(value: Value, shift: int, dst: QFormat, rounding: str):
    """Saturation decided on the unrounded value, beside the rounding adder rather than behind it:
    q = (value + half) >> shift exceeds hi exactly when value >= ((hi + 1) << shift) - half, and is
    below lo exactly when value < (lo << shift) - half. The adder then needs only the bits that
    survive the slice (shift + dst.width), and the logic depth is one adder or one comparison.
    Returns ``(over, under, q)``; :func:`_saturate` is the multiplexer that follows."""
    half = 1 << (shift - 1) if rounding == "RND" else 0
    hi, lo = dst.max_code, dst.min_code
    over = value >= ((hi + 1) << shift) - half
    under = value < (lo << shift) - half
    q = (value + Const(half, shift)) >> shift if half else value >> shift
    return over, under, q[:dst.width]


def _saturate(over, under, q, dst: QFormat) -> Value:
    out = Mux(over, dst.max_code, Mux(under, dst.min_code, q))[:dst.width]
    return out.as_signed() if dst.signed else out


def requantize_split(m: Module, value, src: QFormat, dst: QFormat, rounding: str = "RND",
                     overflow: str = "SAT", *, name: str) -> Value:
    """:func:`requantize` in two cycles: the rounding adder (and the saturation comparisons beside
    it) end in registers of this function, the saturating multiplexer follows them combinationally,
    for the caller's register. Bit-exact with :func:`requantize` one cycle later.

    Latency one cycle (plus the caller's register). Modes without the parallel saturation terms
    (rounding ``RND_CONV``, overflow ``WRAP``, no right shift) register :func:`requantize`'s result
    whole, with the same latency.
    """
    value = Value.cast(value)
    shift = src.frac - dst.frac
    if overflow == "SAT" and shift > 0 and rounding in ("RND", "TRN"):
        over, under, q = _saturation_terms(value, shift, dst, rounding)
        over_r, under_r = Signal(name=f"{name}_over", reset_less=True), Signal(name=f"{name}_under", reset_less=True)
        q_r = Signal(dst.width, name=f"{name}_q", reset_less=True)
        m.d.sync += [over_r.eq(over), under_r.eq(under), q_r.eq(q)]
        return _saturate(over_r, under_r, q_r, dst)
    r = Signal(shape_of(dst), name=f"{name}_r", reset_less=True)
    m.d.sync += r.eq(requantize(value, src, dst, rounding, overflow))
    return r


def extend(v, width: int):
    """``v`` sign- or zero-extended (by its shape) or truncated to ``width`` bits."""
    v = Value.cast(v)
    if len(v) >= width:
        return v[:width]
    fill = v[-1].replicate(width - len(v)) if v.shape().signed else Const(0, width - len(v))
    return Cat(v, fill)


def add_with_carry(a, b, carry, width: int):
    """``(a + b + carry) mod 2**width`` as one adder, the carry entering below bit 0 (written as
    ``a + b + carry``, Yosys builds two adders in series: two carry chains)."""
    return (Cat(carry, extend(a, width)) + Cat(carry, extend(b, width)))[1:width + 1]
