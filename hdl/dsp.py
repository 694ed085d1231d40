"""Registered multipliers that map onto a DSP block's own registers.

Yosys' ``synth_ecp5`` maps a ``$mul`` onto a ``MULT18X18D`` but leaves the flip-flops around it in
the fabric: every product then crosses the routing twice (fabric input register -> DSP, DSP ->
fabric product register), and on ECP5 that routing, not the multiplier, set the clock period.
:func:`registered_product` builds ``input registers -> multiplier -> output register`` either as
plain Amaranth (simulation, other targets: the default) or, inside :func:`dsp_primitives`
``("ecp5")``, as one ``MULT18X18D`` with its ``REG_INPUTA/B`` and ``REG_OUTPUT`` registers
enabled. Both have the same latency and the same (exact) result; only where the registers sit differs.

The choice is made at elaboration time, so the synthesis flow wraps its Verilog conversion in
``with dsp_primitives(family): ...`` and nothing else in the design needs to know.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal, Value, signed

__all__ = ["dsp_primitives", "registered_product", "DSP_OPERAND_BITS"]

#: Signed operand width of the DSP blocks whose registers :func:`registered_product` uses.
DSP_OPERAND_BITS = {"ecp5": 18}

_FAMILY: contextvars.ContextVar = contextvars.ContextVar("rnnaccel_dsp_family", default=None)


@contextmanager
def dsp_primitives(family: str | None):
    """Within this context, :func:`registered_product` instantiates ``family``'s DSP primitive
    (``"ecp5"``: ``MULT18X18D``); ``None`` or an unknown family: plain Amaranth."""
    token = _FAMILY.set(family if family in DSP_OPERAND_BITS else None)
    try:
        yield
    finally:
        _FAMILY.reset(token)


def _signed_width(v: Value) -> int:
    s = v.shape()
    return s.width + (0 if s.signed else 1)


def registered_product(m: Module, a, b, *, name: str, input_regs: bool = True, output_reg: bool = True) -> Value:
    """``a * b`` with ``input_regs`` (both operands registered) and ``output_reg`` (the product
    registered): a latency of ``input_regs + output_reg`` cycles, exact (full-width) result of the
    shape of Amaranth's ``a * b``.

    The registers have no enable; the DSP primitive's have no reset either (data path only: the valid
    flags travel beside them, so a reset never needs to clear a product).
    """
    a, b = Value.cast(a), Value.cast(b)
    shape = (a * b).shape()
    family = _FAMILY.get()
    bits = DSP_OPERAND_BITS.get(family, 0)
    if family is not None and (input_regs or output_reg) and max(_signed_width(a), _signed_width(b)) <= bits:
        return _ecp5_product(m, a, b, shape, name, input_regs, output_reg)
    if input_regs:
        a_r = Signal(a.shape(), name=f"{name}_a")
        b_r = Signal(b.shape(), name=f"{name}_b")
        m.d.sync += [a_r.eq(a), b_r.eq(b)]
        a, b = a_r, b_r
    if output_reg:
        p = Signal(shape, name=name)
        m.d.sync += p.eq(a * b)
        return p
    return a * b


def _ecp5_product(m, a, b, shape, name, input_regs, output_reg):
    a18 = Signal(signed(18), name=f"{name}_a18")
    b18 = Signal(signed(18), name=f"{name}_b18")
    p36 = Signal(signed(36), name=f"{name}_p36")
    m.d.comb += [a18.eq(a), b18.eq(b)]          # sign- or zero-extended per the operand's shape
    reg_in = "CLK0" if input_regs else "NONE"
    reg_out = "CLK0" if output_reg else "NONE"
    ports = {f"i_A{i}": a18[i] for i in range(18)} | {f"i_B{i}": b18[i] for i in range(18)}
    ports |= {f"i_C{i}": Const(0, 1) for i in range(18)}
    ports |= {f"o_P{i}": p36[i] for i in range(36)}
    m.submodules[f"{name}_dsp"] = Instance(
        "MULT18X18D",
        p_REG_INPUTA_CLK=reg_in, p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
        p_REG_INPUTB_CLK=reg_in, p_REG_INPUTB_CE="CE0", p_REG_INPUTB_RST="RST0",
        p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
        p_REG_OUTPUT_CLK=reg_out, p_REG_OUTPUT_CE="CE0", p_REG_OUTPUT_RST="RST0",
        p_CLK0_DIV="ENABLED", p_GSR="DISABLED", p_SOURCEB_MODE="B_SHIFT", p_MULT_BYPASS="DISABLED",
        p_RESETMODE="SYNC",
        i_SIGNEDA=Const(1, 1), i_SIGNEDB=Const(1, 1), i_SOURCEA=Const(0, 1), i_SOURCEB=Const(0, 1),
        i_CLK0=ClockSignal("sync"), i_CE0=Const(1, 1), i_RST0=Const(0, 1),
        **ports,
    )
    p = Signal(shape, name=name)
    m.d.comb += p.eq(p36)
    return p
