"""Registered multipliers and memory reads that map onto a DSP block's or block RAM's own registers.

Yosys' ``synth_ecp5`` maps a ``$mul`` onto a ``MULT18X18D`` but leaves the flip-flops around it in
the fabric: every product then crosses the routing twice (fabric input register -> DSP, DSP ->
fabric product register), and on ECP5 that routing, not the multiplier, set the clock period.
:func:`registered_product` builds ``input registers -> multiplier -> output register`` either as
plain Amaranth (simulation, other targets: the default) or, inside :func:`dsp_primitives`
``("ecp5")``, as one ``MULT18X18D`` with its ``REG_INPUTA/B`` and ``REG_OUTPUT`` registers
enabled. Both have the same latency and the same (exact) result; only where the registers sit differs.

Block RAMs likewise: :func:`registered_rom` reads a constant table through the memory's read
register and then a data register. Yosys maps the data register into the fabric (its ECP5 block
RAM mapping leaves the ``DP16KD``'s output register unused), so the block RAM's slow unregistered
clock-to-output (about 6 ns) and the routing to that flip-flop make one path; inside
:func:`dsp_primitives` ``("ecp5")`` the table becomes ``DP16KD`` blocks with ``REGMODE_A =
"OUTREG"``, whose output register is the data register (same latency, same contents).

The choice is made at elaboration time, so the synthesis flow wraps its Verilog conversion in
``with dsp_primitives(family): ...`` and nothing else in the design needs to know.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Shape, Signal, Value, signed
from amaranth.lib import memory

__all__ = ["dsp_primitives", "registered_product", "registered_rom", "DSP_OPERAND_BITS", "DP16KD_CONFIGS", "ROM_MIN_DEPTH",
           "dp16kd_initvals"]

#: Signed operand width of the DSP blocks whose registers :func:`registered_product` uses.
DSP_OPERAND_BITS = {"ecp5": 18}

_FAMILY: contextvars.ContextVar = contextvars.ContextVar("rnnaccel_dsp_family", default=None)


@contextmanager
def dsp_primitives(family: str | None):
    """Within this context, :func:`registered_product` instantiates ``family``'s DSP primitive
    (``"ecp5"``: ``MULT18X18D``) and :func:`registered_rom` its block RAM with the output register
    in use (``"ecp5"``: ``DP16KD``); ``None`` or an unknown family: plain Amaranth."""
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


#: Tables of fewer words stay plain Amaranth memories under :func:`dsp_primitives` too: Yosys builds
#: them from LUTs (it does so at 128 x 16 bits and uses a block RAM at 256 x 16), which have no slow
#: clock-to-output to hide.
ROM_MIN_DEPTH = 256

#: ``DP16KD`` data widths and depths of one port (the 18- and 9-bit widths include the parity bits).
DP16KD_CONFIGS = ((18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))


def dp16kd_initvals(words, width: int) -> list[int]:
    """The 64 ``INITVAL_xx`` values (320 bits each) of a ``DP16KD`` whose port has ``width`` bits
    (one of :data:`DP16KD_CONFIGS`) and holds ``words`` (unsigned, ``width`` bits each) from address 0.

    The layout is the one Yosys' ECP5 block RAM mapping writes (``brams_map_16kd.v``; checked against
    it in tests/test_dsp.py): 1024 rows of 18 bits, each in 20 bits of its ``INITVAL`` (16 rows per
    value); a 9- or 18-bit word ``n`` is bits ``(n % k) * width`` of row ``n // k`` (``k = 18 // width``);
    narrower words fill the rows' 16 data bits (row bits 0..7 and 9..16) in address order.
    """
    rows = [0] * 1024
    for n, v in enumerate(words):
        v = int(v)
        if v < 0 or v >> width:
            raise ValueError(f"word {n} = {v} does not fit {width} unsigned bits")
        if width >= 9:
            r, k = divmod(n, 18 // width)
            rows[r] |= v << (k * width)
        else:
            r, b = divmod(n * width, 16)
            for i in range(width):
                bit = b + i
                rows[r] |= ((v >> i) & 1) << (bit if bit < 8 else bit + 1)
    return [sum(rows[idx * 16 + i] << (i * 20) for i in range(16)) for idx in range(64)]


def registered_rom(m: Module, init, shape, addr, *, name: str) -> Value:
    """``init[addr]`` two cycles after ``addr``: the memory's synchronous read (its address register),
    then a data register, with no logic between the memory and the data register.

    ``init`` is the table's contents (codes of ``shape``), ``addr`` an address valid in the cycle
    before the read. Plain Amaranth: a :class:`~amaranth.lib.memory.Memory` with a read port and a
    register; inside :func:`dsp_primitives` ``("ecp5")``, for tables of :data:`ROM_MIN_DEPTH` to
    16384 words: ``ceil(width / w)`` ``DP16KD`` blocks of the narrowest configuration ``w`` deep enough, port A
    read-only with its output register (``REGMODE_A = "OUTREG"``) as the data register. Neither
    has an enable or a reset: the data of a cycle without a valid address is never used.
    """
    shape = Shape.cast(shape)
    init = [int(v) for v in init]
    depth = len(init)
    if _FAMILY.get() == "ecp5" and ROM_MIN_DEPTH <= depth <= DP16KD_CONFIGS[-1][1]:
        return _ecp5_rom(m, init, shape, addr, name)
    mem = memory.Memory(shape=shape, depth=depth, init=init)
    m.submodules[name] = mem
    rd = mem.read_port()
    m.d.comb += rd.addr.eq(addr)
    data = Signal(shape, name=f"{name}_data")
    m.d.sync += data.eq(rd.data)
    return data


def _ecp5_rom(m, init, shape, addr, name):
    width, depth = shape.width, len(init)
    w, cfg_depth = next((cw, cd) for cw, cd in DP16KD_CONFIGS if cd >= depth)
    shift = {18: 4, 9: 3, 4: 2, 2: 1, 1: 0}[w]
    abits = (cfg_depth - 1).bit_length()
    a = Signal(abits, name=f"{name}_addr")
    m.d.comb += a.eq(addr)
    mask = (1 << width) - 1
    codes = [v & mask for v in init]
    outs = []
    for blk, lo in enumerate(range(0, width, w)):
        n = min(w, width - lo)
        vals = dp16kd_initvals([(c >> lo) & ((1 << n) - 1) for c in codes], w)
        do = Signal(18, name=f"{name}_do{blk}")
        ports = {f"i_ADA{i}": (a[i - shift] if 0 <= i - shift < abits else Const(0, 1)) for i in range(14)}
        ports |= {f"i_ADB{i}": Const(0, 1) for i in range(14)}
        ports |= {f"i_DIA{i}": Const(0, 1) for i in range(18)} | {f"i_DIB{i}": Const(0, 1) for i in range(18)}
        ports |= {f"o_DOA{i}": do[i] for i in range(18)}
        ports |= {f"i_CSA{i}": Const(0, 1) for i in range(3)} | {f"i_CSB{i}": Const(0, 1) for i in range(3)}
        params = {f"p_INITVAL_{i:02X}": Const(v, 320) for i, v in enumerate(vals)}
        m.submodules[f"{name}_bram{blk}"] = Instance(
            "DP16KD",
            p_DATA_WIDTH_A=w, p_DATA_WIDTH_B=w, p_REGMODE_A="OUTREG", p_REGMODE_B="NOREG",
            p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC", p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
            p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED", **params,
            i_CLKA=ClockSignal("sync"), i_CEA=Const(1, 1), i_OCEA=Const(1, 1), i_WEA=Const(0, 1),
            i_RSTA=Const(0, 1),
            i_CLKB=Const(0, 1), i_CEB=Const(0, 1), i_OCEB=Const(0, 1), i_WEB=Const(0, 1), i_RSTB=Const(0, 1),
            **ports,
        )
        outs.append(do[:n])
    data = Signal(shape, name=f"{name}_data")
    m.d.comb += data.eq(Cat(*outs))
    return data
