"""Registered multipliers and memory reads that map onto a DSP block's or block RAM's own registers.

Yosys' ``synth_ecp5`` maps a ``$mul`` onto a ``MULT18X18D`` but leaves the flip-flops around it in
the fabric: every product then crosses the routing twice (fabric input register -> DSP, DSP ->
fabric product register), and on ECP5 that routing, not the multiplier, set the clock period.
:func:`registered_product` builds ``input registers -> multiplier -> output register`` either as
plain Amaranth (simulation, other targets: the default) or, inside :func:`dsp_primitives`
``("ecp5")``, as one ``MULT18X18D`` with its ``REG_INPUTA/B`` and ``REG_OUTPUT`` registers
enabled, or inside ``dsp_primitives("ice40")`` as one ``SB_MAC16`` with ``A_REG``/``B_REG`` and
the 16 x 16 product's pipeline register (Yosys' ice40_dsp packs only reset-less registers, and
then sometimes a following adder too while building another product from LUTs). All have the
same latency and the same (exact) result; only where the registers sit differs.

Block RAMs likewise: :func:`registered_rom` reads a constant table through the memory's read
register and then a data register. Yosys maps the data register into the fabric (its ECP5 block
RAM mapping leaves the ``DP16KD``'s output register unused), so the block RAM's slow unregistered
clock-to-output (about 6 ns) and the routing to that flip-flop make one path; inside
:func:`dsp_primitives` ``("ecp5")`` the table becomes ``DP16KD`` blocks with ``REGMODE_A =
"OUTREG"`` or, for words wider than 18 bits of at most 512 words, ``PDPW16KD`` blocks (512 x 36)
with ``REGMODE = "OUTREG"``, whichever needs fewer (:func:`rom_config`); the output register is the
data register (same latency, same contents).

The choice is made at elaboration time, so the synthesis flow wraps its Verilog conversion in
``with dsp_primitives(family): ...`` and nothing else in the design needs to know.
"""

from __future__ import annotations

import contextvars
import weakref
from contextlib import contextmanager
from typing import NamedTuple

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Shape, Signal, Value, signed
from amaranth.lib import memory

__all__ = ["dsp_primitives", "registered_product", "registered_rom", "DSP_OPERAND_BITS", "DP16KD_CONFIGS", "ROM_MIN_DEPTH",
           "PDPW16KD_CONFIG", "RomConfig", "rom_config", "is_registered_rom", "dp16kd_initvals"]

#: Signed operand width of the DSP blocks whose registers :func:`registered_product` uses (iCE40's
#: SB_MAC16 also takes two unsigned 16-bit operands).
DSP_OPERAND_BITS = {"ecp5": 18, "ice40": 16}

_FAMILY: contextvars.ContextVar = contextvars.ContextVar("rnnaccel_dsp_family", default=None)


@contextmanager
def dsp_primitives(family: str | None):
    """Within this context, :func:`registered_product` instantiates ``family``'s DSP primitive
    (``"ecp5"``: ``MULT18X18D``; ``"ice40"``: ``SB_MAC16``) and :func:`registered_rom` its block RAM with the output register
    in use (``"ecp5"``: ``DP16KD`` or ``PDPW16KD``, :func:`rom_config`); ``None`` or an unknown
    family: plain Amaranth."""
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
    if family == "ecp5" and (input_regs or output_reg) and max(_signed_width(a), _signed_width(b)) <= bits:
        return _ecp5_product(m, a, b, shape, name, input_regs, output_reg)
    if family == "ice40" and (input_regs or output_reg):
        if max(_signed_width(a), _signed_width(b)) <= bits:
            return _ice40_product(m, a, b, shape, name, input_regs, output_reg, signed_mode=True)
        if not a.shape().signed and not b.shape().signed and max(len(a), len(b)) <= bits:
            return _ice40_product(m, a, b, shape, name, input_regs, output_reg, signed_mode=False)
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


def _ice40_product(m, a, b, shape, name, input_regs, output_reg, *, signed_mode: bool):
    """One SB_MAC16 as a 16 x 16 multiplier: ``A_REG``/``B_REG`` are the input registers, the
    16 x 16 product's pipeline register (``PIPELINE_16x16_MULT_REG2``) the output register, and
    both output halves select that product. (Yosys' ice40_dsp packs registers into the block only
    when they have no reset, and then may also pack a following adder and build another product
    from LUTs; an instance leaves no choice.)"""
    a16 = Signal(signed(16) if signed_mode else 16, name=f"{name}_a16")
    b16 = Signal(signed(16) if signed_mode else 16, name=f"{name}_b16")
    o32 = Signal(32, name=f"{name}_o32")
    m.d.comb += [a16.eq(a), b16.eq(b)]          # sign- or zero-extended per the operand's shape
    reg_in, reg_out = int(bool(input_regs)), int(bool(output_reg))
    sgn = int(signed_mode)
    m.submodules[f"{name}_dsp"] = Instance(
        "SB_MAC16",
        p_NEG_TRIGGER=Const(0, 1), p_A_REG=Const(reg_in, 1), p_B_REG=Const(reg_in, 1),
        p_C_REG=Const(0, 1), p_D_REG=Const(0, 1),
        p_TOP_8x8_MULT_REG=Const(0, 1), p_BOT_8x8_MULT_REG=Const(0, 1),
        p_PIPELINE_16x16_MULT_REG1=Const(0, 1), p_PIPELINE_16x16_MULT_REG2=Const(reg_out, 1),
        p_TOPOUTPUT_SELECT=Const(3, 2), p_TOPADDSUB_LOWERINPUT=Const(0, 2), p_TOPADDSUB_UPPERINPUT=Const(0, 1),
        p_TOPADDSUB_CARRYSELECT=Const(0, 2),
        p_BOTOUTPUT_SELECT=Const(3, 2), p_BOTADDSUB_LOWERINPUT=Const(0, 2), p_BOTADDSUB_UPPERINPUT=Const(0, 1),
        p_BOTADDSUB_CARRYSELECT=Const(0, 2),
        p_MODE_8x8=Const(0, 1), p_A_SIGNED=Const(sgn, 1), p_B_SIGNED=Const(sgn, 1),
        i_CLK=ClockSignal("sync"), i_CE=Const(1, 1), i_A=a16, i_B=b16, i_C=Const(0, 16), i_D=Const(0, 16),
        i_AHOLD=Const(0, 1), i_BHOLD=Const(0, 1), i_CHOLD=Const(0, 1), i_DHOLD=Const(0, 1),
        i_IRSTTOP=Const(0, 1), i_IRSTBOT=Const(0, 1), i_ORSTTOP=Const(0, 1), i_ORSTBOT=Const(0, 1),
        i_OLOADTOP=Const(0, 1), i_OLOADBOT=Const(0, 1), i_ADDSUBTOP=Const(0, 1), i_ADDSUBBOT=Const(0, 1),
        i_OHOLDTOP=Const(0, 1), i_OHOLDBOT=Const(0, 1), i_CI=Const(0, 1), i_ACCUMCI=Const(0, 1),
        i_SIGNEXTIN=Const(0, 1),
        o_O=o32,
    )
    p = Signal(shape, name=name)
    m.d.comb += p.eq(o32.as_signed() if signed_mode else o32)
    return p


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

#: ``PDPW16KD`` (the same block RAM as a pseudo-dual-port memory: a 36-bit write port and a read
#: port) read at its full width: data width and depth.
#:
#: Yosys' own mapping of 36-bit wide memories (``brams_map_16kd.v``, ``$__PDPW16KD_``) writes this
#: mode as a ``DP16KD`` with both ports 36 bits wide, bits 0..17 of a word on ``DOA``; nextpnr-ecp5
#: packs a ``PDPW16KD`` into the same mode but takes ``DO0..17`` from ``DOB`` (``ecp5/pack.cc``).
#: The contents layout is the same for both (:func:`dp16kd_initvals`, checked against Yosys'); which
#: output pins carry which half is a question of the silicon no simulation here settles. The design
#: instantiates ``PDPW16KD``, so its ``DO[35:0]`` are what nextpnr makes of them.
PDPW16KD_CONFIG = (36, 512)

#: Bits per word (``dp16kd_initvals``' ``width``) and the words one block holds.
_BLOCK_WORDS = {w: d for w, d in DP16KD_CONFIGS} | {PDPW16KD_CONFIG[0]: PDPW16KD_CONFIG[1]}


class RomConfig(NamedTuple):
    """How :func:`registered_rom` builds a table on ECP5: ``blocks`` block RAMs side by side, each
    ``primitive`` (``"DP16KD"`` or ``"PDPW16KD"``) with a read port of ``width`` bits and ``depth`` words."""

    primitive: str
    width: int
    depth: int
    blocks: int


def rom_config(depth: int, width: int) -> RomConfig | None:
    """The block RAMs :func:`registered_rom` instantiates inside :func:`dsp_primitives` ``("ecp5")``
    for a table of ``depth`` words of ``width`` bits, or None if it builds a plain memory instead
    (fewer than :data:`ROM_MIN_DEPTH` or more than 16384 words).

    The one rule for both the design (:func:`registered_rom`) and the memory plan
    (:mod:`rnnaccel.hdl.memory_plan`): of the ``DP16KD`` configurations deep enough the widest
    (fewest blocks), unless a table of at most 512 words needs fewer ``PDPW16KD`` (512 x 36) blocks;
    a tie keeps ``DP16KD``. Words are never split in depth.

    Raises
    ------
    ValueError
        If ``depth`` or ``width`` is not positive.
    """
    if depth < 1 or width < 1:
        raise ValueError(f"a table of {depth} words of {width} bits: both must be at least 1")
    if not ROM_MIN_DEPTH <= depth <= DP16KD_CONFIGS[-1][1]:
        return None
    w, d = next((cw, cd) for cw, cd in DP16KD_CONFIGS if cd >= depth)
    best = RomConfig("DP16KD", w, d, -(-width // w))
    pw, pd = PDPW16KD_CONFIG
    if depth <= pd and -(-width // pw) < best.blocks:
        best = RomConfig("PDPW16KD", pw, pd, -(-width // pw))
    return best


#: The contents (:class:`~amaranth.hdl.MemoryData`) of the plain memories :func:`registered_rom`
#: built, so that :func:`is_registered_rom` can tell them from the design's other memories.
_ROM_TABLES: "weakref.WeakSet" = weakref.WeakSet()


def is_registered_rom(data) -> bool:
    """Whether ``data`` (the :class:`~amaranth.hdl.MemoryData` of a memory in an elaborated design)
    is a table :func:`registered_rom` built as a plain memory, i.e. one that inside
    :func:`dsp_primitives` ``("ecp5")`` becomes the blocks of :func:`rom_config` (when that is not None).
    """
    return data in _ROM_TABLES


def dp16kd_initvals(words, width: int) -> list[int]:
    """The 64 ``INITVAL_xx`` values (320 bits each) of a ``DP16KD`` whose port has ``width`` bits
    (one of :data:`DP16KD_CONFIGS`), or of a ``PDPW16KD`` read at 36 bits (``width = 36``), that
    holds ``words`` (unsigned, ``width`` bits each) from address 0.

    The layout is the one Yosys' ECP5 block RAM mapping writes (``brams_map_16kd.v``; checked against
    it in tests/test_dsp.py): 1024 rows of 18 bits, each in 20 bits of its ``INITVAL`` (16 rows per
    value); a 9- or 18-bit word ``n`` is bits ``(n % k) * width`` of row ``n // k`` (``k = 18 // width``);
    a 36-bit word ``n`` is rows ``2n`` (bits 0..17) and ``2n + 1`` (bits 18..35); narrower words fill
    the rows' 16 data bits (row bits 0..7 and 9..16) in address order.

    Raises
    ------
    ValueError
        For a ``width`` the block has no port of, more words than it holds, or a word that does not
        fit ``width`` unsigned bits.
    """
    if width not in _BLOCK_WORDS:
        raise ValueError(f"a DP16KD/PDPW16KD port is not {width} bits wide; use one of "
                         f"{', '.join(map(str, sorted(_BLOCK_WORDS)))}")
    words = list(words)
    if len(words) > _BLOCK_WORDS[width]:
        raise ValueError(f"{len(words)} words of {width} bits do not fit one block ({_BLOCK_WORDS[width]} words); "
                         f"split the table")
    rows = [0] * 1024
    for n, v in enumerate(words):
        v = int(v)
        if v < 0 or v >> width:
            raise ValueError(f"word {n} = {v} does not fit {width} unsigned bits")
        if width == 36:
            rows[2 * n] |= v & 0x3FFFF
            rows[2 * n + 1] |= v >> 18
        elif width >= 9:
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
    register (its contents marked for :func:`is_registered_rom`); inside :func:`dsp_primitives`
    ``("ecp5")``, for tables of :data:`ROM_MIN_DEPTH` to 16384 words, the blocks of :func:`rom_config`:
    ``ceil(width / w)`` ``DP16KD`` of the narrowest configuration ``w`` deep enough, port A read-only
    with its output register (``REGMODE_A = "OUTREG"``) as the data register, or, where that takes
    fewer blocks (at most 512 words wider than 18 bits), ``ceil(width / 36)`` ``PDPW16KD`` read at 36
    bits with their output register (``REGMODE = "OUTREG"``). Neither has an enable or a reset: the
    data of a cycle without a valid address is never used.
    """
    shape = Shape.cast(shape)
    init = [int(v) for v in init]
    depth = len(init)
    cfg = rom_config(depth, shape.width) if _FAMILY.get() == "ecp5" else None
    if cfg is not None:
        return _ecp5_rom(m, init, shape, addr, name, cfg)
    mem = memory.Memory(shape=shape, depth=depth, init=init)
    _ROM_TABLES.add(mem.data)
    m.submodules[name] = mem
    rd = mem.read_port()
    m.d.comb += rd.addr.eq(addr)
    data = Signal(shape, name=f"{name}_data")
    m.d.sync += data.eq(rd.data)
    return data


def _zeros(prefix: str, n: int) -> dict:
    return {f"i_{prefix}{i}": Const(0, 1) for i in range(n)}


def _dp16kd_block(a, shift, w, vals, do):
    """A ``DP16KD``: port A reads ``w``-bit words at address ``a`` (bits ``shift``.. of ``ADA``)
    through its output register onto ``do`` (18 bits); port B unused."""
    ports = {f"i_ADA{i}": (a[i - shift] if 0 <= i - shift < len(a) else Const(0, 1)) for i in range(14)}
    ports |= _zeros("ADB", 14) | _zeros("DIA", 18) | _zeros("DIB", 18) | _zeros("CSA", 3) | _zeros("CSB", 3)
    ports |= {f"o_DOA{i}": do[i] for i in range(18)}
    params = {f"p_INITVAL_{i:02X}": Const(v, 320) for i, v in enumerate(vals)}
    return Instance(
        "DP16KD",
        p_DATA_WIDTH_A=w, p_DATA_WIDTH_B=w, p_REGMODE_A="OUTREG", p_REGMODE_B="NOREG",
        p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC", p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
        p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED", **params,
        i_CLKA=ClockSignal("sync"), i_CEA=Const(1, 1), i_OCEA=Const(1, 1), i_WEA=Const(0, 1),
        i_RSTA=Const(0, 1),
        i_CLKB=Const(0, 1), i_CEB=Const(0, 1), i_OCEB=Const(0, 1), i_WEB=Const(0, 1), i_RSTB=Const(0, 1),
        **ports,
    )


def _pdpw16kd_block(a, vals, do):
    """A ``PDPW16KD``: the read port reads 36-bit words at address ``a`` (``ADR[13:5]``) through its
    output register onto ``do`` (36 bits); the write port unused (no clock, no enable, no byte enable)."""
    ports = {f"i_ADR{i}": (a[i - 5] if 0 <= i - 5 < len(a) else Const(0, 1)) for i in range(14)}
    ports |= _zeros("ADW", 9) | _zeros("DI", 36) | _zeros("BE", 4) | _zeros("CSW", 3) | _zeros("CSR", 3)
    ports |= {f"o_DO{i}": do[i] for i in range(36)}
    params = {f"p_INITVAL_{i:02X}": Const(v, 320) for i, v in enumerate(vals)}
    return Instance(
        "PDPW16KD",
        p_DATA_WIDTH_W=36, p_DATA_WIDTH_R=36, p_REGMODE="OUTREG", p_RESETMODE="SYNC",
        p_ASYNC_RESET_RELEASE="SYNC", p_CSDECODE_W="0b000", p_CSDECODE_R="0b000", p_GSR="DISABLED", **params,
        i_CLKW=Const(0, 1), i_CEW=Const(0, 1),
        i_CLKR=ClockSignal("sync"), i_CER=Const(1, 1), i_OCER=Const(1, 1), i_RST=Const(0, 1),
        **ports,
    )


def _ecp5_rom(m, init, shape, addr, name, cfg: RomConfig):
    width, w = shape.width, cfg.width
    a = Signal((cfg.depth - 1).bit_length(), name=f"{name}_addr")
    m.d.comb += a.eq(addr)
    mask = (1 << width) - 1
    codes = [v & mask for v in init]
    outs = []
    for blk, lo in enumerate(range(0, width, w)):
        n = min(w, width - lo)
        vals = dp16kd_initvals([(c >> lo) & ((1 << n) - 1) for c in codes], w)
        if cfg.primitive == "PDPW16KD":
            do = Signal(36, name=f"{name}_do{blk}")
            inst = _pdpw16kd_block(a, vals, do)
        else:
            do = Signal(18, name=f"{name}_do{blk}")
            inst = _dp16kd_block(a, {18: 4, 9: 3, 4: 2, 2: 1, 1: 0}[w], w, vals, do)
        m.submodules[f"{name}_bram{blk}"] = inst
        outs.append(do[:n])
    assert len(outs) == cfg.blocks
    data = Signal(shape, name=f"{name}_data")
    m.d.comb += data.eq(Cat(*outs))
    return data
